"""Plan, apply, cancel, rollback and snapshots through `pvelab serve`'s API
(issue 21) against the simulator: the plan is the CLI's, an apply by plan id
changes the guests and streams each step, stale plans and deletes without
allow_delete are refused, only admins plan and apply, a cancelled apply is
recorded interrupted and rolled back, and /healthz answers throughout."""
import json
import threading
import time

import pytest
import requests
import urllib3

from conftest import run
from plancheck import assert_steps_match
from simfix import start_sim, stop_sim
from test_700_serve import Events, Server, sim_env

urllib3.disable_warnings()

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
BASE = f"""
serve:
  status_interval: 1
guests:
  - name: web
    memory: 2G
    cores: 2
    networks: [{{bridge: vmbr0, ip: 10.0.0.5/24, gw: 10.0.0.1}}]
    disks: [{{storage: local-lvm, size: 8G}}]
  - name: ct1
    type: lxc
    ostemplate: {TEMPLATE}
    memory: 512
    networks: [{{bridge: vmbr0, ip: dhcp}}]
"""


def until(cond, what, deadline=30):
    end = time.monotonic() + deadline
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


class Lab:
    """A simulator, a state with three tokens, a config and a server on it."""

    def __init__(self, d):
        self.dir = d
        self.sim = start_sim("--nodes", "2", "--guests", "3", "--task-ms", "150")
        self.env = sim_env(self.sim, d / "state.db")
        assert run("sync", env=self.env).rc == 0
        self.tokens = {}
        for role in ("viewer", "operator", "admin"):
            r = run("token", "create", role + "1", "--role", role, env=self.env)
            assert r.rc == 0, r
            self.tokens[role] = r.out.strip()
        self.cfg = d / "pvelab.yaml"
        self.srv = None
        self.doc = None
        self.logs = []
        self.serve(BASE)

    def serve(self, config):
        """(Re)start the server on config (it reads its config at start)."""
        self.stop()
        self.cfg.write_text(config)
        self.srv = Server("--listen", "127.0.0.1:0", "-c", self.cfg, env=self.env)
        self.url = self.srv.url
        self.doc = self.doc or self.get("/api/v1/openapi.json").json()

    def stop(self):
        srv, self.srv = self.srv, None
        if srv and srv.proc.poll() is None:
            # not in the middle of a sync: the server stopped during one is
            # another matter (the sync's reader threads outlive the loop)
            h = {"Authorization": "Bearer " + self.tokens["viewer"]}
            until(lambda: requests.get(srv.url + "/api/v1/sync", headers=h, timeout=30)
                  .json()["sync"]["state"] != "running", "the server's sync to end", 60)
        if srv:
            rc = srv.stop()
            self.logs.append(srv.err)
            if rc != 0:
                (self.dir / "serve.err").write_text(srv.err)
            assert rc == 0, (rc, str(self.dir / "serve.err"))

    def req(self, method, path, role="admin", status=None, **kw):
        h = {"Authorization": "Bearer " + self.tokens[role]}
        r = requests.request(method, self.url + path, headers=h, timeout=30, **kw)
        if status is not None:
            assert r.status_code == status, (method, path, r.status_code, r.text)
        return r

    def get(self, path, role="viewer", status=None, **kw):
        return self.req("GET", path, role, status, **kw)

    def post(self, path, role="admin", status=None, **kw):
        return self.req("POST", path, role, status, **kw)

    def checked(self, method, template, r):
        """r's body against the OpenAPI document's schema for its status."""
        import jsonschema  # python3-jsonschema (scripts/install-deps)
        resp = self.doc["paths"][template][method.lower()]["responses"]
        schema = resp.get(str(r.status_code), resp["default"])
        schema = dict(schema["content"]["application/json"]["schema"],
                      components=self.doc["components"])
        jsonschema.Draft202012Validator(schema).validate(r.json())
        return r.json()

    def pve(self, method, path, **params):
        r = requests.request(method, self.sim["url"] + "/api2/json" + path, verify=False,
                             headers={"Authorization": "PVEAPIToken=" + self.sim["token"]},
                             data=params if method != "GET" else None,
                             params=params if method == "GET" else None, timeout=30)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["data"]

    def guest(self, name):
        for g in self.pve("GET", "/cluster/resources", type="vm"):
            if g.get("name") == name:
                return g
        return None

    def config(self, name, **params):
        g = self.guest(name)
        return self.pve("GET", f"/nodes/{g['node']}/{g['type']}/{g['vmid']}/config", **params)

    def plan(self, **opts):
        r = self.post("/api/v1/plans", json=opts, status=201)
        return self.checked("POST", "/api/v1/plans", r)

    def wait_run(self, run_id, deadline=60):
        def over():
            r = self.get(f"/api/v1/runs/{run_id}", status=200).json()
            return r if r["status"] != "running" else None
        return until(over, f"run {run_id} to end", deadline)

    def cli_plan(self):
        r = run("-c", str(self.cfg), "-o", "json", "plan", env=self.env, cwd=str(self.dir))
        assert r.rc == 0, r
        return json.loads(r.out)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("runs"))
    yield lab
    try:
        lab.stop()
    finally:
        stop_sim(lab.sim)
    logs = "\n".join(lab.logs)
    # who asked is in the log; no secret is
    assert "apply run" in logs and "for API token admin1" in logs
    for secret in lab.tokens.values():
        assert secret not in logs and secret[4:] not in logs


