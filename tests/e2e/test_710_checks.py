"""`pvelab check` (issue 25, Deliver 1 and 2): checks declared beside the guests
and under checks.targets, probed once against servers this test starts on
127.0.0.1:0 — an HTTP server that answers 200, then 500, then hangs; a TLS
server whose certificate expires in 3 days; a TCP port that is closed; a UDP
DNS responder; ping of 127.0.0.1 — and, against the simulator, a guest stopped
on purpose: one "guest not in its declared state" result, and its service
checks marked as caused by it instead of probed. Exit codes 0/1/2, -o json."""
import http.server
import json
import socket
import socketserver
import ssl
import struct
import subprocess
import threading

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for


class Web(http.server.BaseHTTPRequestHandler):
    mode = "ok"          # ok | error | hang
    hits = 0
    release = threading.Event()

    def do_GET(self):
        type(self).hits += 1
        if self.mode == "hang":
            self.release.wait(30)
            return
        code = 200 if self.mode == "ok" else 500
        body = b'{"status": "healthy", "db": {"ok": true}}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def web():
    srv = Threaded(("127.0.0.1", 0), Web)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    Web.release.set()
    srv.shutdown()
    srv.server_close()


def tls_server(d, days, when=None):
    """A TLS server for IP 127.0.0.1 whose certificate is valid for days from
    now, or from when (a date for faketime: a certificate long expired).
    Yields its port and the certificate's path."""
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run((["faketime", when] if when else []) +
                   ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", str(days), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                s = ctx.wrap_socket(c, server_side=True)
                s.settimeout(2)
                try:
                    s.recv(1)
                except Exception:
                    pass
                s.close()
            except Exception:
                c.close()

    threading.Thread(target=serve, daemon=True).start()
    yield ls.getsockname()[1], str(cert)
    stop.set()
    ls.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A TLS server whose certificate (for IP 127.0.0.1) expires in 3 days."""
    yield from tls_server(tmp_path_factory.mktemp("tls"), 3)


@pytest.fixture(scope="module")
def old_tls(tmp_path_factory):
    """An old BMC's: its certificate was valid in January 2020 only."""
    yield from tls_server(tmp_path_factory.mktemp("old"), 30, "2020-01-01 00:00:00")


def dns_name(n):
    return b"".join(bytes([len(x)]) + x.encode() for x in n.split(".")) + b"\0"


# What the test's name server answers, by record type: (type, rdata) records.
DNS_RECORDS = {
    1: [bytes([10, 1, 2, 3])],
    5: [dns_name("alias.home.test")],
    12: [dns_name("nas.home.test")],
    15: [struct.pack(">H", 10) + dns_name("mx1.home.test"),
         struct.pack(">H", 20) + b"\3mx2\xc0\x0c"],  # compressed: the question's name
    16: [b"\7v=spf1 \4-all"],
    33: [struct.pack(">HHH", 0, 5, 5060) + dns_name("sip.home.test")],
}


@pytest.fixture(scope="module")
def dns():
    """A UDP name server: the DNS_RECORDS of a name under .test (the first
    label is free), NXDOMAIN elsewhere; bad.home.test's answer runs past its
    end."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    stop = threading.Event()
    asked = []

    def serve():
        while not stop.is_set():
            try:
                q, peer = s.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            qid = q[:2]
            i = 12
            labels = []
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += q[i] + 1
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            question = q[12:i + 5]
            name = ".".join(labels).lower()
            asked.append((name, qtype))
            ok = labels[-1].lower() in ("test", "arpa")
            recs = DNS_RECORDS.get(qtype, []) if ok else []
            ans = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(r)) + r
                           for r in recs)
            if name == "bad.home.test":
                ans = b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, 200) + b"\1x"
            hdr = qid + struct.pack(">HHHHH", 0x8180 | (0 if ok else 3), 1, len(recs) or
                                    (1 if name == "bad.home.test" else 0), 0, 0)
            s.sendto(hdr + question + ans, peer)

    threading.Thread(target=serve, daemon=True).start()
    yield s.getsockname()[1], asked
    stop.set()
    s.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write(tmp_path, text):
    p = tmp_path / "pvelab.yaml"
    p.write_text(text)
    return p


def check(cfg, *args, env=None):
    return run("-c", cfg, *args, "check", "--no-cluster", env=env)


def by_name(res):
    return {c["name"]: c for c in res["checks"]}


def test_http_up_then_500_then_hang(tmp_path, web):
    cfg = write(tmp_path, f"""
checks:
  targets:
    - name: app
      check: http
      host: 127.0.0.1
      port: {web}
      path: /health
      timeout: 2
      json_path: $.db.ok
      json_value: true
""")
    Web.mode = "ok"
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 0, r
    c = by_name(r.json())["app"]
    assert c["status"] == "up" and c["code"] == 200
    assert c["target"] == f"http://127.0.0.1:{web}/health"
    assert r.json()["exit"] == 0 and r.json()["summary"]["up"] == 1

    Web.mode = "error"
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 1, r
    c = by_name(r.json())["app"]
    assert c["status"] == "down" and c["code"] == 500 and c["error"] == "HTTP status 500"

    Web.mode = "hang"
    r = run("-c", cfg, "check")
    assert r.rc == 1, r
    line = next(x for x in r.out.splitlines() if x.startswith("app "))
    assert " down " in line and "Timeout" in line, r
    Web.release.set()
    Web.mode = "ok"


def test_body_regex_mismatch_is_down(tmp_path, web):
    Web.mode = "ok"
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: app, check: http, host: 127.0.0.1, port: {web}, body_regex: "unhealthy"}}
    - {{name: app2, check: http, host: 127.0.0.1, port: {web}, expect_status: [204]}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 1, r
    c = by_name(r.json())
    assert c["app"]["status"] == "down" and "does not match" in c["app"]["error"]
    assert c["app2"]["status"] == "down" and c["app2"]["error"] == "HTTP status 200"


def test_tls_expiring_in_3_days_is_a_warning(tmp_path, tls):
    port, ca = tls
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: cert, check: tls, host: 127.0.0.1, port: {port}, ca_file: {ca}}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 2, r
    c = by_name(r.json())["cert"]
    assert c["status"] == "warning"
    assert c["tls_days_left"] in (2, 3)
    assert "certificate expires in" in c["error"]
    # fail_days above the days left: down
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: cert, check: tls, host: 127.0.0.1, port: {port}, ca_file: {ca}, fail_days: 5}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 1 and by_name(r.json())["cert"]["status"] == "down", r
    # without its CA the chain does not verify: down, whatever the date
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: cert, check: tls, host: 127.0.0.1, port: {port}}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 1, r
    assert "certificate" in by_name(r.json())["cert"]["error"].lower()


def test_verify_at_accepts_an_expired_certificate_as_of_that_day(tmp_path, old_tls):
    port, ca = old_tls
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: at, check: tls, host: 127.0.0.1, port: {port}, ca_file: {ca}, verify_at: "2020-01-15"}}
    - {{name: now, check: tls, host: 127.0.0.1, port: {port}, ca_file: {ca}}}
    - {{name: after, check: tls, host: 127.0.0.1, port: {port}, ca_file: {ca}, verify_at: "2021-01-15"}}
    - {{name: web, check: https, host: 127.0.0.1, port: {port}, ca_file: {ca}, verify_at: "2020-01-15"}}
""")
    r = check(cfg, "-o", "json")
    c = by_name(r.json())
    # as of a day it was valid: up, its expiry reported but not judged
    assert c["at"]["status"] == "up", c["at"]
    assert c["at"]["tls_days_left"] < -1000
    # today, or a day after it expired: the chain does not verify
    assert c["now"]["status"] == "down" and "certificate" in c["now"]["error"].lower()
    assert c["after"]["status"] == "down"
    # https verifies the same way (the server closes without an HTTP answer)
    assert "certificate" not in c["web"].get("error", "").lower()
    bad = write(tmp_path, """
checks:
  targets:
    - {name: a, check: tls, host: 127.0.0.1, verify_at: "15.01.2020"}
    - {name: b, check: tls, host: 127.0.0.1, verify_at: "2020-01-15", verify: false}
""")
    r = run("-c", bad, "validate")
    assert r.rc != 0
    assert "checks.targets[0].verify_at" in r.err and "is not a day (YYYY-MM-DD)" in r.err
    assert "checks.targets[1].verify_at" in r.err and "choose one" in r.err


