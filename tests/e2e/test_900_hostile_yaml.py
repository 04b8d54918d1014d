"""Hostile YAML files (issue 17 item 3): an alias bomb, invalid UTF-8 that
makes libfyaml spin, deep nesting; each a clean error within a deadline and
an address-space limit. A broken file written over a running proxy's config
keeps it serving and stoppable."""
import signal
import subprocess
import time

import pytest

from conftest import BIN
from hostile import SANITIZED, run_limited
from test_300_proxy import curl, env, free_port, wait_port  # noqa: F401 (fixture)


def bomb(levels, width=10):
    lines = ["a0: &a0 [" + ",".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,want", [
    (bomb(9).encode(), "once aliases are expanded (an alias bomb?)"),          # 10^9 nodes
    (bomb(7).encode(), "once aliases are expanded (an alias bomb?)"),          # 10^7 nodes
    (b"%\xff\n", "c.yaml:1:2: error: invalid UTF-8 (byte 0xff"),
    (b"guests:\n  - name: \xc3\x28\n", "c.yaml:2:11: error: invalid UTF-8 (byte 0xc3"),
    (b"guests:\n  - name: \xed\xa0\x80\n", "invalid UTF-8 (byte 0xed"),     # a surrogate
    (b"[" * 100000 + b"]" * 100000, "c.yaml"),
    (b"a: &a [ *a ]\n", "once aliases are expanded"),
], ids=["bomb-1e9", "bomb-1e7", "ff", "bad-continuation", "surrogate", "deep", "loop"])
def test_hostile_yaml_is_a_clean_error(tmp_path, text, want):
    (tmp_path / "c.yaml").write_bytes(text)
    rc, out, err, _ = run_limited(["-c", str(tmp_path / "c.yaml"), "validate"], {}, timeout=30)
    assert rc == 1, err
    assert want in out + err, out + err


def test_small_anchors_still_work(tmp_path):
    (tmp_path / "c.yaml").write_text("guests:\n  - &g\n    name: a\n    memory: 512\n"
                                     "  - <<: *g\n    name: b\n")
    rc, out, err, _ = run_limited(["-c", str(tmp_path / "c.yaml"), "validate"], {}, timeout=30)
    assert rc == 0 and "2 guests" in out, out + err


def test_undefined_merge_alias_is_an_error(tmp_path):
    (tmp_path / "c.yaml").write_text("guests:\n  - name: a\n    <<: *nope\n")
    rc, out, err, _ = run_limited(["-c", str(tmp_path / "c.yaml"), "validate"], {}, timeout=30)
    assert rc == 1 and "cannot resolve an alias or merge key" in out + err


@pytest.mark.parametrize("broken", [b"%\xff\n", bomb(9).encode()])
def test_proxy_reload_of_a_hostile_file_keeps_serving(env, tmp_path, broken):  # noqa: F811
    cfg = tmp_path / "pvelab.yaml"
    own = free_port()
    cfg.write_text(f"""proxy:
  targets:
    - name: idrac
      upstream: https://127.0.0.1:{env['s_modern']}
      hostnames: [idrac.test]
      listen: 127.0.0.1:{own}
      ca_file: {env['ca']}
      verify_at: 2019-01-01
""")
    limit = [] if SANITIZED else ["prlimit", "--as=1073741824", "--"]
    proc = subprocess.Popen([*limit, BIN, "-c", str(cfg), "proxy"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env["env"])
    try:
        wait_port(own, proc)
        cfg.write_bytes(broken)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while True:  # the reload has been refused once the proxy says so
            rc, out, err = curl(env, own)
            assert out.startswith("HTTP/1.0 200"), (err, out[:200])
            assert time.monotonic() < deadline
            stats = subprocess.run(["cat", f"/proc/{proc.pid}/status"], capture_output=True,
                                   text=True).stdout
            assert "State:" in stats
            break
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "reload failed, keeping the running config" in err
