"""`pvelab backup GUEST` runs vzdump now and waits for it; `pvelab backups`
shows each guest's newest archive and its age from the storages' backup
content (a shared storage once), and with --missing the guests no backup
job covers (PVE's /cluster/backup-info/not-backed-up)."""
import time

import pytest
from proxmoxer.core import ResourceException

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


def archives(sim, node, storage, vmid):
    return sorted(v["volid"] for v in api(sim, "GET", f"nodes/{node}/storage/{storage}/content",
                                          content="backup", vmid=vmid))


def last_vzdump_log(sim, node):
    tasks = [t for t in api(sim, "GET", f"nodes/{node}/tasks", typefilter="vzdump")]
    newest = max(tasks, key=lambda t: t["starttime"])
    return "\n".join(line["t"] for line in api(sim, "GET", f"nodes/{node}/tasks/{newest['upid']}/log"))


def test_backup_now_then_backups_lists_the_newest(sim, env):
    before = archives(sim, "pve1", "local", 300)
    r = run("backup", "proxy", env=env)
    assert r.rc == 0, r
    after = archives(sim, "pve1", "local", 300)
    (new,) = [v for v in after if v not in before]
    assert new.startswith("local:backup/vzdump-qemu-300-") and new.endswith(".vma.zst")
    assert r.out == f"proxy (300): backed up to {new}\n"
    assert "--mode snapshot" in last_vzdump_log(sim, "pve1")

    # another storage and mode, a container, JSON out
    r = run("-o", "json", "backup", "--storage", "nas", "--mode", "stop", "310", env=env)
    assert r.rc == 0, r
    (ch,) = r.json()["changes"]
    assert ch["status"] == "ok" and ch["backup_storage"] == "nas"
    assert ch["backup"].startswith("nas:backup/vzdump-lxc-310-")
    assert ch["backup"] in archives(sim, "pve1", "nas", 310)
    assert "--mode stop" in last_vzdump_log(sim, "pve1")

    r = run("-o", "json", "backups", env=env)
    assert r.rc == 0, r
    res = r.json()
    assert "not_backed_up" not in res
    # nas is shared by pve1 and pve2: read once
    assert len([s for s in res["storages"] if s.startswith("nas@")]) == 1
    by = {g["vmid"]: g for g in res["guests"]}
    assert by[300]["newest"] == new and by[300]["storage"] == "local"
    assert by[300]["count"] == len(after)
    assert 0 <= by[300]["age"] < 3600
    assert by[310]["newest"] == ch["backup"] and by[310]["count"] == 1
    assert by[302]["count"] == 0 and "newest" not in by[302]
    assert set(by) == {g["vmid"] for g in api(sim, "GET", "cluster/resources", type="vm")}

    r = run("backups", env=env)
    assert r.rc == 0, r
    line300 = next(l for l in r.out.splitlines() if l.startswith("300 "))
    assert "proxy" in line300 and new in line300
    line302 = next(l for l in r.out.splitlines() if l.startswith("302 "))
    assert "never" in line302


def test_backup_refusals(sim, env):
    r = run("backup", "nosuchguest", env=env)
    assert r.rc == 1 and "nosuchguest" in r.err
    r = run("backup", "--mode", "hibernate", "proxy", env=env)
    assert r.rc == 64 and "--mode 'hibernate'" in r.err
    # a storage that holds no backups: nothing is run
    r = run("backup", "--storage", "local-lvm", "proxy", env=env)
    assert r.rc == 1
    assert "backup of 'proxy' (300) failed: backup storage 'local-lvm'" in r.err


def models_not_backed_up(sim):
    """Whether the simulator answers /cluster/backup-info/not-backed-up as PVE
    does (pve-manager API2/Cluster/BackupInfo.pm: every guest no job
    includes) rather than with the empty list it gives unmodelled paths."""
    try:
        got = api(sim, "GET", "cluster/backup-info/not-backed-up")
    except ResourceException:
        return False
    return bool(got) or bool(api(sim, "GET", "cluster/backup"))


def test_backups_missing(sim, env):
    if not models_not_backed_up(sim):
        pytest.skip("the simulator does not model GET /cluster/backup-info/not-backed-up yet "
                    "(simcluster's part of issue 28); this runs once it does")
    want = api(sim, "GET", "cluster/backup-info/not-backed-up")
    if not api(sim, "GET", "cluster/backup"):  # no job: no guest is covered
        assert {g["vmid"] for g in want} == {
            g["vmid"] for g in api(sim, "GET", "cluster/resources", type="vm")}
    r = run("-o", "json", "backups", "--missing", env=env)
    assert r.rc == 0, r
    got = r.json()["not_backed_up"]
    assert sorted(g["vmid"] for g in got) == sorted(g["vmid"] for g in want)
    r = run("backups", "--missing", env=env)
    assert r.rc == 0, r
    if want:
        assert "Not covered by any backup job:" in r.out
        for g in want:
            assert f"  {g['vmid']} {g.get('name', '-')} ({g['type']})" in r.out
    else:
        assert "Every guest is covered by a backup job." in r.out


def vzdump(info, **params):
    """POST vzdump in the next second (archives are named to the second),
    wait for its task; its log."""
    start = int(time.time())
    end = time.monotonic() + 10
    while int(time.time()) == start:
        assert time.monotonic() < end
        time.sleep(0.01)
    upid = api(info, "POST", "nodes/pve/vzdump", **params)
    end = time.monotonic() + 30
    while (st := api(info, "GET", f"nodes/pve/tasks/{upid}/status"))["status"] != "stopped":
        assert time.monotonic() < end
        time.sleep(0.05)
    assert st["exitstatus"] == "OK", st
    return "\n".join(ln["t"] for ln in api(info, "GET", f"nodes/pve/tasks/{upid}/log"))


def test_vzdump_prunes_as_prune_backups_says():
    """VZDump.pm's remove step: the call's prune-backups, else the storage's,
    prunes that guest's archives of that storage (PVE::Storage
    prune_mark_backup_group); remove=0 keeps them; other guests are untouched."""
    info = start_sim("--nodes", "1", "--guests", "2")
    try:
        other = vzdump(info, vmid="101", storage="local")
        assert "prune" not in other  # keep-all: nothing to say
        logs = [vzdump(info, vmid="100", storage="local", **{"prune-backups": "keep-last=2"})
                for _ in range(3)]
        kept = archives(info, "pve", "local", 100)
        assert len(kept) == 2
        assert "INFO: prune older backups with retention: keep-last=2" in logs[2]
        assert "INFO: pruned 1 backup(s) not covered by keep-retention policy" in logs[2]
        assert "INFO: pruned 0 backup(s)" in logs[1]
        removed = [ln for ln in logs[2].splitlines() if "removing backup" in ln]
        assert len(removed) == 1 and removed[0].split("'")[1] not in kept
        # the storage's own retention when the call names none
        api(info, "PUT", "storage/local", **{"prune-backups": "keep-daily=1,keep-last=1"})
        log = vzdump(info, vmid="100", storage="local")
        assert "retention: keep-daily=1, keep-last=1" in log
        assert len(archives(info, "pve", "local", 100)) == 1
        vzdump(info, vmid="100", storage="local", remove=0)
        assert len(archives(info, "pve", "local", 100)) == 2
        assert len(archives(info, "pve", "local", 101)) == 1
    finally:
        stop_sim(info)
