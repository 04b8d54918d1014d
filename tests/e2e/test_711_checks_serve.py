"""Checks scheduled by `pvelab serve` and their alerts (issue 25, Deliver 3 and
4): a check on an HTTP server this test starts and stops turns down only after
its retries, and up again; the state and results through /api/v1/checks, the
changes in the store and as "check" events on the stream; one notice on the
change and one on recovery at an ntfy-compatible receiver and a webhook
receiver written here (headers, body, HMAC), by e-mail through STARTTLS to
Debian's aiosmtpd, and to a real Alertmanager (Debian's
prometheus-alertmanager), read back from its API firing, then resolved. A
notifier that is down delays nothing and gets its notice when it comes back;
no secret reaches a log or the API. Against the simulator, a stopped guest
alerts once, its service checks held back. 1,000 checks: the server keeps
answering (times printed, never asserted)."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time

import pytest
import requests

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for
from test_700_serve import Server, until

AM = shutil.which("prometheus-alertmanager")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


_held = []


def closed_port():
    """A port that stays closed for the whole module: bound and never
    listening, so a connect is refused and no other test's server (ctest -j)
    can take it, as it could a port free_port() named and let go."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


class Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Web(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class WebServer:
    """The service the check probes; stop() closes its port (connection refused)."""

    def __init__(self, port):
        self.port = port
        self.srv = None

    def start(self):
        self.srv = Threaded(("127.0.0.1", self.port), Web)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class Receiver:
    """An HTTP server that records every POST (ntfy's publish API, a webhook)."""

    def __init__(self, port=0):
        got = self.got = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                got.append({"path": self.path, "headers": dict(self.headers),
                            "body": self.rfile.read(n)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.srv = Threaded(("127.0.0.1", port), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def make_cert(d):
    cert, key = d / "smtp.pem", d / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "30", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    """Debian's aiosmtpd, STARTTLS and AUTH required, keeping what it receives."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    d = tmp_path_factory.mktemp("smtp")
    cert, key = make_cert(d)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    box = {"mail": [], "tls": [], "auth": []}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            box["mail"].append(envelope)
            box["tls"].append(session.ssl is not None)
            return "250 OK"

    def auth(server, session, envelope, mechanism, data):
        ok = data.login == b"alerts" and data.password == b"smtp-pass-5d1e"
        box["auth"].append(ok)
        return AuthResult(success=ok)

    port = free_port()
    c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
                   require_starttls=True, auth_require_tls=True, authenticator=auth)
    c.start()
    yield {"port": port, "ca": cert, **box}
    c.stop()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    assert AM, "prometheus-alertmanager is not installed (scripts/install-deps test)"
    d = tmp_path_factory.mktemp("am")
    (d / "am.yml").write_text("route:\n  receiver: none\n  group_wait: 1s\n"
                              "receivers:\n  - name: none\n")
    port = free_port()
    p = subprocess.Popen([AM, f"--config.file={d / 'am.yml'}", f"--storage.path={d}",
                          f"--web.listen-address=127.0.0.1:{port}",
                          "--cluster.listen-address=", "--log.level=warn"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return requests.get(url + "/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            assert p.poll() is None, p.stderr.read()
            return False
    until(ready, "Alertmanager ready")
    yield url
    p.terminate()
    p.wait(timeout=20)


class Stream:
    """GET /api/v1/events read in a thread: the events, as (type, data)."""

    def __init__(self, url, token):
        self.events = []
        self.r = requests.get(url + "/api/v1/events", stream=True, timeout=60,
                              headers={"Authorization": "Bearer " + token})
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        typ = None
        try:
            for line in self.r.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    typ = line[7:]
                elif line.startswith("data: "):
                    self.events.append((typ, json.loads(line[6:])))
        except Exception:
            pass

    def of(self, typ, **match):
        return [d for t, d in self.events
                if t == typ and all(d.get(k) == v for k, v in match.items())]


SECRETS = {"ntfy": "tk_ntfy_9f3a7c", "hook": "hook-key-71b2", "smtp": "smtp-pass-5d1e"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, smtp, alertmanager):
    d = tmp_path_factory.mktemp("serve")
    state = d / "state.db"
    web = WebServer(free_port())
    web.start()
    ntfy, hook = Receiver(), Receiver()
    late_port = free_port()
    (d / "ntfy.token").write_text(SECRETS["ntfy"] + "\n")
    os.chmod(d / "ntfy.token", 0o600)
    (d / "smtp.pass").write_text(SECRETS["smtp"])
    os.chmod(d / "smtp.pass", 0o600)
    cfg = d / "pvelab.yaml"
    cfg.write_text(f"""
checks:
  interval: 1
  retries: 2
  targets:
    - {{name: web, check: http, host: 127.0.0.1, port: {web.port}}}
    - {{name: steady, check: tcp, host: 127.0.0.1, port: {web.port}, interval: 1}}
alerts:
  group_wait: 0        # each notice at once: these tests follow them one by one
  flap_threshold: 20   # web goes down and up three times in this module
  notifiers:
    - {{name: phone, type: ntfy, url: "http://127.0.0.1:{ntfy.port}/homelab-alerts",
       token_file: {d / 'ntfy.token'}, tags: [homelab], click: "https://pve.home.arpa/"}}
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/hook", secret_env: HOOK_KEY,
       headers: {{X-Team: ops}}}}
    - {{name: mail, type: email, url: "smtp://127.0.0.1:{smtp['port']}", from: pvelab@home.arpa,
       to: [ops@home.arpa], username: alerts, password_file: {d / 'smtp.pass'},
       ca_file: {smtp['ca']}}}
    - {{name: am, type: alertmanager, url: "{alertmanager}"}}
    - {{name: late, type: webhook, url: "http://127.0.0.1:{late_port}/late", timeout: 2}}
  routes:
    - {{notifiers: [phone, hook, mail, am, late], checks: [web]}}
""")
    env = {"PVELAB_STATE": str(state), "PVELAB_URL": "", "HOOK_KEY": SECRETS["hook"]}
    assert run("token", "create", "v1", "--role", "viewer", env=env).rc == 0
    tok = run("token", "create", "v2", "--role", "viewer", env=env).out.strip()
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    stream = Stream(srv.url, tok)
    yield {"srv": srv, "url": srv.url, "token": tok, "web": web, "ntfy": ntfy, "hook": hook,
           "late_port": late_port, "stream": stream, "state": state, "dir": d,
           "smtp": smtp, "am": alertmanager}
    stream.r.close()
    assert srv.stop() == 0, srv.err
    for s in SECRETS.values():
        assert s not in srv.err
    ntfy.close()
    hook.close()


def get(lab, path):
    r = requests.get(lab["url"] + path, headers={"Authorization": "Bearer " + lab["token"]},
                     timeout=20)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def check(lab, name):
    return get(lab, "/api/v1/checks/" + name)


def status(lab, name):
    """A check's status, None while the server does not know it yet."""
    r = requests.get(lab["url"] + "/api/v1/checks/" + name,
                     headers={"Authorization": "Bearer " + lab["token"]}, timeout=20)
    return r.json()["status"] if r.status_code == 200 else None


def am_alerts(lab):
    return requests.get(lab["am"] + "/api/v2/alerts", timeout=5).json()


def test_down_after_retries_then_notified_once_then_resolved(lab):
    until(lambda: check(lab, "web")["status"] == "up", "web up", 20)
    assert not lab["ntfy"].got and not lab["hook"].got  # the first up is no news
    lab["web"].stop()
    seen = []

    def down():
        c = check(lab, "web")
        seen.append((c["status"], c["fails"]))
        return c["status"] == "down" and c
    c = until(down, "web down after its retries", 30)
    # up while it failed short of its retries; down at the third failure in a row
    assert ("up", 1) in seen or ("up", 2) in seen, seen
    assert all(st == "up" for st, f in seen if f < 3), seen
    assert c["fails"] == 3
    assert c["results"][0]["status"] == "down" and "error" in c["results"][0]
    assert [x["to"] for x in c["changes"][:2]] == ["down", "up"]
    assert c["changes"][0]["from"] == "up"

    until(lambda: len(lab["ntfy"].got) == 1 and len(lab["hook"].got) == 1, "firing notices")
    n = lab["ntfy"].got[0]
    assert n["path"] == "/homelab-alerts"
    assert n["headers"]["Title"] == "DOWN: web"
    assert n["headers"]["Priority"] == "4"
    assert n["headers"]["Tags"] == "rotating_light,homelab"
    assert n["headers"]["Click"] == "https://pve.home.arpa/"
    assert n["headers"]["Authorization"] == "Bearer " + SECRETS["ntfy"]
    assert n["body"].decode().startswith(f"web (http http://127.0.0.1:{lab['web'].port}/) is down")

    h = lab["hook"].got[0]
    mac = hmac.new(SECRETS["hook"].encode(), h["body"], hashlib.sha256).hexdigest()
    assert h["headers"]["X-Pvelab-Signature"] == "sha256=" + mac
    assert h["headers"]["X-Pvelab-Event"] == "firing"
    assert h["headers"]["X-Team"] == "ops"
    assert h["headers"]["Content-Type"] == "application/json"
    doc = json.loads(h["body"])
    assert doc["version"] == 1 and doc["event"] == "firing" and doc["check"] == "web"
    assert doc["status"] == "down" and doc["previous"] is None and doc["severity"] == "critical"
    assert doc["result"]["status"] == "down" and doc["type"] == "http"

    def am_firing():
        return [a for a in am_alerts(lab) if a["labels"].get("check") == "web"]
    a = until(am_firing, "the alert in Alertmanager", 20)[0]
    assert a["labels"]["alertname"] == "pvelab_check"
    assert a["labels"]["severity"] == "critical"
    assert a["status"]["state"] == "active"
    assert a["annotations"]["summary"] == "DOWN: web"

    until(lambda: len(lab["smtp"]["mail"]) == 1, "the mail", 20)
    m = lab["smtp"]["mail"][0]
    assert m.mail_from == "pvelab@home.arpa" and m.rcpt_tos == ["ops@home.arpa"]
    assert "Subject: [pvelab] DOWN: web" in m.content.decode()
    assert lab["smtp"]["tls"] == [True] and lab["smtp"]["auth"] == [True]

    # recovery: one resolved notice each, and Alertmanager resolves it
    lab["web"].start()
    until(lambda: check(lab, "web")["status"] == "up", "web up again", 20)
    until(lambda: len(lab["ntfy"].got) == 2 and len(lab["hook"].got) == 2, "resolved notices")
    assert lab["ntfy"].got[1]["headers"]["Title"] == "RESOLVED: web"
    assert lab["ntfy"].got[1]["headers"]["Tags"].startswith("white_check_mark")
    doc = json.loads(lab["hook"].got[1]["body"])
    assert doc["event"] == "resolved" and doc["status"] == "up" and doc["previous"] is None
    until(lambda: not am_firing(), "the alert resolved in Alertmanager", 20)
    until(lambda: len(lab["smtp"]["mail"]) == 2, "the resolved mail", 20)
    assert "Subject: [pvelab] RESOLVED: web" in lab["smtp"]["mail"][1].content.decode()
    # one notice per change
    assert [g["headers"]["Title"] for g in lab["ntfy"].got] == ["DOWN: web", "RESOLVED: web"]
    assert [g["headers"]["X-Pvelab-Event"] for g in lab["hook"].got] == ["firing", "resolved"]


def test_changes_are_stored_and_streamed(lab):
    import sqlite3
    until(lambda: len(lab["stream"].of("check", name="web")) >= 3, "check events")
    evs = lab["stream"].of("check", name="web")
    assert [(e.get("from"), e["to"]) for e in evs[:3]] == [(None, "up"), ("up", "down"),
                                                          ("down", "up")]
    assert evs[1]["result"]["status"] == "down"
    con = sqlite3.connect(lab["state"])
    rows = con.execute("SELECT status_from, status_to FROM check_events WHERE name='web' "
                       "ORDER BY id").fetchall()
    con.close()
    assert rows[:3] == [(None, "up"), ("up", "down"), ("down", "up")]
    sent = lab["stream"].of("alert", check="web", state="sent")
    assert {(e["notifier"], e["event"]) for e in sent} >= {
        ("phone", "firing"), ("hook", "firing"), ("mail", "firing"), ("am", "firing"),
        ("phone", "resolved"), ("hook", "resolved")}


def test_list_shows_every_check_and_the_notifiers_without_secrets(lab):
    body = get(lab, "/api/v1/checks")
    names = {c["name"] for c in body["checks"]}
    assert {"web", "steady"} <= names
    steady = next(c for c in body["checks"] if c["name"] == "steady")
    assert steady["interval"] == 1 and steady["probes"] >= 1
    ns = {n["name"]: n for n in body["alerts"]["notifiers"]}
    assert ns["phone"]["url"] == f"http://127.0.0.1:{lab['ntfy'].port}"  # no topic
    assert ns["phone"]["sent"] >= 2 and ns["hook"]["sent"] >= 2
    text = json.dumps(body)
    for s in SECRETS.values():
        assert s not in text
    r = requests.get(lab["url"] + "/api/v1/checks/nosuch",
                     headers={"Authorization": "Bearer " + lab["token"]}, timeout=10)
    assert r.status_code == 404 and "nosuch" in r.json()["error"]["message"]
    assert requests.get(lab["url"] + "/api/v1/checks", timeout=10).status_code == 401


def test_a_dead_notifier_delays_nothing_and_gets_its_notice_later(lab):
    def late():
        return next(n for n in get(lab, "/api/v1/checks")["alerts"]["notifiers"]
                    if n["name"] == "late")
    assert late()["failed"] >= 1 and late()["queued"] >= 1
    assert late()["last_error"]
    probes = check(lab, "steady")["probes"]
    until(lambda: check(lab, "steady")["probes"] >= probes + 2, "probes go on")
    rec = Receiver(lab["late_port"])
    try:
        until(lambda: len(rec.got) >= 2, "the late notices, in order", 90)
        assert [json.loads(g["body"])["event"] for g in rec.got[:2]] == ["firing", "resolved"]
        assert late()["queued"] == 0
    finally:
        rec.close()


def test_silence_holds_notices_until_it_ends(lab):
    env = {"PVELAB_STATE": str(lab["state"]), "PVELAB_URL": ""}
    r = run("silence", "web", "--for", "1h", "--reason", "nginx upgrade", "-o", "json", env=env)
    assert r.rc == 0, r
    sid = r.json()["id"]
    listed = run("silence", env=env)
    assert listed.rc == 0 and "nginx upgrade" in listed.out
    n_ntfy, n_hook = len(lab["ntfy"].got), len(lab["hook"].got)
    lab["web"].stop()
    until(lambda: check(lab, "web")["status"] == "down", "web down", 30)
    held = until(lambda: lab["stream"].of("alert", check="web", state="held"), "held event")
    assert held[-1]["reason"] == f"silence {sid} (nginx upgrade)"
    # still down, still silent: more results, no notice
    p = check(lab, "web")["probes"]
    until(lambda: check(lab, "web")["probes"] >= p + 2, "more results")
    assert (len(lab["ntfy"].got), len(lab["hook"].got)) == (n_ntfy, n_hook)
    # the silence ends: what still holds is notified
    assert run("silence", "--remove", str(sid), env=env).rc == 0
    until(lambda: len(lab["ntfy"].got) == n_ntfy + 1, "the firing notice after the silence", 30)
    assert lab["ntfy"].got[-1]["headers"]["Title"] == "DOWN: web"
    lab["web"].start()
    until(lambda: len(lab["ntfy"].got) == n_ntfy + 2, "resolved", 30)
    assert lab["ntfy"].got[-1]["headers"]["Title"] == "RESOLVED: web"
    r = run("silence", "--remove", str(sid), env=env)
    assert r.rc == 1 and f"no silence {sid} holds" in r.err


def test_a_check_still_down_is_notified_again_after_repeat_interval(tmp_path):
    hook = Receiver()
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"""
checks:
  interval: 1
  targets: [{{name: gone, check: tcp, host: 127.0.0.1, port: {closed_port()}}}]
alerts:
  group_wait: 0        # each notice at once: these tests follow them one by one
  repeat_interval: 2
  notifiers: [{{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/"}}]
""")
    env = {"PVELAB_STATE": str(tmp_path / "s.db"), "PVELAB_URL": ""}
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    try:
        until(lambda: len(hook.got) >= 2, "a repeat", 30)
    finally:
        rc = srv.stop()
        hook.close()
    assert rc == 0, srv.err
    docs = [json.loads(g["body"]) for g in hook.got]
    assert [d["event"] for d in docs[:2]] == ["firing", "repeat"]
    assert docs[1]["title"] == "STILL DOWN: gone" and docs[1]["since"] == docs[0]["since"]


def test_an_apply_running_holds_the_guests_alerts(tmp_path):
    """While an apply runs (a live process's running run in the store, as
    pvelab apply records it), a guest's failing checks notify nothing; other
    checks do; when it ends, what still fails is notified."""
    import sqlite3
    hook = Receiver()
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"""
checks:
  interval: 1
  targets: [{{name: other, check: tcp, host: 127.0.0.1, port: {closed_port()}}}]
guests:
  - name: vm1
    services: [{{name: web, port: {closed_port()}, protocol: tcp, host: 127.0.0.1}}]
alerts:
  group_wait: 0        # each notice at once: these tests follow them one by one
  notifiers: [{{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/"}}]
""")
    env = {"PVELAB_STATE": str(tmp_path / "s.db"), "PVELAB_URL": ""}
    tok = run("token", "create", "v", "--role", "viewer", env=env).out.strip()
    con = sqlite3.connect(tmp_path / "s.db")
    rid = con.execute("INSERT INTO runs(kind, started, status, pid, host) VALUES "
                      "('apply', ?, 'running', ?, ?)",
                      (time.time(), os.getpid(), socket.gethostname())).lastrowid
    con.commit()
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    stream = Stream(srv.url, tok)
    try:
        held = until(lambda: stream.of("alert", check="vm1/web", state="held"), "held", 30)
        assert held[0]["reason"] == f"run {rid} (an apply, rollback or destroy) is running"
        until(lambda: hook.got, "the other check's notice")
        assert [json.loads(g["body"])["check"] for g in hook.got] == ["other"]
        con.execute("UPDATE runs SET status = 'ok', finished = ? WHERE id = ?",
                    (time.time(), rid))
        con.commit()
        until(lambda: len(hook.got) == 2, "vm1/web's notice once the apply ended", 30)
        assert json.loads(hook.got[1]["body"])["check"] == "vm1/web"
    finally:
        stream.r.close()
        rc = srv.stop()
        hook.close()
        con.close()
    assert rc == 0, srv.err


