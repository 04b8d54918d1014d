"""`pvelab serve`'s life and its hostile clients, against the simulator:
SIGTERM drains (an answer in flight is sent, a running sync is recorded, a
second signal stops at once), SIGHUP reloads the config and the certificate
without dropping connections and keeps the running config when the new one is
broken, systemd hears READY/RELOADING/STOPPING/WATCHDOG on NOTIFY_SOCKET, a
slowloris is cut at the total request deadline, connections count from their
accept, a client that stops reading its event stream holds a bounded buffer
and is closed, and a CLI holding the store's write lock never stalls the loop
(neither the sync's record nor a check's change waits for it there)."""
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import hashlib

import pytest
import requests

from conftest import BIN, run
from simfix import start_sim, stop_sim


def full_token(info):
    t = info["token"]
    return t if "!" in t and "=" in t else f"root@pam!pvelab={t}"


def sim_env(info, state):
    return {"PVELAB_URL": info["url"], "PVELAB_TOKEN": full_token(info),
            "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(state)}


def until(cond, what, deadline=30):
    end = time.monotonic() + deadline
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


class Server:
    """A `pvelab serve` process whose stderr is read as it comes (lines)."""

    def __init__(self, *args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([BIN, "serve", *[str(a) for a in args]],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=e)
        self.lines = []
        line = self.proc.stdout.readline()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not line:
            self.proc.wait(timeout=20)
            self.reader.join(timeout=20)
            raise RuntimeError(f"pvelab serve did not start: {self.err()}")
        self.info = json.loads(line)
        self.url = self.info["url"]
        self.host, port = self.info["listeners"][0]["listen"].rsplit(":", 1)
        self.port = int(port)

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def err(self):
        return "".join(self.lines)

    def logged(self, text, deadline=30):
        return until(lambda: text in self.err(), f"'{text}' in the log", deadline)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(timeout=20)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait()


def token(state, role="viewer", name=None):
    r = run("token", "create", name or role, "--role", role, env={"PVELAB_STATE": str(state)})
    assert r.rc == 0, r
    return r.out.strip()


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_request(sock, path, tok=None, extra=b""):
    h = b"Authorization: Bearer " + tok.encode() + b"\r\n" if tok else b""
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + h + extra + b"\r\n")


def read_response(sock):
    """One HTTP/1.1 response with a Content-Length from a kept-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        c = sock.recv(65536)
        assert c, f"closed after {data!r}"
        data += c
    head, _, body = data.partition(b"\r\n\r\n")
    n = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
             if ln.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        c = sock.recv(65536)
        assert c
        body += c
    return int(head.split(b" ")[1]), body


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--nodes", "2", "--guests", "24")
    yield info
    stop_sim(info)


@pytest.fixture
def lab(sim, tmp_path):
    state = tmp_path / "state.db"
    env = sim_env(sim, state)
    assert run("sync", env=env).rc == 0
    return {"env": env, "state": state, "dir": tmp_path, "viewer": token(state),
            "operator": token(state, "operator")}


def test_sigterm_drains_an_answer_in_flight_and_ends_streams(tmp_path):
    state = tmp_path / "s.db"
    tok = token(state)
    srv = Server("--listen", "127.0.0.1:0", env={"PVELAB_STATE": str(state)})
    try:
        stream = requests.get(srv.url + "/api/v1/events", stream=True, timeout=30,
                              headers={"Authorization": "Bearer " + tok})
        assert stream.status_code == 200
        # the 6th failure in a row from one address is answered 2 s later: in flight
        for _ in range(5):
            assert requests.get(srv.url + "/api/v1/cluster", timeout=30,
                                headers={"Authorization": "Bearer pvl_x"}).status_code == 401
        got = {}

        def held():
            got["r"] = requests.get(srv.url + "/api/v1/cluster", timeout=30,
                                    headers={"Authorization": "Bearer pvl_x"})
        t = threading.Thread(target=held)
        t.start()
        srv.logged("6 in a row, answer held back")
        srv.signal(signal.SIGTERM)
        srv.logged("draining")
        # no new connection is taken
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(srv.url + "/healthz", timeout=5)
        t.join(timeout=30)
        assert got["r"].status_code == 401  # the answer in flight was sent
        assert got["r"].headers["Connection"].lower() == "close"
        # the stream ended with a last event, then the server stopped
        text = stream.raw.read().decode()
        assert "event: shutdown" in text
        assert srv.wait() == 0, srv.err()
        assert "drained, stopping" in srv.err()
    finally:
        srv.stop()


def test_a_second_signal_stops_at_once(tmp_path):
    state = tmp_path / "s.db"
    srv = Server("--listen", "127.0.0.1:0", env={"PVELAB_STATE": str(state)})
    try:
        for _ in range(6):
            requests.get(srv.url + "/api/v1/cluster", timeout=30,
                         headers={"Authorization": "Bearer pvl_x"})
        got = {}

        def held():  # the 7th is held back 4 s
            try:
                got["r"] = requests.get(srv.url + "/api/v1/cluster", timeout=30,
                                        headers={"Authorization": "Bearer pvl_x"})
            except requests.exceptions.ConnectionError as e:
                got["e"] = e
        t = threading.Thread(target=held)
        t.start()
        srv.logged("7 in a row, answer held back")
        srv.signal(signal.SIGTERM)
        srv.logged("draining")
        srv.signal(signal.SIGINT)
        assert srv.wait() == 1
        t.join(timeout=30)
        assert "e" in got, "the held answer was not cut"  # it stopped before sending it
        assert "again: stopping now" in srv.err()
    finally:
        srv.stop()


def test_sigterm_lets_a_running_sync_finish_and_record_its_run(tmp_path):
    sim = start_sim("--nodes", "2", "--guests", "24", "--faults", "latency=150")
    try:
        state = tmp_path / "s.db"
        env = sim_env(sim, state)
        op = token(state, "operator")
        srv = Server("--listen", "127.0.0.1:0", env=env)
        try:
            srv.logged("refresh: sync 1 recorded")
            assert requests.post(srv.url + "/api/v1/sync", timeout=30,
                                 headers={"Authorization": "Bearer " + op}).status_code == 202
            srv.logged("refresh: sync 2 (asked)")
            srv.signal(signal.SIGTERM)
            assert srv.wait() == 0, srv.err()
            assert "letting sync 2 finish" in srv.err()
            assert "refresh: sync 2 recorded" in srv.err()
        finally:
            srv.stop()
        db = sqlite3.connect(str(state))
        try:
            runs = db.execute("select status from runs where kind='sync'").fetchall()
        finally:
            db.close()
        assert len(runs) == 2 and all(r[0] == "ok" for r in runs), runs
    finally:
        stop_sim(sim)


def test_sighup_reloads_the_config_and_keeps_it_when_broken(lab):
    cfg = lab["dir"] / "pvelab.yaml"
    cfg.write_text("serve:\n  status_interval: 1\n  sync_interval: 60\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=lab["env"])
    h = {"Authorization": "Bearer " + lab["viewer"]}
    try:
        def interval():
            return requests.get(srv.url + "/api/v1/sync", headers=h,
                                timeout=30).json()["status"]["interval"]
        assert interval() == 1
        kept = socket.create_connection((srv.host, srv.port), timeout=30)
        raw_request(kept, "/api/v1/nodes", lab["viewer"])
        assert read_response(kept)[0] == 200
        cfg.write_text("serve:\n  status_interval: 7\n  sync_interval: 60\n")
        srv.signal(signal.SIGHUP)
        until(lambda: interval() == 7, "the new status_interval")
        srv.logged("serve: reloaded")  # its reader thread may lag the answer
        # the connection opened before the reload still serves
        raw_request(kept, "/api/v1/nodes", lab["viewer"])
        assert read_response(kept)[0] == 200
        # a broken config is refused in one line; the running one is kept
        n = len(srv.lines)
        cfg.write_text("serve:\n  status_interval: -4\n  no_such_key: 1\n")
        srv.signal(signal.SIGHUP)
        srv.logged("reload refused")
        refused = [ln for ln in srv.lines[n:] if "reload refused" in ln]
        assert len(refused) == 1 and "pvelab.yaml:" in refused[0], refused
        assert interval() == 7
        raw_request(kept, "/api/v1/nodes", lab["viewer"])
        assert read_response(kept)[0] == 200
        kept.close()
        assert srv.proc.poll() is None
    finally:
        assert srv.stop() == 0, srv.err()


def make_cert(d, name):
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", f"/CN={name}"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def tls_fingerprint(host, port, keep=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=30))
    fp = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    if keep is not None:
        keep.append(s)
    else:
        s.close()
    return fp


def test_sighup_reloads_the_certificate_without_dropping_connections(tmp_path):
    state = tmp_path / "s.db"
    tok = token(state)
    c1, k1 = make_cert(tmp_path, "one")
    c2, k2 = make_cert(tmp_path, "two")
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"serve:\n  tls_cert: {c1}\n  tls_key: {k1}\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env={"PVELAB_STATE": str(state)})
    try:
        assert srv.url.startswith("https://")
        held = []
        first = tls_fingerprint(srv.host, srv.port, keep=held)
        cfg.write_text(f"serve:\n  tls_cert: {c2}\n  tls_key: {k2}\n")
        srv.signal(signal.SIGHUP)
        srv.logged("serve: reloaded")
        second = tls_fingerprint(srv.host, srv.port)
        assert first != second
        # the connection made with the old certificate still answers
        raw_request(held[0], "/api/v1/nodes", tok)
        assert read_response(held[0])[0] == 200
        held[0].close()
        # a key that does not go with its certificate: refused, the second kept
        cfg.write_text(f"serve:\n  tls_cert: {c1}\n  tls_key: {k2}\n")
        srv.signal(signal.SIGHUP)
        srv.logged("reload refused")
        assert tls_fingerprint(srv.host, srv.port) == second
    finally:
        assert srv.stop() == 0, srv.err()


def test_systemd_hears_ready_reloading_watchdog_and_stopping(tmp_path):
    state = tmp_path / "s.db"
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    got = []

    def expect(word):
        while not any(word in m for m in got):
            got.append(sock.recv(4096).decode())
        return [m for m in got if word in m][0]
    srv = Server("--listen", "127.0.0.1:0", env={"PVELAB_STATE": str(state),
                                                 "NOTIFY_SOCKET": path,
                                                 "WATCHDOG_USEC": "400000"})
    try:
        expect("READY=1")
        assert "STATUS=serving" in expect("STATUS=")
        expect("WATCHDOG=1")
        got.clear()
        srv.signal(signal.SIGHUP)
        assert "MONOTONIC_USEC=" in expect("RELOADING=1")
        expect("READY=1")
        srv.signal(signal.SIGTERM)
        expect("STOPPING=1")
        assert srv.wait() == 0, srv.err()
    finally:
        srv.stop()
        sock.close()


def test_a_slowloris_is_cut_at_the_deadline_while_others_are_served(lab):
    cfg = lab["dir"] / "pvelab.yaml"
    cfg.write_text("serve:\n  request_timeout: 2\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env={"PVELAB_STATE": str(lab["state"])})
    try:
        slow = socket.create_connection((srv.host, srv.port), timeout=30)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        sent = 0
        try:
            # a byte every 0.3 s: evhttp's own timeout starts over with each
            for b in request:
                slow.sendall(bytes([b]))
                sent += 1
                s = requests.get(srv.url + "/api/v1/cluster", timeout=30,
                                 headers={"Authorization": "Bearer " + lab["viewer"]})
                assert s.status_code == 200
                time.sleep(0.3)
            pytest.fail("the slow request was never cut")
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < len(request)
        slow.close()
        assert "closed: no whole request within the request timeout" in srv.err()
    finally:
        assert srv.stop() == 0, srv.err()


def test_connections_count_from_their_accept(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("serve:\n  max_connections_per_client: 2\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env={"PVELAB_STATE": str(tmp_path / "s.db")})
    try:
        # two connections that never send a request hold the two slots
        idle = [socket.create_connection((srv.host, srv.port), timeout=30) for _ in range(2)]
        third = socket.create_connection((srv.host, srv.port), timeout=30)
        raw_request(third, "/healthz")
        status, body = read_response(third)
        assert status == 503 and json.loads(body)["error"]["code"] == "too_many_connections"
        third.close()
        for s in idle:
            s.close()
        until(lambda: requests.get(srv.url + "/healthz", timeout=30).status_code == 200,
              "a free slot")
    finally:
        assert srv.stop() == 0, srv.err()


def test_a_client_that_stops_reading_its_stream_is_closed_and_memory_stays_bounded(tmp_path):
    sim = start_sim("--nodes", "4", "--guests", "2000")
    try:
        state = tmp_path / "s.db"
        tok = token(state)
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text("serve:\n  event_ring: 5000\n  request_timeout: 3\n"
                       "  stream_buffer: 16384\n  max_connections_per_client: 200\n"
                       "  max_connections: 300\n")
        srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=sim_env(sim, state))
        try:
            srv.logged("refresh: sync 1 recorded")  # 2000 'discovered' events in the ring
            h = {"Authorization": "Bearer " + tok}
            last = requests.get(srv.url + "/api/v1/sync", headers=h, timeout=30).json()
            assert last["sync"]["counts"]["added"] == 2000
            base = vm_rss_kb(srv.proc.pid)
            stalled = []
            for _ in range(60):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(30)
                s.connect((srv.host, srv.port))
                raw_request(s, "/api/v1/events", tok, b"Last-Event-ID: 0\r\n")
                stalled.append(s)
            until(lambda: srv.err().count("(event stream from 1)") == 60, "60 streams")
            # a client that reads gets every event, in order, paced by its reading
            r = requests.get(srv.url + "/api/v1/events", stream=True, timeout=30,
                             headers={**h, "Last-Event-ID": "0"})
            ids = []
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                    if len(ids) == 2000:
                        break
            r.close()
            assert ids == list(range(1, 2001))
            grown = vm_rss_kb(srv.proc.pid) - base
            # 60 clients x 2000 events (~250 KB each, unpaced) would be 15 MB and more
            assert grown < 8 * 1024, f"RSS grew {grown} kB"
            # each stalled client is closed (a full buffer left unread for
            # request_timeout); it reads what was sent, then the end
            until(lambda: srv.err().count(" bytes unread") == 60,
                  "the stalled streams closed")
            for s in stalled:
                while True:
                    try:
                        if not s.recv(65536):
                            break
                    except ConnectionResetError:
                        break
                s.close()
            assert requests.get(srv.url + "/healthz", timeout=30).status_code == 200
        finally:
            assert srv.stop() == 0, srv.err()
    finally:
        stop_sim(sim)


def test_a_cli_holding_the_store_never_stalls_the_loop(lab):
    cfg = lab["dir"] / "pvelab.yaml"
    cfg.write_text("serve:\n  sync_interval: 3600\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=lab["env"])
    h = {"Authorization": "Bearer " + lab["operator"]}
    try:
        srv.logged("refresh: sync 1 recorded")
        db = sqlite3.connect(str(lab["state"]), timeout=30, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # what a CLI's write does
        try:
            assert requests.post(srv.url + "/api/v1/sync", headers=h,
                                 timeout=30).status_code == 202
            srv.logged("recording waits for it")
            # the loop answers meanwhile (it used to wait up to 10 s in SQLite)
            for _ in range(5):
                assert requests.get(srv.url + "/healthz", timeout=3).status_code == 200
            assert requests.get(srv.url + "/api/v1/sync", headers=h,
                                timeout=3).json()["sync"]["state"] == "running"
        finally:
            db.execute("ROLLBACK")
            db.close()
        done = until(lambda: (lambda s: s if s["seq"] == 2 and s["state"] == "ok" else None)(
            requests.get(srv.url + "/api/v1/sync", headers=h, timeout=30).json()["sync"]),
            "the sync recorded once the lock is free")
        assert done["run_id"] > 0
    finally:
        assert srv.stop() == 0, srv.err()


def test_a_cli_holding_the_store_never_stalls_the_loop_for_a_check_change(tmp_path):
    up = socket.create_server(("127.0.0.1", 0))
    port = up.getsockname()[1]
    state = tmp_path / "s.db"
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("checks:\n  interval: 1\n"
                   f"  targets: [{{name: web, check: tcp, host: 127.0.0.1, port: {port}}}]\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg,
                 env={"PVELAB_STATE": str(state), "PVELAB_URL": ""})
    db = sqlite3.connect(str(state), timeout=30, isolation_level=None)
    try:
        def changes():
            return db.execute("SELECT status_to FROM check_events WHERE name = 'web' "
                              "ORDER BY id").fetchall()
        until(lambda: changes(), "the check's first result recorded")
        first = changes()
        db.execute("BEGIN IMMEDIATE")  # what a CLI's write does
        try:
            up.close()  # the next probe fails: a change to record while the lock is held

            def answered_meanwhile():
                # the loop answers (it used to wait up to 10 s in SQLite)
                assert requests.get(srv.url + "/healthz", timeout=3).status_code == 200
                return "checks: cannot record a change" in srv.err()
            until(answered_meanwhile, "the change kept waiting for the lock")
        finally:
            db.execute("ROLLBACK")
        until(lambda: len(changes()) > len(first), "the change recorded once the lock is free")
        assert changes()[-1] != first[-1], changes()
    finally:
        db.close()
        up.close()
        assert srv.stop() == 0, srv.err()