def test_plan_over_the_api_is_the_clis_plan(lab):
    kept = lab.plan()
    assert len(kept["id"]) == 32 and int(kept["id"], 16) >= 0
    assert kept["who"] == "API token admin1"
    assert kept["expires"] - kept["created"] == 900
    assert kept["fingerprint"]["cluster"] == kept["plan"]["snapshot"]
    assert kept["plan"] == lab.cli_plan()
    assert {c["guest"]: c["action"] for c in kept["plan"]["changes"]} == {"web": "create",
                                                                          "ct1": "create"}
    assert all(c["steps"] and c["class"] for c in kept["plan"]["changes"])
    got = lab.get(f"/api/v1/plans/{kept['id']}", status=200)
    assert lab.checked("GET", "/api/v1/plans/{id}", got) == kept
    # two plans of the same cluster have different ids
    assert lab.plan()["id"] != kept["id"]
    r = lab.get("/api/v1/plans/" + "0" * 32, status=404)
    assert lab.checked("GET", "/api/v1/plans/{id}", r)["error"]["field"] == "id"
    r = lab.post("/api/v1/plans", json={"reboot": "yes"}, status=400)
    assert r.json()["error"]["field"] == "reboot"
    r = lab.post("/api/v1/plans", json={"bogus": True}, status=400)
    assert r.json()["error"]["code"] == "unknown_field"
    r = lab.post("/api/v1/plans", json={"profile": "nope"}, status=400)
    assert "no profile 'nope'" in r.json()["error"]["message"]


def test_only_admins_plan_apply_and_roll_back(lab):
    kept = lab.plan()
    for role in ("viewer", "operator"):
        for path, body in (("/api/v1/plans", {}), ("/api/v1/runs", {"plan_id": kept["id"]}),
                           ("/api/v1/runs/1/cancel", {}), ("/api/v1/runs/1/rollback", {})):
            r = lab.post(path, role=role, json=body, status=403)
            assert r.json()["error"]["code"] == "forbidden", r.text
    # nothing ran
    assert lab.get("/api/v1/runs", params={"kind": "apply"}, status=200).json() == []


