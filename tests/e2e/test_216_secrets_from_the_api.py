"""pvelab never stores or prints a password, even when the API sends one in
clear (an older PVE, a proxy, a broken node): a node in front of the
simulator adds `cipassword` and another *password key to every guest config
it answers; sync, describe, list and history must not show them and the
state store must not hold them (issue 20, Deliver 4)."""
import glob
import json
import os
import ssl
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run
from hostile import fingerprint, make_cert
from simfix import start_sim, stop_sim

SECRET = "clear-text-hunter2"


class Leaky:
    """A TLS front that relays every call to the simulator (plain HTTP) and
    writes passwords in clear into the guest configs it answers."""

    def __init__(self, d, upstream):
        self.cert, key = make_cert(d)
        self.fp = fingerprint(self.cert)
        self.leaked = 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def relay(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                req = urllib.request.Request(upstream + self.path, data=body, method=self.command)
                for h in ("Authorization", "Content-Type", "Cookie", "CSRFPreventionToken"):
                    if self.headers.get(h):
                        req.add_header(h, self.headers[h])
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                path = self.path.split("?")[0]
                if status == 200 and self.command == "GET" and path.endswith("/config") \
                        and "/qemu/" in path:
                    doc = json.loads(data)
                    doc["data"]["cipassword"] = SECRET
                    doc["data"]["confirmation-password"] = SECRET
                    front.leaked += 1
                    data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = relay

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def leaky(tmp_path):
    info = start_sim("--no-tls", "--guests", "3")
    front = Leaky(str(tmp_path), info["url"])
    yield front, info
    front.close()
    assert stop_sim(info)[0] == 0


def test_a_password_the_api_sends_is_never_stored_or_printed(leaky, tmp_path):
    front, info = leaky
    state = tmp_path / "state" / "state.db"
    env = {"PVELAB_URL": front.url, "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": front.fp, "PVELAB_STATE": str(state)}
    outputs = []
    for args in (["sync"], ["-o", "json", "describe", "100"], ["describe", "100"],
                 ["-o", "json", "list"], ["-o", "json", "history", "100"],
                 ["describe", "--live", "100"], ["-v", "-o", "json", "describe", "--live", "101"]):
        r = run(*args, env=env, cwd=str(tmp_path))
        assert r.rc == 0, (args, r)
        outputs.append(r)
    assert front.leaked >= 3  # the configs did come with the password
    for r in outputs:
        assert SECRET not in r.out and SECRET not in r.err, r
    # what describe shows in its place is PVE's own mask
    conf = json.loads(outputs[1].out)["config"]
    assert conf["cipassword"] == "**********" and conf["confirmation-password"] == "**********"
    assert "cipassword     **********" in outputs[2].out
    files = [p for p in glob.glob(str(tmp_path / "**"), recursive=True) if os.path.isfile(p)]
    assert any(p.endswith("state.db") for p in files)
    for p in files:
        with open(p, "rb") as f:
            assert SECRET.encode() not in f.read(), p
