"""`pvelab proxy` against real peers on loopback: openssl s_server with a
backdated (expired) chain made with faketime, one limited to TLS 1.0 at
@SECLEVEL=0, Python TLS peers for streams and bulk transfers; curl and Python
clients trust pvelab's local CA."""
import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import BIN, run

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "proxy_peer.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc=None, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def sh(*args, **kw):
    subprocess.run(args, check=True, capture_output=True, **kw)


def make_chain(d, name, start, days_ca, days_leaf, sans):
    """A CA and a leaf, both issued at `start` (faketime, whose clock then runs:
    on a loaded machine the dates may be a second later), into d/name-*.pem."""
    ft = ["faketime", start]
    ca, cakey = f"{d}/{name}-ca.pem", f"{d}/{name}-ca.key"
    leaf, key = f"{d}/{name}-leaf.pem", f"{d}/{name}-leaf.key"
    sh(*ft, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cakey,
       "-out", ca, "-days", str(days_ca), "-subj", f"/CN={name} controller CA")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
       f"{d}/{name}.csr", "-subj", "/CN=idrac.test")
    with open(f"{d}/{name}.ext", "w") as f:
        f.write("subjectAltName=" + ",".join(sans) + "\n")
    sh(*ft, "openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", ca, "-CAkey", cakey,
       "-CAcreateserial", "-days", str(days_leaf), "-extfile", f"{d}/{name}.ext", "-out", leaf)
    return ca, leaf, key


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, port=None, **kw):
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             **kw)
        self.procs.append(p)
        if port:
            wait_port(port, p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("proxy"))
    e = {"d": d}
    # valid 2018-01-01 .. 2020-01-01 (leaf), CA until 2021
    e["ca"], e["leaf"], e["key"] = make_chain(d, "old", "2018-01-01 00:00:00", 1095, 730,
                                              ["DNS:idrac.test", "IP:127.0.0.1"])
    e["other_ca"], _, _ = make_chain(d, "other", "2018-01-01 00:00:00", 1095, 730,
                                     ["DNS:idrac.test"])
    procs = Procs()
    e["procs"] = procs
    e["s_modern"] = free_port()
    procs.start(["openssl", "s_server", "-accept", f"127.0.0.1:{e['s_modern']}", "-cert",
                 e["leaf"], "-key", e["key"], "-www", "-quiet"], port=e["s_modern"])
    e["s_tls1"] = free_port()
    procs.start(["openssl", "s_server", "-accept", f"127.0.0.1:{e['s_tls1']}", "-cert",
                 e["leaf"], "-key", e["key"], "-www", "-quiet", "-tls1", "-cipher",
                 "DEFAULT:@SECLEVEL=0"], port=e["s_tls1"])
    for mode in ("echo", "bulk", "http", "sum"):
        e[mode] = free_port()
        procs.start([sys.executable, PEER, mode, str(e[mode]), e["leaf"], e["key"]],
                    port=e[mode])
    e["state"] = os.path.join(d, "state")
    e["env"] = dict(os.environ, PVELAB_STATE=os.path.join(e["state"], "state.db"))
    # create the CA once, before proxies start in parallel
    r = run("proxy", "ca", env={"PVELAB_STATE": e["env"]["PVELAB_STATE"]})
    assert r.rc == 0, r
    e["pvelab_ca"] = os.path.join(e["state"], "proxy-ca.pem")
    yield e
    procs.stop()


