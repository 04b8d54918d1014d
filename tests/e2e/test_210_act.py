"""Act commands against the simulator: power actions on several guests in
parallel (one line each, tasks waited for), snapshots, locked guests, ticket
auth with CSRF, and failover to a second endpoint."""
import json

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for, full_token


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--nodes", "2", "--guests", "12")
    yield info
    stop_sim(info)


@pytest.fixture
def env(sim, tmp_path):
    return env_for(sim, tmp_path / "state.db")


def guests(sim, type_=None):
    gs = sorted(api(sim, "GET", "cluster/resources", type="vm"), key=lambda g: g["vmid"])
    gs = [g for g in gs if not g.get("template")]
    return [g for g in gs if type_ is None or g["type"] == type_]


def status_of(sim, g):
    return api(sim, "GET", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/status/current")["status"]


def test_start_stop_several_in_parallel(sim, env):
    gs = guests(sim)[:3]
    for g in gs:
        if status_of(sim, g) != "stopped":
            assert run("stop", g["vmid"], env=env).rc == 0
    r = run("start", *[g["name"] for g in gs], env=env)
    assert r.rc == 0, r
    lines = r.out.strip().splitlines()
    assert len(lines) == 3
    for g in gs:
        assert any(line.startswith(f"{g['name']} ({g['vmid']}): start ok") for line in lines)
        assert status_of(sim, g) == "running"
    r = run("-o", "json", "shutdown", *[str(g["vmid"]) for g in gs], env=env)
    assert r.rc == 0, r
    res = r.json()
    assert sorted(x["vmid"] for x in res) == sorted(g["vmid"] for g in gs)
    assert all(x["ok"] and x["upid"].startswith("UPID:") for x in res)
    for g in gs:
        assert status_of(sim, g) == "stopped"


def qmpstatus_of(sim, g):
    st = api(sim, "GET", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/status/current")
    return st["status"], st["qmpstatus"]


def test_reboot_suspend_resume_stop(sim, env):
    g = guests(sim, "qemu")[0]
    r = run("start", g["vmid"], env=env)  # "already running" is ok too
    assert r.rc == 0, r
    assert qmpstatus_of(sim, g) == ("running", "running")
    r = run("reboot", g["vmid"], env=env)
    assert r.rc == 0 and "reboot ok" in r.out, r
    # PVE keeps a suspended VM's status "running"; its QEMU says "paused"
    r = run("suspend", g["name"], env=env)
    assert r.rc == 0 and "suspend ok" in r.out, r
    assert qmpstatus_of(sim, g) == ("running", "paused")
    r = run("resume", g["name"], env=env)
    assert r.rc == 0 and "resume ok" in r.out, r
    assert qmpstatus_of(sim, g) == ("running", "running")
    r = run("resume", g["name"], env=env)
    assert r.rc == 1 and "not paused" in r.err, r
    r = run("stop", g["name"], env=env)
    assert r.rc == 0, r
    assert status_of(sim, g) == "stopped"


def test_tasks_are_remembered_for_describe(sim, env):
    g = guests(sim, "qemu")[1]
    assert run("start", g["vmid"], env=env).rc == 0
    assert run("sync", env=env).rc == 0
    d = run("-o", "json", "describe", g["vmid"], env=env).json()
    assert any(t.get("type") == "qmstart" for t in d["tasks"]), d["tasks"]
    assert run("stop", g["vmid"], env=env).rc == 0


def test_act_records_its_task_in_an_existing_store(sim, env, tmp_path):
    """An act command records its task where a store exists (describe shows it
    without a sync), and never makes a store where there is none."""
    g = guests(sim, "qemu")[1]
    assert run("sync", env=env).rc == 0
    r = run("-o", "json", "start", g["vmid"], env=env)
    assert r.rc == 0, r
    upid = r.json()[0].get("upid")
    d = run("-o", "json", "describe", g["vmid"], env=env).json()
    if upid:  # not when it was running already
        assert upid in [t.get("upid") for t in d["tasks"]], d["tasks"]
    assert run("stop", g["vmid"], env=env).rc == 0
    d = run("-o", "json", "describe", g["vmid"], env=env).json()
    assert any(t.get("type") == "qmstop" for t in d["tasks"]), d["tasks"]
    none = dict(env, PVELAB_STATE=str(tmp_path / "none" / "state.db"))
    assert run("start", g["vmid"], env=none).rc == 0
    assert not (tmp_path / "none").exists()
    assert run("stop", g["vmid"], env=env).rc == 0


def test_snapshot_and_snapshots(sim, env):
    g = guests(sim, "qemu")[2]
    r = run("snapshot", g["name"], "before-upgrade", env=env)
    assert r.rc == 0, r
    assert "snapshot ok" in r.out
    r = run("snapshots", g["name"], env=env)
    assert r.rc == 0 and "before-upgrade" in r.out, r
    names = [s["name"] for s in run("-o", "json", "snapshots", g["vmid"], env=env).json()]
    assert names == ["before-upgrade"]
    assert run("start", g["vmid"], env=env).rc == 0
    r = run("snapshot", "--vmstate", g["vmid"], "with-ram", env=env)
    assert r.rc == 0, r
    snaps = {s["name"]: s for s in run("-o", "json", "snapshots", g["vmid"], env=env).json()}
    assert snaps["with-ram"].get("vmstate") in (1, "1", True)
    ct = guests(sim, "lxc")[0]
    r = run("snapshot", "--vmstate", ct["vmid"], "nope", env=env)
    assert r.rc == 1 and "RAM" in r.err
    assert run("stop", g["vmid"], env=env).rc == 0


def test_act_on_unknown_guest(sim, env):
    g = guests(sim)[0]
    r = run("start", g["name"] + "q", env=env)
    assert r.rc == 1
    assert f"guest '{g['name']}q' not found (closest: '{g['name']}'" in r.err
    assert run("start", env=env).rc == 64


def test_ticket_auth_with_csrf(sim, tmp_path):
    g = guests(sim, "lxc")[1]
    env = {"PVELAB_URL": sim["url"], "PVELAB_FINGERPRINT": sim["fingerprint"],
           "PVELAB_STATE": str(tmp_path / "s.db"), "PVELAB_TOKEN": "",
           "PVELAB_USER": sim.get("username", "root@pam"), "PVELAB_PASSWORD": sim["password"]}
    r = run("start", g["vmid"], env=env)  # a POST: needs the CSRF header
    assert r.rc == 0, r
    assert run("stop", g["vmid"], env=env).rc == 0
    bad = dict(env, PVELAB_PASSWORD="wrong")
    r = run("sync", env=bad)
    assert r.rc == 1 and "login as" in r.err


def test_failover_to_the_next_endpoint(sim, tmp_path):
    env = env_for(sim, tmp_path / "state.db", PVELAB_URL="https://127.0.0.1:1," + sim["url"])
    r = run("sync", env=env)
    assert r.rc == 0, r
    assert "+12 new" in r.out


def test_acting_twice_is_ok(sim, env):
    g = guests(sim, "qemu")[3]
    assert run("start", g["vmid"], env=env).rc == 0
    r = run("start", g["vmid"], env=env)
    assert r.rc == 0 and "already running" in r.out, r
    assert run("stop", g["vmid"], env=env).rc == 0
    r = run("-o", "json", "shutdown", g["vmid"], env=env)
    assert r.rc == 0, r
    assert r.json()[0]["ok"]


def test_failed_task_shows_its_log(tmp_path):
    import subprocess
    import time
    from conftest import BIN
    info = start_sim("--nodes", "1", "--guests", "2", "--task-ms", "2000")
    try:
        env = env_for(info, tmp_path / "s.db")
        g = guests(info, "qemu")[0]
        e = dict(__import__("os").environ, **env)
        p = subprocess.Popen([BIN, "snapshot", str(g["vmid"]), "doomed"], env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        upid = None
        for _ in range(100):
            running = [t for t in api(info, "GET", f"nodes/{g['node']}/tasks", source="active")
                       if "snapshot" in t.get("type", "")]
            if running:
                upid = running[0]["upid"]
                break
            time.sleep(0.05)
        assert upid, "the snapshot task never showed up"
        api(info, "DELETE", f"nodes/{g['node']}/tasks/{upid}")
        out, err = p.communicate(timeout=30)
        assert p.returncode == 1, (out, err)
        line = err.strip().splitlines()[-1]
        assert "failed" in line and "interrupted by signal" in line and upid in line, line
    finally:
        stop_sim(info)


ACPI_SEED = """\
nodes: [pve1]
guests:
  - {vmid: 100, type: qemu, status: running, config: {name: noacpi, acpi: 0, memory: 512}}
  - {vmid: 101, type: qemu, status: running, config: {name: fine, memory: 512}}
"""


def test_shutdown_of_a_guest_that_ignores_acpi(tmp_path):
    """The homelab classic: a VM that ignores the ACPI power button (here ACPI
    is off). shutdown --timeout fails as PVE does, with what to do; with
    --force-stop PVE stops it; a stop while that shutdown still waits is
    refused for the lock, and --overrule-shutdown aborts the shutdown first."""
    import subprocess
    import time
    from conftest import BIN
    seed = tmp_path / "seed.yaml"
    seed.write_text(ACPI_SEED)
    info = start_sim("--seed", seed, "--task-ms", "100", "--lock-wait-ms", "500")
    try:
        env = env_for(info, tmp_path / "s.db")
        r = run("shutdown", "--timeout", "1", "noacpi", "fine", env=env)
        assert r.rc == 1 and "fine (101): shutdown ok" in r.out, r
        assert "VM quit/powerdown failed - got timeout" in r.err, r
        assert "'pvelab shutdown --force-stop'" in r.err, r
        assert status_of(info, {"node": "pve1", "type": "qemu", "vmid": 100}) == "running"

        r = run("reboot", "--timeout", "1", "noacpi", env=env)
        assert r.rc == 1 and "VM quit/powerdown failed - got timeout" in r.err, r
        assert "'pvelab stop' then 'pvelab start'" in r.err, r

        r = run("-o", "json", "shutdown", "--timeout", "1", "--force-stop", "noacpi", env=env)
        assert r.rc == 0 and r.json()[0]["ok"], r
        assert status_of(info, {"node": "pve1", "type": "qemu", "vmid": 100}) == "stopped"
        log = api(info, "GET", f"nodes/pve1/tasks/{r.json()[0]['upid']}/log")
        assert "VM still running - terminating now with SIGTERM" in [x["t"] for x in log]

        assert run("start", "noacpi", env=env).rc == 0
        e = dict(__import__("os").environ, **env)
        waiting = subprocess.Popen([BIN, "shutdown", "--timeout", "30", "noacpi"], env=e,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(100):
            if any(t["type"] == "qmshutdown" for t in
                   api(info, "GET", "nodes/pve1/tasks", source="active")):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the shutdown task never showed up")
        r = run("stop", "noacpi", env=env)
        assert r.rc == 1 and "can't lock file" in r.err, r
        assert "'pvelab stop --overrule-shutdown'" in r.err, r
        r = run("-o", "json", "stop", "--overrule-shutdown", "noacpi", env=env)
        assert r.rc == 0 and r.json()[0]["ok"], r
        log = [x["t"] for x in api(info, "GET", f"nodes/pve1/tasks/{r.json()[0]['upid']}/log")]
        assert log[0].startswith("overruled qmshutdown tasks: UPID:pve1:"), log
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 1 and "received interrupt" in err, (out, err)
        assert status_of(info, {"node": "pve1", "type": "qemu", "vmid": 100}) == "stopped"
    finally:
        stop_sim(info)
