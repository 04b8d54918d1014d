"""MCP end to end: a client on the official TypeScript SDK (tests/mcp/client.mjs)
drives `pvelab mcp` over stdio and /mcp on `pvelab serve` over Streamable
HTTP against the simulator: schemas the SDK accepts, structuredContent equal
to the CLI's -o json, resources and their updates, prompts, the write path
and its refusals, cancellation; raw JSON-RPC for the malformed messages."""
import json
import os
import select
import shutil
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import BIN, SRC, run
from simfix import start_sim, stop_sim

NODE = shutil.which("node")
CLIENT = os.path.join(SRC, "tests", "mcp", "client.mjs")
READ_TOOLS = {"status", "doctor", "list", "describe", "history", "validate", "plan", "snapshots",
              "backups", "check", "config-schema", "version", "discovered"}
OPERATOR_TOOLS = {"sync", "start", "stop", "shutdown", "reboot", "suspend", "resume", "snapshot",
                  "backup", "snapshot-delete"}
ADMIN_TOOLS = {"apply", "rollback", "destroy", "snapshot-rollback"}
CONFIG = """
serve:
  status_interval: 1
guests:
  - name: web
    memory: 2G
    cores: 2
    disks: [{storage: local-lvm, size: 8G}]
"""


def full_token(info):
    t = info["token"]
    return t if "!" in t and "=" in t else f"root@pam!pvelab={t}"


class Lab:
    def __init__(self, tmp, *sim_args):
        self.dir = tmp
        self.sim = start_sim("--nodes", "2", "--guests", "6", *sim_args)
        self.cfg = tmp / "pvelab.yaml"
        self.cfg.write_text(CONFIG)
        self.env = {"PVELAB_URL": self.sim["url"], "PVELAB_TOKEN": full_token(self.sim),
                    "PVELAB_FINGERPRINT": self.sim["fingerprint"],
                    "PVELAB_STATE": str(tmp / "state.db")}
        r = self.pvelab("sync", "-q")
        assert r.rc == 0, r

    def pvelab(self, *args):
        return run("-c", str(self.cfg), *args, env=self.env, cwd=str(self.dir))

    def api(self, method, path, **params):
        r = requests.request(method, self.sim["url"] + "/api2/json" + path, verify=False,
                             headers={"Authorization": "PVEAPIToken=" + full_token(self.sim)},
                             data=params or None, timeout=30)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["data"]

    def stdio(self, *extra):
        return [BIN, "-c", str(self.cfg), "mcp", *extra]

    def token(self, role):
        r = self.pvelab("token", "create", f"{role}{time.monotonic_ns()}", "--role", role,
                        "-o", "json")
        assert r.rc == 0, r
        return r.json()["secret"]

    def close(self):
        stop_sim(self.sim)


