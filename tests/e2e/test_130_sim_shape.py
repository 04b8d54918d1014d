"""The simulator's answers have the shape real Proxmox VE sends. For every
recorded GET answer in tests/data/pve-api/examples (INDEX.tsv), the same
request goes to a simulator seeded to match (same kinds of guests, running or
stopped, with snapshots, a backup, pending network changes, tasks that ran,
failed and still run); every key of the real answer must be in the
simulator's with the same JSON type, lists compared per kind of item
(/cluster/resources and network by type, guests by status). Keys only the
simulator has are printed, not failed. Where the current release answers
differently from the 6.2/7.4 recording, KNOWN says so (docs/sim.md,
"Answer shapes"). The targeted tests below check the values behind the
shapes: blockstat per declared disk, nics per net, ballooninfo from memory,
tags exactly when set."""
import csv
import fnmatch
import json
import os
import time
import warnings

import pytest

from conftest import TESTDATA
from simfix import start_sim, stop_sim

requests = pytest.importorskip("requests")
warnings.filterwarnings("ignore")
pytestmark = pytest.mark.filterwarnings("ignore")

EXAMPLES = os.path.join(TESTDATA, "pve-api", "examples")

# Guests modelled on the recordings: 100 is the VM of qemu-config-running
# (virtio0 disk, empty CD-ROM, net0, serial0, vga qxl), 101 the stopped clone
# of qemu-config-clone, 102 the 7.4 VM with a snapshot, 103 a VM without
# ACPI (its shutdowns make a running and a failed task), 200/201 containers
# as lxc-config (running / stopped).
SEED = """
cluster: shape
nodes:
  - name: pve
    network:
      - {iface: enp0s3, type: eth, method: manual, exists: 1}
      - {iface: enp0s8, type: eth, method: manual, exists: 1}
      - {iface: vmbr0, type: bridge, method: static, cidr: 192.168.56.101/24,
         gateway: 10.0.3.2, bridge_ports: enp0s3, autostart: 1}
storages:
  - {id: local, type: dir, content: "iso,vztmpl,backup,images", path: /var/lib/vz}
  - {id: local-lvm, type: lvmthin, content: "images,rootdir"}
templates:
  - local:vztmpl/alpine-3.12-default_20200823_amd64.tar.xz
guests:
  - vmid: 100
    status: running
    config: {keyboard: fr, ide2: "none,media=cdrom", vga: qxl, kvm: 0, ostype: l26,
             virtio0: "local:2,backup=0,replicate=0", serial0: socket,
             net0: "virtio,bridge=vmbr0", onboot: 1, memory: 512,
             unused0: "local-lvm:vm-100-disk-0,size=1G",
             smbios1: "uuid=b956720f-561c-4be9-af11-10f234756217",
             vmgenid: ac29cf5a-059d-48f5-b83e-e7d09b0d50cb}
  - vmid: 101
    config: {name: Copy-of-VM-100, virtio0: "local-lvm:1,backup=0,replicate=0", memory: 512,
             smbios1: "uuid=f78b58cf-4cd1-4eee-bbe7-3429fcad38e8",
             vmgenid: 7400eff3-b01f-4f22-ba01-a5c3779331dd}
  - vmid: 102
    config: {boot: " ", meta: "creation-qemu=7.2.0,ctime=1683810190", memory: 512,
             smbios1: "uuid=a3a7f4cc-15ce-438e-84d8-4e6f01730c38",
             vmgenid: 46bfea9d-153e-43a0-8647-cbb6a949816e}
    snapshots:
      - {name: snapshot1, description: ""}
  - vmid: 103
    status: running
    config: {name: noacpi, acpi: 0, scsi0: "local-lvm:1", memory: 512}
  - vmid: 200
    type: lxc
    status: running
    config: {hostname: CT100, rootfs: "local-lvm:1", memory: 512, swap: 512, arch: amd64,
             ostype: alpine, onboot: 1, net0: "name=eth0,bridge=vmbr0,ip=dhcp,ip6=dhcp,type=veth"}
  - vmid: 201
    type: lxc
    config: {hostname: CT201, rootfs: "local-lvm:1", memory: 512, ostype: alpine}
"""