def test_tcp_closed_port_is_down_and_open_is_up(tmp_path, web):
    port = closed_port()
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: closed, check: tcp, host: 127.0.0.1, port: {port}}}
    - {{name: open, check: tcp, host: 127.0.0.1, port: {web}}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 1, r
    c = by_name(r.json())
    assert c["closed"]["status"] == "down" and "connect" in c["closed"]["error"].lower()
    assert c["open"]["status"] == "up"
    r = run("-c", cfg, "check", "open")
    assert r.rc == 0, r
    assert "closed" not in r.out


@pytest.fixture(scope="module")
def banner():
    """A TCP server that greets each client as sshd does."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    yield ls.getsockname()[1]
    ls.close()


def test_tcp_banner(tmp_path, banner, web):
    cfg = write(tmp_path, f"""
checks:
  timeout: 2
  targets:
    - {{name: ssh, check: tcp, host: 127.0.0.1, port: {banner}, banner: "^SSH-2\\\\.0-"}}
    - {{name: smtp, check: tcp, host: 127.0.0.1, port: {banner}, banner: "^220 "}}
    - {{name: silent, check: tcp, host: 127.0.0.1, port: {web}, banner: "^SSH"}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 1, r
    c = by_name(r.json())
    assert c["ssh"]["status"] == "up", c
    assert c["smtp"]["status"] == "down" and "banner does not match" in c["smtp"]["error"]
    # a server that says nothing: down at the timeout
    assert c["silent"]["status"] == "down" and c["silent"]["error"] == "no answer within 2s"


def test_dns_answer(tmp_path, dns):
    port, asked = dns
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: ns, check: dns, host: 127.0.0.1, port: {port}, dns_name: nas.home.test, dns_answer: 10.1.2.3}}
    - {{name: ns-wrong, check: dns, host: 127.0.0.1, port: {port}, dns_name: nas.home.test, dns_answer: 10.9.9.9}}
    - {{name: ns-nx, check: dns, host: 127.0.0.1, port: {port}, dns_name: nope.example}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    assert r.rc == 1, r
    c = by_name(r.json())
    assert c["ns"]["status"] == "up", c
    assert c["ns-wrong"]["status"] == "down" and "10.9.9.9" in c["ns-wrong"]["error"]
    assert c["ns-nx"]["status"] == "down" and "DNS" in c["ns-nx"]["error"]
    assert ("nas.home.test", 1) in asked
    assert c["ns"]["answers"] == ["10.1.2.3"]


def test_dns_other_types(tmp_path, dns):
    port, asked = dns
    t = f"check: dns, host: 127.0.0.1, port: {port}"
    cfg = write(tmp_path, f"""
checks:
  targets:
    - {{name: mx, {t}, dns_name: home.test, dns_type: MX, dns_answer: "20 mx2.home.test"}}
    - {{name: txt, {t}, dns_name: home.test, dns_type: TXT, dns_answer: "v=spf1 -all"}}
    - {{name: srv, {t}, dns_name: _sip._udp.home.test, dns_type: SRV}}
    - {{name: cname, {t}, dns_name: www.home.test, dns_type: CNAME, dns_answer: alias.home.test}}
    - {{name: ptr, {t}, dns_name: 10.1.2.3, dns_type: PTR, dns_answer: nas.home.test}}
    - {{name: mx-wrong, {t}, dns_name: home.test, dns_type: MX, dns_answer: mx1.home.test}}
    - {{name: ns-none, {t}, dns_name: home.test, dns_type: NS}}
    - {{name: nx, {t}, dns_name: nope.example, dns_type: TXT}}
    - {{name: bad, {t}, dns_name: bad.home.test, dns_type: TXT}}
""")
    r = run("-c", cfg, "-o", "json", "check", "--no-cluster")
    c = by_name(r.json())
    assert c["mx"]["status"] == "up", c["mx"]
    assert c["mx"]["answers"] == ["10 mx1.home.test", "20 mx2.home.test"]
    assert c["txt"]["status"] == "up" and c["txt"]["answers"] == ["v=spf1 -all"]
    assert c["srv"]["status"] == "up" and c["srv"]["answers"] == ["0 5 5060 sip.home.test"]
    assert c["cname"]["status"] == "up", c["cname"]
    assert c["ptr"]["status"] == "up", c["ptr"]
    assert ("3.2.1.10.in-addr.arpa", 12) in asked
    assert c["mx-wrong"]["status"] == "down"
    assert c["mx-wrong"]["error"] == ("answer '10 mx1.home.test, 20 mx2.home.test' lacks "
                                      "'mx1.home.test'")
    assert c["ns-none"]["error"] == "DNS: no answer"
    assert c["nx"]["error"] == "DNS: NXDOMAIN"
    assert c["bad"]["status"] == "down" and c["bad"]["error"] == "DNS: answer 1 runs past the end"


def test_ping_loopback(tmp_path):
    cfg = write(tmp_path, """
checks:
  targets:
    - {name: lo, check: ping, host: 127.0.0.1}
    - {name: lo6, check: ping, host: "::1"}
    - {name: byname, check: ping, host: localhost}
""")
    r = run("-c", cfg, "-o", "json", "check")
    c = by_name(r.json())
    assert c["lo"]["status"] == "up", c
    assert c["lo6"]["status"] == "up", c
    assert c["byname"]["status"] == "down"
    assert c["byname"]["error"] == "'localhost' is not an IPv4 or IPv6 address"


def test_retries_probe_again_before_down(tmp_path, web):
    Web.mode = "error"
    before = Web.hits
    cfg = write(tmp_path, f"""
checks:
  retries: 2
  targets:
    - {{name: app, check: http, host: 127.0.0.1, port: {web}}}
""")
    r = run("-c", cfg, "-o", "json", "check")
    Web.mode = "ok"
    assert r.rc == 1, r
    assert by_name(r.json())["app"]["attempts"] == 3
    assert Web.hits - before == 3


def test_unknown_name_is_a_usage_error(tmp_path):
    cfg = write(tmp_path, "checks:\n  targets:\n    - {name: lo, check: ping, host: 127.0.0.1}\n")
    r = run("-c", cfg, "check", "nosuch")
    assert r.rc == 64 and "no check or guest 'nosuch'" in r.err, r


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--guests", "2")
    yield info
    stop_sim(info)


def test_stopped_guest_explains_its_service_checks(tmp_path, sim, web):
    Web.mode = "ok"
    env = env_for(sim, tmp_path / "state.db")
    gs = [g for g in api(sim, "GET", "cluster/resources", type="vm") if not g.get("template")]
    g = sorted(gs, key=lambda x: x["vmid"])[0]
    name = g["name"]
    cfg = write(tmp_path, f"""
guests:
  - name: {name}
    state: running
    services:
      - {{name: web, port: {web}, protocol: http, host: 127.0.0.1}}
      - {{name: admin, port: {web}, protocol: tcp, host: 127.0.0.1}}
      - {{name: syslog, port: 514, protocol: udp}}
""")
    if api(sim, "GET", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/status/current")["status"] != "running":
        assert run("start", name, env=env).rc == 0
    r = run("-c", cfg, "-o", "json", "check", env=env)
    assert r.rc == 0, r
    c = by_name(r.json())
    assert c[f"guest:{name}"]["status"] == "up"
    assert c["node:pve"]["status"] == "up"
    assert c[f"{name}/web"]["status"] == "up" and c[f"{name}/web"]["code"] == 200
    assert c[f"{name}/admin"]["status"] == "up"
    assert c[f"{name}/syslog"]["status"] == "skipped"
    assert any(n.startswith("storage:") for n in c)
    assert any(n.startswith("api-cert:") and c[n]["status"] == "up" for n in c)

    assert run("stop", name, env=env).rc == 0
    hits = Web.hits
    r = run("-c", cfg, "-o", "json", "check", env=env)
    assert r.rc == 1, r
    c = by_name(r.json())
    assert c[f"guest:{name}"]["status"] == "down"
    assert c[f"guest:{name}"]["error"] == "guest is stopped, declared running"
    for svc in ("web", "admin"):
        assert c[f"{name}/{svc}"]["status"] == "down"
        assert c[f"{name}/{svc}"]["caused_by"] == f"guest:{name}"
        assert "latency_ms" not in c[f"{name}/{svc}"]  # not probed
    assert Web.hits == hits
    down = [x for x in r.json()["checks"] if x["status"] == "down" and "caused_by" not in x]
    assert [x["name"] for x in down] == [f"guest:{name}"]
    # the text table says it too; selecting the guest selects its checks
    r = run("-c", cfg, "check", name, env=env)
    assert r.rc == 1
    assert f"(caused by guest:{name})" in r.out
    assert "node:pve" not in r.out


def test_backup_age(tmp_path, sim):
    env = env_for(sim, tmp_path / "state.db")
    gs = sorted([g for g in api(sim, "GET", "cluster/resources", type="vm")
                 if not g.get("template")], key=lambda x: x["vmid"])
    a, b = gs[0], gs[1]
    cfg = write(tmp_path, f"""
checks:
  cluster: {{backup_days: 1, storage_percent: 100, cert_days: 0}}
guests:
  - {{name: {a['name']}, state: {a['status']}}}
  - {{name: {b['name']}, state: {b['status']}}}
""")
    r = run("-c", cfg, "-o", "json", "check", f"backup:{b['name']}", env=env)
    assert r.rc == 2, r
    assert by_name(r.json())[f"backup:{b['name']}"]["error"] == "no backup"
    r = run("backup", b["name"], env=env)
    assert r.rc == 0, r
    r = run("-c", cfg, "-o", "json", "check", b["name"], env=env)
    assert r.rc == 0, r
    c = by_name(r.json())
    assert c[f"backup:{b['name']}"]["status"] == "up"
    assert f"vzdump-{b['type']}-{b['vmid']}-" in c[f"backup:{b['name']}"]["target"]
    assert sorted(c) == sorted([f"guest:{b['name']}", f"backup:{b['name']}"])


def test_concurrency_cap_bounds_open_connections(tmp_path):
    """40 checks with checks.concurrency 5: never more than 5 connections at once."""
    state = {"active": 0, "max": 0, "hits": 0}
    lock = threading.Lock()
    gate = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                state["active"] += 1
                state["hits"] += 1
                state["max"] = max(state["max"], state["active"])
            gate.wait(0.05)  # hold the connection a little so that probes overlap
            with lock:
                state["active"] -= 1
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = Threaded(("127.0.0.1", 0), Slow)
    srv.request_queue_size = 128
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    targets = "".join(f"    - {{name: c{i}, check: http, host: 127.0.0.1, port: {port}, path: /{i}}}\n"
                      for i in range(40))
    cfg = write(tmp_path, f"checks:\n  concurrency: 5\n  targets:\n{targets}")
    try:
        r = run("-c", cfg, "-o", "json", "check")
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.rc == 0, r
    assert r.json()["summary"]["up"] == 40
    assert state["hits"] == 40
    assert 1 <= state["max"] <= 5, state