def test_apply_by_plan_id_changes_the_guests_and_streams_each_step(lab):
    kept = lab.plan()
    events = Events({"url": lab.url, "tokens": lab.tokens})
    worst, stop = [0.0], threading.Event()

    def probe():  # /healthz while the apply runs: the loop never waits on it
        s = requests.Session()
        while not stop.is_set():
            t = time.monotonic()
            assert s.get(lab.url + "/healthz", timeout=10).status_code == 200
            worst[0] = max(worst[0], time.monotonic() - t)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        r = lab.post("/api/v1/runs", json={"plan_id": kept["id"]}, status=202)
        started = lab.checked("POST", "/api/v1/runs", r)
        assert started["kind"] == "apply" and started["total"] == 2
        assert started["who"] == "API token admin1"
        run_id = started["run"]
        _, seen = events.until(lambda e: e["event"] == "run" and
                               e["data"].get("state") == "finished", "the run's end")
        rec = lab.wait_run(run_id)
    finally:
        stop.set()
        prober.join()
        events.close()
    print(f"\nworst /healthz latency during the apply: {worst[0] * 1000:.1f} ms")
    assert rec["status"] == "ok", rec
    assert rec["who"] == "API token admin1" and rec["result"]["via"] == "API token admin1"
    lab.checked("GET", "/api/v1/runs/{id}", lab.get(f"/api/v1/runs/{run_id}"))
    # the plan's steps, each carried out, and the guests are there
    assert_steps_match(kept["plan"], rec["result"])
    assert lab.guest("web") and lab.guest("ct1")
    assert lab.config("web")["memory"] in (2048, "2048")
    # the stream: started, then each change's steps in the plan's order, then the end
    runs = [e["data"] for e in seen if e["event"] == "run" and e["data"]["run"] == run_id]
    assert runs[0]["state"] == "started" and runs[-1]["state"] == "finished"
    assert runs[-1]["status"] == "ok" and runs[-1]["ok"] == 2
    for c in kept["plan"]["changes"]:
        steps = [e["step"] for e in runs[1:-1] if e["guest"] == c["guest"] and e["done"]]
        assert steps == c["steps"] + ["done"], (c["guest"], steps)
        begun = [e["step"] for e in runs[1:-1] if e["guest"] == c["guest"] and not e["done"]]
        assert begun == c["steps"], (c["guest"], begun)
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids)
    # the same plan again: another apply ran since it was made
    r = lab.post("/api/v1/runs", json={"plan_id": kept["id"]}, status=409)
    assert f"run {run_id}" in r.json()["error"]["message"]
    # nothing left to do
    r = lab.post("/api/v1/runs", json={"plan_id": lab.plan()["id"]}, status=400)
    assert "no changes" in r.json()["error"]["message"]


def test_a_stale_plan_is_refused_with_409_and_a_reason(lab):
    # another apply first: a plan made before it is refused
    lab.serve(BASE.replace("memory: 2G", "memory: 3G"))
    first, second = lab.plan(), lab.plan()
    r = lab.post("/api/v1/runs", json={"plan_id": second["id"]}, status=202)
    assert lab.wait_run(r.json()["run"])["status"] == "ok"
    r = lab.post("/api/v1/runs", json={"plan_id": first["id"]}, status=409)
    err = lab.checked("POST", "/api/v1/runs", r)["error"]
    assert err["code"] == "conflict" and "ran since plan" in err["message"]
    # the cluster changed behind pvelab's back after the plan was made
    lab.serve(BASE.replace("memory: 2G", "memory: 2G"))
    kept = lab.plan()
    web = lab.guest("web")
    lab.pve("PUT", f"/nodes/{web['node']}/qemu/{web['vmid']}/config", description="by hand")
    r = lab.post("/api/v1/runs", json={"plan_id": kept["id"]}, status=409)
    msg = r.json()["error"]["message"]
    assert "changed since plan" in msg and f"guest {web['vmid']}" in msg, msg
    assert lab.config("web")["memory"] in (3072, "3072")  # nothing was done
    # an unknown plan
    r = lab.post("/api/v1/runs", json={"plan_id": "f" * 32}, status=404)
    assert r.json()["error"]["field"] == "plan_id"
    r = lab.post("/api/v1/runs", json={}, status=400)
    assert r.json()["error"]["field"] == "plan_id"


