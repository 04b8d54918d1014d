"""`pvelab serve` over several clusters, its writes that belong to one
(issue 33): a REST plan is of the cluster named, its apply runs on that
cluster's engine and changes that simulator only; runs and their events say
whose; each cluster's snapshot policies run on its own session and store."""
import json
import os
import signal

import pytest
import requests

from conftest import run
from simfix import start_sim, stop_sim
from test_700_serve import Server, until
from test_780_clusters import cluster_entry
from test_781_serve_clusters import PLAN_UNKNOWN, cli, cluster_env, get, names, synced


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    a = start_sim("--guests", "2")
    b = start_sim("--guests", "3")
    d = tmp_path_factory.mktemp("serveclustersruns")
    cfg = d / "pvelab.yaml"
    cfg.write_text("project: two\nserve:\n  status_interval: 1\n  event_ring: 4096\n"
                   "clusters:\n" + cluster_entry("home", a) + cluster_entry("lab", b) +
                   "guests:\n  - name: restdb\n    cluster: lab\n    memory: 512\n"
                   "snapshot_policies:\n"
                   "  - {label: nightly, keep: 2, guests: [100], cluster: home}\n"
                   "  - {label: nightly, keep: 2, guests: [100], cluster: lab}\n")
    env = cluster_env(a, b)
    r = run("-c", cfg, "--cluster", "home", "token", "create", "adm", "--role", "admin",
            env=env, cwd=d)
    assert r.rc == 0, r
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env, cwd=d)
    lab = {"a": a, "b": b, "dir": d, "cfg": cfg, "env": env, "srv": srv, "url": srv.url,
           "token": r.out.strip()}
    yield lab
    assert srv.stop() == 0, srv.err
    for info in (a, b):
        if info["proc"].poll() is None:
            os.kill(info["proc"].pid, signal.SIGCONT)
            stop_sim(info)


def post(lab, path, body=None, **kw):
    return requests.post(lab["url"] + path, headers={"Authorization": "Bearer " + lab["token"]},
                         json={} if body is None else body, timeout=60, **kw)


