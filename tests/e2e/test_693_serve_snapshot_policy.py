"""Snapshot policies run by `pvelab serve` against the simulator: a policy
with a schedule runs on its calendar event inside the server (here every
two seconds, PVE's calendar takes seconds), takes and prunes exactly as
`pvelab snapshot-policy run` does, one run at a time; each run is kept (GET
/api/v1/snapshot-policies, a "snapshot-policy" run in the store) and sent on
the event stream; an operator runs one now (POST .../{label}/run) and the
server keeps answering while it runs; a restart does not make up runs."""
import time

import pytest

from conftest import run
from simfix import DEMO_SEED, start_sim, stop_sim
from test_200_sync import api
from test_670_snapshot_policy import guest, snaps, take
from test_700_serve import Events, Server, sim_env, until


@pytest.fixture
def sim():
    info = start_sim("--seed", DEMO_SEED, "--task-ms", "300")
    yield info
    stop_sim(info)


def lab_for(sim, tmp_path, policies):
    env = sim_env(sim, tmp_path / "state.db")
    tokens = {}
    for role in ("viewer", "operator"):
        r = run("token", "create", role + "1", "--role", role, env=env)
        assert r.rc == 0, r
        tokens[role] = r.out.strip()
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("guests: []\nsnapshot_policies:\n" + policies)
    return {"env": env, "tokens": tokens, "cfg": cfg}


def start(lab):
    srv = Server("--listen", "127.0.0.1:0", "-c", lab["cfg"], env=lab["env"])
    lab["srv"], lab["url"] = srv, srv.url
    return srv


def call(lab, method, path, role="viewer"):
    import requests
    h = {"Authorization": "Bearer " + lab["tokens"][role]}
    return requests.request(method, lab["url"] + path, headers=h, timeout=20)


def stop(lab, srv):
    """Stop the server between runs, once its first sync is over (a stop in
    the middle of either is the serve core's drain, not this module's)."""
    try:
        until(lambda: call(lab, "GET", "/api/v1/sync").json()["sync"]["state"] in ("ok", "failed"),
              "the server's first sync")
        until(lambda: all(p["state"] == "idle" and (p["next"] is None or p["next"] - time.time() > 0.5)
                          for p in call(lab, "GET", "/api/v1/snapshot-policies").json()),
              "no policy running nor about to")
    finally:
        rc = srv.stop()
    assert rc == 0, srv.err


def policy(lab, label):
    r = call(lab, "GET", "/api/v1/snapshot-policies")
    assert r.status_code == 200, r.text
    return next(p for p in r.json() if p["label"] == label)


def test_a_schedule_runs_in_the_server_and_prunes_its_own(sim, tmp_path):
    g = guest(sim, 300)
    take(sim, g, "before_upgrade")                                   # a person's own
    take(sim, g, "autohourly240101000000", "cv4pve-autosnap")        # another label's
    lab = lab_for(sim, tmp_path, '  - {label: tick, keep: 2, guests: [300], schedule: "*:*:0/2"}\n'
                                 "  - {label: manual, keep: 1, guests: [301]}\n")
    srv = start(lab)
    try:
        ev = Events(lab)
        first, _ = ev.until(lambda e: e["event"] == "snapshot-policy"
                            and e["data"]["status"] == "ok", "a finished policy run", 30)
        assert first["data"]["label"] == "tick" and first["data"]["trigger"] == "schedule"
        assert [t["vmid"] for t in first["data"]["taken"]] == [300]
        # three runs: from the third on, each prunes the oldest (keep 2)
        p = until(lambda: (lambda p: p if p["runs"] >= 3 and p["state"] == "idle" else None)(
            policy(lab, "tick")), "three runs of the policy", 60)
        ev.close()
        assert p["last"]["status"] == "ok" and p["last"]["errors"] == []
        assert [x["vmid"] for x in p["last"]["pruned"]] == [300]
        assert p["schedule"] == "*:*:0/2" and p["next"] > time.time() - 1
        # an unscheduled policy waits to be asked
        m = policy(lab, "manual")
        assert m["next"] is None and m["runs"] == 0 and m["last"] is None
    finally:
        stop(lab, srv)
    # counted once the server is gone: no run in the middle of its pruning
    own = sorted(n for n in snaps(sim, g) if n.startswith("autotick"))
    assert len(own) == 2, snaps(sim, g)
    assert {"before_upgrade", "autohourly240101000000"} <= set(snaps(sim, g))
    assert not [n for n in snaps(sim, guest(sim, 301)) if n.startswith("automanual")]
    assert "snapshot policy tick runs on '*:*:0/2'" in srv.err
    assert "snapshot policy tick done: 1 taken" in srv.err


def test_run_now_answers_at_once_and_the_server_keeps_answering(sim, tmp_path):
    vmids = [300, 301, 310, 311]
    lab = lab_for(sim, tmp_path, "  - {label: now, keep: 1, guests: %s, schedule: daily}\n" % vmids)
    srv = start(lab)
    try:
        assert call(lab, "POST", "/api/v1/snapshot-policies/now/run").status_code == 403
        assert call(lab, "POST", "/api/v1/snapshot-policies/nope/run", "operator").status_code == 404
        r = call(lab, "POST", "/api/v1/snapshot-policies/now/run", "operator")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "running"
        # one run at a time
        again = call(lab, "POST", "/api/v1/snapshot-policies/now/run", "operator")
        assert again.status_code == 409 and "one run at a time" in again.text
        # the loop answers while the snapshots are taken (tasks of 300 ms)
        answered = 0
        while policy(lab, "now")["state"] == "running":
            assert call(lab, "GET", "/api/v1/cluster").status_code == 200
            answered += 1
        assert answered >= 1
        p = policy(lab, "now")
        assert p["runs"] == 1 and p["last"]["trigger"] == "operator1"
        # the container whose storage cannot snapshot is reported, per guest
        assert p["last"]["status"] == "failed", p
        assert [(e["vmid"], e["status"]) for e in p["last"]["errors"]] == [(311, "unsupported")]
        assert "cannot take snapshots" in p["last"]["errors"][0]["error"]
        assert sorted(t["vmid"] for t in p["last"]["taken"]) == [300, 301, 310]
        for v in (300, 301, 310):
            assert len([n for n in snaps(sim, guest(sim, v)) if n.startswith("autonow")]) == 1
        runs = call(lab, "GET", "/api/v1/runs?kind=snapshot-policy").json()
        assert len(runs) == 1 and runs[0]["status"] == "failed"
    finally:
        stop(lab, srv)
    # a restart makes up no run: the last is read back, the next is tomorrow's
    srv = start(lab)
    try:
        p = policy(lab, "now")
        assert p["runs"] == 0 and p["state"] == "idle" and p["last"]["status"] == "failed"
        assert p["last"]["errors"][0]["vmid"] == 311
        assert p["next"] > time.time()
        assert len(call(lab, "GET", "/api/v1/runs?kind=snapshot-policy").json()) == 1
    finally:
        stop(lab, srv)