# recording -> the simulator's request ({...} filled from the fixture's state)
REQUESTS = {
    "version": "/version",
    "nodes": "/nodes",
    "cluster-resources-type-node": "/cluster/resources?type=node",
    "cluster-nextid": "/cluster/nextid",
    "node-qemu-list": "/nodes/pve/qemu",
    "qemu-status-current-stopped": "/nodes/pve/qemu/101/status/current",
    "qemu-status-current-running": "/nodes/pve/qemu/100/status/current",
    "qemu-config-running": "/nodes/pve/qemu/100/config",
    "qemu-config-clone": "/nodes/pve/qemu/101/config",
    "node-lxc-list": "/nodes/pve/lxc",
    "lxc-status-current-running": "/nodes/pve/lxc/200/status/current",
    "lxc-config": "/nodes/pve/lxc/200/config",
    "task-status-running": "/nodes/pve/tasks/{running}/status",
    "task-status-stopped-ok": "/nodes/pve/tasks/{ok}/status",
    "task-status-stopped-error": "/nodes/pve/tasks/{failed}/status",
    "task-log": "/nodes/pve/tasks/{ok}/log",
    "node-tasks": "/nodes/pve/tasks",
    "node-storage": "/nodes/pve/storage",
    "storage-content-backup": "/nodes/pve/storage/local/content?vmid=200",
    "node-network-with-changes": "/nodes/pve/network",
    "access-token-get-with-apitoken": "/access/users/root@pam/token/root1",
    "error-400-param-invalid-format": "/cluster/nextid?vmid=99",
    "error-400-param-vm-exists": "/cluster/nextid?vmid=100",
    "error-401-invalid-token-value": None,  # a 401 has no body to compare (test_110)
    "error-500-config-does-not-exist": "/nodes/pve/lxc/999/status/current",
    "pve7.4-qemu-status-current-stopped": "/nodes/pve/qemu/102/status/current",
    "pve7.4-qemu-config-new-vm": "/nodes/pve/qemu/102/config",
    "pve7.4-qemu-snapshot-list": "/nodes/pve/qemu/102/snapshot",
}

# How list items are grouped before comparing (default: their "type").
KIND = {
    "node-qemu-list": lambda it: it.get("status"),
    "node-lxc-list": lambda it: it.get("status"),
    "node-tasks": lambda it: "ended" if "endtime" in it else "running",
    "task-log": lambda it: "line",
    "storage-content-backup": lambda it: it.get("content"),
    "node-storage": lambda it: "storage",
    "pve7.4-qemu-snapshot-list": lambda it: "current" if it.get("name") == "current" else "snapshot",
}

# Where the current release (the simulator's model, PVE 9.1) answers
# differently from the 6.2/7.4 recording: (recording, path, what the
# simulator may do instead, why). Paths: data.key, list items as {kind}.
KNOWN = [
    ("*", "*.vmid", "number", "6.2 sent vmid as a string; 7.4+ an integer (vmstatus: int($vmid))"),
    ("*", "*.pid", "absent", "6.2 sent pid null for a stopped guest; now only set when running"),
    ("*", "*.pid", "number", "6.2 sent the pid as a string; now int(...)"),
    ("*", "*.template", "absent", "6.2 sent template '' for a non-template; now only template 1"),
    ("*lxc*", "*.lock", "absent", "6.2 sent lock ''; pve-container sets lock only when locked"),
    ("lxc-status-current-running", "data.disk", "number", "6.2 sent disk usage as a string"),
    ("lxc-status-current-running", "data.maxdisk", "number", "6.2 sent the size as a string"),
    ("qemu-status-current-running", "data.nics.*.net*", "number",
     "6.2 sent tap counters as strings; now int(...) (vmstatus)"),
    ("node-qemu-list", "data{stopped}.diskread", "absent",
     "qemu-server 9.0.24 leaves disk{read,write} out unless QEMU was asked (commit 069d8a6e)"),
    ("node-qemu-list", "data{stopped}.diskwrite", "absent", "as diskread"),
    ("*qemu-status-current-stopped", "data.diskread", "absent",
     "qemu-server 9.0.24: a stopped VM has no disk{read,write} (commit 069d8a6e)"),
    ("*qemu-status-current-stopped", "data.diskwrite", "absent", "as diskread"),
    ("version", "data.keyboard", "absent",
     "6.2's /version copied datacenter.cfg's keyboard; current PVE/API2.pm only console"),
]


def known(name, path, allowed):
    for rec, pat, what, _ in KNOWN:
        if what == allowed and fnmatch.fnmatchcase(name, rec) and fnmatch.fnmatchcase(path, pat):
            return True
    return False


def jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def compare(name, real, sim, path, missing, extra, kind=None):
    """Collect every key of real missing from sim (or of another type) in
    missing, and sim's keys beyond real's in extra."""
    rt, st = jtype(real), jtype(sim)
    if rt != st:
        if not (rt == "string" and st == "number" and known(name, path, "number")):
            missing.append(f"{path}: {rt} in PVE, {st} in the simulator")
        return
    if rt == "object":
        sub = (lambda k: f"{path}.{k}") if path else (lambda k: k)
        for k, v in real.items():
            if k not in sim:
                if not known(name, sub(k), "absent"):
                    missing.append(f"{sub(k)}: missing")
                continue
            compare(name, v, sim[k], sub(k), missing, extra, kind if k == "data" else None)
        extra.update(sub(k) for k in sim if k not in real)
    elif rt == "array":
        kind = kind or (lambda it: it.get("type", "*") if isinstance(it, dict) else jtype(it))
        groups = {}
        for it in real:
            groups.setdefault(kind(it), []).append(it)
        for kd, items in groups.items():
            p = f"{path}{{{kd}}}"
            mine = [it for it in sim if kind(it) == kd]
            if not mine:
                missing.append(f"{p}: no such item in the simulator's list")
                continue
            if not isinstance(items[0], dict):
                for a in mine:
                    compare(name, items[0], a, p, missing, extra)
                continue
            every = set.intersection(*(set(it) for it in items))
            for k in sorted(set().union(*items)):
                sample = next(it[k] for it in items if k in it)
                having = [a for a in mine if k in a]
                if (k in every and len(having) < len(mine)) or not having:
                    if not known(name, f"{p}.{k}", "absent"):
                        missing.append(f"{p}.{k}: missing" +
                                       (" in some items" if having else ""))
                for a in having:
                    compare(name, sample, a[k], f"{p}.{k}", missing, extra)
            extra.update(f"{p}.{k}" for a in mine for k in a if all(k not in it for it in items))


def api(info, method, path, **kw):
    h = {"Authorization": "PVEAPIToken=" + info["token"]}
    return requests.request(method, info["url"] + "/api2/json" + path, headers=h,
                            verify=False, timeout=30, **kw)


def wait_task(info, upid, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        st = api(info, "GET", f"/nodes/pve/tasks/{upid}/status").json()["data"]
        if st["status"] == "stopped":
            return st
        time.sleep(0.02)
    raise AssertionError(f"task {upid} did not end")


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    seed = tmp_path_factory.mktemp("shape") / "seed.yaml"
    seed.write_text(SEED)
    info = start_sim("--seed", seed)
    try:
        # tasks that ran: a backup of CT 200 (OK, with a log), a shutdown the
        # ACPI-less VM 103 ignores until its timeout (failed), one still waiting
        ok = api(info, "POST", "/nodes/pve/vzdump",
                 data={"vmid": "200", "storage": "local"}).json()["data"]
        assert wait_task(info, ok)["exitstatus"] == "OK"
        failed = api(info, "POST", "/nodes/pve/qemu/103/status/shutdown",
                     data={"timeout": "0"}).json()["data"]
        assert wait_task(info, failed)["exitstatus"] != "OK"
        running = api(info, "POST", "/nodes/pve/qemu/103/status/shutdown").json()["data"]
        # a pending network change, so the list carries "changes"
        r = api(info, "POST", "/nodes/pve/network", data={"iface": "enp0s10", "type": "eth"})
        assert r.status_code == 200, r.text
        info["upids"] = {"ok": ok, "failed": failed, "running": running}
        yield info
        api(info, "DELETE", f"/nodes/pve/tasks/{running}")
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err


def recorded_gets():
    with open(os.path.join(EXAMPLES, "INDEX.tsv")) as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("#")]
    return [r[0] for r in rows if r[1] == "GET"]


def test_every_recorded_get_is_mapped():
    """A new recording must say which request it is compared against."""
    assert sorted(recorded_gets()) == sorted(REQUESTS)


@pytest.mark.parametrize("name", [n for n in recorded_gets() if REQUESTS.get(n)])
def test_shape(shaped, name, capsys):
    real = json.load(open(os.path.join(EXAMPLES, name + ".json")))
    path = REQUESTS[name].format(**shaped["upids"])
    r = api(shaped, "GET", path)
    assert r.text, f"{path}: empty answer ({r.status_code})"
    mine = r.json()
    missing, extra = [], set()
    compare(name, real, mine, "", missing, extra, KIND.get(name))
    if extra:
        with capsys.disabled():
            print(f"\n  {name}: simulator-only keys: {', '.join(sorted(extra))}")
    assert not missing, f"GET {path} lacks what real PVE sends:\n  " + "\n  ".join(missing)


def test_known_differences_are_documented():
    """Every allowance above is explained in docs/sim.md's shape section."""
    doc = open(os.path.join(os.path.dirname(TESTDATA), "..", "docs", "sim.md")).read()
    section = doc[doc.index("## Answer shapes"):]
    for rec, pat, what, _ in KNOWN:
        key = pat.rsplit(".", 1)[-1].rstrip("*")
        assert f"`{key}" in section, (rec, pat)


