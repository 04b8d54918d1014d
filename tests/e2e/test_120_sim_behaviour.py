"""pvelab sim behaviour beyond the basic life cycle: seeds, state files,
clones and templates, pending network changes, appliance downloads, backups,
locks and the lockwait fault, CSRF, digests, resize, migrate, PVE 8.4."""
import os
import time
import warnings

import pytest

from conftest import SRC
from simfix import start_sim, stop_sim

requests = pytest.importorskip("requests")
warnings.filterwarnings("ignore")
DEMO = os.path.join(SRC, "examples", "sim", "demo.yaml")


class Client:
    def __init__(self, info, token="token"):
        self.info = info
        self.h = {"Authorization": "PVEAPIToken=" + info[token]}
        self.s = requests.Session()  # keep-alive: checks inside a task's run stay quick

    def req(self, method, path, **kw):
        return self.s.request(method, self.info["url"] + "/api2/json" + path,
                                headers=self.h, verify=False, **kw)

    def get(self, path, **params):
        r = self.req("GET", path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.reason, r.text)
        return r.json()["data"]

    def write(self, method, path, **data):
        r = self.req(method, path, data=data)
        assert r.status_code == 200, (path, r.status_code, r.reason, r.text)
        return r.json()["data"]

    def end(self, upid, node=None):
        """The task's status once it has stopped, whatever its exitstatus."""
        node = node or upid.split(":")[1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = self.get(f"/nodes/{node}/tasks/{upid}/status")
            if st["status"] == "stopped":
                return st
            time.sleep(0.01)
        raise AssertionError("task did not end")

    def wait(self, upid, node=None):
        st = self.end(upid, node)
        assert st["exitstatus"] == "OK", st
        return st


@pytest.fixture(scope="module")
def demo():
    info = start_sim("--seed", DEMO, "--task-ms", "500")
    yield Client(info)
    rc, err = stop_sim(info)
    assert rc == 0, err


def test_demo_seed(demo):
    assert [n["node"] for n in demo.get("/nodes")] == ["pve1", "pve2", "pve3"]
    res = demo.get("/cluster/resources", type="vm")
    assert {r["vmid"] for r in res} >= {300, 301, 302, 9000, 310, 311}
    by = {r["vmid"]: r for r in res}
    assert by[300]["status"] == "running" and by[300]["cpu"] > 0 and by[300]["uptime"] > 0
    assert by[300]["pool"] == "infra" and by[9000]["template"] == 1
    assert by[302]["status"] == "stopped" and by[302]["cpu"] == 0
    # storage usage is the sum of the guests' disks
    vols = demo.get("/nodes/pve3/storage/local-lvm/content")
    st = demo.get("/nodes/pve3/storage/local-lvm/status")
    # efidisk0 "local-lvm:1" gets the fixed 4 MiB of an EFI vars disk
    assert st["used"] == sum(v["size"] for v in vols) == (80 << 30) + (4 << 20)
    members = demo.get("/pools", poolid="infra")[0]["members"]
    assert {m["vmid"] for m in members} == {300, 301, 310}
    snaps = demo.get("/nodes/pve2/qemu/301/snapshot")
    assert [s["name"] for s in snaps] == ["before-upgrade", "current"]
    # addresses for IP discovery: guest agent (qemu) and interfaces (lxc)
    nics = demo.get("/nodes/pve1/qemu/300/agent/network-get-interfaces")["result"]
    assert nics[1]["hardware-address"].startswith("bc:24:11:")
    ifs = demo.get("/nodes/pve1/lxc/310/interfaces")
    assert ifs[1] == {"name": "eth0", "hwaddr": ifs[1]["hwaddr"], "inet": "192.168.10.53/24"}
    assert demo.write("POST", "/nodes/pve1/qemu/300/agent/ping") == {"result": {}}
    demo.write("PUT", "/nodes/pve1/qemu/9000/cloudinit")
    assert demo.get("/nodes/pve1/qemu/9000/cloudinit/dump", type="user").startswith(
        "#cloud-config\nhostname: debian12-cloud\n")
    r = demo.req("GET", "/nodes/pve2/qemu/301/agent/network-get-interfaces")
    assert r.status_code == 500 and r.reason == "No QEMU guest agent configured"
    # PVE 9's archives: an hour at one point a minute, a week at one per 30 min
    rrd = demo.get("/nodes/pve1/qemu/300/rrddata", timeframe="hour")
    assert len(rrd) == 60 and rrd[-1]["maxmem"] == 2048 << 20
    assert rrd[-1]["time"] - rrd[0]["time"] == 59 * 60
    assert len({round(p["netin"]) for p in rrd if "netin" in p}) > 1  # a rate that moves
    week = demo.get("/nodes/pve1/rrddata", timeframe="week")
    assert len(week) == 336 and week[1]["time"] - week[0]["time"] == 1800
    assert {"memtotal", "memused", "roottotal", "rootused", "loadavg", "iowait",
            "netin", "netout", "memavailable"} <= set(week[-1])


def test_clone_template(demo):
    c = demo
    upid = c.write("POST", "/nodes/pve1/qemu/9000/clone", newid=400, name="web1")
    # the new guest is locked while the clone runs and shows it
    assert c.get("/nodes/pve1/qemu/400/config")["lock"] == "create"
    c.wait(upid)
    conf = c.get("/nodes/pve1/qemu/400/config")
    src = c.get("/nodes/pve1/qemu/9000/config")
    assert conf["name"] == "web1" and "lock" not in conf and "template" not in conf
    assert conf["scsi0"].startswith("local-lvm:base-9000-disk-0/vm-400-disk-")
    assert conf["net0"] != src["net0"] and conf["net0"].startswith("virtio=BC:24:11:")
    assert src["ide2"] == "local-lvm:vm-9000-cloudinit,media=cdrom"
    assert conf["ide2"] == "local-lvm:vm-400-cloudinit,media=cdrom"
    c.wait(c.write("POST", "/nodes/pve1/qemu/9000/clone", newid=401, full=1, target="pve2",
                   storage="local-lvm"))
    conf = c.get("/nodes/pve2/qemu/401/config")
    assert conf["scsi0"] == "local-lvm:vm-401-disk-0,size=4G"
    r = c.req("POST", "/nodes/pve1/qemu/300/clone", data={"newid": 301})
    assert r.status_code == 500 and r.reason == "unable to create VM 301 - VM 301 already exists on node 'pve2'"
    # template conversion renames the disks
    c.wait(c.write("POST", "/nodes/pve2/qemu/401/template"))
    conf = c.get("/nodes/pve2/qemu/401/config")
    assert conf["template"] == 1 and conf["scsi0"].startswith("local-lvm:base-401-disk-0")
    # (vm_start's worker finds it: the task fails, as on PVE)
    st = c.end(c.write("POST", "/nodes/pve2/qemu/401/status/start"))
    assert st["exitstatus"] == "you can't start a vm if it's a template"


def test_config_digest_delete_resize(demo):
    c = demo
    conf = c.get("/nodes/pve3/qemu/302/config")
    r = c.req("PUT", "/nodes/pve3/qemu/302/config", data={"memory": 4096, "digest": "0" * 40})
    assert r.status_code == 500 and "detected modified configuration" in r.reason
    c.write("PUT", "/nodes/pve3/qemu/302/config", memory=4096, delete="ide2",
            digest=conf["digest"])
    new = c.get("/nodes/pve3/qemu/302/config")
    assert new["memory"] == "4096" and "ide2" not in new and new["digest"] != conf["digest"]
    c.write("PUT", "/nodes/pve3/qemu/302/resize", disk="sata0", size="+20G")
    assert c.get("/nodes/pve3/qemu/302/config")["sata0"].endswith("size=100G")
    r = c.req("PUT", "/nodes/pve3/qemu/302/resize", data={"disk": "sata0", "size": "10G"})
    assert r.status_code == 500 and r.reason == "shrinking disks is not supported"
    # removing a disk leaves it as unused0; deleting unused0 frees the volume
    c.write("PUT", "/nodes/pve3/qemu/302/config", delete="sata0")
    conf = c.get("/nodes/pve3/qemu/302/config")
    assert conf["unused0"] == "local-lvm:vm-302-disk-1"
    c.write("PUT", "/nodes/pve3/qemu/302/config", delete="unused0")
    vols = [v["volid"] for v in c.get("/nodes/pve3/storage/local-lvm/content")]
    assert "local-lvm:vm-302-disk-1" not in vols


def test_config_answer_follows_changes(demo):
    # GET .../config is answered from a cached serialisation: every kind of
    # change (a write, a pending value, a task's lock and its end) shows at once
    c = demo
    c.wait(c.write("POST", "/nodes/pve1/qemu", vmid=450, name="cached", cores=1))
    first = c.get("/nodes/pve1/qemu/450/config")
    assert c.get("/nodes/pve1/qemu/450/config") == first and first["cores"] == 1
    c.write("PUT", "/nodes/pve1/qemu/450/config", name="renamed")
    conf = c.get("/nodes/pve1/qemu/450/config")
    assert conf["name"] == "renamed" and conf["digest"] != first["digest"]
    c.wait(c.write("POST", "/nodes/pve1/qemu/450/status/start"))
    c.write("PUT", "/nodes/pve1/qemu/450/config", cores=4)  # not hot-pluggable: pending
    assert c.get("/nodes/pve1/qemu/450/config")["cores"] == 4
    assert c.get("/nodes/pve1/qemu/450/config", current=1)["cores"] == 1
    upid = c.write("POST", "/nodes/pve1/qemu/450/snapshot", snapname="s1")
    assert c.get("/nodes/pve1/qemu/450/config")["lock"] == "snapshot"
    c.wait(upid)
    conf = c.get("/nodes/pve1/qemu/450/config")
    assert "lock" not in conf and conf["parent"] == "s1"


def test_migrate(demo):
    c = demo
    r = c.req("POST", "/nodes/pve1/qemu/300/migrate", data={"target": "pve3"})
    assert r.status_code == 500 and r.reason == "can't migrate running VM without --online"
    # CT 311's mp0 is on 'nas', which pve3 does not have: PVE's prepare refuses
    upid = c.write("POST", "/nodes/pve2/lxc/311/migrate", target="pve3")
    with pytest.raises(AssertionError, match="migration aborted"):
        c.wait(upid)
    log = [l["t"] for l in c.get(f"/nodes/pve2/tasks/{upid}/log")]
    assert "ERROR: migration aborted (duration 00:00:00): storage 'nas' is not available on " \
           "node 'pve3'" in log
    assert c.get("/nodes/pve2/lxc/311/config")["hostname"] == "builder"
    c.wait(c.write("POST", "/nodes/pve2/lxc/311/migrate", target="pve1"))
    assert c.get("/nodes/pve1/lxc/311/status/current")["status"] == "stopped"
    r = c.req("GET", "/nodes/pve2/lxc/311/config")
    assert r.status_code == 500


def test_network_pending(demo):
    c = demo
    r = c.req("POST", "/nodes/pve1/network", data={"iface": "vmbr0", "type": "bridge"})
    assert r.status_code == 400 and r.json()["errors"] == {"iface": "interface already exists"}
    c.write("POST", "/nodes/pve1/network", iface="vmbr9", type="bridge", autostart=1,
            cidr="10.9.0.1/24", bridge_ports="none")
    r = c.req("GET", "/nodes/pve1/network")
    body = r.json()
    assert "vmbr9" in [i["iface"] for i in body["data"]]
    assert "+iface vmbr9 inet static" in body["changes"]
    assert not [i for i in body["data"] if i["iface"] == "vmbr9"][0].get("active")
    c.wait(c.write("PUT", "/nodes/pve1/network"))
    body = c.req("GET", "/nodes/pve1/network", params={"type": "bridge"}).json()
    assert "changes" not in body
    assert [i for i in body["data"] if i["iface"] == "vmbr9"][0]["active"] == 1
    c.write("DELETE", "/nodes/pve1/network/vmbr9")
    assert "changes" in c.req("GET", "/nodes/pve1/network").json()
    c.write("DELETE", "/nodes/pve1/network")
    assert "changes" not in c.req("GET", "/nodes/pve1/network").json()


def test_aplinfo_and_backup(demo):
    c = demo
    apl = c.get("/nodes/pve2/aplinfo")
    tpl = [a["template"] for a in apl if a["os"] == "alpine-3.22"][0]
    c.wait(c.write("POST", "/nodes/pve2/aplinfo", storage="local", template=tpl))
    vols = [v["volid"] for v in c.get("/nodes/pve2/storage/local/content", content="vztmpl")]
    assert f"local:vztmpl/{tpl}" in vols
    c.wait(c.write("POST", "/nodes/pve2/lxc", vmid=210, ostemplate=f"local:vztmpl/{tpl}",
                   rootfs="local-lvm:2"))
    assert c.get("/nodes/pve2/lxc/210/config")["ostype"] == "alpine"
    upid = c.write("POST", "/nodes/pve2/vzdump", vmid="210", storage="nas")
    assert c.get("/nodes/pve2/lxc/210/config")["lock"] == "backup"
    r = c.req("PUT", "/nodes/pve2/lxc/210/config", data={"memory": 1024})
    assert r.status_code == 500 and r.reason == "CT is locked (backup)"
    c.wait(upid)
    backups = c.get("/nodes/pve2/storage/nas/content", content="backup", vmid=210)
    assert len(backups) == 1 and backups[0]["volid"].startswith("nas:backup/vzdump-lxc-210-")


def test_state_file_round_trip(tmp_path):
    state = tmp_path / "state.json"
    info = start_sim("--seed", DEMO, "--state-file", state)
    c = Client(info)
    c.wait(c.write("POST", "/nodes/pve1/qemu", vmid=555, name="persist", memory=1024,
                   scsi0="local-lvm:10", net0="virtio,bridge=vmbr0"))
    conf = c.get("/nodes/pve1/qemu/555/config")
    assert stop_sim(info)[0] == 0
    assert state.exists() and oct(state.stat().st_mode & 0o777) == "0o600"
    info = start_sim("--state-file", state)
    c = Client(info)
    try:
        again = c.get("/nodes/pve1/qemu/555/config")
        assert again == conf
        vols = [v["volid"] for v in c.get("/nodes/pve1/storage/local-lvm/content", vmid=555)]
        assert vols == ["local-lvm:vm-555-disk-0"]
        assert c.get("/nodes/pve2/qemu/301/snapshot")[0]["name"] == "before-upgrade"
    finally:
        assert stop_sim(info)[0] == 0


def test_offline_node(tmp_path):
    """A powered-off node as PVE lists it once pmxcfs dropped its RRD data:
    name and state only; its guests "unknown" without name or figures (tags,
    lock and pool come from the cluster-wide config); calls to it 595."""
    seed = tmp_path / "seed.yaml"
    seed.write_text("nodes: [{name: pve1}, {name: pve2, online: false}]\n"
                    "pools: [{poolid: infra, members: [101]}]\n"
                    "guests:\n"
                    "  - {vmid: 100, node: pve1, status: running, config: {name: up}}\n"
                    "  - {vmid: 101, node: pve2, status: running,"
                    " config: {name: down, tags: db}}\n")
    info = start_sim("--seed", seed)
    try:
        c = Client(info)
        res = {e["id"]: e for e in c.get("/cluster/resources")}
        assert res["node/pve2"] == {"id": "node/pve2", "type": "node", "node": "pve2",
                                    "status": "offline", "cgroup-mode": 2}
        assert res["qemu/101"] == {"id": "qemu/101", "type": "qemu", "vmid": 101,
                                   "node": "pve2", "tags": "db", "pool": "infra",
                                   "status": "unknown"}
        assert res["qemu/100"]["status"] == "running" and res["qemu/100"]["name"] == "up"
        assert {k: v for k, v in res["storage/pve2/local"].items()
                if k in ("status", "disk", "maxdisk")} == {"status": "unknown"}
        nodes = {n["node"]: n for n in c.get("/nodes")}
        assert set(nodes["pve2"]) == {"id", "type", "node", "status", "ssl_fingerprint"}
        r = c.req("GET", "/nodes/pve2/qemu/101/config")
        assert r.status_code == 595
    finally:
        stop_sim(info)


def test_lockwait_fault_and_csrf():
    info = start_sim("--faults", "lockwait=1", "--lock-wait-ms", "10", "--guests", "2")
    try:
        c = Client(info)
        r = c.req("PUT", "/nodes/pve/qemu/100/config", data={"memory": 1024})
        assert r.status_code == 500
        assert r.reason == "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"
        # tickets need the CSRF token on writes
        t = requests.post(info["url"] + "/api2/json/access/ticket", verify=False,
                          json={"username": "root@pam", "password": info["password"]}).json()
        ck = {"PVEAuthCookie": t["data"]["ticket"]}
        r = requests.post(info["url"] + "/api2/json/nodes/pve/qemu/100/status/start",
                          cookies=ck, verify=False)
        assert r.status_code == 401 and r.reason == "Permission denied - invalid csrf token"
        r = requests.get(info["url"] + "/api2/json/nodes", cookies=ck, verify=False)
        assert r.status_code == 200
        r = requests.get(info["url"] + "/api2/json/nodes", verify=False)
        assert r.status_code == 401 and r.reason == "No ticket" and r.text == ""
    finally:
        stop_sim(info)


def test_pve_84_schema():
    info = start_sim("--pve-version", "8.4")
    try:
        c = Client(info)
        assert c.get("/version")["release"] == "8.4"
        # HA rules came with 9.0: not in the 8.4 schema
        r = c.req("GET", "/cluster/ha/rules")
        assert r.status_code == 501 and r.reason == "Method 'GET /cluster/ha/rules' not implemented"
    finally:
        stop_sim(info)


def test_no_tls_and_connection_faults():
    info = start_sim("--no-tls", "--faults", "reset=1")
    try:
        assert info["url"].startswith("http://127.0.0.1:") and info["fingerprint"] == ""
        # the login is never faulted
        r = requests.post(info["url"] + "/api2/json/access/ticket",
                          data={"username": "root@pam", "password": info["password"]})
        assert r.status_code == 200 and r.json()["data"]["ticket"].startswith("PVE:root@pam:")
        with pytest.raises(requests.exceptions.ConnectionError):
            Client(info).req("GET", "/version")
    finally:
        assert stop_sim(info)[0] == 0
    info = start_sim("--faults", "timeout=1")
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(info["url"] + "/api2/json/version", verify=False, timeout=0.5,
                         headers={"Authorization": "PVEAPIToken=" + info["token"]})
    finally:
        assert stop_sim(info)[0] == 0


def test_bad_options():
    from conftest import run
    r = run("sim", "--faults", "error=2")
    assert r.rc == 64 and "probability between 0 and 1" in r.err
    r = run("sim", "--faults", "explode=0.1")
    assert r.rc == 64 and "unknown fault 'explode'" in r.err
    r = run("sim", "--pve-version", "7.0", "--listen", "127.0.0.1:0")
    assert r.rc == 1 and "unknown PVE version '7.0'" in r.err
    r = run("sim", "--seed", "/nonexistent.yaml", "--listen", "127.0.0.1:0")
    assert r.rc == 1 and "/nonexistent.yaml" in r.err


def test_lock_file_waits():
    # a power task holds the guest's lock file: other calls wait for it
    info = start_sim("--guests", "2", "--task-ms", "300")
    try:
        c = Client(info)
        c.wait(c.write("POST", "/nodes/pve/qemu/100/status/stop"))
        first = c.write("POST", "/nodes/pve/qemu/100/status/start")
        second = c.write("POST", "/nodes/pve/qemu/100/status/start")  # waits for the first
        assert c.get(f"/nodes/pve/tasks/{first}/status")["status"] == "stopped"
        assert c.end(second)["exitstatus"] == "VM 100 already running"  # its worker sees it
        upid = c.write("POST", "/nodes/pve/qemu/100/status/stop")
        c.write("PUT", "/nodes/pve/qemu/100/config", name="after-stop")  # waits for the stop
        assert c.get("/nodes/pve/qemu/100/status/current")["status"] == "stopped"
        c.wait(upid)
    finally:
        assert stop_sim(info)[0] == 0
    info = start_sim("--guests", "2", "--task-ms", "3000", "--lock-wait-ms", "100")
    try:
        c = Client(info)
        c.write("POST", "/nodes/pve/qemu/101/status/shutdown")  # generated guests run
        r = c.req("PUT", "/nodes/pve/qemu/101/config", data={"name": "x"})
        assert r.status_code == 500
        assert r.reason == "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout"
    finally:
        assert stop_sim(info)[0] == 0


def test_zfs_rolls_back_only_to_the_newest_snapshot(demo):
    # a zvol rolls back to its newest snapshot only (pve-storage's
    # ZFSPoolPlugin volume_rollback_is_possible); lvmthin to any
    c = demo
    c.wait(c.write("POST", "/nodes/pve1/qemu", vmid=556, name="zvol", memory=512,
                   scsi0="vault:8", scsi1="local-lvm:4"))
    for snap in ("s1", "s2"):
        c.wait(c.write("POST", "/nodes/pve1/qemu/556/snapshot", snapname=snap))
    st = c.end(c.write("POST", "/nodes/pve1/qemu/556/snapshot/s1/rollback"))
    assert st["exitstatus"] == \
        "can't rollback, 's1' is not most recent snapshot on 'vault:vm-556-disk-0'", st
    assert "lock" not in c.get("/nodes/pve1/qemu/556/config")  # refused before locking
    c.wait(c.write("POST", "/nodes/pve1/qemu/556/snapshot/s2/rollback"))
    c.wait(c.write("DELETE", "/nodes/pve1/qemu/556/snapshot/s2"))
    c.wait(c.write("POST", "/nodes/pve1/qemu/556/snapshot/s1/rollback"))
    # only local-lvm: any snapshot
    c.wait(c.write("POST", "/nodes/pve1/qemu", vmid=557, name="thin", memory=512,
                   scsi0="local-lvm:4"))
    for snap in ("s1", "s2"):
        c.wait(c.write("POST", "/nodes/pve1/qemu/557/snapshot", snapname=snap))
    c.wait(c.write("POST", "/nodes/pve1/qemu/557/snapshot/s1/rollback"))


def test_seeded_lock(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("nodes: [{name: pve1}]\nguests:\n"
                    "  - {vmid: 100, config: {name: stuck, lock: backup}}\n")
    state = tmp_path / "state.json"
    info = start_sim("--seed", seed, "--state-file", state)
    try:
        c = Client(info)
        for _ in range(2):  # as seeded, then as saved and loaded again
            res = [g for g in c.get("/cluster/resources", type="vm") if g["vmid"] == 100]
            assert res[0]["lock"] == "backup", res
            assert c.get("/nodes/pve1/qemu/100/config")["lock"] == "backup"
            assert c.get("/nodes/pve1/qemu/100/status/current")["lock"] == "backup"
            st = c.end(c.write("POST", "/nodes/pve1/qemu/100/status/start"))
            assert st["exitstatus"] == "VM is locked (backup)", st  # the worker's check
            assert stop_sim(info)[0] == 0
            info = start_sim("--state-file", state)
            c = Client(info)
    finally:
        stop_sim(info)
    seed.write_text("nodes: [{name: pve1}]\nguests:\n"
                    "  - {vmid: 100, config: {name: stuck, lock: nonsense}}\n")
    with pytest.raises(RuntimeError, match="lock 'nonsense' is not one PVE sets"):
        start_sim("--seed", seed)