class Server:
    """pvelab serve on a free loopback port; its first line says where."""

    def __init__(self, lab):
        e = dict(os.environ)
        e.update(lab.env)
        self.proc = subprocess.Popen([BIN, "-c", str(lab.cfg), "serve", "--listen",
                                      "127.0.0.1:0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=e, cwd=str(lab.dir))
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        self.url = json.loads(line)["url"] + "/mcp"

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc, err


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    assert NODE, "node is missing (scripts/install-deps npm installs it)"
    assert os.path.isdir(os.path.join(SRC, "tests", "mcp", "node_modules")), \
        "tests/mcp/node_modules is missing (scripts/install-deps npm runs npm ci there)"
    l = Lab(tmp_path_factory.mktemp("mcp"))
    # a scan remembered (the discovered tool reads it): the simulator's port
    port = l.sim["url"].rsplit(":", 1)[1]
    r = l.pvelab("discover", "--save", "--no-dns", "--timeout", "300", "--ports", port,
                 "127.0.0.1")
    assert r.rc == 0, r
    yield l
    l.close()


@pytest.fixture(scope="module")
def server(lab):
    s = Server(lab)
    yield s
    rc, err = s.stop()
    assert rc == 0, err


def client(spec, env=None, timeout=180):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([NODE, CLIENT, json.dumps(spec)], capture_output=True, text=True,
                       env=e, timeout=timeout, cwd=os.path.dirname(CLIENT))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["ok"], rep.get("error")
    assert "Sanitizer" not in rep.get("stderr", ""), rep["stderr"]  # pvelab mcp's stderr
    return rep


def steps(rep, name):
    return [s for s in rep["steps"] if s["step"] == name]


COUNTERS = {"cpu", "mem", "maxmem", "maxcpu", "disk", "maxdisk", "uptime", "netin", "netout",
            "diskread", "diskwrite", "memhost", "last_sync"}


def without_counters(v):
    """The JSON but the live counters: pvelab serve answers with those of its
    last resource list (kept in memory), the CLI with those last synced."""
    if isinstance(v, list):
        return [without_counters(x) for x in v]
    if isinstance(v, dict):
        return {k: without_counters(x) for k, x in v.items() if k not in COUNTERS}
    return v


def check_read(lab, rep, exact=True):
    assert set(steps(rep, "tools")[0]["names"]) == READ_TOOLS
    for t in steps(rep, "tools")[0]["tools"]:
        a = t["annotations"]
        assert a["readOnlyHint"] is True and a["destructiveHint"] is False, t["name"]
        assert t["inputSchema"]["type"] == "object" and t["outputSchema"]["type"] == "object"
    calls = steps(rep, "call")
    assert len(calls) == 13
    for c in calls:
        assert not c["isError"], c
        assert c["valid"] is True, c  # structuredContent against outputSchema
    by = {(c["name"], json.dumps(c["args"], sort_keys=True)): c for c in calls}
    # structuredContent is the CLI's -o json (an array under "items")
    for args, key in ((["status"], ("status", "{}")),
                      (["list"], ("list", "{}")),
                      (["list", "--type", "lxc", "--sort", "name"],
                       ("list", json.dumps({"sort": "name", "type": "lxc"}))),
                      (["history", "vm100"], ("history", json.dumps({"guest": "vm100"}))),
                      (["validate"], ("validate", "{}")),
                      (["config-schema"], ("config-schema", "{}"))):
        r = lab.pvelab("-o", "json", *args)
        assert r.rc == 0, r
        want = r.json()
        got = by[key]["structured"]
        want_sc = want if isinstance(want, dict) else {"items": want}
        if exact:
            assert got == want_sc, args
            assert json.loads(by[key]["text"]) == want
        else:
            assert without_counters(got) == without_counters(want_sc), args
            assert without_counters(json.loads(by[key]["text"])) == without_counters(want)
    describe = by[("describe", json.dumps({"guest": "vm100"}))]["structured"]
    want = lab.pvelab("-o", "json", "describe", "vm100").json()
    assert describe["vmid"] == 100 and describe["config"] == want["config"]
    # the scan discover --save remembered, as the store has it
    found = by[("discovered", "{}")]["structured"]["items"]
    con = sqlite3.connect(lab.env["PVELAB_STATE"])
    want = con.execute("SELECT address, kind, first_seen, last_seen, present "
                       "FROM discovered_hosts").fetchall()
    con.close()
    assert [(h["address"], h["kind"], h["first_seen"], h["last_seen"], int(h["present"]))
            for h in found] == want and want[0][0] == "127.0.0.1"
    assert found[0]["record"]["evidence"][0]["port"] == int(lab.sim["url"].rsplit(":", 1)[1])
    plan = by[("plan", "{}")]["structured"]
    assert len(plan["plan_id"]) == 32 and plan["summary"]["create"] == 1
    uris = steps(rep, "resources")[0]["uris"]
    assert {"pvelab://cluster", "pvelab://config", "pvelab://guest/vm100",
            "pvelab://guest/ct104"} <= set(uris)
    assert steps(rep, "resource")[0]["json"]["vmid"] == 100
    assert steps(rep, "cluster")[0]["json"]["guests"]["total"] == 6
    assert steps(rep, "missing")[0]["error"] == -32002
    assert steps(rep, "templates")[0]["list"][0]["uriTemplate"] == "pvelab://guest/{guest}"
    assert steps(rep, "prompts")[0]["names"] == ["what-changed", "why-not-running", "plan-change"]
    texts = {p["name"]: p["text"] for p in steps(rep, "prompt")}
    assert '"kind":"sync"' in texts["what-changed"]
    assert "'vm100'" in texts["why-not-running"] and '"vmid":100' in texts["why-not-running"]
    assert "give web 4 GiB" in texts["plan-change"] and "plan_id" in texts["plan-change"]
    w = steps(rep, "write")[0]
    assert w["isError"] and "refused" in w["text"] and "--allow-write" in w["text"]


def test_stdio_read_tools_resources_prompts(lab):
    rep = client({"scenario": "read", "guest": "vm100", "stdio": lab.stdio()}, env=lab.env)
    check_read(lab, rep)


def test_http_read_tools_resources_prompts(lab, server):
    rep = client({"scenario": "read", "guest": "vm100", "url": server.url,
                  "token": lab.token("viewer")})
    assert steps(rep, "version")[0]["protocol"] == "2025-11-25"
    check_read(lab, rep, exact=False)


def test_http_roles_decide_the_tools(lab, server):
    seen = {}
    for role in ("viewer", "operator", "admin"):
        rep = client({"scenario": "tools", "url": server.url, "token": lab.token(role)})
        seen[role] = set(steps(rep, "tools")[0]["names"])
    assert seen["viewer"] == READ_TOOLS
    assert seen["operator"] == READ_TOOLS | OPERATOR_TOOLS
    assert seen["admin"] == READ_TOOLS | OPERATOR_TOOLS | ADMIN_TOOLS
    rep = client({"scenario": "tools", "stdio": lab.stdio("--allow-write")}, env=lab.env)
    assert set(steps(rep, "tools")[0]["names"]) == READ_TOOLS | OPERATOR_TOOLS | ADMIN_TOOLS


def subscribe_and_stop(lab, spec, vmid, after_stop=None):
    """Run the subscribe scenario; once it is subscribed, stop the guest in the
    simulator (and call after_stop). Returns its report's "updated" step."""
    e = dict(os.environ)
    e.update(lab.env)
    p = subprocess.Popen([NODE, CLIENT, json.dumps(spec)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e, cwd=os.path.dirname(CLIENT))
    node = next(g["node"] for g in lab.api("GET", "/cluster/resources", type="vm")
                if g["vmid"] == vmid)
    try:
        line = p.stdout.readline()
        assert line.strip() == "READY subscribed", (line, p.stderr.read() if not line else "")
        lab.api("POST", f"/nodes/{node}/qemu/{vmid}/status/stop")
        if after_stop:
            after_stop()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        lab.api("POST", f"/nodes/{node}/qemu/{vmid}/status/start")
    rep = json.loads(out.strip().splitlines()[-1])
    assert rep["ok"], rep.get("error")
    return steps(rep, "updated")[0]


def test_http_subscription_sees_a_change_made_in_the_simulator(lab, server):
    u = subscribe_and_stop(lab, {"scenario": "subscribe", "guest": "vm101", "url": server.url,
                                 "token": lab.token("viewer"), "deadline_ms": 30000,
                                 "want": "stopped"}, 101)
    assert u["updates"] >= 1 and u["before"] == "running" and u["after"] == "stopped", u


def test_stdio_subscription_sees_a_store_another_process_writes(lab):
    def sync_once_stopped():  # the store a server (here: a sync) writes
        end = time.monotonic() + 20
        while any(g["vmid"] == 105 and g["status"] != "stopped"
                  for g in lab.api("GET", "/cluster/resources", type="vm")):
            assert time.monotonic() < end, "the simulator did not stop vm105"
            time.sleep(0.05)
        assert lab.pvelab("sync", "-q").rc == 0

    u = subscribe_and_stop(lab, {"scenario": "subscribe", "guest": "vm105",
                                 "stdio": lab.stdio(), "deadline_ms": 30000,
                                 "want": "stopped"}, 105, after_stop=sync_once_stopped)
    assert u["updates"] >= 1 and u["before"] == "running" and u["after"] == "stopped", u


def test_stdio_write_path(lab):
    rep = client({"scenario": "write", "guest": "vm103", "stdio": lab.stdio("--allow-write")},
                 env=lab.env)
    ann = steps(rep, "tools")[0]["annotations"]
    assert ann["apply"]["destructiveHint"] is True and ann["apply"]["readOnlyHint"] is False
    assert ann["start"]["destructiveHint"] is False and ann["start"]["idempotentHint"] is True
    plan = steps(rep, "plan")[0]
    assert plan["valid"] and plan["summary"]["create"] == 1
    assert "no plan 'not-a-plan'" in steps(rep, "apply-unknown")[0]["text"]
    applied = steps(rep, "apply")[0]
    assert not applied["isError"], applied
    assert applied["structured"]["ok"] == 1 and applied["structured"]["failed"] == 0
    assert applied["structured"]["via"] == "MCP client pvelab-e2e 1.0.0"
    assert applied["progress"] >= 2  # the run began, and each step
    assert "web" in {g.get("name") for g in lab.api("GET", "/cluster/resources", type="vm")}
    # the run is in the store with who asked for it
    r = requests.get  # noqa: F841 (keeps the import used when run alone)
    for key in ("apply-again", "apply-stale"):
        s = steps(rep, key)[0]
        assert s["isError"] and "stale plan" in s["text"], s
    bad = steps(rep, "destroy-bad-confirm")[0]
    assert bad["isError"] and "confirm must repeat" in bad["text"]
    assert steps(rep, "destroy-no-confirm")[0]["isError"]
    assert "vm103" in {g.get("name") for g in lab.api("GET", "/cluster/resources", type="vm")}
    # the store followed the change (the engine's sync after an apply)
    r = lab.pvelab("-o", "json", "list")
    assert "web" in {g["name"] for g in r.json()}


def test_cancel_interrupts_the_command(tmp_path):
    l = Lab(tmp_path, "--task-ms", "6000")
    try:
        rep = client({"scenario": "cancel", "tool": "stop", "args": {"guests": ["vm102"]},
                      "after_ms": 500, "stdio": l.stdio("--allow-write", "-v")}, env=l.env)
        c = steps(rep, "cancel")[0]
        assert c["outcome"].startswith("rejected"), c
        assert c["ms"] < 5000, c  # not the task's 6 s: the client was answered at once
        assert steps(rep, "after")[0]["ping"]
    finally:
        l.close()


def test_cancelled_apply_stops_scheduling_and_is_recorded_interrupted(tmp_path):
    l = Lab(tmp_path, "--task-ms", "1500")
    try:
        l.cfg.write_text(CONFIG.replace("guests:\n", "guests:\n" + "".join(
            f"  - name: app{i}\n    memory: 512\n" for i in range(6))))
        rep = client({"scenario": "cancelApply", "stdio": l.stdio("--allow-write")}, env=l.env)
        c = steps(rep, "cancel-apply")[0]
        assert c["outcome"].startswith("rejected"), c
        assert [p["progress"] for p in c["progress"]] == [1, 2], c  # growing
        assert any("of 7" in p["message"] for p in c["progress"]), c
        assert steps(rep, "after")[0]["ping"]
        con = sqlite3.connect(l.env["PVELAB_STATE"])
        status, = con.execute("SELECT status FROM runs WHERE kind = 'apply' "
                              "ORDER BY id DESC LIMIT 1").fetchone()
        con.close()
        assert status == "interrupted"
        made = {g.get("name") for g in l.api("GET", "/cluster/resources", type="vm")}
        assert len({"web"} | {f"app{i}" for i in range(6)} - made) >= 1  # not all were made
    finally:
        l.close()


# ---- raw JSON-RPC -------------------------------------------------------------------


class Raw:
    """pvelab mcp driven line by line, stdout and stderr kept apart."""

    def __init__(self, lab, *extra, env=None):
        e = dict(os.environ)
        e.update(lab.env)
        e.update(env or {})
        self.p = subprocess.Popen(lab.stdio(*extra), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)

    def send(self, data):
        self.p.stdin.write(data if isinstance(data, bytes) else data.encode() + b"\n")
        self.p.stdin.flush()

    def recv(self, deadline=20):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            r, _, _ = select.select([self.p.stdout], [], [], 0.2)
            if r:
                line = self.p.stdout.readline()
                assert line, "pvelab mcp closed stdout"
                return json.loads(line)
        raise AssertionError("no answer in time")

    def ask(self, msg):
        self.send(json.dumps(msg))
        return self.recv()

    def close(self):
        self.p.stdin.close()
        rest = self.p.stdout.read()
        rc = self.p.wait(timeout=20)
        return rc, rest, self.p.stderr.read().decode()


INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}}


def test_malformed_jsonrpc_over_stdio_and_stdout_stays_clean(lab):
    raw = Raw(lab, "-v", "-v")
    r = raw.ask({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r["error"]["code"] == -32600 and r["id"] == 1  # before initialize
    r = raw.ask(INIT)
    assert r["result"]["protocolVersion"] == "2025-06-18" and r["id"] == 0
    raw.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    for bad, code in (("{nope", -32700), ("[]", -32600), ('"x"', -32600),
                      ('{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600),
                      ('{"jsonrpc":"1.0","id":2,"method":"ping"}', -32600),
                      ('{"jsonrpc":"2.0","id":3,"method":7}', -32600),
                      ('{"jsonrpc":"2.0","id":4,"method":"tools/list","params":[1]}', -32602),
                      ('{"jsonrpc":"2.0","id":5,"method":"no/such"}', -32601),
                      ('{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":5}}',
                       -32602),
                      ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope"}}',
                       -32602),
                      ('{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{}}',
                       -32602)):
        raw.send(bad)
        r = raw.recv()
        assert r["error"]["code"] == code, (bad, r)
    r = raw.ask(dict(INIT, id="again"))
    assert r["error"]["code"] == -32600 and r["id"] == "again"  # a second initialize
    raw.send(b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":"' + b"a" * (5 << 20) +
             b'"}}\n')
    r = raw.recv()
    assert r["error"]["code"] == -32600 and "at most" in r["error"]["message"]
    r = raw.ask({"jsonrpc": "2.0", "id": "s", "method": "tools/call",
                 "params": {"name": "list", "arguments": {"type": 5}}})
    assert r["result"]["isError"] is True
    r = raw.ask({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
                 "params": {"name": "describe", "arguments": {"guest": "vm100", "what": 1}}})
    assert r["result"]["isError"] and "unknown argument 'what'" in \
        r["result"]["content"][0]["text"]
    r = raw.ask({"jsonrpc": "2.0", "id": 11, "method": "ping"})
    assert r == {"jsonrpc": "2.0", "id": 11, "result": {}}  # still going
    rc, rest, err = raw.close()
    assert rc == 0
    assert rest == b""  # every line was a JSON-RPC message, read above
    assert "mcp: serving on stdio" in err  # -v logs went to stderr


def test_http_transport_refusals(lab, server):
    tok = lab.token("viewer")
    h = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream"}

    def post(body, headers=None, raw_body=None):
        hh = dict(h)
        hh.update(headers or {})
        return requests.post(server.url, headers=hh, timeout=20,
                             data=raw_body if raw_body is not None else json.dumps(body))

    assert requests.post(server.url, json=INIT, timeout=20).status_code == 401
    r = post(None, raw_body="{nope")
    assert r.status_code == 400 and r.json()["error"]["code"] == -32700
    assert post({"jsonrpc": "2.0", "id": 1, "method": "ping"}).status_code == 400
    assert post(INIT, {"Accept": "application/json"}).status_code == 406
    assert post(INIT, {"Content-Type": "text/plain"}).status_code == 415
    assert post(INIT, {"Origin": "https://evil.example"}).status_code == 403
    assert post(INIT, {"MCP-Protocol-Version": "1999-01-01"}).status_code == 400
    r = post(INIT, {"Origin": server.url.rsplit("/mcp", 1)[0]})
    assert r.status_code == 200 and r.json()["result"]["protocolVersion"] == "2025-06-18"
    sid = r.headers["Mcp-Session-Id"]
    assert 32 <= len(sid) and all(0x21 <= ord(c) <= 0x7e for c in sid)
    s = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
    r = post({"jsonrpc": "2.0", "method": "notifications/initialized"}, s)
    assert r.status_code == 202 and r.content == b""
    r = post(dict(INIT, id=2), s)
    assert r.status_code == 200 and r.json()["error"]["code"] == -32600
    r = post({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, s)
    assert {t["name"] for t in r.json()["result"]["tools"]} == READ_TOOLS
    # another token cannot use this session
    other = {"Authorization": f"Bearer {lab.token('admin')}"}
    other.update(s)
    assert post({"jsonrpc": "2.0", "id": 4, "method": "ping"}, other).status_code == 404
    r = post({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
              "params": {"name": "apply", "arguments": {"plan_id": "x"}}}, s)
    assert r.json()["result"]["isError"] and "refused" in r.json()["result"]["content"][0]["text"]
    r = requests.get(server.url, headers={**h, **s, "Accept": "text/event-stream"}, stream=True,
                     timeout=20)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"
    r.close()
    r = requests.delete(server.url, headers={**h, **s}, timeout=20)
    assert r.status_code == 200
    r = post({"jsonrpc": "2.0", "id": 6, "method": "ping"}, s)
    assert r.status_code == 404 and r.json()["error"]["code"] == -32001


def test_commands_at_once_are_capped_for_all_sessions(tmp_path):
    """mcp.max_processes bounds the child processes of every session together:
    a call beyond it gets JSON-RPC error -32010 at once, nothing runs, and the
    same call succeeds once a command ended."""
    l = Lab(tmp_path, "--task-ms", "8000")
    try:
        l.cfg.write_text(CONFIG + "mcp:\n  max_processes: 1\n")
        raw = Raw(l, "--allow-write")
        assert "result" in raw.ask(INIT)
        raw.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        raw.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                             "params": {"name": "stop", "arguments": {"guests": ["vm102"]}}}))
        # the stop's task takes 8 s: describe finds the one process in use
        r = raw.ask({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": "describe", "arguments": {"guest": "vm100"}}})
        assert r["id"] == 2 and r["error"]["code"] == -32010, r
        assert "mcp.max_processes" in r["error"]["message"]
        # in-process answers need no process
        r = raw.ask({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                     "params": {"name": "status"}})
        assert r["id"] == 3 and r["result"].get("isError") is not True, r
        raw.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                             "params": {"requestId": 1, "reason": "the test"}}))
        end, i = time.monotonic() + 30, 10
        while True:  # the interrupted stop ends; then describe runs
            i += 1
            r = raw.ask({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": "describe", "arguments": {"guest": "vm100"}}})
            if "error" not in r or time.monotonic() > end:
                break
            assert r["error"]["code"] == -32010, r
            time.sleep(0.1)
        assert r["result"]["structuredContent"]["vmid"] == 100, r
        assert raw.ask({"jsonrpc": "2.0", "id": "p", "method": "ping"})["result"] == {}
        rc, rest, err = raw.close()
        assert rc == 0 and rest == b"", err
    finally:
        l.close()


def test_writes_of_commands_record_the_client(tmp_path):
    """Every write a tool makes through a command of its own (power, backup,
    sync, destroy) is a run whose result says which MCP client asked, as the
    engine's apply does."""
    l = Lab(tmp_path)
    try:
        assert l.pvelab("apply", "--yes").rc == 0  # web: a guest pvelab may destroy
        # what the server inherits is not passed on
        raw = Raw(l, "--allow-write", env={"PVELAB_VIA": "someone else"})
        init = dict(INIT, params=dict(INIT["params"], clientInfo={"name": "bot\nx",
                                                                  "version": "2.1"}))
        assert "result" in raw.ask(init)
        raw.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        calls = [("stop", {"guests": ["vm101"]}), ("start", {"guests": ["vm101"]}),
                 ("backup", {"guests": ["vm101"]}), ("sync", {}),
                 ("destroy", {"guests": ["web"], "confirm": "web"})]
        for i, (name, args) in enumerate(calls):
            r = raw.ask({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                         "params": {"name": name, "arguments": args}})
            assert r["id"] == i + 1 and r["result"].get("isError") is not True, (name, r)
        rc, rest, err = raw.close()
        assert rc == 0, err
        con = sqlite3.connect(l.env["PVELAB_STATE"])
        rows = con.execute("SELECT kind, status, summary FROM runs ORDER BY id").fetchall()
        con.close()
        via = {}
        for kind, status, summary in rows:
            via.setdefault(kind, []).append((status, json.loads(summary or "null") or {}))
        want = "MCP client bot?x 2.1"  # control characters made visible
        for kind in ("stop", "start", "backup", "destroy"):
            (status, res), = via[kind]
            assert status == "ok" and res.get("via") == want, (kind, status, res)
        assert via["stop"][0][1]["guests"][0]["vmid"] == 101
        # the syncs: the first two by the CLI, then the tool's (and destroy's own)
        assert [r.get("via") for _, r in via["sync"]][:2] == [None, None]
        assert want in [r.get("via") for _, r in via["sync"][2:]]
        (status, res), = via["apply"]
        assert status == "ok" and "via" not in res  # the CLI's own apply
    finally:
        l.close()


def test_http_sessions_share_the_cap(tmp_path):
    """Over HTTP the cap counts every session's commands together: one
    session's long stop leaves another's describe refused (-32010) until the
    first session ends (its command is interrupted)."""
    l = Lab(tmp_path, "--task-ms", "8000")
    srv = None
    try:
        l.cfg.write_text(CONFIG + "mcp:\n  max_processes: 1\n")
        srv = Server(l)

        def session(role):
            h = {"Authorization": f"Bearer {l.token(role)}", "Content-Type": "application/json",
                 "Accept": "application/json, text/event-stream"}
            r = requests.post(srv.url, headers=h, data=json.dumps(INIT), timeout=20)
            assert r.status_code == 200, r.text
            h.update({"Mcp-Session-Id": r.headers["Mcp-Session-Id"],
                      "MCP-Protocol-Version": "2025-06-18"})
            r = requests.post(srv.url, headers=h, timeout=20, data=json.dumps(
                {"jsonrpc": "2.0", "method": "notifications/initialized"}))
            assert r.status_code == 202
            return h

        def call(h, i, name, args, timeout=20):
            r = requests.post(srv.url, headers=h, timeout=timeout, data=json.dumps(
                {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                 "params": {"name": name, "arguments": args}}))
            if r.headers.get("Content-Type", "").startswith("text/event-stream"):
                datas = [ln[5:].strip() for ln in r.text.splitlines() if ln.startswith("data:")]
                return json.loads([d for d in datas if d][-1])
            return r.json()

        a, b = session("operator"), session("viewer")
        # a's stop (an 8 s task): an SSE stream once its command runs
        held = requests.post(srv.url, headers=a, timeout=60, stream=True, data=json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "stop", "arguments": {"guests": ["vm102"]}}}))
        assert held.headers["Content-Type"].startswith("text/event-stream"), held.text
        r = call(b, 2, "describe", {"guest": "vm100"})
        assert r["error"]["code"] == -32010 and "mcp.max_processes" in r["error"]["message"], r
        assert requests.delete(srv.url, headers=a, timeout=20).status_code == 200
        end, i = time.monotonic() + 30, 3
        while True:  # a's command was interrupted: b's describe runs
            i += 1
            r = call(b, i, "describe", {"guest": "vm100"})
            if "error" not in r or time.monotonic() > end:
                break
            time.sleep(0.1)
        assert r["result"]["structuredContent"]["vmid"] == 100, r
        held.close()
    finally:
        if srv:
            rc, err = srv.stop()
            assert rc == 0, err
        l.close()
