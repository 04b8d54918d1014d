"""`pvelab serve` and `pvelab token` against the simulator, with real clients
(requests, raw sockets): the JSON of the REST API is the CLI's -o json, tokens
and roles, the OpenAPI document against the OpenAPI 3.1 meta-schema, clean 4xx
answers to malformed requests, TLS from the local CA, the background refresh."""
import json
import os
import socket
import sqlite3
import ssl
import subprocess
import time

import pytest
import requests

from conftest import BIN, TESTDATA, run, state_env
from simfix import start_sim, stop_sim


def full_token(info):
    t = info["token"]
    return t if "!" in t and "=" in t else f"root@pam!pvelab={t}"


def sim_env(info, state):
    return {"PVELAB_URL": info["url"], "PVELAB_TOKEN": full_token(info),
            "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(state)}


def until(cond, what, deadline=20):
    end = time.monotonic() + deadline
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


class Server:
    """A `pvelab serve` process; its first stdout line tells where it listens."""

    def __init__(self, *args, env=None, cwd=None):
        e = dict(os.environ)
        e.update(env or {})
        state_env(e)
        self.proc = subprocess.Popen([BIN, "serve", *[str(a) for a in args]],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=e, cwd=cwd)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait(timeout=20)
            raise RuntimeError(f"pvelab serve did not start (rc={self.proc.returncode}): {err}")
        self.info = json.loads(line)
        self.url = self.info["url"]
        self.err = None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=60)  # a drain under sanitizers on a loaded machine
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--nodes", "2", "--guests", "24")
    yield info
    stop_sim(info)