def test_a_plan_needs_its_cluster(lab):
    until(lambda: synced(lab, "home") and synced(lab, "lab"), "both clusters synced")
    r = post(lab, "/api/v1/plans")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "cluster"
    assert r.json()["error"]["message"] == (
        "a plan needs its cluster: this server watches several (home, lab); choose one "
        "with ?cluster=NAME")
    r = post(lab, "/api/v1/plans", {"cluster": "office"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "unknown cluster 'office' (serve watches: home, lab)"
    r = post(lab, "/api/v1/plans", {"cluster": "lab"}, params={"cluster": "home"})
    assert r.status_code == 400 and "differ" in r.json()["error"]["message"]


def run_events(lab, run_id):
    """The 'run' events of run_id in the server's replay ring, up to its end."""
    h = {"Authorization": "Bearer " + lab["token"], "Last-Event-ID": "0"}
    stream = requests.get(lab["url"] + "/api/v1/events", headers=h, stream=True, timeout=30)
    out, ev = [], {}
    try:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event: ") or line.startswith("data: "):
                k, _, v = line.partition(": ")
                ev[k] = v
            elif line == "" and ev:
                data = json.loads(ev.get("data", "{}"))
                if ev.get("event") == "run" and data.get("run") == run_id:
                    out.append(data)
                    if data.get("finished") == data.get("total") and data.get("done"):
                        break
                ev = {}
    finally:
        stream.close()
    return out


def test_plan_and_apply_on_lab_change_lab_only(lab):
    # the body's cluster, or ?cluster=: the plan is lab's
    r = post(lab, "/api/v1/plans", {"cluster": "lab"})
    assert r.status_code == 201, r.text
    assert r.json()["cluster"] == "lab"
    r = post(lab, "/api/v1/plans", params={"cluster": "lab"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["cluster"] == "lab"
    assert [(c["action"], c["guest"]) for c in plan["plan"]["changes"]] == [("create", "restdb")]
    assert get(lab, f"/api/v1/plans/{plan['id']}").json()["cluster"] == "lab"

    # home's engine never made it
    r = post(lab, "/api/v1/runs", {"plan_id": plan["id"]}, params={"cluster": "home"})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["message"] == PLAN_UNKNOWN.format(plan["id"])

    # without ?cluster= the plan finds its cluster
    r = post(lab, "/api/v1/runs", {"plan_id": plan["id"]})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["cluster"] == "lab" and started["kind"] == "apply"
    rid = started["run"]
    done = until(lambda: (x := get(lab, f"/api/v1/runs/{rid}", params={"cluster": "lab"})
                          .json())["status"] != "running" and x, "lab's apply", 120)
    assert done["status"] == "ok", done
    assert done["cluster"] == "lab"
    assert "restdb" in names(lab["b"]) and "restdb" not in names(lab["a"])

    # the runs list shows it as lab's; its events say whose
    runs = get(lab, "/api/v1/runs", params={"kind": "apply"}).json()
    assert [(x["id"], x["cluster"]) for x in runs] == [(rid, "lab")]
    evs = run_events(lab, rid)
    assert evs and all(e["cluster"] == "lab" for e in evs)

    # one run by its id: each store numbers its own, ?cluster= chooses
    home_ids = {x["id"] for x in get(lab, "/api/v1/runs", params={"cluster": "home",
                                                                 "limit": "1000"}).json()}
    r = get(lab, f"/api/v1/runs/{rid}")
    if rid in home_ids:
        assert r.status_code == 400 and r.json()["error"]["field"] == "cluster", r.text
        assert f"run {rid} is in clusters 'home' and 'lab'" in r.json()["error"]["message"]
    else:
        assert r.status_code == 200 and r.json()["cluster"] == "lab"
    r = get(lab, "/api/v1/runs/99999")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "no run 99999 in any cluster (home, lab)"
    assert [g["name"] for g in cli(lab, "--cluster", "lab", "list") if g["name"] == "restdb"]

    # its rollback goes to lab's engine, which reads lab's record of it
    r = post(lab, f"/api/v1/runs/{rid}/rollback", params={"cluster": "lab"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(
        f"run {rid} changed no existing guest: nothing to roll back (run {rid} created restdb")


def test_each_clusters_policy_runs_on_its_own(lab):
    pols = get(lab, "/api/v1/snapshot-policies").json()
    assert [(p["label"], p["cluster"]) for p in pols] == [("nightly", "home"), ("nightly", "lab")]
    assert [p["cluster"] for p in get(lab, "/api/v1/snapshot-policies",
                                      params={"cluster": "lab"}).json()] == ["lab"]
    r = post(lab, "/api/v1/snapshot-policies/nightly/run")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == (
        "snapshot policy 'nightly' is in clusters 'home' and 'lab' (choose one with "
        "?cluster=NAME)")
    r = post(lab, "/api/v1/snapshot-policies/nightly/run", params={"cluster": "lab"})
    assert r.status_code == 202, r.text
    assert r.json()["cluster"] == "lab"

    def ended():
        p = get(lab, "/api/v1/snapshot-policies", params={"cluster": "lab"}).json()[0]
        return p if p["state"] == "idle" and p["last"] else None
    p = until(ended, "lab's policy run", 60)
    assert p["last"]["status"] == "ok", p
    assert [t["vmid"] for t in p["last"]["taken"]] == [100]

    def snaps(c):
        return {s["name"] for s in cli(lab, "--cluster", c, "snapshots", "100")}
    assert [n for n in snaps("lab") if n.startswith("autonightly")]
    assert not [n for n in snaps("home") if n.startswith("autonightly")]
    # recorded in lab's store, not home's
    assert [x["cluster"] for x in get(lab, "/api/v1/runs",
                                      params={"kind": "snapshot-policy"}).json()] == ["lab"]
    home = get(lab, "/api/v1/snapshot-policies", params={"cluster": "home"}).json()[0]
    assert home["runs"] == 0 and home["last"] is None


def test_a_guests_snapshots_are_of_its_cluster(lab):
    # both simulators have a vm 100
    r = post(lab, "/api/v1/guests/100/snapshots", {"name": "restsnap"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "cluster", r.text
    r = post(lab, "/api/v1/guests/100/snapshots", {"name": "restsnap"}, params={"cluster": "lab"})
    assert r.status_code == 202, r.text
    assert r.json()["cluster"] == "lab"
    aid = r.json()["id"]
    done = until(lambda: (x := get(lab, f"/api/v1/actions/{aid}").json())["state"] != "running"
                 and x, "the snapshot", 60)
    assert done["state"] == "ok" and done["cluster"] == "lab", done
    listed = get(lab, "/api/v1/guests/100/snapshots", params={"cluster": "lab"}).json()
    assert "restsnap" in {s["name"] for s in listed}

    def snaps(c):
        return {s["name"] for s in cli(lab, "--cluster", c, "snapshots", "100")}
    assert "restsnap" in snaps("lab") and "restsnap" not in snaps("home")
