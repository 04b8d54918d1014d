"""Every update has a way back (priority 1): Proxmox refuses to snapshot a
guest with a volume that cannot be snapshotted (a container's bind mount, a
disk on thick LVM), and the simulator refuses it as PVE does; the plan shows
each update's way back -- a snapshot, else a vzdump backup with the reason,
none with --no-snapshot -- and apply takes it; a snapshot refused at run
time becomes a backup; a guest whose way back failed is never changed;
rollback restores a backed-up guest over itself only with --overwrite."""
import json
import os
import subprocess
import time
import urllib.parse

import pytest
import requests

from conftest import BIN
from test_600_plan_apply import TEMPLATE
from test_630_backup import SeedLab, apply_json, backups, config, guest

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

THICK = '  - {id: thick, type: lvm, vgname: thick, content: "images,rootdir", size: 1T}\n'

LAB = """
guests:
  - name: media
    type: lxc
    ostemplate: %s
    memory: 512
    mounts: [{path: /data, volume: /srv/media}]
  - name: db
    memory: 1024
    disks: [{storage: thick, size: 8G}]
  - name: web
    memory: 1024
    disks: [{storage: local-lvm, size: 8G}]
""" % TEMPLATE

CHANGED = LAB.replace("memory: 512", "memory: 768").replace("memory: 1024", "memory: 2048")

BIND = "mp0 is a bind mount"
LVM = "scsi0 is a raw volume on lvm storage 'thick'"


@pytest.fixture
def lab(tmp_path):
    l = SeedLab(tmp_path, storages=THICK)
    yield l
    l.close()


def made(lab):
    """Apply LAB, then return {name: guest} and their configs."""
    lab.write(LAB)
    r = lab.pvelab("apply", "--yes")
    assert r.rc == 0, r
    gs = {n: guest(lab, n) for n in ("media", "db", "web")}
    return gs, {n: config(lab, g) for n, g in gs.items()}