# --- the values behind the shapes ---

VALUES_SEED = """
nodes: [pve]
pools:
  - {poolid: web, members: [300, 302]}
  - {poolid: idle, members: [304]}
guests:
  - vmid: 300
    status: running
    config: {name: full, memory: 2048, balloon: 1024, shares: 500, agent: "1,fstrim_cloned_disks=1",
             vga: virtio, scsi0: "local-lvm:8", scsi1: "local-lvm:4",
             ide2: "none,media=cdrom", net0: "virtio,bridge=vmbr0",
             net1: "virtio,bridge=vmbr0", tags: "web;prod"}
  - vmid: 301
    status: running
    config: {name: noballoon, memory: 1024, balloon: 0, serial0: socket, scsi0: "local-lvm:2"}
  - vmid: 302
    config: {name: stopped, memory: 512, scsi0: "local-lvm:2"}
  - vmid: 303
    type: lxc
    status: running
    config: {hostname: ct, memory: 512, swap: 256, rootfs: "local-lvm:2", tags: db}
  - vmid: 304
    type: lxc
    config: {hostname: tpl, memory: 512, rootfs: "local-lvm:2", template: 1}
"""


@pytest.fixture(scope="module")
def valued(tmp_path_factory):
    seed = tmp_path_factory.mktemp("values") / "seed.yaml"
    seed.write_text(VALUES_SEED)
    info = start_sim("--seed", seed)
    yield info
    rc, err = stop_sim(info)
    assert rc == 0, err