def test_deletes_need_allow_delete_and_stay_under_max_deletes(lab):
    without_ct1 = BASE[:BASE.index("  - name: ct1")]
    lab.serve(without_ct1)
    kept = lab.plan()
    assert [c["action"] for c in kept["plan"]["changes"] if c["guest"] == "ct1"] == ["delete"]
    r = lab.post("/api/v1/runs", json={"plan_id": kept["id"]}, status=400)
    msg = r.json()["error"]["message"]
    assert "refusing to delete 1 guest (ct1) without allow_delete" in msg, msg
    lab.serve(without_ct1 + "safety:\n  max_deletes: 0\n")
    kept = lab.plan(allow_delete=True)
    r = lab.post("/api/v1/runs", json={"plan_id": kept["id"], "allow_delete": True}, status=400)
    assert "safety.max_deletes" in r.json()["error"]["message"]
    assert lab.guest("ct1")  # nothing was done
    assert lab.get("/api/v1/runs", params={"kind": "apply", "limit": 1}).json()[0]["status"] == "ok"


def test_cancel_stops_a_long_apply_and_rollback_restores(lab):
    lab.serve(BASE.replace("memory: 512", "memory: 768"))  # web back to 2G, ct1 to 768
    # what runs now (a snapshot keeps that, not the changes pending a reboot)
    before = {n: lab.config(n, current=1)["memory"] for n in ("web", "ct1")}
    kept = lab.plan()
    assert len(kept["plan"]["changes"]) == 2
    events = Events({"url": lab.url, "tokens": lab.tokens})
    try:
        r = lab.post("/api/v1/runs", json={"plan_id": kept["id"], "jobs": 1}, status=202)
        run_id = r.json()["run"]
        events.until(lambda e: e["event"] == "run" and e["data"].get("step") == "snapshot",
                     "the first step")
        now = lab.get(f"/api/v1/runs/{run_id}", status=200)
        now = lab.checked("GET", "/api/v1/runs/{id}", now)
        assert now["status"] == "running" and now["progress"]["total"] == 2, now
        assert now["progress"]["running"] and now["progress"]["finished"] == 0, now
        r = lab.post(f"/api/v1/runs/{run_id}/cancel", json={}, status=202)
        assert lab.checked("POST", "/api/v1/runs/{id}/cancel", r) == {"run": run_id,
                                                                      "state": "stopping"}
        events.until(lambda e: e["event"] == "run" and e["data"].get("state") == "finished",
                     "the run's end")
    finally:
        events.close()
    rec = lab.wait_run(run_id)
    assert rec["status"] == "interrupted", rec
    statuses = [c["status"] for c in rec["result"]["changes"]]
    assert "not started" in statuses, statuses
    r = lab.post(f"/api/v1/runs/{run_id}/cancel", json={}, status=404)
    # roll the interrupted run back: the guest it reached is as it was
    r = lab.post(f"/api/v1/runs/{run_id}/rollback", json={}, status=202)
    rb = lab.checked("POST", "/api/v1/runs/{id}/rollback", r)
    assert rb["kind"] == "rollback" and rb["who"] == "API token admin1"
    done = lab.wait_run(rb["run"])
    assert done["status"] == "ok", done
    assert {n: lab.config(n, current=1)["memory"] for n in ("web", "ct1")} == before
    # nothing to roll back, and not a run that changed guests
    first_apply = lab.get("/api/v1/runs", params={"kind": "apply"}).json()[-1]["id"]
    r = lab.post(f"/api/v1/runs/{first_apply}/rollback", json={}, status=400)
    assert "nothing to roll back" in r.json()["error"]["message"]
    r = lab.post("/api/v1/runs/999999/rollback", json={}, status=404)


def wait_action(lab, action_id):
    def over():
        a = lab.get(f"/api/v1/actions/{action_id}", status=200).json()
        return a if a["state"] != "running" else None
    return until(over, f"action {action_id}")


