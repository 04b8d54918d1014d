"""Hostile clients of `pvelab proxy` (issue 17 item 4): descriptor
exhaustion, a ClientHello dripped a byte at a time, more connections than the
cap, a relay left idle. The proxy must stay responsive, bounded and quiet."""
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BIN
from test_300_proxy import env, free_port, wait_port  # noqa: F401 (fixture)


class LoggedProxy:
    """`pvelab -c CFG proxy` with its log in a file; stats() asks it for its
    counters (SIGUSR1) and waits for the answer."""

    def __init__(self, env, tmp_path, extra, prefix=()):  # noqa: F811
        self.port = free_port()
        self.cfg = tmp_path / "pvelab.yaml"
        self.cfg.write_text(f"""proxy:
  listen: 127.0.0.1:{self.port}
{extra}  targets:
    - name: idrac
      upstream: https://127.0.0.1:{env['echo']}
      hostnames: [idrac.test]
      ca_file: {env['ca']}
      verify_at: 2019-01-01
""")
        self.log = tmp_path / "proxy.log"
        self.logf = open(self.log, "w")
        self.p = subprocess.Popen([*prefix, BIN, "-c", str(self.cfg), "proxy"],
                                  stdout=subprocess.DEVNULL, stderr=self.logf, env=env["env"])
        wait_port(self.port, self.p)

    def text(self):
        return self.log.read_text()

    def stats(self, timeout=30):
        n = self.text().count("proxy: stats ")
        self.p.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while self.text().count("proxy: stats ") == n:
            assert time.monotonic() < deadline, "no stats line: the proxy does not answer"
            time.sleep(0.05)
        line = [l for l in self.text().splitlines() if "proxy: stats " in l][-1]
        return dict(kv.split("=") for kv in line.split("proxy: stats ")[1].split())

    def wait_stat(self, key, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if pred(int(st[key])):
                return st
            assert time.monotonic() < deadline, st
            time.sleep(0.1)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.logf.close()
        return self.p.returncode


def relay(env, port):  # noqa: F811
    """A TLS connection through the proxy to the echo peer, past its hello."""
    ctx = ssl.create_default_context(cafile=env["pvelab_ca"])
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                        server_hostname="idrac.test")
    got = b""
    while not got.endswith(b"hello\n"):
        d = t.recv(100)
        assert d, got
        got += d
    return t


def tls_get(env, port):  # noqa: F811
    with relay(env, port) as t:
        t.sendall(b"ping\n")
        return t.recv(100)


def closed_within(s, seconds):
    """Whether the peer closes s within seconds (reading whatever comes)."""
    s.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if s.recv(4096) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def test_descriptor_exhaustion_pauses_instead_of_spinning(env, tmp_path):  # noqa: F811
    px = LoggedProxy(env, tmp_path, "", prefix=("prlimit", "--nofile=40"))
    socks = []
    try:
        for _ in range(60):
            socks.append(socket.create_connection(("127.0.0.1", px.port), timeout=5))
        px.wait_stat("accept_paused", lambda v: v >= 2)
        # one log line for the whole episode, not one per failed accept
        assert px.text().count("accept on ") == 1, px.text()[:2000]
        assert "pausing the listener" in px.text()
        for s in socks:
            s.close()
        socks = []
        # once descriptors are free the listener takes connections again
        deadline = time.monotonic() + 30
        while True:
            try:
                assert tls_get(env, px.port) == b"ping\n"
                break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
        assert px.stop() == 0


def test_dripped_client_hello_hits_one_deadline(env, tmp_path):  # noqa: F811
    px = LoggedProxy(env, tmp_path, "  handshake_timeout: 2\n")
    hello = bytes.fromhex("16030100c8010000c40303") + os.urandom(32) + b"\x00" * 150
    try:
        s = socket.create_connection(("127.0.0.1", px.port), timeout=5)
        s.settimeout(0.3)
        deadline = time.monotonic() + 30
        closed = False
        for b in hello:  # a byte every 0.3 s: each one restarted the old timeout
            try:
                s.sendall(bytes([b]))
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
            assert time.monotonic() < deadline, "still open: the deadline restarts on every byte"
        assert closed
        s.close()
        assert int(px.stats()["timed_out"]) == 1
    finally:
        assert px.stop() == 0


