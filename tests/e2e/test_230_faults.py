"""Robustness: a sync under injected errors and latency still completes and
records exactly what the cluster holds; a sync killed with SIGKILL mid-way
leaves the previous state intact and readable."""
import os
import signal
import sqlite3
import subprocess
import time

from conftest import BIN, run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for


def stored(state):
    db = sqlite3.connect(str(state))
    try:
        return {v: (n, node, sha) for v, n, node, sha in
                db.execute("select vmid, name, node, sha256 from guests")}
    finally:
        db.close()


def writing(state):
    """Does another connection hold the write transaction of the store?"""
    db = sqlite3.connect(str(state), timeout=0, isolation_level=None)
    try:
        db.execute("begin immediate")
        db.execute("rollback")
        return False
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):
            raise
        return True
    finally:
        db.close()


def test_sync_under_faults_is_complete_and_correct(tmp_path):
    info = start_sim("--nodes", "4", "--guests", "300", "--faults", "error=0.05,latency=20ms")
    try:
        state = tmp_path / "state.db"
        env = env_for(info, state)
        r = run("-o", "json", "sync", env=env)
        assert r.rc == 0, r
        j = r.json()
        assert j["added"] == 300
        assert j["requests"] > 300 + 1  # some answers failed and were retried
        # Ground truth, read with retries as a careful client would.
        truth = None
        for _ in range(20):
            try:
                truth = api(info, "GET", "cluster/resources", type="vm")
                break
            except Exception:
                time.sleep(0.05)
        got = stored(state)
        assert set(got) == {g["vmid"] for g in truth}
        for g in truth:
            assert got[g["vmid"]][0] == g.get("name") and got[g["vmid"]][1] == g["node"]
        # Every guest has its config, not an error placeholder.
        lst = run("-o", "json", "describe", truth[0]["vmid"], env=env).json()
        assert lst["config"]
        # And nothing changed, faults or not.
        r = run("-o", "json", "sync", env=env)
        assert r.rc == 0, r
        assert r.json()["changed"] == 0 and r.json()["added"] == 0
    finally:
        stop_sim(info)


def test_sigkill_mid_sync_keeps_previous_state(tmp_path):
    info = start_sim("--nodes", "2", "--guests", "200", "--faults", "latency=25ms")
    try:
        state = tmp_path / "state.db"
        env = env_for(info, state, PVELAB_CONCURRENCY="4")
        assert run("sync", env=env).rc == 0
        before = stored(state)
        listed = run("-o", "json", "list", env=env).json()
        # Change something so that an unkilled sync would write.
        g = listed[0]
        api(info, "PUT", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/config", description="changed")
        e = dict(os.environ)
        e.update(env)
        p = subprocess.Popen([BIN, "sync"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Kill it mid-write: once it holds the store's write transaction.
        deadline = time.time() + 30
        while not writing(state):
            assert p.poll() is None, "sync finished before it could be killed"
            assert time.time() < deadline, "sync never began writing"
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert stored(state) == before
        db = sqlite3.connect(str(state))
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
        db.close()
        r = run("-o", "json", "list", env=env)
        assert r.rc == 0 and r.json() == listed
        # The next sync picks the change up.
        r = run("sync", env=env)
        assert r.rc == 0 and "~1 changed" in r.out, r
    finally:
        stop_sim(info)


def test_a_resource_list_that_breaks_off_changes_nothing(tmp_path):
    """The guest list is read as it arrives and configs are asked for
    meanwhile: when it breaks off half-way (--faults truncate: the length
    announced, half sent, the connection closed), the sync fails with what
    happened and the state stays as the last sync left it."""
    state = tmp_path / "state.db"
    info = start_sim("--nodes", "3", "--guests", "300", "--rng-seed", "5")
    try:
        env = env_for(info, state)
        assert run("sync", env=env).rc == 0
        before = stored(state)
    finally:
        stop_sim(info)
    info = start_sim("--nodes", "3", "--guests", "300", "--rng-seed", "5",
                     "--faults", "truncate=1")
    try:
        env = env_for(info, state)
        runs = run("-o", "json", "history", "100", env=env).json()
        r = run("sync", env=env)
        assert r.rc == 1 and "'GET /cluster/resources'" in r.err, r
        assert "transfer closed" in r.err, r
        assert stored(state) == before
        assert run("-o", "json", "history", "100", env=env).json() == runs
    finally:
        stop_sim(info)