def test_snapshots_list_create_rollback_delete(lab):
    r = lab.get("/api/v1/guests/web/snapshots", status=200)
    names = {s["name"] for s in lab.checked("GET", "/api/v1/guests/{guest}/snapshots", r)}
    cli = run("-o", "json", "snapshots", "web", env=lab.env)
    assert {s["name"] for s in json.loads(cli.out)} == names
    lab.post("/api/v1/guests/web/snapshots", role="viewer", json={"name": "s1"}, status=403)
    r = lab.post("/api/v1/guests/web/snapshots", role="operator",
                 json={"name": "s1", "description": "before the test"}, status=202)
    a = lab.checked("POST", "/api/v1/guests/{guest}/snapshots", r)
    assert a["action"] == "snapshot" and a["snapshot"] == "s1"
    assert wait_action(lab, a["id"])["state"] == "ok"
    got = {s["name"]: s for s in lab.get("/api/v1/guests/web/snapshots").json()}
    assert got["s1"]["description"] == "before the test"
    # a second one of the same name fails; the action says why
    r = lab.post("/api/v1/guests/web/snapshots", role="operator", json={"name": "s1"},
                 status=202)
    assert "already" in wait_action(lab, r.json()["id"])["result"]["error"]
    # change the guest, roll it back: the change is gone, what it was is kept
    web = lab.guest("web")
    lab.pve("PUT", f"/nodes/{web['node']}/qemu/{web['vmid']}/config", description="changed")
    r = lab.post("/api/v1/guests/web/snapshots/s1/rollback", role="operator", json={},
                 status=202)
    lab.checked("POST", "/api/v1/guests/{guest}/snapshots/{name}/rollback", r)
    a = wait_action(lab, r.json()["id"])
    assert a["state"] == "ok", a
    assert lab.config("web").get("description") != "changed"
    kept = a["result"]["kept"]
    assert kept.startswith("pvelab-pre-rollback-")
    assert kept in {s["name"] for s in lab.get("/api/v1/guests/web/snapshots").json()}
    # delete both; an unknown one fails with the reason
    for name in ("s1", kept):
        r = lab.req("DELETE", f"/api/v1/guests/web/snapshots/{name}", role="operator",
                    status=202)
        lab.checked("DELETE", "/api/v1/guests/{guest}/snapshots/{name}", r)
        assert wait_action(lab, r.json()["id"])["state"] == "ok"
    left = {s["name"] for s in lab.get("/api/v1/guests/web/snapshots").json()}
    assert left == names | {n for n in left if n.startswith("pvelab-pre-") and n != kept}
    r = lab.req("DELETE", "/api/v1/guests/web/snapshots/nope", role="operator", status=202)
    assert "no snapshot 'nope'" in wait_action(lab, r.json()["id"])["result"]["error"]
    r = lab.post("/api/v1/guests/web/snapshots", role="operator", json={"name": "a/b"},
                 status=400)
    assert r.json()["error"]["field"] == "name"
    r = lab.get("/api/v1/guests/nosuch/snapshots", status=404)
    r = lab.post("/api/v1/guests/nosuch/snapshots", role="operator", json={"name": "x1"},
                 status=404)