def test_connection_cap(env, tmp_path):  # noqa: F811
    px = LoggedProxy(env, tmp_path, "  max_connections: 3\n")
    socks = []
    try:
        px.wait_stat("active", lambda v: v == 0)  # wait_port's probe has gone
        for _ in range(3):
            socks.append(socket.create_connection(("127.0.0.1", px.port), timeout=5))
        px.wait_stat("active", lambda v: v == 3)
        extra = socket.create_connection(("127.0.0.1", px.port), timeout=5)
        assert closed_within(extra, 10)
        extra.close()
        assert int(px.stats()["over_cap"]) == 1
        assert "connections open (proxy.max_connections)" in px.text()
        for s in socks:
            s.close()
        px.wait_stat("active", lambda v: v == 0)
        assert tls_get(env, px.port) == b"ping\n"
    finally:
        for s in socks:
            s.close()
        assert px.stop() == 0


def test_idle_relay_is_closed(env, tmp_path):  # noqa: F811
    px = LoggedProxy(env, tmp_path, "  idle_timeout: 1\n")
    try:
        s = relay(env, px.port)
        s.sendall(b"ping\n")
        assert s.recv(100) == b"ping\n"
        assert closed_within(s, 20)
        s.close()
        assert "end=idle" in px.text()
    finally:
        assert px.stop() == 0


def test_unknown_sni_gets_no_certificate(env, tmp_path):  # noqa: F811
    px = LoggedProxy(env, tmp_path, "")
    try:
        ctx = ssl.create_default_context(cafile=env["pvelab_ca"])
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            with socket.create_connection(("127.0.0.1", px.port), timeout=10) as s:
                ctx.wrap_socket(s, server_hostname="www.google.com")
        assert int(px.stats()["unrouted"]) == 1
        # the configured names still get theirs
        assert tls_get(env, px.port) == b"ping\n"
    finally:
        assert px.stop() == 0


def test_ca_is_name_constrained_and_short_lived(env, tmp_path):  # noqa: F811
    text = subprocess.run(["openssl", "x509", "-in", env["pvelab_ca"], "-noout", "-text",
                           "-enddate"], capture_output=True, text=True, check=True).stdout
    assert "X509v3 Name Constraints: critical" in text
    for name in ("DNS:lan", "DNS:home.arpa", "DNS:local", "IP:192.168.0.0/255.255.0.0"):
        assert name in text
    # a leaf for another site, even signed with the CA's own key, does not verify
    d = str(tmp_path)
    key = os.path.join(env["state"], "proxy-ca-key.pem")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/l.key", "-out",
                    f"{d}/l.csr", "-subj", "/CN=www.google.com"], check=True, capture_output=True)
    with open(f"{d}/l.ext", "w") as f:
        f.write("subjectAltName=DNS:www.google.com\n")
    subprocess.run(["openssl", "x509", "-req", "-in", f"{d}/l.csr", "-CA", env["pvelab_ca"],
                    "-CAkey", key, "-CAcreateserial", "-days", "30", "-extfile", f"{d}/l.ext",
                    "-out", f"{d}/l.pem"], check=True, capture_output=True)
    v = subprocess.run(["openssl", "verify", "-CAfile", env["pvelab_ca"], f"{d}/l.pem"],
                       capture_output=True, text=True)
    assert v.returncode != 0 and "permitted subtree violation" in v.stdout + v.stderr
    # about two years, not ten
    import datetime
    end = [l for l in text.splitlines() if l.startswith("notAfter=")][0].split("=", 1)[1]
    left = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y %Z") - datetime.datetime.utcnow()
    assert left.days <= 825