class Proxy:
    """A running `pvelab proxy`; stop() returns (rc, log)."""

    def __init__(self, env, *args, port=None, cwd=None):
        self.port = port or free_port()
        argv = [BIN, "proxy", *args]
        if "--listen" not in args and "-c" not in args:
            argv += ["--listen", f"127.0.0.1:{self.port}"]
        if "--name" not in args and "-c" not in args:
            argv += ["--name", "idrac.test"]  # the name clients use; others get no certificate
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env["env"], cwd=cwd)
        wait_port(self.port, self.p)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        return self.p.returncode, err

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def curl(env, port, name="idrac.test", path="/", extra=()):
    url = f"https://{name}:{port}{path}" if name else f"https://127.0.0.1:{port}{path}"
    args = ["curl", "-sS", "-i", "--max-time", "20", "--cacert", env["pvelab_ca"], *extra]
    if name:
        args += ["--resolve", f"{name}:{port}:127.0.0.1"]
    p = subprocess.run(args + [url], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def up(env, key):
    return f"https://127.0.0.1:{env[key]}"


def test_ca_prints_pem_and_how_to_trust(env):
    r = run("proxy", "ca", env={"PVELAB_STATE": env["env"]["PVELAB_STATE"]})
    assert r.rc == 0, r
    assert r.out.startswith("-----BEGIN CERTIFICATE-----")
    for hint in ("Firefox", "certutil -d sql:", "update-ca-certificates",
                 "security add-trusted-cert", "certutil -addstore"):
        assert hint in r.out
    assert os.stat(os.path.join(env["state"], "proxy-ca-key.pem")).st_mode & 0o777 == 0o600
    r2 = run("proxy", "ca", "-o", "json", env={"PVELAB_STATE": env["env"]["PVELAB_STATE"]})
    assert r2.json()["pem"] in r.out and r2.json()["created"] is False


def test_verify_at_inside_window(env):
    with Proxy(env, "--upstream", up(env, "s_modern"), "--ca-file", env["ca"],
               "--verify-at", "2019-06-01") as p:
        rc, out, err = curl(env, p.port)
        assert rc == 0, err
        assert out.startswith("HTTP/1.0 200"), out[:200]
        assert f"-accept 127.0.0.1:{env['s_modern']}" in out
        # no SNI: the leaf is issued for the listener's IP address
        rc, out, err = curl(env, p.port, name=None)
        assert rc == 0 and out.startswith("HTTP/1.0 200"), err
        rc, log = p.stop()
    assert rc == 0, log
    assert 'verify="ok (verified as of 2019-06-01)"' in log
    assert 'cert="/CN=idrac.test" not_after="2020-01-01 00:00:0' in log, log


@pytest.mark.parametrize("mode", [("--verify-at", "2021-06-01"), ("--verify-at", "2017-06-01"),
                                  ()])
def test_outside_window_or_now_is_refused(env, mode):
    with Proxy(env, "--upstream", up(env, "s_modern"), "--ca-file", env["ca"], *mode) as p:
        rc, out, err = curl(env, p.port)
        assert rc == 0, err
        assert out.startswith("HTTP/1.1 502"), out[:200]
        assert "failed verification" in out
        assert "certificate has expired" in out or "not yet valid" in out
        assert "valid until</th><td>2020-01-01 00:00:0" in out
        rc, log = p.stop()
    assert "failed verification" in log


def test_tls10_upstream(env):
    with Proxy(env, "--upstream", up(env, "s_tls1"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01", "--min-tls", "1.0") as p:
        rc, out, err = curl(env, p.port)
        assert rc == 0 and out.startswith("HTTP/1.0 200"), (err, out[:300])
        assert "-tls1" in out
    # the legacy settings are per target: without them the handshake fails
    with Proxy(env, "--upstream", up(env, "s_tls1"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01") as p:
        rc, out, err = curl(env, p.port)
        assert out.startswith("HTTP/1.1 502"), out[:200]
        assert "min-tls 1.0" in out


def test_trust_records_pin_and_serve_uses_it(env, tmp_path):
    st = {"PVELAB_STATE": str(tmp_path / "st" / "state.db")}
    r = run("proxy", "trust", up(env, "s_modern"), env=st)
    # shown, not pinned: nobody said yes
    assert r.rc == 64 and "refusing to pin" in r.err and "without --yes" in r.err, r
    assert not os.path.exists(os.path.join(st["PVELAB_STATE"].rsplit("/", 1)[0], "pins.json"))
    r = run("proxy", "trust", up(env, "s_modern"), "--yes", env=st)
    assert r.rc == 0, r
    fp = subprocess.run(["openssl", "x509", "-in", env["leaf"], "-noout", "-fingerprint",
                         "-sha256"], capture_output=True, text=True).stdout.split("=")[1].strip()
    assert f"sha256:      {fp}" in r.out
    assert "subject:     /CN=idrac.test" in r.out and "(EXPIRED)" in r.out
    assert "issuer:      /CN=old controller CA" in r.out
    pins = json.load(open(tmp_path / "st" / "pins.json"))
    assert pins[f"127.0.0.1:{env['s_modern']}"]["sha256"] == fp
    e2 = dict(env, env=dict(env["env"], **st), pvelab_ca=str(tmp_path / "st" / "proxy-ca.pem"))
    with Proxy(e2, "--upstream", up(env, "s_modern")) as p:
        rc, out, err = curl(e2, p.port)
        assert rc == 0 and out.startswith("HTTP/1.0 200"), (err, out[:300])
        rc, log = p.stop()
    assert "(pins.json)" in log and 'verify="ok (pinned fingerprint)"' in log


def test_pin_mismatch_serves_error_page(env):
    wrong = "AB:" * 31 + "CD"
    with Proxy(env, "--upstream", up(env, "s_modern"), "--pin", wrong) as p:
        rc, out, err = curl(env, p.port)
        assert out.startswith("HTTP/1.1 502"), out[:200]
        assert "changed" in out
        assert f"expected fingerprint</th><td>{wrong}" in out
        assert "actual fingerprint</th><td>95:" in out or "actual fingerprint" in out
        # a client that does not speak HTTP just gets closed
        ctx = ssl.create_default_context(cafile=env["pvelab_ca"])
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            with ctx.wrap_socket(s, server_hostname="idrac.test") as t:
                t.sendall(b"\x00\x01binary protocol\x00\x00\x00")
                t.settimeout(10)
                assert t.recv(100) == b""
        rc, log = p.stop()
    assert "pinned fingerprint changed" in log


def test_ignore_time_keeps_chain_and_name_checks(env):
    with Proxy(env, "--upstream", up(env, "s_modern"), "--ca-file", env["ca"],
               "--ignore-time") as p:
        rc, out, err = curl(env, p.port)
        assert rc == 0 and out.startswith("HTTP/1.0 200"), (err, out[:300])
    # wrong hostname: the certificate names idrac.test and 127.0.0.1, not localhost
    with Proxy(env, "--upstream", f"https://localhost:{env['s_modern']}", "--ca-file",
               env["ca"], "--ignore-time") as p:
        rc, out, err = curl(env, p.port)
        assert out.startswith("HTTP/1.1 502"), out[:300]
        assert "hostname mismatch" in out
    # untrusted issuer
    with Proxy(env, "--upstream", up(env, "s_modern"), "--ca-file", env["other_ca"],
               "--ignore-time") as p:
        rc, out, err = curl(env, p.port)
        assert out.startswith("HTTP/1.1 502"), out[:300]
        assert "unable to get local issuer certificate" in out


def tls_client(env):
    return ssl.create_default_context(cafile=env["pvelab_ca"])


def test_bidirectional_stream(env):
    with Proxy(env, "--upstream", up(env, "echo"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01") as p:
        ctx = tls_client(env)
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            with ctx.wrap_socket(s, server_hostname="idrac.test") as t:
                t.settimeout(10)
                f = t.makefile("rb")
                assert f.readline() == b"hello\n"  # the server speaks first
                for i in range(200):
                    msg = os.urandom(1 + (i * 977) % 20000)
                    t.sendall(msg)
                    got = f.read(len(msg))
                    assert got == msg
                f.close()
        rc, log = p.stop()
    assert rc == 0, log


def test_half_close(env):
    """The client stops sending (TCP half-close, no TLS close_notify: what many
    clients do); the proxy passes the EOF on and still relays the answer."""
    with Proxy(env, "--upstream", up(env, "sum"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01") as p:
        ctx = tls_client(env)
        data = os.urandom(300000)
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            with ctx.wrap_socket(s, server_hostname="idrac.test") as t:
                t.settimeout(10)
                t.sendall(data)
                socket.socket.shutdown(t, socket.SHUT_WR)  # keep the TLS session
                got = b""
                while len(got) < 32:
                    chunk = t.recv(64)
                    assert chunk, "EOF before the answer"
                    got += chunk
                assert got == hashlib.sha256(data).digest()
                try:
                    assert t.recv(64) == b""  # then the proxy closes its side
                except ssl.SSLError:
                    pass
        rc, log = p.stop()
    assert "up=300000 down=32 " in log, log


def test_unreachable_upstream(env):
    with Proxy(env, "--upstream", f"https://127.0.0.1:{free_port()}", "--pin",
               "AB:" * 31 + "CD") as p:
        rc, out, err = curl(env, p.port)
        assert out.startswith("HTTP/1.1 502") and "Cannot reach" in out, out[:300]
        assert "Connection refused" in out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as st:
        return [int(l.split()[1]) for l in st if l.startswith("VmRSS")][0]


def queued_to(port):
    """Bytes on their way from the server at port over loopback TCP and not
    yet read by its clients: its sockets' send queues plus the clients'
    receive queues (/proc/net/tcp)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            tx, rx = (int(x, 16) for x in fields[4].split(":"))
            if int(fields[1].split(":")[1], 16) == port:
                total += tx
            elif int(fields[2].split(":")[1], 16) == port:
                total += rx
    return total


def test_backpressure_slow_reader(env):
    """A client that stops reading makes the proxy stop reading upstream (no
    unbounded buffering), and everything arrives once it reads again."""
    up_bytes, down_bytes = 4 << 20, 16 << 20
    with Proxy(env, "--upstream", up(env, "bulk"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01") as p:
        ctx = tls_client(env)
        data = os.urandom(up_bytes)
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            with ctx.wrap_socket(s, server_hostname="idrac.test") as t:
                t.settimeout(30)
                rss0 = rss_kib(p.p.pid)
                t.sendall(struct.pack("!QQ", up_bytes, down_bytes) + data)
                # Measure once the proxy has stopped reading upstream: 256 KiB
                # wait in the kernel between the upstream and the proxy.
                deadline = time.time() + 30
                while queued_to(env["bulk"]) < 256 << 10:
                    assert time.time() < deadline, "the proxy kept reading upstream"
                    time.sleep(0.02)
                grew = rss_kib(p.p.pid) - rss0
                sanitized = "asan" in open(f"/proc/{p.p.pid}/maps").read()
                h = hashlib.sha256()
                tail = b""
                left = down_bytes + 64
                while left:
                    chunk = t.recv(min(left, 1 << 20))
                    assert chunk, f"EOF with {left} bytes missing"
                    left -= len(chunk)
                    keep = max(0, 64 - left)  # the last 64 bytes are the two digests
                    if keep:
                        body_part = chunk[:len(chunk) - keep] if keep < len(chunk) else b""
                        tail += chunk[len(body_part):]
                        h.update(body_part)
                    else:
                        h.update(chunk)
                assert tail[:32] == h.digest()
                assert tail[32:] == hashlib.sha256(data).digest()
        rc, log = p.stop()
    assert rc == 0, log
    # 16 MiB came from upstream, but the proxy held little of it (ASan's
    # quarantine keeps freed memory resident, so only plain builds can tell)
    if not sanitized:
        assert grew < 8 * 1024, f"proxy RSS grew {grew} KiB while the client was not reading"


def test_200_concurrent_large_transfers(env):
    n, up_bytes, down_bytes = 200, 64 * 1024, 256 * 1024

    async def one(port, ctx):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                       server_hostname="idrac.test")
        data = os.urandom(up_bytes)
        writer.write(struct.pack("!QQ", up_bytes, down_bytes) + data)
        await writer.drain()
        got = await reader.readexactly(down_bytes + 64)
        writer.close()
        body, their_down, their_up = got[:down_bytes], got[down_bytes:-32], got[-32:]
        return (hashlib.sha256(body).digest() == their_down and
                hashlib.sha256(data).digest() == their_up)

    async def all_of(port):
        ctx = tls_client(env)
        return await asyncio.wait_for(asyncio.gather(*[one(port, ctx) for _ in range(n)]), 90)

    with Proxy(env, "--upstream", up(env, "bulk"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01") as p:
        results = asyncio.run(all_of(p.port))
        rc, log = p.stop()
    assert all(results), f"{results.count(False)} of {n} transfers corrupted"
    assert rc == 0, log
    assert log.count('verify="ok (verified as of 2019-01-01)"') == n


def test_location_rewrite(env):
    with Proxy(env, "--upstream", up(env, "http"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01") as p:
        # two requests on one keep-alive connection: both responses are rewritten
        args = ["curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", env["pvelab_ca"],
                "--resolve", f"idrac.test:{p.port}:127.0.0.1",
                f"https://idrac.test:{p.port}/login",
                f"https://idrac.test:{p.port}/", f"https://idrac.test:{p.port}/other"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
        assert f"Location: https://idrac.test:{p.port}/login\n" in out, out
        assert "Location: https://elsewhere.test/x\n" in out  # not the upstream: untouched
        rc, log = p.stop()
    assert log.count("up=") == 1  # one connection served all three
    with Proxy(env, "--upstream", up(env, "http"), "--ca-file", env["ca"],
               "--verify-at", "2019-01-01", "--no-rewrite-location") as p:
        rc, out, err = curl(env, p.port)
        assert f"Location: https://127.0.0.1:{env['http']}/login" in out


class Stderr:
    """A process's stderr read on a thread, so that a test can wait for a line
    while the process runs; text() is all of it once the process is gone."""

    def __init__(self, proc):
        self.proc, self.lines, self.cv = proc, [], threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cv:
                self.lines.append(line)
                self.cv.notify_all()

    def wait_for(self, text, timeout=15):
        with self.cv:
            ok = self.cv.wait_for(lambda: any(text in l for l in self.lines), timeout)
        assert ok, f"no {text!r} on stderr: {''.join(self.lines)}"

    def text(self, timeout=20):
        self.proc.wait(timeout=timeout)
        self.thread.join(timeout)
        return "".join(self.lines)


def write_config(path, env, port, verify_a):
    with open(path, "w") as f:
        f.write(f"""proxy:
  listen: 127.0.0.1:{port}
  targets:
    - name: idrac
      upstream: https://127.0.0.1:{env['s_modern']}
      hostnames: [idrac.test]
      ca_file: {env['ca']}
      verify_at: {verify_a}
    - name: ilo
      upstream: https://127.0.0.1:{env['s_tls1']}
      hostnames: [ilo.test]
      ca_file: {env['ca']}
      verify_at: "2019-01-01"
      min_tls: "1.0"
""")


def test_config_routing_and_sighup_reload(env, tmp_path):
    cfg = str(tmp_path / "pvelab.yaml")
    port = free_port()
    write_config(cfg, env, port, "2019-01-01")
    proc = subprocess.Popen([BIN, "-c", cfg, "proxy"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env["env"])
    log = Stderr(proc)
    try:
        wait_port(port, proc)
        rc, out, err = curl(env, port, name="idrac.test")
        assert out.startswith("HTTP/1.0 200") and "-tls1" not in out, (err, out[:200])
        rc, out, err = curl(env, port, name="ilo.test")
        assert out.startswith("HTTP/1.0 200") and "-tls1" in out, (err, out[:200])
        # no SNI (an IP in the URL): routed by the Host header
        rc, out, err = curl(env, port, name=None, extra=("-H", "Host: ilo.test"))
        assert out.startswith("HTTP/1.0 200") and "-tls1" in out, (err, out[:200])
        rc, out, err = curl(env, port, name=None, extra=("-H", "Host: nope.test"))
        assert out.startswith("HTTP/1.1 404") and "nope.test" in out, out[:300]
        # move idrac's verification date out of the window and reload
        write_config(cfg, env, port, "2022-01-01")
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            rc, out, err = curl(env, port, name="idrac.test")
            if out.startswith("HTTP/1.1 502"):
                break
            time.sleep(0.1)
        assert out.startswith("HTTP/1.1 502") and "as of 2022-01-01" in out, out[:300]
        rc, out, err = curl(env, port, name="ilo.test")
        assert out.startswith("HTTP/1.0 200"), out[:200]
        proc.send_signal(signal.SIGUSR1)
        log.wait_for("proxy: stats")
    finally:
        proc.send_signal(signal.SIGTERM)
        err = log.text()
    assert proc.returncode == 0
    assert "reloaded" in err
    stats = re.search(r"proxy: stats (.*)", err).group(1)
    assert "unrouted=1 " in stats and "reloads=1" in stats and "verify_failed=1 " in stats, stats


def test_graceful_shutdown_lets_open_connections_finish(env):
    p = Proxy(env, "--upstream", up(env, "echo"), "--ca-file", env["ca"], "--verify-at",
              "2019-01-01", "--grace", "20")
    ctx = tls_client(env)
    s = socket.create_connection(("127.0.0.1", p.port))
    t = ctx.wrap_socket(s, server_hostname="idrac.test")
    t.settimeout(10)
    f = t.makefile("rb")
    assert f.readline() == b"hello\n"
    p.p.send_signal(signal.SIGTERM)
    deadline = time.time() + 10
    refused = False
    while time.time() < deadline and not refused:
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=1).close()
            time.sleep(0.05)
        except OSError:
            refused = True
    assert refused, "still accepting after SIGTERM"
    assert p.p.poll() is None, "exited with a connection open"
    t.sendall(b"still here\n")
    assert f.readline() == b"still here\n"
    f.close()
    t.close()
    rc, log = p.stop(sig=signal.SIGCONT, timeout=15)
    assert rc == 0, log
    assert re.search(r"stopping; \d+ connection\(s\) get 20 s to finish", log), log


def test_usage_errors(env):
    r = run("proxy", "--upstream", "http://x", env={"PVELAB_STATE": env["env"]["PVELAB_STATE"]})
    assert r.rc == 1 and "not https://" in r.err
    r = run("proxy", "--upstream", "https://x", "--pin", "AA", "--insecure")
    assert r.rc == 64
    r = run("proxy", "--upstream", "https://x", "--verify-at", "June",
            env={"PVELAB_STATE": env["env"]["PVELAB_STATE"]})
    assert r.rc == 1 and "invalid date 'June'" in r.err
    r = run("proxy", "-c", "/nonexistent/pvelab.yaml")
    assert r.rc == 1 and "no --upstream" in r.err


def test_config_errors_are_located(env, tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("proxy:\n  targets:\n    - name: a\n      upstream: https://h\n"
                   "      verify_att: 2019-01-01\n")
    r = run("-c", str(cfg), "proxy", env={"PVELAB_STATE": env["env"]["PVELAB_STATE"]})
    assert r.rc == 1
    assert f"{cfg}:5:7" in r.err and "verify_att" in r.err, r
    cfg.write_text("proxy:\n  targets:\n    - name: a\n      upstream: https://h\n"
                   "      verify_at: 2019-01-01\n      insecure: true\n")
    r = run("-c", str(cfg), "proxy", env={"PVELAB_STATE": env["env"]["PVELAB_STATE"]})
    assert r.rc == 1 and "choose one of" in r.err, r


def test_own_listener_and_failed_reload_keeps_serving(env, tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    shared, own = free_port(), free_port()
    cfg.write_text(f"""proxy:
  listen: 127.0.0.1:{shared}
  targets:
    - name: idrac
      upstream: https://127.0.0.1:{env['s_modern']}
      listen: 127.0.0.1:{own}
      ca_file: {env['ca']}
      verify_at: 2019-01-01
""")
    proc = subprocess.Popen([BIN, "-c", str(cfg), "proxy"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env["env"])
    log = Stderr(proc)
    try:
        wait_port(own, proc)
        # its own listener takes a client without SNI; nothing listens on the unused
        # shared one (a name it does not serve is refused: test_900_hostile_proxy)
        rc, out, err = curl(env, own, name=None)
        assert out.startswith("HTTP/1.0 200"), (err, out[:200])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", shared), timeout=1).close()
        cfg.write_text("proxy:\n  targets: [\n")  # broken YAML
        proc.send_signal(signal.SIGHUP)
        log.wait_for("reload failed, keeping the running config")
        rc, out, err = curl(env, own, name=None)
        assert out.startswith("HTTP/1.0 200"), (err, out[:200])
    finally:
        proc.send_signal(signal.SIGTERM)
        err = log.text()
    assert proc.returncode == 0, err


def test_grace_period_ends_and_no_sni_name(env):
    p = Proxy(env, "--upstream", up(env, "echo"), "--ca-file", env["ca"], "--verify-at",
              "2019-01-01", "--grace", "1", "--name", "proxy.lan")
    ctx = tls_client(env)
    ctx.check_hostname = False
    s = socket.create_connection(("127.0.0.1", p.port))
    t = ctx.wrap_socket(s)  # no SNI: the leaf carries --name and the local address
    t.settimeout(10)
    cert = t.getpeercert()
    assert ("DNS", "proxy.lan") in cert["subjectAltName"], cert
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"], cert
    f = t.makefile("rb")
    assert f.readline() == b"hello\n"
    rc, log = p.stop(timeout=15)  # the connection stays open: the grace period ends it
    f.close()
    t.close()
    assert rc == 0, log
    assert "grace period over, closing 1 connection(s)" in log


def test_pins_and_ca_live_where_the_config_puts_the_state(env, tmp_path):
    """state: in the config moves the proxy's CA and pins with the database."""
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"""state: keep/lab.db
proxy:
  targets:
    - name: idrac
      upstream: https://127.0.0.1:{env['s_modern']}
""")
    r = run("-c", cfg, "proxy", "trust", "idrac", "-o", "json", "--yes", env={"PVELAB_STATE": ""})
    assert r.rc == 0, r
    pins = json.load(open(tmp_path / "keep" / "pins.json"))
    assert pins[f"127.0.0.1:{env['s_modern']}"]["sha256"] == r.json()["sha256"]
    r = run("-c", cfg, "proxy", "ca", env={"PVELAB_STATE": ""})
    assert r.rc == 0, r
    assert (tmp_path / "keep" / "proxy-ca.pem").exists()
    assert not (tmp_path / ".pvelab").exists()


def test_trust_by_target_name_uses_its_tls_settings(env, tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"""proxy:
  targets:
    - name: ilo
      upstream: https://127.0.0.1:{env['s_tls1']}
      min_tls: "1.0"
""")
    st = {"PVELAB_STATE": str(tmp_path / "st" / "state.db")}
    r = run("-c", cfg, "proxy", "trust", "ilo", "-o", "json", "--yes", env=st)
    assert r.rc == 0, r
    j = r.json()
    assert j["target"] == "ilo" and j["protocol"] == "TLSv1" and j["expired"] is True
    assert j["subject"] == "/CN=idrac.test" and len(j["sha256"]) == 95
    assert "unable to get local issuer certificate" in j["verify_now"]
    pins = json.load(open(tmp_path / "st" / "pins.json"))
    assert pins[f"127.0.0.1:{env['s_tls1']}"]["sha256"] == j["sha256"]
    r = run("-c", cfg, "proxy", "trust", "nosuch", env=st)
    assert r.rc == 64 and "no proxy target named 'nosuch'" in r.err, r
