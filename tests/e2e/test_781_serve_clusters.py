"""`pvelab serve` over several clusters (issue 33): two simulators under
clusters:, one refresh and one store per cluster, the REST reads across
both (a cluster field, ?cluster= to choose one), writes that name their
cluster when a guest is in both, events that say whose, and a stopped
simulator that never holds up the other cluster's refresh."""
import json
import os
import select
import signal
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import BIN, run, state_rows
from simfix import start_sim, stop_sim
from test_200_sync import api, full_token
from test_700_serve import Server, until
from test_780_clusters import cluster_entry


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    a = start_sim("--guests", "2")
    b = start_sim("--guests", "3")
    d = tmp_path_factory.mktemp("serveclusters")
    cfg = d / "pvelab.yaml"
    # home's requests give up after 3 s: a stopped home is seen failing soon
    cfg.write_text("project: two\nserve:\n  status_interval: 1\n  event_ring: 4096\n"
                   "clusters:\n" + cluster_entry("home", a) + "    timeout: 3\n" +
                   cluster_entry("lab", b) +
                   "guests:\n  - name: mcpdb\n    cluster: lab\n    memory: 512\n")
    env = {"SECRET_HOME": full_token(a).split("=", 1)[1],
           "SECRET_LAB": full_token(b).split("=", 1)[1]}
    for k in ("PVELAB_URL", "PVELAB_TOKEN", "PVELAB_FINGERPRINT", "PVELAB_STATE",
              "PVELAB_CA_FILE", "PVELAB_USER"):
        env[k] = ""
    # serve's tokens are in the first cluster's store
    r = run("-c", cfg, "--cluster", "home", "token", "create", "op", "--role", "operator",
            env=env, cwd=d)
    assert r.rc == 0, r
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env, cwd=d)
    lab = {"a": a, "b": b, "dir": d, "cfg": cfg, "env": env, "srv": srv, "url": srv.url,
           "token": r.out.strip()}
    yield lab
    for info in (a, b):
        if info["proc"].poll() is None:
            os.kill(info["proc"].pid, signal.SIGCONT)  # one may be stopped
    assert srv.stop() == 0, srv.err
    assert "refresh: home: sync 1 (start)" in srv.err
    assert "refresh: lab: sync 1 (start)" in srv.err
    assert lab["token"] not in srv.err
    for info in (a, b):
        if info["proc"].poll() is None:
            stop_sim(info)


def get(lab, path, **kw):
    return requests.get(lab["url"] + path, headers={"Authorization": "Bearer " + lab["token"]},
                        timeout=20, **kw)


def post(lab, path, **kw):
    return requests.post(lab["url"] + path, headers={"Authorization": "Bearer " + lab["token"]},
                         timeout=20, **kw)


def synced(lab, cluster, after=0):
    s = get(lab, "/api/v1/sync").json()["clusters"][cluster]["sync"]
    return s if s["state"] == "ok" and s["seq"] > after else None


def cli(lab, *args):
    r = run("-c", lab["cfg"], "-o", "json", *args, env=lab["env"], cwd=lab["dir"])
    assert r.rc == 0, r
    return json.loads(r.out)


def test_start_line_names_each_clusters_store(lab):
    st = lab["srv"].info["clusters"]
    assert list(st) == ["home", "lab"]
    assert st["home"].endswith("state-home.db") and st["lab"].endswith("state-lab.db")
    assert lab["srv"].info["state"] == st["home"]