def get(info, path, **params):
    r = api(info, "GET", path, params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_running_vm_status_follows_its_config(valued):
    st = get(valued, "/nodes/pve/qemu/300/status/current")
    # blockstat per declared drive (the empty CD-ROM too), nics per netN
    assert set(st["blockstat"]) == {"scsi0", "scsi1", "ide2"}
    assert set(st["nics"]) == {"tap300i0", "tap300i1"}
    assert sum(n["netin"] for n in st["nics"].values()) == st["netin"]
    assert sum(n["netout"] for n in st["nics"].values()) == st["netout"]
    assert sum(b["rd_bytes"] for b in st["blockstat"].values()) == st["diskread"]
    assert sum(b["wr_bytes"] for b in st["blockstat"].values()) == st["diskwrite"]
    assert st["blockstat"]["ide2"]["rd_bytes"] == 0
    assert st["blockstat"]["scsi0"]["wr_highest_offset"] <= 8 << 30
    # the balloon from memory/balloon/shares
    bi = st["ballooninfo"]
    assert bi["max_mem"] == st["maxmem"] == 2048 << 20
    assert st["balloon"] == bi["actual"]
    assert st["balloon_min"] == 1024 << 20 and st["shares"] == 500
    assert st["freemem"] == bi["free_mem"]
    assert st["mem"] == bi["total_mem"] - bi["free_mem"]
    # status/current's own additions
    assert st["ha"] == {"managed": 0}
    assert st["agent"] == 1 and st["spice"] == 1
    assert "serial" not in st
    assert st["tags"] == "web;prod"
    assert st["qmpstatus"] == "running" and st["running-qemu"]
    assert st["proxmox-support"]["pbs-dirty-bitmap"] is True


def test_vm_without_balloon_or_running_qemu(valued):
    st = get(valued, "/nodes/pve/qemu/301/status/current")
    for k in ("balloon", "ballooninfo", "freemem", "balloon_min", "shares", "agent", "spice",
              "tags"):
        assert k not in st, k
    assert st["serial"] == 1
    stopped = get(valued, "/nodes/pve/qemu/302/status/current")
    assert stopped["qmpstatus"] == "stopped" and stopped["ha"] == {"managed": 0}
    for k in ("blockstat", "nics", "ballooninfo", "pid", "diskread", "pressurecpusome"):
        assert k not in stopped, k


def test_vm_list_asks_qemu_only_with_full(valued):
    plain = {g["vmid"]: g for g in get(valued, "/nodes/pve/qemu")}
    assert set(plain) == {300, 301, 302}
    for k in ("qmpstatus", "blockstat", "nics", "running-qemu", "diskread", "ha"):
        assert k not in plain[300], k
    assert plain[300]["tags"] == "web;prod" and "tags" not in plain[301]
    full = {g["vmid"]: g for g in get(valued, "/nodes/pve/qemu", full=1)}
    assert set(full[300]["blockstat"]) == {"scsi0", "scsi1", "ide2"}
    assert full[302]["qmpstatus"] == "stopped" and "blockstat" not in full[302]
    assert "ha" not in full[300]


def test_container_status(valued):
    st = get(valued, "/nodes/pve/lxc/303/status/current")
    assert st["ha"] == {"managed": 0} and st["type"] == "lxc"
    assert st["maxswap"] == 256 << 20 and st["tags"] == "db"
    assert "lock" not in st and "template" not in st
    tpl = get(valued, "/nodes/pve/lxc/304/status/current")
    assert tpl["template"] == 1 and "tags" not in tpl
    listed = {c["vmid"]: c for c in get(valued, "/nodes/pve/lxc")}
    assert "ha" not in listed[303] and listed[303]["tags"] == "db"


def test_tags_in_resources_exactly_when_set(valued):
    res = {g["vmid"]: g for g in get(valued, "/cluster/resources", type="vm")}
    assert res[300]["tags"] == "web;prod" and res[303]["tags"] == "db"
    assert all("tags" not in res[v] for v in (301, 302, 304))
    assert res[300]["memhost"] > res[300]["mem"] and res[302]["memhost"] == 0


def test_pool_entries_sum_their_running_members(valued):
    res = {e["id"]: e for e in get(valued, "/cluster/resources")}
    vm, web, idle = res["qemu/300"], res["/pool/web"], res["/pool/idle"]
    assert vm["pool"] == res["qemu/302"]["pool"] == "web" and res["lxc/304"]["pool"] == "idle"
    assert (web["uptime"], web["mem"], web["maxmem"], web["maxcpu"]) == (
        vm["uptime"], vm["mem"], vm["maxmem"], vm["maxcpu"])
    assert web["cpu"] == pytest.approx(vm["cpu"], abs=1e-4)
    assert set(idle) == {"id", "type", "pool"}  # no running member: no figures


def test_nodes_and_default_network(valued):
    (n,) = get(valued, "/nodes")
    assert n["type"] == "node" and n["id"] == "node/pve"
    net = {i["iface"]: i for i in get(valued, "/nodes/pve/network")}
    eth, br = net["eno1"], net["vmbr0"]
    assert eth["method6"] == "manual" and isinstance(eth["priority"], int)
    assert br["method6"] == "manual" and br["netmask"] == "24"
    assert br["gateway"] == br["address"].rsplit(".", 1)[0] + ".1"
    assert get(valued, "/nodes/pve/network/vmbr0")["gateway"] == br["gateway"]


def test_lock_shown_while_held_and_unnamed_guest(tmp_path):
    info = start_sim("--task-ms", "60000", "--guests", "5")
    try:
        vmid = get(info, "/nodes/pve/lxc")[0]["vmid"]
        assert "lock" not in get(info, f"/nodes/pve/lxc/{vmid}/status/current")
        upid = api(info, "POST", f"/nodes/pve/lxc/{vmid}/snapshot",
                   data={"snapname": "s1"}).json()["data"]
        assert get(info, f"/nodes/pve/lxc/{vmid}/status/current")["lock"] == "snapshot"
        api(info, "DELETE", f"/nodes/pve/tasks/{upid}")
        # the running task is in source=active (status RUNNING), not in the archive
        upid = api(info, "POST", "/nodes/pve/qemu", data={"vmid": "900"}).json()["data"]
        res = {g["vmid"]: g for g in get(info, "/cluster/resources", type="vm")}
        assert res[900]["name"] == "VM 900"  # vmstatus' name for a VM without one
        assert get(info, "/nodes/pve/qemu/900/status/current")["name"] == "VM 900"
        assert upid not in [t["upid"] for t in get(info, "/nodes/pve/tasks")]
        active = get(info, "/nodes/pve/tasks", source="active")
        assert [t["status"] for t in active if t["upid"] == upid] == ["RUNNING"]
        api(info, "DELETE", f"/nodes/pve/tasks/{upid}")
    finally:
        rc, err = stop_sim(info)
    assert rc == 0, err


def test_pve_84_shape(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(VALUES_SEED)
    info = start_sim("--seed", seed, "--pve-version", "8.4")
    try:
        st = get(info, "/nodes/pve/qemu/302/status/current")
        assert st["diskread"] == 0 and "memhost" not in st
        running = get(info, "/nodes/pve/qemu/300/status/current")
        assert "pressurecpusome" not in running and running["blockstat"]
        assert all("memhost" not in g for g in get(info, "/cluster/resources", type="vm"))
    finally:
        rc, err = stop_sim(info)
    assert rc == 0, err