def test_min_tls_10_still_refuses_weak_upstream_keys(env, tmp_path):  # noqa: F811
    from test_300_proxy import Proxy, curl
    d = str(tmp_path)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:768", "-md5", "-nodes", "-keyout",
                    f"{d}/weak.key", "-out", f"{d}/weak.pem", "-days", "30", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    srv = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
                            f"{d}/weak.pem", "-key", f"{d}/weak.key", "-www", "-quiet",
                            "-cipher", "DEFAULT:@SECLEVEL=0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, srv)
        up = f"https://127.0.0.1:{port}"
        with Proxy(env, "--upstream", up, "--ca-file", f"{d}/weak.pem", "--min-tls", "1.0") as p:
            rc, out, err = curl(env, p.port)
            assert out.startswith("HTTP/1.1 502") and "failed verification" in out, out[:300]
            rc, log = p.stop()
        assert "too small" in log or "too weak" in log, log
        with Proxy(env, "--upstream", up, "--ca-file", f"{d}/weak.pem", "--min-tls", "1.0",
                   "--weak-keys") as p:
            rc, out, err = curl(env, p.port)
            assert out.startswith("HTTP/1.0 200"), (err, out[:300])
            rc, log = p.stop()
        assert "weak_keys: its chain may use small keys" in log
    finally:
        srv.kill()
        srv.wait()


def test_pin_over_ca_file_is_said(env, tmp_path):  # noqa: F811
    import json
    st = os.path.dirname(env["env"]["PVELAB_STATE"])
    pins = os.path.join(st, "pins.json")
    old = open(pins).read() if os.path.exists(pins) else None
    key = f"127.0.0.1:{env['echo']}"
    data = json.loads(old) if old else {}
    data[key] = {"sha256": ":".join(["AB"] * 32), "subject": "/CN=x", "not_after": "-",
                 "recorded": "-"}
    with open(pins, "w") as f:
        json.dump(data, f)
    try:
        cfg = tmp_path / "pvelab.yaml"
        port = free_port()
        cfg.write_text(f"""proxy:
  listen: 127.0.0.1:{port}
  targets:
    - name: idrac
      upstream: https://127.0.0.1:{env['echo']}
      hostnames: [idrac.test]
      ca_file: {env['ca']}
""")
        p = subprocess.Popen([BIN, "-c", str(cfg), "proxy"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env["env"])
        wait_port(port, p)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        assert "the pin in pins.json (pvelab proxy trust) is used, not ca_file" in err, err
    finally:
        if old is None:
            os.unlink(pins)
        else:
            with open(pins, "w") as f:
                f.write(old)


def test_verify_at_remembers_the_first_certificate(env, tmp_path):  # noqa: F811
    import json
    from test_300_proxy import Proxy, curl
    st = tmp_path / "st"
    e2 = dict(env, env=dict(env["env"], PVELAB_STATE=str(st / "state.db")),
              pvelab_ca=str(st / "proxy-ca.pem"))
    up = f"https://127.0.0.1:{env['s_modern']}"
    args = ("--upstream", up, "--ca-file", env["ca"], "--verify-at", "2019-06-01")
    with Proxy(e2, *args) as p:
        rc, out, err = curl(e2, p.port)
        assert out.startswith("HTTP/1.0 200"), (err, out[:200])
        rc, log = p.stop()
    fp = subprocess.run(["openssl", "x509", "-in", env["leaf"], "-noout", "-fingerprint",
                         "-sha256"], capture_output=True, text=True).stdout.split("=")[1].strip()
    seen = json.loads((st / "seen.json").read_text())
    assert seen[f"127.0.0.1:{env['s_modern']}"]["sha256"] == fp
    assert "changed since it was first verified" not in log
    # another certificate of the same name and issuer (here: a forged record of the first)
    seen[f"127.0.0.1:{env['s_modern']}"]["sha256"] = ":".join(["AB"] * 32)
    (st / "seen.json").write_text(json.dumps(seen))
    with Proxy(e2, *args) as p:
        for _ in range(2):
            rc, out, err = curl(e2, p.port)
            assert out.startswith("HTTP/1.0 200"), (err, out[:200])
        rc, log = p.stop()
    assert log.count("its certificate changed since it was first verified") == 1, log
    assert f"now {fp}" in log