def test_reads_cover_both_clusters_and_choose_one(lab):
    until(lambda: synced(lab, "home") and synced(lab, "lab"), "both clusters synced")
    guests = get(lab, "/api/v1/guests").json()
    assert sorted({g["cluster"] for g in guests}) == ["home", "lab"]
    # the same rows as the CLI's list over both (the counters are live here)
    assert [(g["cluster"], g["vmid"], g["name"]) for g in guests] == [
        (g["cluster"], g["vmid"], g["name"]) for g in cli(lab, "list")]
    one = get(lab, "/api/v1/guests", params={"cluster": "lab"}).json()
    assert "cluster" not in one[0]
    assert [g["vmid"] for g in one] == [g["vmid"] for g in cli(lab, "--cluster", "lab", "list")]

    st = get(lab, "/api/v1/cluster").json()
    assert [(s["cluster"], s["guests"]["total"]) for s in st] == [
        (s["cluster"], s["guests"]["total"]) for s in cli(lab, "status")]
    home = get(lab, "/api/v1/cluster", params={"cluster": "home"}).json()
    assert isinstance(home, dict) and "cluster" not in home
    nodes = get(lab, "/api/v1/nodes").json()
    assert {n["cluster"] for n in nodes} == {"home", "lab"}

    runs = get(lab, "/api/v1/runs").json()
    assert {r["cluster"] for r in runs} == {"home", "lab"}
    started = [r["started"] for r in runs]
    assert started == sorted(started, reverse=True)
    assert len(get(lab, "/api/v1/runs", params={"limit": "1"}).json()) == 1

    r = get(lab, "/api/v1/guests", params={"cluster": "office"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["field"] == "cluster"
    assert err["message"] == "unknown cluster 'office' (serve watches: home, lab)"


def test_one_guest_in_both_clusters_needs_its_cluster(lab):
    # both simulators have a vm 100
    r = get(lab, "/api/v1/guests/100")
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "cluster"
    assert r.json()["error"]["message"] == (
        "'100' is in clusters 'home' and 'lab' (choose one with ?cluster=NAME)")
    g = get(lab, "/api/v1/guests/100", params={"cluster": "lab"}).json()
    assert g["vmid"] == 100 and "cluster" not in g
    lab_only = max(g["vmid"] for g in get(lab, "/api/v1/guests", params={"cluster": "lab"}).json())
    home_ids = {g["vmid"] for g in get(lab, "/api/v1/guests", params={"cluster": "home"}).json()}
    assert lab_only not in home_ids
    g = get(lab, f"/api/v1/guests/{lab_only}").json()
    assert g["cluster"] == "lab"
    h = get(lab, f"/api/v1/guests/{lab_only}/history").json()
    assert h and all(row["cluster"] == "lab" for row in h)
    r = get(lab, "/api/v1/guests/nosuch")
    assert r.status_code == 404
    assert "not found in any cluster (home, lab" in r.json()["error"]["message"]

    # a write: refused when ambiguous, done in the cluster named
    r = post(lab, "/api/v1/guests/100/stop")
    assert r.status_code == 400 and r.json()["error"]["field"] == "cluster"
    r = post(lab, "/api/v1/guests/100/stop", params={"cluster": "lab"})
    assert r.status_code == 202, r.text
    assert r.json()["cluster"] == "lab"
    aid = r.json()["id"]
    done = until(lambda: (x := get(lab, f"/api/v1/actions/{aid}").json())["state"] != "running"
                 and x, "the stop")
    assert done["state"] == "ok", done
    assert until(lambda: any(g["vmid"] == 100 and g["status"] == "stopped"
                             for g in get(lab, "/api/v1/guests",
                                          params={"cluster": "lab"}).json()), "lab's 100 stopped")
    assert [g["status"] for g in get(lab, "/api/v1/guests", params={"cluster": "home"}).json()
            if g["vmid"] == 100] == ["running"]


def test_sync_events_and_one_cluster_routes(lab):
    r = post(lab, "/api/v1/sync", params={"cluster": "lab"})
    assert r.status_code == 202 and set(r.json()) == {"seq", "state"}
    seq = r.json()["seq"]
    until(lambda: synced(lab, "lab", seq - 1), "lab's sync")
    r = post(lab, "/api/v1/sync")
    assert r.status_code == 202 and sorted(r.json()["clusters"]) == ["home", "lab"]
    # the replay ring: each cluster's sync event says whose
    h = {"Authorization": "Bearer " + lab["token"], "Last-Event-ID": "0"}
    stream = requests.get(lab["url"] + "/api/v1/events", headers=h, stream=True, timeout=30)
    seen = set()
    try:
        ev = {}
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event: ") or line.startswith("data: "):
                k, _, v = line.partition(": ")
                ev[k] = v
            elif line == "" and ev:
                if ev.get("event") == "sync" and json.loads(ev["data"])["state"] == "ok":
                    seen.add(json.loads(ev["data"])["cluster"])
                ev = {}
                if seen == {"home", "lab"}:
                    break
    finally:
        stream.close()
    assert seen == {"home", "lab"}
    for path in ("/metrics", "/api/v1/checks"):
        r = get(lab, path)
        assert r.status_code == 501, (path, r.text)
        assert "watches several clusters (home, lab)" in r.json()["error"]["message"]
        assert "pvelab serve --cluster NAME" in r.json()["error"]["message"]


class Mcp:
    """pvelab mcp on stdio, one JSON-RPC line at a time."""

    def __init__(self, lab, *args):
        e = dict(os.environ)
        e.update(lab["env"])
        self.p = subprocess.Popen([BIN, "-c", str(lab["cfg"]), *args, "mcp", "--allow-write"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=e, cwd=lab["dir"], text=True)
        self.n = 0
        r = self.ask("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "t", "version": "1"}})
        assert "result" in r, r
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0",
                                       "method": "notifications/initialized"}) + "\n")

    def ask(self, method, params):
        self.n += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method,
                                       "params": params}) + "\n")
        self.p.stdin.flush()
        end = time.monotonic() + 120
        while time.monotonic() < end:
            r, _, _ = select.select([self.p.stdout], [], [], 0.2)
            if r:
                msg = json.loads(self.p.stdout.readline())
                if msg.get("id") == self.n:
                    return msg
        raise AssertionError(f"no answer to {method}")

    def call(self, tool, **args):
        r = self.ask("tools/call", {"name": tool, "arguments": args})["result"]
        return r.get("isError", False), r

    def close(self):
        self.p.stdin.close()
        assert self.p.wait(timeout=60) == 0
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        return err