def test_a_client_that_leaves_before_its_answer_harms_nothing(lab):
    """A plan's answer comes from a callback: its client may be gone by then."""
    import socket
    host, port = lab.url.split("//")[1].split(":")
    for _ in range(5):
        s = socket.create_connection((host, int(port)), timeout=10)
        body = b"{}"
        s.sendall(b"POST /api/v1/plans HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  lab.tokens["admin"].encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        s.close()
    assert lab.get("/healthz", status=200).json()["status"] == "ok"
    assert lab.plan()["plan"]["version"] == 1


def test_stopping_the_server_stops_its_run_as_ctrl_c_does(lab):
    lab.serve(BASE.replace("memory: 2G", "memory: 3G").replace("memory: 512", "memory: 640"))
    kept = lab.plan()
    events = Events({"url": lab.url, "tokens": lab.tokens})
    try:
        r = lab.post("/api/v1/runs", json={"plan_id": kept["id"], "jobs": 1}, status=202)
        run_id = r.json()["run"]
        events.until(lambda e: e["event"] == "run" and e["data"].get("step") == "snapshot",
                     "the first step")
    finally:
        events.close()
    lab.stop()  # SIGTERM
    assert f"stopping apply run {run_id}" in lab.logs[-1]
    rec = json.loads(run("-o", "json", "rollback", env=lab.env).out)
    mine = [x for x in rec if x["id"] == run_id][0]
    assert mine["status"] == "interrupted", mine
    assert "not started" in [c["status"] for c in mine["result"]["changes"]]
    # the CLI rolls it back from the same store
    r = run("rollback", str(run_id), "--yes", env=lab.env)
    assert r.rc == 0, r


def test_without_a_cluster_or_config_the_answer_says_so(lab):
    env = dict(lab.env, PVELAB_URL="", PVELAB_TOKEN="")
    empty = lab.dir / "empty"
    empty.mkdir()
    srv = Server("--listen", "127.0.0.1:0", env=env, cwd=empty)  # no pvelab.yaml
    try:
        h = {"Authorization": "Bearer " + lab.tokens["admin"]}
        for path, body in (("/api/v1/plans", {}), ("/api/v1/runs", {"plan_id": "0" * 32}),
                           ("/api/v1/guests/web/snapshots", {"name": "s2"})):
            r = requests.post(srv.url + path, json=body, headers=h, timeout=30)
            assert r.status_code == 503, (path, r.text)
            want = "no_cluster" if "snapshots" in path else "no_config"
            assert r.json()["error"]["code"] == want, r.text
    finally:
        assert srv.stop() == 0, srv.err


def test_a_rollback_zfs_cannot_make_is_refused_whole(lab):
    # ZFS rolls a volume back only to its newest snapshot: a snapshot taken
    # by hand after the run's refuses the run's rollback before any guest
    # is touched (409, naming what to delete), as the CLI does
    lab.pve("POST", "/storage", storage="tank", type="zfspool", pool="rpool/data",
            content="images")
    zv = "  - name: zv\n    memory: 1G\n    disks: [{storage: tank, size: 4G}]\n"
    lab.serve(BASE + zv)
    for cfg in (BASE + zv, BASE.replace("memory: 2G", "memory: 3G") + zv.replace("1G", "2G")):
        lab.serve(cfg)
        r = lab.post("/api/v1/runs", json={"plan_id": lab.plan()["id"]}, status=202)
        run_id = r.json()["run"]
        assert lab.wait_run(run_id)["status"] == "ok"
    g = lab.guest("zv")
    base = f"/nodes/{g['node']}/qemu/{g['vmid']}"
    upid = lab.pve("POST", base + "/snapshot", snapname="mine")
    until(lambda: lab.pve("GET", f"/nodes/{g['node']}/tasks/{upid}/status")["status"] == "stopped",
          "the snapshot")
    r = lab.post(f"/api/v1/runs/{run_id}/rollback", json={}, status=409)
    msg = r.json()["error"]["message"]
    assert "rollback refused; nothing was done: zv: " in msg and "is on ZFS" in msg, msg
    assert "'mine' was taken after 'pvelab-pre-" in msg, msg
    assert lab.config("web")["memory"] == "3072" and lab.config("zv")["memory"] == "2048"
    lab.pve("DELETE", base + "/snapshot/mine")
    until(lambda: [s["name"] for s in lab.pve("GET", base + "/snapshot")
                   if s["name"] == "mine"] == [], "the snapshot's delete")
    r = lab.post(f"/api/v1/runs/{run_id}/rollback", json={}, status=202)
    assert lab.wait_run(r.json()["run"])["status"] == "ok"
    assert lab.config("web")["memory"] == "2048" and lab.config("zv")["memory"] == "1024"