def test_bad_notifier_config_is_refused_before_listening(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("alerts:\n  notifiers:\n"
                   "    - {name: m, type: email, url: 'smtp://127.0.0.1:25', from: a@b,"
                   " to: [c@d], password_env: NOPE_NOT_SET}\n")
    r = run("serve", "--listen", "127.0.0.1:0", "-c", cfg,
            env={"PVELAB_STATE": str(tmp_path / "s.db"), "PVELAB_URL": ""})
    assert r.rc != 0
    assert "alerts.notifiers 'm': password_env names 'NOPE_NOT_SET', which is not set" in r.err
    cfg.write_text("alerts:\n  notifiers:\n"
                   "    - {name: m, type: email, url: 'smtp://127.0.0.1:25', from: a@b,"
                   " to: [c@d], password_env: HOME, starttls: false}\n")
    r = run("serve", "--listen", "127.0.0.1:0", "-c", cfg,
            env={"PVELAB_STATE": str(tmp_path / "s.db"), "PVELAB_URL": ""})
    assert r.rc != 0 and "in the clear" in r.err


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--guests", "2")
    yield info
    stop_sim(info)


def test_stopped_guest_alerts_once_and_holds_back_its_services(tmp_path, sim):
    web = WebServer(free_port())
    web.start()
    hook = Receiver()
    env = env_for(sim, tmp_path / "state.db")
    gs = [g for g in api(sim, "GET", "cluster/resources", type="vm") if not g.get("template")]
    g = sorted(gs, key=lambda x: x["vmid"])[0]
    name = g["name"]
    if api(sim, "GET", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/status/current")["status"] != "running":
        assert run("start", name, env=env).rc == 0
    assert run("sync", env=env).rc == 0
    tok = run("token", "create", "v", "--role", "viewer", env=env).out.strip()
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"""
serve: {{status_interval: 1}}
checks:
  interval: 1
  retries: 2    # time for the resource list to say why, before a service is down
  cluster: {{cert_days: 0}}
guests:
  - name: {name}
    state: running
    services:
      - {{name: web, port: {web.port}, protocol: http, host: 127.0.0.1}}
      - {{name: admin, port: {web.port}, protocol: tcp, host: 127.0.0.1}}
alerts:
  group_wait: 0        # each notice at once: these tests follow them one by one
  notifiers:
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/"}}
""")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    lab = {"url": srv.url, "token": tok}
    try:
        until(lambda: all(status(lab, n) == "up"
                          for n in (f"guest:{name}", f"{name}/web", f"{name}/admin")),
              "all up", 30)
        assert run("stop", name, env=env).rc == 0
        web.stop()  # the guest's services die with it
        until(lambda: check(lab, f"guest:{name}")["status"] == "down", "guest down", 30)
        for svc in ("web", "admin"):
            c = until(lambda: (lambda c: c["status"] == "down" and c)(
                check(lab, f"{name}/{svc}")), f"{svc} down", 20)
            assert c["last"]["caused_by"] == f"guest:{name}"
        until(lambda: hook.got, "the guest's notice")
        # the services' failures are held back: one notice, for the guest
        p = check(lab, f"{name}/web")["probes"]
        until(lambda: check(lab, f"{name}/web")["probes"] >= p + 2, "more results")
        fired = [json.loads(x["body"]) for x in hook.got]
        assert [(d["check"], d["event"]) for d in fired] == [(f"guest:{name}", "firing")]
        assert fired[0]["message"].endswith("guest is stopped, declared running")
        # the cluster itself stops answering: its own check fires
        assert status(lab, "cluster") == "up"
        sim["proc"].terminate()
        sim["proc"].wait(timeout=20)
        until(lambda: status(lab, "cluster") == "down", "the cluster check down", 30)
        until(lambda: len(hook.got) == 2, "the cluster's notice", 30)
        d = json.loads(hook.got[1]["body"])
        assert (d["check"], d["event"], d["type"]) == ("cluster", "firing", "api")
    finally:
        rc = srv.stop()
        hook.close()
    assert rc == 0, srv.err
    assert f"alerts: firing of guest:{name} sent to hook" in srv.err


def test_thousand_checks_keep_the_server_answering(tmp_path):
    """1,000 TCP checks every 2 s on one loop: all come up; the API's answer
    times under that load are printed, not asserted."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    stop = threading.Event()

    def accept():
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = ls.accept()
                c.close()
            except OSError:
                pass
    threading.Thread(target=accept, daemon=True).start()
    port = ls.getsockname()[1]
    targets = "\n".join(f"    - {{name: t{i}, check: tcp, host: 127.0.0.1, port: {port}}}"
                        for i in range(1000))
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"checks:\n  interval: 2\n  concurrency: 64\n  targets:\n{targets}\n")
    env = {"PVELAB_STATE": str(tmp_path / "s.db"), "PVELAB_URL": ""}
    tok = run("token", "create", "v", "--role", "viewer", env=env).out.strip()
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    lab = {"url": srv.url, "token": tok}
    try:
        until(lambda: get(lab, "/api/v1/checks")["summary"]["up"] == 1000, "1,000 up", 60)
        times = []
        for _ in range(20):
            t = time.monotonic()
            requests.get(srv.url + "/healthz", timeout=10)
            times.append((time.monotonic() - t) * 1e3)
        body = get(lab, "/api/v1/checks")
        lag = sorted(c.get("lag_ms", 0) for c in body["checks"])
        print(f"\n1,000 checks every 2 s: /healthz p50 {sorted(times)[10]:.1f} ms, "
              f"max {max(times):.1f} ms; start lag p99 {lag[989]:.1f} ms; "
              f"overlaps {sum(c.get('overlaps', 0) for c in body['checks'])}")
        assert body["summary"]["down"] == 0
    finally:
        rc = srv.stop()
        stop.set()
        ls.close()
    assert rc == 0, srv.err