PLAN_UNKNOWN = "no plan '{}' (a plan is kept 15 minutes; make one again)"


def names(info):
    return {g.get("name") for g in api(info, "GET", "cluster/resources", type="vm")}


def text(r):
    return r["content"][0]["text"]


def test_mcp_tools_take_the_cluster(lab):
    m = Mcp(lab, "-v")
    try:
        tools = {t["name"]: t for t in m.ask("tools/list", {})["result"]["tools"]}
        for name in ("list", "status", "describe", "plan", "apply", "start", "sync",
                     "snapshot", "discovered"):
            assert tools[name]["inputSchema"]["properties"]["cluster"]["enum"] == [
                "home", "lab"], name
        # reads: every cluster, or the one named, as the CLI gives them
        err, r = m.call("list")
        assert not err, r
        rows = r["structuredContent"]["items"]
        assert [(g["cluster"], g["vmid"]) for g in rows] == [
            (g["cluster"], g["vmid"]) for g in cli(lab, "list")]
        err, r = m.call("list", cluster="lab")
        assert not err and "cluster" not in r["structuredContent"]["items"][0]
        assert [g["vmid"] for g in r["structuredContent"]["items"]] == [
            g["vmid"] for g in cli(lab, "--cluster", "lab", "list")]
        err, r = m.call("list", cluster="office")
        assert err and text(r) == "unknown cluster 'office' (clusters: home, lab)"
        err, r = m.call("describe", guest="100")
        assert err and "'100' is in clusters 'home' and 'lab'" in text(r)
        err, r = m.call("describe", guest="100", cluster="home")
        assert not err and r["structuredContent"]["vmid"] == 100
        # writes: the cluster named, never another
        err, r = m.call("start", guests=["100"])
        assert err and "several clusters (home, lab)" in text(r)
        err, r = m.call("start", guests=["100"], cluster="lab")
        assert not err, r
        assert until(lambda: any(g["vmid"] == 100 and g["status"] == "running" for g in cli(
            lab, "--cluster", "lab", "list", "--live")), "lab's 100 running")
        err, r = m.call("plan")
        assert err and text(r) == ("plan needs its cluster: this config has several "
                                   "(home, lab); pass cluster")
        err, r = m.call("plan", cluster="lab")
        assert not err, r
        plan_id = r["structuredContent"]["plan_id"]
        # a plan of lab's is unknown to home's engine
        err, r = m.call("apply", plan_id=plan_id, cluster="home")
        assert err and text(r) == f"apply refused: {PLAN_UNKNOWN.format(plan_id)}", text(r)
        err, r = m.call("apply", plan_id=plan_id, cluster="lab")
        assert not err, r
        assert "mcpdb" in names(lab["b"]) and "mcpdb" not in names(lab["a"])
    finally:
        log = m.close()
    assert "clusters home, lab" in log


def test_mcp_of_one_cluster_keeps_to_it(lab):
    m = Mcp(lab, "--cluster", "lab")
    try:
        tools = {t["name"]: t for t in m.ask("tools/list", {})["result"]["tools"]}
        assert tools["list"]["inputSchema"]["properties"]["cluster"]["enum"] == ["lab"]
        err, r = m.call("list", cluster="home")
        assert err and text(r) == "cluster 'home': this server works on cluster 'lab' only"
        err, r = m.call("list", cluster="lab")
        assert not err
        # a command the tool runs works on lab's store, as the server does
        runs = len(cli(lab, "--cluster", "lab", "history", "100"))
        err, r = m.call("sync")
        assert not err, r
        assert "cluster" not in r["structuredContent"]
    finally:
        m.close()
    assert not list(lab["dir"].glob(".pvelab/state-lab-*"))
    assert not list(lab["dir"].glob(".pvelab/state-home-*"))
    assert len(cli(lab, "--cluster", "lab", "history", "100")) >= runs


def mcp_post(lab, body, sid=None):
    h = {"Authorization": "Bearer " + lab["token"], "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream"}
    if sid:
        h.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
    r = requests.post(lab["url"] + "/mcp", headers=h, data=json.dumps(body), timeout=120)
    if r.headers.get("Content-Type", "").startswith("text/event-stream"):  # progress first
        last = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        return r, last[-1]
    return r, (r.json() if r.content else None)


