"""Snapshot policies against the simulator: `pvelab snapshot-policy run`
takes cv4pve-autosnap's snapshots (auto<label><yyMMddHHmmss>, local time,
described "cv4pve-autosnap") and prunes only its own label's, never a manual
snapshot, another label's or apply's pvelab-pre-RUN; a guest whose storage
cannot snapshot is reported; validate checks the schedules."""
import json
import re
import time

import pytest

from conftest import run
from simfix import DEMO_SEED, start_sim, stop_sim
from test_200_sync import api, env_for


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--seed", DEMO_SEED)
    yield info
    stop_sim(info)


@pytest.fixture
def env(sim, tmp_path):
    return env_for(sim, tmp_path / "state.db")


def snaps(sim, g):
    return {s["name"]: s for s in api(sim, "GET", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/snapshot")
            if s["name"] != "current"}


def guest(sim, vmid):
    return next(g for g in api(sim, "GET", "cluster/resources", type="vm") if g["vmid"] == vmid)


def take(sim, g, name, description=""):
    upid = api(sim, "POST", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/snapshot",
               snapname=name, description=description)
    wait_task(sim, g["node"], upid)


def wait_task(sim, node, upid, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        st = api(sim, "GET", f"nodes/{node}/tasks/{upid}/status")
        if st["status"] == "stopped":
            assert st["exitstatus"] == "OK", st
            return
        time.sleep(0.05)
    raise AssertionError(f"task {upid} did not end")


def next_second(after):
    """Wait until the clock's second is past `after` (names have one-second
    resolution, so each run gets a name of its own)."""
    end = time.monotonic() + 5
    while int(time.time()) <= after and time.monotonic() < end:
        time.sleep(0.02)


def config(tmp_path, policies, extra=""):
    p = tmp_path / "pvelab.yaml"
    p.write_text("guests: []\n" + extra + "snapshot_policies:\n" + policies)
    return p


def test_ten_runs_keep_three_and_touch_nothing_else(sim, env, tmp_path):
    g = guest(sim, 300)
    others = {
        "manual_before_upgrade": "",                     # a person's own
        "autodaily240101000000": "",                     # a look-alike a person named by hand
        "autohourly240101000000": "cv4pve-autosnap",     # another label's, cv4pve's
        "autoweekly240101000000": "cv4pve-autosnap\n",   # another label's, with PVE's line break
        "pvelab-pre-7": "",                              # apply's
        "pvelab-pre-12": "",
    }
    for name, desc in others.items():
        take(sim, g, name, desc)
    cfg = config(tmp_path, "  - {label: daily, keep: 3, schedule: daily, guests: [proxy]}\n")
    made = []
    for i in range(10):
        before = int(time.time())
        r = run("-c", cfg, "-o", "json", "snapshot-policy", "run", env=env)
        assert r.rc == 0, r
        res = r.json()
        assert res["ok"] == 1 and res["failed"] == 0, res
        (e,) = res["guests"]
        assert e["vmid"] == 300 and e["label"] == "daily" and e["taken"] is True
        stamp = time.strftime("%y%m%d%H%M%S", time.localtime(res["time"]))
        assert e["snapshot"] == "autodaily" + stamp
        made.append(e["snapshot"])
        assert e["kept"] == min(i + 1, 3)
        assert e["pruned"] == (made[i - 3:i - 2] if i >= 3 else [])
        next_second(max(before, res["time"]))
    assert len(set(made)) == 10
    now = snaps(sim, g)
    ours = sorted(n for n in now if re.fullmatch(r"autodaily\d{12}", n) and n in made)
    assert ours == sorted(made)[-3:]
    for name, desc in others.items():
        assert name in now, f"{name} was deleted"
    assert set(now) == set(ours) | set(others)
    assert all(now[n]["description"].strip() == "cv4pve-autosnap" for n in ours)


def test_label_selection_by_tag_and_pool_and_exclude(sim, env, tmp_path):
    # pool infra holds 300, 301, 310 in the demo seed
    cfg = config(tmp_path, "  - {label: infra, keep: 1, pools: [infra], exclude: [301]}\n")
    r = run("-c", cfg, "-o", "json", "snapshot-policy", "run", "infra", env=env)
    assert r.rc == 0, r
    got = sorted(e["vmid"] for e in r.json()["guests"])
    assert got == [300, 310]
    for vmid in got:
        assert [n for n in snaps(sim, guest(sim, vmid)) if n.startswith("autoinfra")], vmid
    assert not [n for n in snaps(sim, guest(sim, 301)) if n.startswith("autoinfra")]


def test_only_the_named_label_runs_and_unknown_guests_fail(sim, env, tmp_path):
    cfg = config(tmp_path, "  - {label: a1, keep: 2, guests: [proxy]}\n"
                           "  - {label: b1, keep: 2, guests: [nosuchguest]}\n")
    r = run("-c", cfg, "-o", "json", "snapshot-policy", "run", "a1", env=env)
    assert r.rc == 0, r
    assert [e["label"] for e in r.json()["guests"]] == ["a1"]
    r = run("-c", cfg, "snapshot-policy", "run", "b1", env=env)
    assert r.rc == 1
    assert "no guest 'nosuchguest'" in r.err
    r = run("-c", cfg, "snapshot-policy", "run", "c1", env=env)
    assert r.rc == 1 and "no snapshot policy labelled 'c1'" in r.err


def test_validate_checks_schedule_and_label(pvelab, tmp_path):
    cfg = config(tmp_path, "  - {label: ok, keep: 2, schedule: 'mon..fri 02:30', guests: [a]}\n"
                           "  - {label: 'no good', keep: 2, schedule: '25:00:00', guests: [a]}\n")
    r = pvelab("-c", cfg, "validate")
    assert r.rc == 1
    assert "snapshot_policies[1].schedule: not a calendar event '25:00:00'" in r.err
    assert "snapshot_policies[1].label: label 'no good' cannot name snapshots" in r.err
    assert "snapshot_policies[0]" not in r.err
    r = pvelab("-c", cfg, "-o", "json", "snapshot-policy", "list")
    assert r.rc == 1  # the config is refused before anything is listed
    cfg = config(tmp_path, "  - {label: ok, keep: 2, schedule: 'mon..fri 02:30', guests: [a]}\n")
    r = pvelab("-c", cfg, "-o", "json", "snapshot-policy", "list")
    assert r.rc == 0, r
    (p,) = r.json()
    nxt = time.localtime(p["next"])
    assert (nxt.tm_hour, nxt.tm_min, nxt.tm_sec) == (2, 30, 0) and nxt.tm_wday < 5
    assert p["next"] > time.time()


def test_a_guest_whose_storage_cannot_snapshot_is_reported(sim, env, tmp_path):
    # 311's mp0 is a subvol on NFS storage 'nas': PVE's feature check says no
    bld, proxy = guest(sim, 311), guest(sim, 300)
    feat = api(sim, "GET", f"nodes/{bld['node']}/lxc/311/feature", feature="snapshot")
    assert feat["hasFeature"] == 0
    assert api(sim, "GET", f"nodes/{proxy['node']}/qemu/300/feature",
               feature="snapshot")["hasFeature"] == 1
    # Proxmox refuses one by hand too, inside its snapshot task
    upid = api(sim, "POST", f"nodes/{bld['node']}/lxc/311/snapshot", snapname="by_hand")
    end = time.monotonic() + 30
    while (st := api(sim, "GET", f"nodes/{bld['node']}/tasks/{upid}/status"))["status"] != "stopped":
        assert time.monotonic() < end, st
        time.sleep(0.02)
    assert st["exitstatus"] == "snapshot feature is not available", st
    before = snaps(sim, bld)
    cfg = config(tmp_path, "  - {label: nightly, keep: 1, guests: [builder, proxy]}\n")
    r = run("-c", cfg, "snapshot-policy", "run", env=env)
    assert r.rc == 1, r
    assert "nightly cannot snapshot 'builder' (311): its storage cannot take snapshots" in r.err
    assert "1 ok, 0 failed, 1 cannot snapshot, 0 skipped." in r.out
    assert snaps(sim, bld) == before  # nothing taken, nothing pruned
    r = run("-c", cfg, "-o", "json", "snapshot-policy", "run", env=env)
    res = r.json()
    assert {e["vmid"]: e["status"] for e in res["guests"]} == {300: "ok", 311: "unsupported"}
    assert res["unsupported"] == 1


def test_apply_snapshots_keep_prunes_only_apply_snapshots(tmp_path):
    from test_600_plan_apply import BASE, Lab
    lab = Lab(tmp_path)
    try:
        lab.write(BASE + "apply_snapshots: {keep: 2}\n")
        assert lab.pvelab("apply", "--yes").rc == 0
        web = next(g for g in lab.guests() if g.get("name") == "web")
        path = f"/nodes/{web['node']}/qemu/{web['vmid']}/snapshot"
        for name, desc in (("by_hand", ""), ("autodaily240101000000", "cv4pve-autosnap")):
            lab.wait(web["node"], lab.api("POST", path, snapname=name, description=desc))
        runs = []
        for mem in ("3G", "4G", "3G", "4G"):
            lab.write(BASE.replace("memory: 2G", f"memory: {mem}") + "apply_snapshots: {keep: 2}\n")
            r = lab.pvelab("-o", "json", "apply", "--yes")
            assert r.rc == 0, r
            res = r.json()
            runs.append(res["run"])
            ours = [c for c in res["changes"] if c["guest"] == "web"]
            assert ours and ours[0]["snapshot"] == f"pvelab-pre-{res['run']}"
            gone = [p for e in res["pruned_snapshots"] for p in e["pruned"]]
            assert gone == ([f"pvelab-pre-{runs[-3]}"] if len(runs) >= 3 else []), res
        names = {s["name"] for s in lab.api("GET", path) if s["name"] != "current"}
        assert names == {"by_hand", "autodaily240101000000",
                         f"pvelab-pre-{runs[-2]}", f"pvelab-pre-{runs[-1]}"}
        # the text output says so too
        lab.write(BASE + "apply_snapshots: {keep: 2}\n")
        r = lab.pvelab("apply", "--yes")
        assert r.rc == 0 and "Deleted 1 older apply snapshot (apply_snapshots.keep: 2)." in r.out, r
    finally:
        lab.close()


def test_vmstate_for_running_vms_and_templates_skipped(sim, env, tmp_path):
    # 300 is a running VM, 310 a container, 9000 a template
    proxy = guest(sim, 300)
    assert proxy["status"] == "running"
    cfg = config(tmp_path, "  - {label: ram, keep: 2, vmstate: true, guests: [300, 310, 9000]}\n")
    r = run("-c", cfg, "-o", "json", "snapshot-policy", "run", env=env)
    assert r.rc == 0, r
    res = r.json()
    by = {e["vmid"]: e for e in res["guests"]}
    assert by[9000]["status"] == "skipped" and res["skipped"] == 1
    assert by[300]["status"] == "ok" and by[310]["status"] == "ok"
    assert snaps(sim, proxy)[by[300]["snapshot"]]["vmstate"] == 1
    assert "vmstate" not in snaps(sim, guest(sim, 310))[by[310]["snapshot"]]  # containers have none
    assert not [n for n in snaps(sim, guest(sim, 9000)) if n.startswith("autoram")]


def test_lock_timeouts_are_retried_and_the_snapshot_still_taken(tmp_path):
    # half the guest-changing calls time out on the guest's lock file
    info = start_sim("--seed", DEMO_SEED, "--faults", "lockwait=0.5", "--lock-wait-ms", "50",
                     "--rng-seed", "7")
    try:
        env = env_for(info, tmp_path / "state.db")
        cfg = config(tmp_path, "  - {label: busy, keep: 2, guests: [proxy, dns, monitoring]}\n")
        made = []
        for _ in range(3):
            before = int(time.time())
            r = run("-c", cfg, "-o", "json", "snapshot-policy", "run", env=env)
            assert r.rc == 0, r
            res = r.json()
            assert res["ok"] == 3, res
            assert all(e["taken"] is True for e in res["guests"]), res
            made.append(res["guests"][0]["snapshot"])
            next_second(max(before, res["time"]))
        for vmid in (300, 301, 310):
            ours = sorted(n for n in snaps(info, guest(info, vmid)) if n.startswith("autobusy"))
            assert ours == sorted(made)[-2:] if vmid == 300 else len(ours) == 2, (vmid, ours)
    finally:
        stop_sim(info)