def task_end(lab, node, upid, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        st = lab.api("GET", f"/nodes/{node}/tasks/{urllib.parse.quote(upid)}/status")
        if st["status"] == "stopped":
            return st
        time.sleep(0.02)
    raise AssertionError(f"task {upid} did not end")


def snapshots(lab, g):
    return [s["name"] for s in lab.api("GET", f"/nodes/{g['node']}/{g['type']}/{g['vmid']}/snapshot")
            if s["name"] != "current"]


def by_guest(res):
    return {c["guest"]: c for c in res["changes"]}


def test_simulator_refuses_snapshots_as_pve_does(lab):
    gs, _ = made(lab)
    for name, ok in (("media", False), ("db", False), ("web", True)):
        g = gs[name]
        base = f"/nodes/{g['node']}/{g['type']}/{g['vmid']}"
        feat = lab.api("GET", base + "/feature", feature="snapshot")
        assert feat["hasFeature"] == (1 if ok else 0), (name, feat)
        # the call is accepted: PVE refuses inside the snapshot task
        upid = lab.api("POST", base + "/snapshot", snapname="s1")
        st = task_end(lab, g["node"], upid)
        if ok:
            assert st["exitstatus"] == "OK", st
            assert snapshots(lab, g) == ["s1"]
        else:
            assert st["exitstatus"] == "snapshot feature is not available", (name, st)
            assert snapshots(lab, g) == []
            log = [l["t"] for l in lab.api("GET", f"/nodes/{g['node']}/tasks/"
                                           f"{urllib.parse.quote(upid)}/log")]
            assert log[-1] == "TASK ERROR: snapshot feature is not available", log
        # no lock is left behind: the guest takes the next call at once
        assert "lock" not in config(lab, g), name


def test_plan_shows_the_way_back_and_apply_takes_it(lab):
    gs, before = made(lab)
    lab.write(CHANGED)
    r = lab.pvelab("plan")
    assert r.rc == 0, r
    out = r.out
    media = out[out.index("update  media"):out.index("update  db")]
    db = out[out.index("update  db"):out.index("update  web")]
    web = out[out.index("update  web"):out.index("\nPlan:")]
    assert "steps: backup, config" in media, out
    assert f"way back: a vzdump backup first, no snapshot ({BIND})" in media, out
    assert "steps: backup, config" in db, out
    assert f"way back: a vzdump backup first, no snapshot ({LVM})" in db, out
    assert "steps: snapshot, config" in web and "way back" not in web, out
    plan = lab.plan_json()
    wb = {c["guest"]: c["way_back"] for c in plan["changes"]}
    assert wb == {"media": {"kind": "backup", "reason": BIND},
                  "db": {"kind": "backup", "reason": LVM},
                  "web": {"kind": "snapshot"}}, wb
    # --no-snapshot: no way back at all, and the plan says so
    r = lab.pvelab("plan", "--no-snapshot")
    assert r.out.count("way back: none (--no-snapshot): rollback cannot undo this change") == 3, r
    assert "steps: config" in r.out and "backup" not in r.out, r
    plan = lab.plan_json("--no-snapshot")
    assert {c["way_back"]["kind"] for c in plan["changes"]} == {"none"}, plan

    r, res = apply_json(lab)
    assert r.rc == 0, r
    ch = by_guest(res)
    for name, kind in (("media", "lxc"), ("db", "qemu")):
        c = ch[name]
        assert c["status"] == "ok" and c["steps_done"] == ["backup", "config"], c
        assert c["way_back"]["kind"] == "backup" and "snapshot" not in c, c
        assert c["backup"].startswith(f"local:backup/vzdump-{kind}-{gs[name]['vmid']}-"), c
        assert c["backup_storage"] == "local" and c["backup_node"] == "pve", c
        assert snapshots(lab, gs[name]) == [], name
    assert ch["web"]["steps_done"] == ["snapshot", "config"], ch["web"]
    assert ch["web"]["snapshot"] == f"pvelab-pre-{res['run']}" and "backup" not in ch["web"]
    assert str(config(lab, gs["media"])["memory"]) == "768"
    assert str(config(lab, gs["db"])["memory"]) == "2048"

    # rollback: a restore over a guest only with --overwrite
    r = lab.pvelab("rollback", str(res["run"]), "--yes")
    assert r.rc == 64, r
    assert "overwrites 2 guests from their backups; nothing was done (pass --overwrite" in r.err, r
    assert "!   overwrite media" in r.out and "!   overwrite db" in r.out, r
    assert "bind and device mounts are in no backup" in r.out, r
    assert str(config(lab, gs["media"])["memory"]) == "768"  # nothing was done
    # rollback backs each guest up before overwriting it, at once: vzdump names
    # its archives by the second, and apply waits for the next one itself
    r = lab.pvelab("rollback", str(res["run"]), "--yes", "--overwrite")
    assert r.rc == 0, r
    for name in ("media", "db", "web"):
        after = config(lab, guest(lab, name))
        assert after["memory"] == before[name]["memory"], (name, after)
    # each was backed up again before it was overwritten: two archives now
    for name in ("media", "db"):
        g = gs[name]
        assert len(backups(lab, g["node"], g["vmid"])) == 2, name
        assert ch[name]["backup"] in backups(lab, g["node"], g["vmid"]), name
    # the container keeps its bind mount (the archive's config has it)
    assert config(lab, guest(lab, "media"))["mp0"].startswith("/srv/media"), r


SWAP = """
guests:
  - name: web
    memory: 1024
    disks: [{storage: local-lvm, size: 8G}]
  - name: late
    memory: 1024
    disks: [{storage: fast, size: 8G}]
"""


def test_refused_snapshot_falls_back_to_a_backup(tmp_path):
    """The plan expects a snapshot of 'late' (its disk is on LVM-thin); while
    apply snapshots 'web', storage 'fast' is redefined as a directory: Proxmox
    refuses late's snapshot, and apply backs it up instead, then changes it."""
    fast = '  - {id: fast, type: lvmthin, vgname: fast, thinpool: data, content: images, size: 1T}\n'
    lab = SeedLab(tmp_path, storages=fast, sim_args=("--task-ms", "1000"))
    try:
        lab.write(SWAP)
        assert lab.pvelab("apply", "--yes").rc == 0
        web, late = guest(lab, "web"), guest(lab, "late")
        lab.write(SWAP.replace("memory: 1024", "memory: 2048"))
        plan = lab.plan_json()
        assert [c["way_back"] for c in plan["changes"]] == [{"kind": "snapshot"}] * 2, plan
        p = subprocess.Popen([BIN, "-c", str(lab.cfg), "-o", "json", "apply", "--yes", "-j", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **lab.env}, cwd=str(tmp_path))
        try:
            end = time.monotonic() + 60
            while config(lab, web).get("lock") != "snapshot":
                assert p.poll() is None and time.monotonic() < end, p.communicate()
                time.sleep(0.02)
            lab.api("DELETE", "/storage/fast")
            r = requests.post(lab.info["url"] + "/api2/json/storage", verify=False, timeout=30,
                              headers={"Authorization": "PVEAPIToken=" + lab.info["token"]},
                              data={"storage": "fast", "type": "dir", "path": "/mnt/fast",
                                    "content": "images"})
            assert r.status_code == 200, r.text
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, (out, err)
        ch = by_guest(json.loads(out))
        c = ch["late"]
        assert c["status"] == "ok" and c["steps_done"] == ["backup", "config"], c
        assert c["way_back"] == {"kind": "backup", "reason": "the snapshot was refused: "
                                 "snapshot feature is not available"}, c
        assert c["backup"].startswith(f"local:backup/vzdump-qemu-{late['vmid']}-"), c
        assert "snapshot" not in c and snapshots(lab, late) == [], c
        assert ch["web"]["steps_done"] == ["snapshot", "config"], ch["web"]
        assert str(config(lab, late)["memory"]) == "2048"
        assert "lock" not in config(lab, late)
    finally:
        lab.close()


def test_a_failed_way_back_changes_nothing(tmp_path):
    lab = SeedLab(tmp_path, backups=False, storages=THICK)
    try:
        gs, before = made(lab)
        lab.write(CHANGED)
        r, res = apply_json(lab)
        assert r.rc != 0, r
        ch = by_guest(res)
        for name, what in (("media", "CT"), ("db", "VM")):
            c = ch[name]
            assert c["status"] == "failed" and c["steps_done"] == [], c
            assert (f"no storage on node 'pve' holds backups, so {what} {gs[name]['vmid']} would be "
                    "changed without a way back; nothing was changed") in c["error"], c
            assert "apply --no-snapshot" in c["error"], c
            assert config(lab, gs[name])["memory"] == before[name]["memory"], name
    finally:
        lab.close()


ZFS_LAB = """
guests:
  - name: web
    memory: 1024
    disks: [{storage: local-lvm, size: 8G}]
  - name: zvol
    memory: 1024
    disks: [{storage: vault, size: 8G}]
"""


def test_rollback_refused_whole_when_zfs_cannot_go_back(lab):
    # ZFS rolls a volume back only to its newest snapshot (pve-storage's
    # ZFSPoolPlugin): a snapshot taken by hand after the apply blocks the
    # run's rollback, which is refused before any guest is touched
    lab.write(ZFS_LAB)
    assert lab.pvelab("apply", "--yes").rc == 0
    lab.write(ZFS_LAB.replace("memory: 1024", "memory: 2048"))
    r, res = apply_json(lab)
    assert r.rc == 0, r
    run = res["run"]
    pre = by_guest(res)["zvol"]["snapshot"]
    gs = {n: guest(lab, n) for n in ("web", "zvol")}
    z = gs["zvol"]
    base = f"/nodes/{z['node']}/{z['type']}/{z['vmid']}"
    assert task_end(lab, z["node"], lab.api("POST", base + "/snapshot",
                                            snapname="mine"))["exitstatus"] == "OK"
    r = lab.pvelab("rollback", str(run), "--yes")
    assert r.rc == 1, r
    volid = config(lab, z)["scsi0"].split(",")[0]
    assert (f"rollback of zvol: {volid} is on ZFS, which rolls back only to its newest "
            f"snapshot, and 'mine' was taken after '{pre}': delete it first") in r.err, r
    assert f"rollback of run {run} refused; nothing was done" in r.err, r
    assert all(config(lab, g)["memory"] == "2048" for g in gs.values())  # neither went back
    # without the snapshot in the way, the run goes back whole
    assert task_end(lab, z["node"], lab.api("DELETE", base + "/snapshot/mine"))["exitstatus"] == "OK"
    r = lab.pvelab("rollback", str(run), "--yes")
    assert r.rc == 0, r
    assert all(config(lab, g)["memory"] == "1024" for g in gs.values())