def test_serve_mcp_takes_the_cluster(lab):
    r, msg = mcp_post(lab, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                       "clientInfo": {"name": "t", "version": "1"}}})
    assert r.status_code == 200, r.text
    sid = r.headers["Mcp-Session-Id"]
    mcp_post(lab, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)

    def call(n, tool, **args):
        _, m = mcp_post(lab, {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                              "params": {"name": tool, "arguments": args}}, sid)
        return m["result"].get("isError", False), m["result"]

    _, m = mcp_post(lab, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, sid)
    tools = {t["name"]: t for t in m["result"]["tools"]}
    assert tools["snapshot"]["inputSchema"]["properties"]["cluster"]["enum"] == ["home", "lab"]
    err, res = call(2, "list", cluster="home")
    assert not err and [g["vmid"] for g in res["structuredContent"]["items"]] == [
        g["vmid"] for g in cli(lab, "--cluster", "home", "list")]
    err, res = call(3, "snapshot", guest="100", name="mcpsnap")
    assert err and "snapshot needs its cluster" in text(res)
    err, res = call(4, "snapshot", guest="100", name="mcpsnap", cluster="lab")
    assert not err, res

    def snaps(c):
        return {s["name"] for s in cli(lab, "--cluster", c, "snapshots", "100")}
    assert "mcpsnap" in snaps("lab") and "mcpsnap" not in snaps("home")


def test_cli_sync_goes_through_the_clusters_at_once(lab, tmp_path):
    """The CLI's sync over both: home's simulator frozen (its requests wait
    for their 30 s timeout), lab's sync is recorded meanwhile."""
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(lab["cfg"].read_text().replace("    timeout: 3\n", ""))
    lab_db = tmp_path / ".pvelab" / "state-lab.db"

    def lab_synced():
        try:
            return state_rows(lab_db, "SELECT count(*) FROM runs WHERE kind='sync' AND "
                              "status='ok'")[0][0] == 1
        except sqlite3.OperationalError:  # no file, or no tables in it yet
            return False

    e = dict(os.environ)
    e.update(lab["env"])
    os.kill(lab["a"]["proc"].pid, signal.SIGSTOP)
    try:
        p = subprocess.Popen([BIN, "-c", str(cfg), "sync"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=e, cwd=tmp_path)
        until(lab_synced, "lab's sync recorded while home's waits", deadline=25)
        assert p.poll() is None  # home's is still waiting
    finally:
        os.kill(lab["a"]["proc"].pid, signal.SIGCONT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    # reported in the config's order, one line each
    assert [line.split(":")[0] for line in out.strip().splitlines()] == ["home", "lab"]


def test_a_stopped_simulator_does_not_hold_up_the_other(lab):
    """Last: home's simulator is frozen (SIGSTOP), then killed."""
    until(lambda: synced(lab, "home") and synced(lab, "lab"), "both clusters synced")
    os.kill(lab["a"]["proc"].pid, signal.SIGSTOP)
    try:
        before = until(lambda: synced(lab, "lab"), "lab's sync between two")["seq"]
        r = post(lab, "/api/v1/sync")
        assert r.status_code == 202
        home_seq = r.json()["clusters"]["home"]["seq"]
        # lab's sync is recorded while home's waits on its frozen simulator
        lab_done = until(lambda: synced(lab, "lab", before), "lab's sync past home's")
        assert not synced(lab, "home", home_seq - 1)
        assert get(lab, "/api/v1/sync").json()["clusters"]["home"]["sync"]["state"] == "running"
        # and lab's resource list keeps being read every second
        until(lambda: get(lab, "/api/v1/sync").json()["clusters"]["lab"]["status"]["age"] < 2.5,
              "lab's status list fresh")
        # home's reads fail by its timeout; lab's still go on
        until(lambda: get(lab, "/api/v1/sync").json()["clusters"]["home"]["status"]["failures"]
              > 0, "home's status failing", deadline=60)
        r = post(lab, "/api/v1/sync", params={"cluster": "lab"})
        until(lambda: synced(lab, "lab", lab_done["seq"]), "lab synced again")
        assert get(lab, "/api/v1/guests", params={"cluster": "home"}).status_code == 200
    finally:
        os.kill(lab["a"]["proc"].pid, signal.SIGCONT)
    rc, _ = stop_sim(lab["a"])
    assert rc == 0
    until(lambda: get(lab, "/api/v1/sync").json()["clusters"]["home"]["sync"]["state"]
          == "failed", "home's sync failed", deadline=60)
    seq = get(lab, "/api/v1/sync").json()["clusters"]["lab"]["sync"]["seq"]
    post(lab, "/api/v1/sync")
    until(lambda: synced(lab, "lab", seq), "lab synced with home gone")