@pytest.fixture(scope="module")
def lab(sim, tmp_path_factory):
    """A synced store, three tokens and a server refreshing from the simulator."""
    d = tmp_path_factory.mktemp("serve")
    state = d / "state.db"
    env = sim_env(sim, state)
    assert run("sync", env=env).rc == 0
    tokens = {}
    for role in ("viewer", "operator", "admin"):
        r = run("token", "create", role + "1", "--role", role, env=env)
        assert r.rc == 0, r
        tokens[role] = r.out.strip()
    cfg = d / "pvelab.yaml"
    cfg.write_text("serve:\n  status_interval: 1\n  event_ring: 16\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    yield {"env": env, "state": state, "tokens": tokens, "srv": srv, "url": srv.url, "dir": d}
    assert srv.stop() == 0, srv.err
    # an access log line per request, with the token's name
    assert "127.0.0.1 GET /api/v1/cluster 200" in srv.err
    assert "token=viewer1" in srv.err
    assert "authentication failed from 127.0.0.1" in srv.err
    # the secrets appear in no log line
    for secret in tokens.values():
        assert secret not in srv.err
        assert secret[4:] not in srv.err


def get(lab, path, role="viewer", **kw):
    h = {"Authorization": "Bearer " + lab["tokens"][role]} if role else {}
    return requests.get(lab["url"] + path, headers=h, timeout=20, **kw)


def post(lab, path, role="viewer", **kw):
    h = {"Authorization": "Bearer " + lab["tokens"][role]} if role else {}
    return requests.post(lab["url"] + path, headers=h, timeout=20, **kw)


def cli_json(lab, *args):
    r = run(*args, "-o", "json", env={"PVELAB_STATE": str(lab["state"]), "PVELAB_URL": ""})
    assert r.rc == 0, r
    return json.loads(r.out)


def test_start_line_names_a_plain_loopback_listener(lab):
    info = lab["srv"].info
    assert info["url"].startswith("http://127.0.0.1:")
    assert info["listeners"][0]["tls"] is False
    assert "fingerprint" not in info


def test_healthz_needs_no_token(lab):
    r = get(lab, "/healthz", role=None)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_every_other_endpoint_needs_a_token(lab):
    for path in ("/api/v1/cluster", "/api/v1/guests", "/api/v1/openapi.json", "/api/v1/runs"):
        r = get(lab, path, role=None)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = requests.get(lab["url"] + "/api/v1/cluster",
                     headers={"Authorization": "Bearer pvl_" + "0" * 64}, timeout=20)
    assert r.status_code == 401


COUNTERS = {"cpu", "mem", "maxmem", "maxcpu", "disk", "maxdisk", "uptime", "netin", "netout",
            "diskread", "diskwrite", "memhost"}


def same_but_counters(a, b):
    """The same JSON, keys and all, but the live counters (the server's come
    from its last resource list, the store's from the last CLI sync)."""
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            same_but_counters(x, y)
        return
    assert a.keys() == b.keys()
    assert ({k: v for k, v in a.items() if k not in COUNTERS} ==
            {k: v for k, v in b.items() if k not in COUNTERS})


def test_read_endpoints_answer_the_clis_json(lab):
    assert get(lab, "/api/v1/cluster").json() == cli_json(lab, "status")
    assert get(lab, "/api/v1/nodes").json() == cli_json(lab, "status")["nodes"]
    same_but_counters(get(lab, "/api/v1/guests").json(), cli_json(lab, "list"))
    same_but_counters(get(lab, "/api/v1/guests", params={"type": "lxc", "sort": "name"}).json(),
                      cli_json(lab, "list", "--type", "lxc", "--sort", "name"))
    guests = cli_json(lab, "list")
    node = guests[0]["node"]
    same_but_counters(get(lab, "/api/v1/guests", params={"node": node,
                                                          "status": "running"}).json(),
                      cli_json(lab, "list", "--node", node, "--status", "running"))
    g = guests[0]
    for key in (str(g["vmid"]), g["name"]):
        same_but_counters(get(lab, f"/api/v1/guests/{key}").json(),
                          cli_json(lab, "describe", key))
        assert (get(lab, f"/api/v1/guests/{key}/history").json() ==
                cli_json(lab, "history", key))


def test_counters_come_from_memory_not_the_store(lab):
    """The refresh never writes an unchanged guest's counters, yet the API's
    are fresh: they come from the resource list it keeps in memory."""
    running = [g for g in cli_json(lab, "list") if g["status"] == "running"]
    vmid = str(running[0]["vmid"])
    stored = cli_json(lab, "describe", vmid)["uptime"]
    fresh = until(lambda: (lambda u: u if u > stored else None)(
        get(lab, f"/api/v1/guests/{vmid}").json()["uptime"]), "a later uptime from the API")
    assert fresh > stored
    assert cli_json(lab, "describe", vmid)["uptime"] == stored


def test_runs_and_one_run(lab):
    runs = get(lab, "/api/v1/runs").json()
    assert runs and runs[0]["kind"] == "sync"
    one = get(lab, f"/api/v1/runs/{runs[-1]['id']}").json()
    assert one == runs[-1]
    assert get(lab, "/api/v1/runs", params={"kind": "apply"}).json() == []
    assert get(lab, "/api/v1/runs", params={"limit": "1"}).json() == runs[:1]
    r = get(lab, "/api/v1/runs/999999")
    assert r.status_code == 404 and r.json()["error"]["field"] == "id"


def test_errors_have_the_right_status_and_shape(lab):
    r = get(lab, "/api/v1/guests/no-such-guest")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found", "field": "guest",
                                 "message": r.json()["error"]["message"]}
    assert "no-such-guest" in r.json()["error"]["message"]
    r = get(lab, "/api/v1/guests", params={"type": "floppy"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "type"
    r = get(lab, "/api/v1/guests", params={"colour": "red"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_parameter"
    assert r.json()["error"]["field"] == "colour"
    r = get(lab, "/api/v1/no/such/thing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = requests.delete(lab["url"] + "/api/v1/cluster", timeout=20,
                        headers={"Authorization": "Bearer " + lab["tokens"]["admin"]})
    assert r.status_code == 405


def test_roles(lab):
    r = post(lab, "/api/v1/sync", role="viewer")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert "operator" in r.json()["error"]["message"]
    seq = get(lab, "/api/v1/sync").json()["sync"]["seq"]
    assert post(lab, "/api/v1/sync", role="operator").status_code == 202
    r = post(lab, "/api/v1/sync", role="admin", json={})
    assert r.status_code == 202 and r.json()["state"] == "running"
    assert r.json()["seq"] > seq


def test_a_viewer_gets_403_on_every_write(lab):
    doc = get(lab, "/api/v1/openapi.json").json()
    # /mcp takes a viewer's POST: the role decides which MCP tools it gets (test_740);
    # the dashboard's own login and logout are a viewer's too
    writes = [(p, m) for p, item in doc["paths"].items() for m in item
              if m != "get" and p != "/mcp" and not p.startswith("/ui/")]
    assert len(writes) >= 7
    vmid = cli_json(lab, "list")[0]["vmid"]
    for path, method in writes:
        r = requests.request(method, lab["url"] + path.replace("{guest}", str(vmid)),
                             headers={"Authorization": "Bearer " + lab["tokens"]["viewer"]},
                             timeout=20)
        assert r.status_code == 403, (path, method, r.text)


def test_power_actions_through_the_api(lab):
    running = [g for g in cli_json(lab, "list") if g["status"] == "running"]
    g = running[-1]

    def act(verb):
        r = post(lab, f"/api/v1/guests/{g['name']}/{verb}", role="operator")
        assert r.status_code == 202, r.text
        a = r.json()
        assert a["action"] == verb and a["vmid"] == g["vmid"]
        return until(lambda: (lambda x: x if x["state"] != "running" else None)(
            get(lab, f"/api/v1/actions/{a['id']}").json()), f"the {verb} to end")

    done = act("stop")
    assert done["state"] == "ok", done
    assert done["result"]["ok"] is True and done["result"]["upid"].startswith("UPID:")
    # the store follows (a sync is asked once pvelab changed something)
    until(lambda: get(lab, f"/api/v1/guests/{g['vmid']}").json()["status"] == "stopped",
          "the stopped state in the store")
    assert cli_json(lab, "describe", str(g["vmid"]))["status"] == "stopped"
    done = act("start")
    assert done["state"] == "ok", done
    until(lambda: get(lab, f"/api/v1/guests/{g['vmid']}").json()["status"] == "running",
          "the running state in the store")
    done = act("start")  # already running: ok, unchanged, as the CLI says
    assert done["result"].get("unchanged") is True
    r = post(lab, "/api/v1/guests/no-such-guest/start", role="operator")
    assert r.status_code == 404 and r.json()["error"]["field"] == "guest"
    assert get(lab, "/api/v1/actions/999999").status_code == 404


def test_revoked_and_expired_tokens_get_401(lab):
    env = lab["env"]
    r = run("token", "create", "shortlived", "--role", "viewer", "--expires", "1s", env=env)
    assert r.rc == 0, r
    short = r.out.strip()
    r = run("token", "create", "revokeme", "--role", "admin", env=env)
    gone = r.out.strip()
    h = {"Authorization": "Bearer " + gone}
    assert requests.get(lab["url"] + "/api/v1/cluster", headers=h, timeout=20).status_code == 200
    assert run("token", "revoke", "revokeme", env=env).rc == 0
    r = requests.get(lab["url"] + "/api/v1/cluster", headers=h, timeout=20)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    until(lambda: requests.get(lab["url"] + "/api/v1/cluster", timeout=20,
                               headers={"Authorization": "Bearer " + short}).status_code == 401,
          "the short-lived token to expire")
    listed = {t["name"]: t for t in json.loads(run("token", "list", "-o", "json", env=env).out)}
    assert listed["revokeme"]["revoked"] is not None
    assert listed["shortlived"]["expires"] is not None
    assert "sha256" not in listed["revokeme"]
    assert run("token", "revoke", "revokeme", env=env).rc == 1
    assert run("token", "create", "viewer1", "--role", "viewer", env=env).rc == 1
    assert run("token", "create", "x", "--role", "root", env=env).rc == 64
    assert run("token", "create", "x", "--role", "viewer", "--expires", "soon", env=env).rc == 64


def test_token_secret_format_and_store_keeps_only_its_hash(lab):
    import hashlib
    for secret in lab["tokens"].values():
        assert secret.startswith("pvl_") and len(secret) == 4 + 64
        int(secret[4:], 16)
    db = sqlite3.connect(str(lab["state"]))
    try:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        dump = "\n".join(str(row) for t in tables for row in db.execute(f"select * from {t}"))
        hashes = {r[0] for r in db.execute("select sha256 from api_tokens")}
    finally:
        db.close()
    for secret in lab["tokens"].values():
        assert secret not in dump and secret[4:] not in dump
        assert hashlib.sha256(secret.encode()).hexdigest() in hashes


def test_openapi_document_is_valid_and_covers_every_route(lab):
    import jsonschema  # python3-jsonschema (scripts/install-deps)
    doc = get(lab, "/api/v1/openapi.json").json()
    with open(os.path.join(TESTDATA, "openapi", "oas-3.1-schema.json")) as f:
        meta = json.load(f)
    jsonschema.Draft202012Validator(meta).validate(doc)
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    for p, m in [("/healthz", "get"), ("/api/v1/cluster", "get"), ("/api/v1/guests", "get"),
                 ("/api/v1/guests/{guest}", "get"), ("/api/v1/guests/{guest}/history", "get"),
                 ("/api/v1/runs", "get"), ("/api/v1/runs/{id}", "get"),
                 ("/api/v1/sync", "post"), ("/api/v1/openapi.json", "get")]:
        assert m in paths[p], (p, m)
    assert paths["/healthz"]["get"]["security"] == []
    assert paths["/api/v1/sync"]["post"]["x-pvelab-role"] == "operator"
    names = [q["name"] for q in paths["/api/v1/guests"]["get"]["parameters"]]
    assert names == ["type", "node", "status", "tag", "sort", "cluster"]


def test_real_answers_match_the_documents_schemas(lab):
    import jsonschema  # python3-jsonschema (scripts/install-deps)
    doc = get(lab, "/api/v1/openapi.json").json()
    guests = get(lab, "/api/v1/guests").json()
    runs = get(lab, "/api/v1/runs").json()

    def check(path, concrete, status=200, method="get", role="viewer", **kw):
        r = requests.request(method, lab["url"] + concrete, timeout=20,
                             headers={"Authorization": "Bearer " + lab["tokens"][role]}, **kw)
        assert r.status_code == status, (concrete, r.text)
        resp = doc["paths"][path][method]["responses"]
        schema = resp.get(str(status), resp["default"])["content"]["application/json"]["schema"]
        schema = dict(schema, components=doc["components"])
        jsonschema.Draft202012Validator(schema).validate(r.json())

    check("/healthz", "/healthz")
    check("/api/v1/cluster", "/api/v1/cluster")
    check("/api/v1/nodes", "/api/v1/nodes")
    check("/api/v1/guests", "/api/v1/guests")
    check("/api/v1/guests/{guest}", f"/api/v1/guests/{guests[0]['vmid']}")
    check("/api/v1/guests/{guest}/history", f"/api/v1/guests/{guests[0]['name']}/history")
    check("/api/v1/runs", "/api/v1/runs")
    check("/api/v1/runs/{id}", f"/api/v1/runs/{runs[0]['id']}")
    check("/api/v1/sync", "/api/v1/sync")
    check("/api/v1/sync", "/api/v1/sync", status=202, method="post", role="operator")
    check("/api/v1/guests/{guest}", "/api/v1/guests/nope", status=404)
    check("/api/v1/sync", "/api/v1/sync", status=403, method="post")
    r = post(lab, f"/api/v1/guests/{guests[0]['vmid']}/resume", role="operator")
    assert r.status_code == 202
    check("/api/v1/actions/{id}", f"/api/v1/actions/{r.json()['id']}")



def test_dashboard_reads_match_the_documents_schemas(lab):
    """The overview's and History page's endpoints, answered from what the
    server keeps, against their OpenAPI schemas (test_725 checks the values)."""
    import jsonschema  # python3-jsonschema (scripts/install-deps)
    doc = get(lab, "/api/v1/openapi.json").json()

    def check(path, concrete, status=200):
        r = get(lab, concrete)
        assert r.status_code == status, (concrete, r.text)
        resp = doc["paths"][path]["get"]["responses"]
        schema = resp.get(str(status), resp["default"])["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator(dict(schema, components=doc["components"])).validate(
            r.json())
        return r.json()

    # the certificates are read after a sync: wait for them, then check the read shape
    deadline = time.monotonic() + 60
    while check("/api/v1/certificates", "/api/v1/certificates")["read_at"] is None:
        assert time.monotonic() < deadline, "no certificates read after a sync"
        time.sleep(0.2)
    certs = check("/api/v1/certificates", "/api/v1/certificates")["certificates"]
    online = [n["node"] for n in get(lab, "/api/v1/nodes").json() if n["status"] == "online"]
    assert [c["node"] for c in certs] == online and len(online) >= 2
    assert check("/api/v1/storages", "/api/v1/storages")
    page = check("/api/v1/history", "/api/v1/history?limit=2")
    assert len(page["items"]) == 2 and page["next"] == page["items"][1]["id"]
    older = check("/api/v1/history", f"/api/v1/history?limit=2&before={page['next']}")
    assert older["items"][0]["id"] < page["next"]
    check("/api/v1/history", "/api/v1/history?kind=deleted&node=nosuch")
    check("/api/v1/history", "/api/v1/history?since=later", status=400)
    check("/api/v1/history", "/api/v1/history?guest=nosuch", status=404)
    drift = check("/api/v1/drift", "/api/v1/drift")
    assert drift["config"] is False and drift["planned_at"] is None  # no guests declared

def raw(lab, data, read=True):
    host, port = lab["url"].split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=20)
    s.sendall(data)
    out = b""
    if read:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    s.close()
    return out


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.") else None


def test_malformed_requests_get_clean_4xx_and_the_server_stays_up(lab):
    tok = lab["tokens"]["admin"].encode()
    auth = b"Authorization: Bearer " + tok + b"\r\n"
    # bad JSON, a non-object, a body where none is taken, a huge body
    r = post(lab, "/api/v1/sync", role="operator", data="{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_json"
    r = requests.post(lab["url"] + "/api/v1/sync", data="[1,2]", timeout=20,
                      headers={"Authorization": "Bearer " + lab["tokens"]["operator"]})
    assert r.status_code == 400
    r = requests.get(lab["url"] + "/api/v1/cluster", data="{}", timeout=20,
                     headers={"Authorization": "Bearer " + lab["tokens"]["viewer"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unexpected_body"
    big = b"{\"a\":\"" + b"x" * (2 << 20) + b"\"}"
    try:
        r = requests.post(lab["url"] + "/api/v1/sync", data=big, timeout=20,
                          headers={"Authorization": "Bearer " + lab["tokens"]["operator"]})
        assert r.status_code == 413
    except requests.exceptions.ConnectionError:
        pass  # evhttp may close before the client has sent it all: also refused
    # path tricks
    for path in (b"/api/v1/../healthz", b"/api/v1/%2e%2e/healthz", b"/api/v1/guests/a%2fb",
                 b"/api//v1/cluster", b"/api/v1/guests/%00", b"/api/v1/./cluster",
                 b"/api/v1/guests/w%96%9D%DA%CD0/history"):  # not UTF-8
        resp = raw(lab, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth +
                   b"Connection: close\r\n\r\n")
        assert status_of(resp) == 400, (path, resp[:200])
    # (an absolute-form target is HTTP/1.1's own: it names the same path)
    resp = raw(lab, b"GET http://evil/api/v1/cluster HTTP/1.1\r\nHost: x\r\n" + auth +
               b"Connection: close\r\n\r\n")
    assert status_of(resp) == 200
    for path in (b"*", b"api/v1/cluster"):
        resp = raw(lab, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth +
                   b"Connection: close\r\n\r\n")
        assert status_of(resp) in (400, 404), (path, resp[:200])
    # garbage, an unknown method, headers over the limit
    assert status_of(raw(lab, b"\x16\x03\x01garbage\r\n\r\n")) in (None, 400)
    assert status_of(raw(lab, b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) in (None, 400,
                                                                                  405, 501)
    resp = raw(lab, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 +
               b"\r\nConnection: close\r\n\r\n")
    assert status_of(resp) in (None, 400, 413, 431)
    # a slow client holds no one up
    host, port = lab["url"].split("//")[1].split(":")
    slow = socket.create_connection((host, int(port)), timeout=20)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert get(lab, "/healthz", role=None).status_code == 200
    assert get(lab, "/api/v1/cluster").status_code == 200
    slow.close()
    assert get(lab, "/healthz", role=None).status_code == 200
    assert lab["srv"].proc.poll() is None


def test_keep_alive_serves_many_requests_on_one_connection(lab):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + lab["tokens"]["viewer"]
    for _ in range(20):
        assert s.get(lab["url"] + "/api/v1/nodes", timeout=20).status_code == 200
    s.close()


def test_repeated_failures_from_one_address_are_held_back(lab):
    h = {"Authorization": "Bearer pvl_wrong"}
    for _ in range(4):
        assert requests.get(lab["url"] + "/api/v1/cluster", headers=h,
                            timeout=30).status_code == 401
    # the loop was not blocked meanwhile, and the right token still works
    assert get(lab, "/api/v1/cluster").status_code == 200


def test_refresh_syncs_and_reports(lab):
    info = until(lambda: (lambda i: i if i["sync"]["state"] == "ok" and i["status"]["age"]
                          is not None else None)(get(lab, "/api/v1/sync").json()),
                 "the first refresh")
    assert info["cluster"] is True
    assert info["sync"]["run_id"] > 0
    assert info["status"]["guests"] == 24
    run_row = get(lab, f"/api/v1/runs/{info['sync']['run_id']}").json()
    assert run_row["kind"] == "sync" and run_row["status"] == "ok"


def test_unchanged_refresh_leaves_guest_rows_alone(lab):
    """A refresh's sync of an unchanged cluster writes no guest row: counters
    stay in memory (the CLI's sync still writes them)."""
    def rows():
        db = sqlite3.connect(str(lab["state"]))
        try:
            return db.execute("select vmid, run_id, live from guests order by vmid").fetchall()
        finally:
            db.close()
    first = get(lab, "/api/v1/sync").json()["sync"]
    until(lambda: first["state"] == "ok" or get(lab, "/api/v1/sync").json()["sync"]["state"]
          == "ok", "a finished sync")
    seq = get(lab, "/api/v1/sync").json()["sync"]["seq"]
    before = rows()
    assert post(lab, "/api/v1/sync", role="operator").status_code == 202
    done = until(lambda: (lambda s: s if s["seq"] > seq and s["state"] == "ok" else None)(
        get(lab, "/api/v1/sync").json()["sync"]), "the asked sync")
    assert done["counts"]["changed"] == 0 and done["counts"]["added"] == 0
    assert rows() == before


class Events:
    """An SSE client on requests' streaming response."""

    def __init__(self, lab, last=None):
        h = {"Authorization": "Bearer " + lab["tokens"]["viewer"], "Accept": "text/event-stream"}
        if last is not None:
            h["Last-Event-ID"] = str(last)
        self.r = requests.get(lab["url"] + "/api/v1/events", headers=h, stream=True, timeout=30)
        assert self.r.status_code == 200
        assert self.r.headers["Content-Type"] == "text/event-stream"
        self.lines = self.r.iter_lines(decode_unicode=True)

    def next(self):
        ev = {}
        for line in self.lines:
            if line == "":
                if ev:
                    return {"id": int(ev["id"]), "event": ev["event"],
                            "data": json.loads(ev["data"])}
                continue
            if line.startswith(":"):
                continue  # the heartbeat
            k, _, v = line.partition(": ")
            ev[k] = v
        raise AssertionError("the event stream ended")

    def until(self, cond, what, deadline=30):
        end = time.monotonic() + deadline
        seen = []
        while time.monotonic() < end:
            e = self.next()
            seen.append(e)
            if cond(e):
                return e, seen
        raise AssertionError(f"no {what} event in {seen}")

    def close(self):
        self.r.close()


def test_events_stream_changes_and_replay_what_was_missed(lab):
    ev = Events(lab)
    try:
        assert post(lab, "/api/v1/sync", role="operator").status_code == 202
        done, seen = ev.until(lambda e: e["event"] == "sync" and e["data"]["state"] == "ok",
                              "sync")
        assert done["data"]["run_id"] > 0
        ids = [e["id"] for e in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # a change behind the server's back (another process) shows up
        running = [g for g in cli_json(lab, "list") if g["status"] == "running"]
        vmid = running[0]["vmid"]
        assert run("stop", str(vmid), env=lab["env"]).rc == 0
        e, _ = ev.until(lambda e: e["event"] == "guest" and e["data"]["vmid"] == vmid and
                        e["data"].get("status") == "stopped", "guest stopped")
        assert e["data"]["seen"] == "status"
        e2, _ = ev.until(lambda e: e["event"] == "guest" and e["data"]["vmid"] == vmid and
                         e["data"].get("seen") == "sync", "guest recorded")
        assert e2["data"]["kind"] == "updated" and e2["data"]["run_id"] > 0
        assert e2["id"] > e["id"]
        last = e2["id"]
    finally:
        ev.close()
    assert run("start", str(vmid), env=lab["env"]).rc == 0
    # a client that comes back with Last-Event-ID gets what it missed, in order
    back = Events(lab, last=e["id"])
    try:
        first = back.next()
        assert first["id"] == e["id"] + 1
        got = [first]
        while got[-1]["id"] < last:
            got.append(back.next())
        assert [g["id"] for g in got] == list(range(e["id"] + 1, last + 1))
        assert got[-1] == e2
    finally:
        back.close()
    # one that comes back from too long ago (the ring keeps 16) gets a reset
    for _ in range(20):
        seq = get(lab, "/api/v1/sync").json()["sync"]["seq"]
        post(lab, "/api/v1/sync", role="operator")
        until(lambda: (lambda x: x["seq"] > seq and x["state"] == "ok")(
            get(lab, "/api/v1/sync").json()["sync"]), "a sync")
    old = Events(lab, last=e["id"])
    try:
        r = old.next()
        assert r["event"] == "reset" and r["data"]["last"] >= r["id"]
    finally:
        old.close()
    fut = Events(lab, last=10 ** 9)
    try:
        assert fut.next()["event"] == "reset"
    finally:
        fut.close()


def test_tls_listener_with_a_certificate_from_the_local_ca(sim, tmp_path):
    state = tmp_path / "state.db"
    env = {"PVELAB_STATE": str(state)}
    tok = run("token", "create", "t", "--role", "viewer", env=env).out.strip()
    srv = Server("--listen", "0.0.0.0:0", env=env)
    try:
        info = srv.info
        assert info["url"].startswith("https://")
        assert len(info["fingerprint"]) == 95
        port = int(info["listeners"][0]["listen"].rsplit(":", 1)[1])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            with ctx.wrap_socket(s) as t:
                import hashlib
                der = t.getpeercert(binary_form=True)
                fp = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
                assert fp == info["fingerprint"]
                t.sendall(b"GET /api/v1/cluster HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          tok.encode() + b"\r\nConnection: close\r\n\r\n")
                out = b""
                while True:
                    c = t.recv(65536)
                    if not c:
                        break
                    out += c
                assert out.startswith(b"HTTP/1.1 200")
        # plain HTTP on that listener gets no answer it could use
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(20)
            try:
                assert not s.recv(100).startswith(b"HTTP/1.1 200")
            except (ConnectionResetError, socket.timeout):
                pass
    finally:
        assert srv.stop() == 0, srv.err


def test_a_missing_certificate_is_an_error_and_a_lone_one_a_usage_error(tmp_path):
    r = run("serve", "--listen", "0.0.0.0:0", "--tls-cert", str(tmp_path / "none.pem"),
            "--tls-key", str(tmp_path / "none.key"),
            env={"PVELAB_STATE": str(tmp_path / "s.db")}, timeout=30)
    assert r.rc == 1 and "none.pem" in r.err
    r = run("serve", "--listen", "0.0.0.0:0", "--tls-cert", "a.pem",
            env={"PVELAB_STATE": str(tmp_path / "s.db")}, timeout=30)
    assert r.rc == 64


def test_connections_per_client_are_limited(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("serve:\n  listen: [127.0.0.1:0]\n  max_connections_per_client: 2\n")
    env = {"PVELAB_STATE": str(tmp_path / "s.db")}
    srv = Server("-c", cfg, env=env)
    try:
        host, port = srv.info["listeners"][0]["listen"].rsplit(":", 1)
        held = []
        for _ in range(2):
            s = socket.create_connection((host, int(port)), timeout=20)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            held.append(s)
        s = socket.create_connection((host, int(port)), timeout=20)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 503")
        s.close()
        held.pop().close()
        until(lambda: requests.get(srv.url + "/healthz", timeout=20).status_code == 200,
              "a free connection slot")
        for s in held:
            s.close()
    finally:
        assert srv.stop() == 0, srv.err
