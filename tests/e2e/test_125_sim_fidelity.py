"""The simulator behaves as Proxmox VE does where users notice (issue 20): the
cloud-init password masked, locks set through the config enforced, migration
to a node without the guest's storage refused, maxdisk the boot disk's size,
qemu-server's and pve-container's pending/hotplug rules, rollback without RAM
state leaving the VM stopped, failures inside workers reported as failed
tasks, import-from consumed, DNS names checked. docs/sim.md's fidelity table
names the PVE source each test follows.

The tests talk to the API only (requests), so they can run against a real
node: PVELAB_E2E_REAL=https://host:8006 with PVELAB_E2E_TOKEN (root@pam!id=secret),
PVELAB_E2E_PASSWORD (root@pam's, for what only root may do) and the node and
storages the seed below names (tests that need the seed's topology skip)."""
import os
import re
import time
import warnings

import pytest

from simfix import start_sim, stop_sim

requests = pytest.importorskip("requests")
warnings.filterwarnings("ignore")
REAL = os.environ.get("PVELAB_E2E_REAL")
GiB = 1 << 30
SECRET = "hunter2-cloud-init"

SEED = """
nodes: [pve1, pve2]
storages:
  - {id: local, type: dir, content: "iso,vztmpl,backup,import", path: /var/lib/vz, size: 100G}
  - {id: local-lvm, type: lvmthin, content: "images,rootdir", size: 200G}
  - {id: thick, type: lvm, content: "images,rootdir", size: 10G, nodes: [pve1]}
templates:
  - local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
  - {volid: "local:import/disk.qcow2", size: 3G}
"""


class Api:
    """A requests session with an API token, and root@pam's ticket on demand."""

    def __init__(self, url, token, password, fingerprint=None):
        self.url = url.rstrip("/") + "/api2/json"
        self.password = password
        self.s = requests.Session()
        self.s.verify = False
        self.s.headers["Authorization"] = "PVEAPIToken=" + token
        self.root = None

    def req(self, method, path, root=False, **params):
        s = self.s
        if root:
            s = self.root_session()
        kw = {"params": params} if method == "GET" else {"data": params}
        return s.request(method, self.url + path, verify=False, **kw)

    def get(self, path, **params):
        r = self.req("GET", path, **params)
        assert r.status_code == 200, (path, r.status_code, r.reason, r.text)
        return r.json()["data"]

    def write(self, method, path, **params):
        r = self.req(method, path, **params)
        assert r.status_code == 200, (method, path, r.status_code, r.reason, r.text)
        return r.json()["data"]

    def root_session(self):
        if self.root is None:
            r = requests.post(self.url + "/access/ticket", verify=False,
                              data={"username": "root@pam", "password": self.password})
            assert r.status_code == 200, r.text
            d = r.json()["data"]
            self.root = requests.Session()
            self.root.verify = False
            self.root.cookies.set("PVEAuthCookie", d["ticket"])
            self.root.headers["CSRFPreventionToken"] = d["CSRFPreventionToken"]
        return self.root

    def end(self, upid):
        """The task's status once it stopped (any exitstatus), and its log lines."""
        node = upid.split(":")[1]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = self.get(f"/nodes/{node}/tasks/{upid}/status")
            if st["status"] == "stopped":
                log = [l["t"] for l in self.get(f"/nodes/{node}/tasks/{upid}/log")]
                return st, log
            time.sleep(0.02)
        raise AssertionError(f"task {upid} did not end")

    def ok(self, upid):
        st, log = self.end(upid)
        assert st["exitstatus"] == "OK", (st, log)
        return log

    def resource(self, vmid):
        return next(r for r in self.get("/cluster/resources", type="vm") if r["vmid"] == vmid)

    def nextid(self):
        return int(self.get("/cluster/nextid"))


@pytest.fixture(scope="module")
def pve(tmp_path_factory):
    if REAL:
        yield Api(REAL, os.environ["PVELAB_E2E_TOKEN"], os.environ.get("PVELAB_E2E_PASSWORD"))
        return
    seed = tmp_path_factory.mktemp("seed") / "seed.yaml"
    seed.write_text(SEED)
    info = start_sim("--seed", seed, "--task-ms", "100")
    yield Api(info["url"], info["token"], info["password"])
    rc, err = stop_sim(info)
    assert rc == 0, err


def sim_only():
    if REAL:
        pytest.skip("needs the seed's topology (two nodes, a thick storage on one)")


def new_vm(pve, node="pve1", start=False, **conf):
    vmid = pve.nextid()
    conf.setdefault("memory", 512)
    pve.ok(pve.write("POST", f"/nodes/{node}/qemu", vmid=vmid, **conf))
    if start:
        pve.ok(pve.write("POST", f"/nodes/{node}/qemu/{vmid}/status/start"))
    return vmid


def new_ct(pve, node="pve1", start=False, **conf):
    vmid = pve.nextid()
    conf.setdefault("rootfs", "local-lvm:4")
    pve.ok(pve.write("POST", f"/nodes/{node}/lxc", vmid=vmid,
                     ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", **conf))
    if start:
        pve.ok(pve.write("POST", f"/nodes/{node}/lxc/{vmid}/status/start"))
    return vmid


def test_cloud_init_password_is_never_answered(pve):
    # qemu-server API2/Qemu.pm: GET config and pending answer '**********'
    vmid = new_vm(pve, ciuser="admin", cipassword=SECRET, ide2="local-lvm:cloudinit")
    conf = pve.get(f"/nodes/pve1/qemu/{vmid}/config")
    assert conf["cipassword"] == "**********" and conf["ciuser"] == "admin"
    assert pve.get(f"/nodes/pve1/qemu/{vmid}/config", current=1)["cipassword"] == "**********"
    pve.ok(pve.write("POST", f"/nodes/pve1/qemu/{vmid}/status/start"))
    pve.write("PUT", f"/nodes/pve1/qemu/{vmid}/config", cipassword=SECRET + "2")
    pending = {p["key"]: p for p in pve.get(f"/nodes/pve1/qemu/{vmid}/pending")}
    assert pending["cipassword"] == {"key": "cipassword", "value": "**********"}
    pve.write("POST", f"/nodes/pve1/qemu/{vmid}/snapshot", snapname="s1")
    time.sleep(0)  # (the snapshot task is waited for through the lock below)
    deadline = time.monotonic() + 60
    while "lock" in pve.get(f"/nodes/pve1/qemu/{vmid}/config") and time.monotonic() < deadline:
        time.sleep(0.02)
    # the snapshot's config is answered as stored: the crypt() hash, never
    # the password (PVE masks only config, pending and cloudinit)
    snap = pve.get(f"/nodes/pve1/qemu/{vmid}/snapshot/s1/config")
    assert snap["cipassword"].startswith("$") and SECRET not in snap["cipassword"]
    for path in (f"/nodes/pve1/qemu/{vmid}/config", f"/nodes/pve1/qemu/{vmid}/pending",
                 f"/nodes/pve1/qemu/{vmid}/cloudinit"):
        assert SECRET not in pve.req("GET", path).text


def test_lock_set_through_config_blocks_until_unlock(pve):
    # PVE::AbstractConfig::check_lock: "VM is locked (backup)"; the lock is a
    # fast-plug option (vmconfig_hotplug_pending) and shows in /cluster/resources
    vmid = new_vm(pve, start=True)
    base = f"/nodes/pve1/qemu/{vmid}"
    pve.write("PUT", base + "/config", lock="backup")
    assert pve.get(base + "/config")["lock"] == "backup"
    assert pve.resource(vmid)["lock"] == "backup"
    assert pve.get(base + "/status/current")["lock"] == "backup"
    r = pve.req("PUT", base + "/config", name="other")
    assert r.status_code == 500 and r.reason == "VM is locked (backup)", r.text
    # the POST variant runs the update in its worker: a failed task
    st, log = pve.end(pve.write("POST", base + "/config", name="other"))
    assert st["exitstatus"] == "VM is locked (backup)" and log[-1] == "TASK ERROR: VM is locked (backup)"
    # the stop's worker (vm_stop -> _do_vm_stop) checks the lock: the task fails
    st, log = pve.end(pve.write("POST", base + "/status/stop"))
    assert st["exitstatus"] == "VM is locked (backup)", (st, log)
    assert pve.get(base + "/status/current")["status"] == "running"
    assert pve.get(base + "/config").get("name") != "other"
    # skiplock is root@pam's alone: a token is refused before anything is done
    r = pve.req("PUT", base + "/config", delete="lock", skiplock=1)
    assert r.status_code == 400 and r.json()["errors"] == {"skiplock": "Only root may use this option."}
    r = pve.req("POST", base + "/status/stop", skiplock=1)
    assert r.status_code == 400 and r.json()["errors"] == {"skiplock": "Only root may use this option."}
    # `qm unlock`'s API form: root deletes the lock with skiplock
    r = pve.req("PUT", base + "/config", root=True, delete="lock", skiplock=1)
    assert r.status_code == 200, r.text
    assert "lock" not in pve.get(base + "/config") and "lock" not in pve.resource(vmid)
    pve.ok(pve.write("POST", base + "/status/stop"))
    assert pve.get(base + "/status/current")["status"] == "stopped"


def test_container_lock_blocks_its_workers(pve):
    vmid = new_ct(pve, start=True)
    base = f"/nodes/pve1/lxc/{vmid}"
    pve.write("PUT", base + "/config", lock="backup")
    assert pve.resource(vmid)["lock"] == "backup"
    r = pve.req("PUT", base + "/config", hostname="other")
    assert r.status_code == 500 and r.reason == "CT is locked (backup)"
    st, _ = pve.end(pve.write("POST", base + "/status/shutdown"))
    assert st["exitstatus"] == "CT is locked (backup)"
    assert pve.get(base + "/status/current")["status"] == "running"
    # pve-container's config update has no skiplock: only `pct unlock` on
    # the node clears it, the API refuses even root
    r = pve.req("PUT", base + "/config", root=True, delete="lock")
    assert r.status_code == 500 and r.reason == "CT is locked (backup)"
    r = pve.req("PUT", base + "/config", root=True, delete="lock", skiplock=1)
    assert r.status_code == 400 and "skiplock" in r.json()["errors"]


def test_migration_to_a_node_without_the_storage(pve):
    sim_only()
    # qemu-server's migrate_vm: check_storage_availability before the fork
    vmid = new_vm(pve, scsi0="thick:2")
    r = pve.req("POST", f"/nodes/pve1/qemu/{vmid}/migrate", target="pve2")
    assert r.status_code == 500 and r.reason == "storage 'thick' is not available on node 'pve2'"
    assert "lock" not in pve.get(f"/nodes/pve1/qemu/{vmid}/config")
    # pve-container: PVE::LXC::Migrate::prepare, inside the task
    ct = new_ct(pve, rootfs="thick:1")
    st, log = pve.end(pve.write("POST", f"/nodes/pve1/lxc/{ct}/migrate", target="pve2"))
    assert st["exitstatus"] == "migration aborted"
    assert "ERROR: migration aborted (duration 00:00:00): storage 'thick' is not available on " \
           "node 'pve2'" in log
    assert pve.resource(ct)["node"] == "pve1"
    # a VM on shared-nothing storages of both nodes moves
    other = new_vm(pve, scsi0="local-lvm:1")
    pve.ok(pve.write("POST", f"/nodes/pve1/qemu/{other}/migrate", target="pve2"))
    assert pve.resource(other)["node"] == "pve2"


def test_maxdisk_is_the_boot_disk(pve):
    # create_vm sets boot from get_default_bootdevices; vmstatus's maxdisk is
    # Drive::bootdisk_size (the first non-CD-ROM drive of the boot order)
    vmid = new_vm(pve, sata0="local-lvm:80", net0="virtio,bridge=vmbr0")
    base = f"/nodes/pve1/qemu/{vmid}"
    assert pve.get(base + "/config")["boot"] == "order=sata0;net0"
    assert pve.get(base + "/status/current")["maxdisk"] == 80 * GiB
    assert pve.resource(vmid)["maxdisk"] == 80 * GiB
    assert next(g for g in pve.get("/nodes/pve1/qemu") if g["vmid"] == vmid)["maxdisk"] == 80 * GiB
    # a second, smaller disk first in the order counts instead
    pve.write("PUT", base + "/config", scsi1="local-lvm:2")
    pve.write("PUT", base + "/config", boot="order=scsi1;sata0")
    assert pve.get(base + "/status/current")["maxdisk"] == 2 * GiB
    # a boot order of the NIC alone: no boot disk, maxdisk 0
    pve.write("PUT", base + "/config", boot="order=net0")
    assert pve.get(base + "/status/current")["maxdisk"] == 0


def test_qemu_pending_rules(pve):
    # PVE::QemuServer::vmconfig_hotplug_pending with the default hotplug
    # (network,disk,usb): cloud-init keys are fast-plug, cores and memory wait
    vmid = new_vm(pve, start=True, scsi0="local-lvm:1", net0="virtio,bridge=vmbr0",
                  ide2="local-lvm:cloudinit")
    base = f"/nodes/pve1/qemu/{vmid}"
    pve.write("PUT", base + "/config", nameserver="192.0.2.53", ciuser="ops",
              ipconfig0="ip=dhcp", sshkeys="ssh-ed25519%20AAAAC3Nza%20x", cores=2, memory=1024,
              description="d", onboot=1)
    cur = pve.get(base + "/config", current=1)
    for k, v in (("nameserver", "192.0.2.53"), ("ciuser", "ops"), ("ipconfig0", "ip=dhcp"),
                 ("description", "d"), ("onboot", 1)):
        assert cur[k] == v, (k, cur)
    pending = {p["key"]: p.get("pending") for p in pve.get(base + "/pending") if "pending" in p}
    assert {k: str(v) for k, v in pending.items()} == {"cores": "2", "memory": "1024"}, pending
    # a new scsi disk is hot-plugged, a new sata one waits; vcpus needs cpu
    pve.write("PUT", base + "/config", scsi1="local-lvm:1", sata1="local-lvm:1")
    cur = pve.get(base + "/config", current=1)
    assert "scsi1" in cur and "sata1" not in cur
    # a NIC moved to another bridge keeps its MAC: re-plugged without hotplug
    mac = cur["net0"].split(",")[0]
    pve.write("PUT", base + "/config", hotplug="0")
    pve.write("PUT", base + "/config", net0=f"{mac},bridge=vmbr1")
    assert pve.get(base + "/config", current=1)["net0"] == f"{mac},bridge=vmbr1"
    pve.write("PUT", base + "/config", net1="virtio,bridge=vmbr0")
    assert "net1" not in pve.get(base + "/config", current=1)
    # a reboot applies what waited
    pve.ok(pve.write("POST", base + "/status/reboot"))
    cur = pve.get(base + "/config", current=1)
    assert cur["cores"] == 2 and "sata1" in cur and "net1" in cur


def test_container_pending_rules(pve):
    # PVE::LXC::Config::vmconfig_hotplug_pending: $LXC_FASTPLUG_OPTIONS,
    # memory/swap, cpulimit, net and new mount points live; the rest waits
    vmid = new_ct(pve, start=True, memory=512)
    base = f"/nodes/pve1/lxc/{vmid}"
    pve.write("PUT", base + "/config", hostname="web2", cores=2, memory=1024, cpulimit=1,
              nameserver="192.0.2.53", mp0="local-lvm:1,mp=/data")
    cur = pve.get(base + "/config", current=1)
    for k, v in (("hostname", "web2"), ("cores", 2), ("memory", 1024), ("cpulimit", 1)):
        assert cur[k] == v, (k, cur)
    assert cur["mp0"].startswith("local-lvm:vm-") and cur["mp0"].endswith(",mp=/data,size=1G")
    pending = {p["key"]: p.get("pending") for p in pve.get(base + "/pending") if "pending" in p}
    assert pending == {"nameserver": "192.0.2.53"}, pending
    # an existing mount point is never hot-plugged over
    pve.write("PUT", base + "/config", mp0="local-lvm:1,mp=/srv")
    assert pve.get(base + "/config", current=1)["mp0"].endswith(",mp=/data,size=1G")
    assert pve.get(base + "/config")["mp0"].endswith("mp=/srv,size=1G")


def test_rollback_without_ram_state_leaves_the_vm_stopped(pve):
    # PVE::AbstractConfig::snapshot_rollback stops the guest and starts it
    # again only for a snapshot with vmstate; the API's start=1 starts it
    vmid = new_vm(pve, start=True, scsi0="local-lvm:1")
    base = f"/nodes/pve1/qemu/{vmid}"
    pve.ok(pve.write("POST", base + "/snapshot", snapname="plain"))
    pve.ok(pve.write("POST", base + "/snapshot/plain/rollback"))
    assert pve.get(base + "/status/current")["status"] == "stopped"
    pve.ok(pve.write("POST", base + "/snapshot/plain/rollback", start=1))
    assert pve.get(base + "/status/current")["status"] == "running"
    pve.ok(pve.write("POST", base + "/snapshot", snapname="ram", vmstate=1))
    pve.ok(pve.write("POST", base + "/status/stop"))
    pve.ok(pve.write("POST", base + "/snapshot/ram/rollback"))
    assert pve.get(base + "/status/current")["status"] == "running"


def test_worker_failures_are_failed_tasks(pve):
    sim_only()
    vmid = new_vm(pve, scsi0="local-lvm:32")
    # the clone's worker allocates the disks: a storage without room fails
    # the task ("clone failed: ..."), and no VM is left behind
    newid = pve.nextid()
    upid = pve.write("POST", f"/nodes/pve1/qemu/{vmid}/clone", newid=newid, full=1,
                     storage="thick")
    st, log = pve.end(upid)
    assert st["exitstatus"].startswith("clone failed: lvcreate 'thick/vm-%d-disk-0' error:" % newid)
    assert re.search(r'Volume group "thick" has insufficient free space \(\d+ extents\): '
                     r'8192 required\.$', st["exitstatus"]), st
    assert log[-1] == "TASK ERROR: " + st["exitstatus"]
    assert newid not in [r["vmid"] for r in pve.get("/cluster/resources", type="vm")]
    assert "lock" not in pve.get(f"/nodes/pve1/qemu/{vmid}/config")
    # as does a create's disk allocation
    other = pve.nextid()
    st, _ = pve.end(pve.write("POST", "/nodes/pve1/qemu", vmid=other, scsi0="thick:20"))
    assert st["exitstatus"].startswith(f"unable to create VM {other} - lvcreate ")
    assert other not in [r["vmid"] for r in pve.get("/cluster/resources", type="vm")]
    # while the checks made before the fork answer at once
    r = pve.req("POST", f"/nodes/pve1/qemu/{vmid}/clone", newid=vmid)
    assert r.status_code == 500 and r.reason == \
        f"unable to create VM {vmid} - VM {vmid} already exists on node 'pve1'"
    r = pve.req("POST", "/nodes/pve1/qemu", vmid=pve.nextid(), scsi0="nope:1")
    assert r.status_code == 500 and "storage 'nope' does not exist" in r.reason
    # start of a running VM: a failed task, not a 500
    vm = new_vm(pve, scsi0="local-lvm:1")
    ct = new_ct(pve)
    pve.ok(pve.write("POST", f"/nodes/pve1/qemu/{vm}/status/start"))
    st, _ = pve.end(pve.write("POST", f"/nodes/pve1/qemu/{vm}/status/start"))
    assert st["exitstatus"] == f"VM {vm} already running"
    # a container's "already running" is checked before the fork
    pve.ok(pve.write("POST", f"/nodes/pve1/lxc/{ct}/status/start"))
    r = pve.req("POST", f"/nodes/pve1/lxc/{ct}/status/start")
    assert r.status_code == 500 and r.reason == f"CT {ct} already running"


def test_import_from_is_consumed(pve):
    # create_disks: "<storage>:0,import-from=<source>" becomes a new volume
    # of the source's size, and the config keeps no import-from
    vmid = new_vm(pve, scsi0="local-lvm:0,import-from=local:import/disk.qcow2,discard=on")
    conf = pve.get(f"/nodes/pve1/qemu/{vmid}/config")
    assert conf["scsi0"] == f"local-lvm:vm-{vmid}-disk-0,discard=on,size=3G", conf
    assert "import-from" not in str(conf)
    vols = [v["volid"] for v in pve.get("/nodes/pve1/storage/local-lvm/content", vmid=vmid)]
    assert vols == [f"local-lvm:vm-{vmid}-disk-0"]
    # $check_drive_param: any other size is refused before anything is made
    other = pve.nextid()
    r = pve.req("POST", "/nodes/pve1/qemu", vmid=other,
                scsi0="local-lvm:8,import-from=local:import/disk.qcow2")
    assert r.status_code == 400 and r.json()["errors"] == {
        "scsi0": "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"}
    assert other not in [r["vmid"] for r in pve.get("/cluster/resources", type="vm")]


def test_guest_names_are_dns_names(pve):
    # the schema's format 'dns-name' (PVE::JSONSchema::pve_verify_dns_name)
    tpl = {"ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
    for path, key, extra in (("/nodes/pve1/qemu", "name", {}),
                             ("/nodes/pve1/lxc", "hostname", tpl)):
        for bad in ("web_1", "-web", "web-", "a..b", "web 1"):
            r = pve.req("POST", path, vmid=pve.nextid(), **{key: bad}, **extra)
            assert r.status_code == 400, (path, bad, r.text)
            assert r.json()["errors"] == {
                key: "invalid format - value does not look like a valid DNS name\n"}
    vmid = new_vm(pve, name="web-1.lab")
    r = pve.req("PUT", f"/nodes/pve1/qemu/{vmid}/config", name="bad_name")
    assert r.status_code == 400 and r.json()["errors"] == {
        "name": "invalid format - value does not look like a valid DNS name\n"}
    r = pve.req("POST", f"/nodes/pve1/qemu/{vmid}/clone", newid=pve.nextid(), name="x_y")
    assert r.status_code == 400
    assert pve.get(f"/nodes/pve1/qemu/{vmid}/config")["name"] == "web-1.lab"


def test_start_whose_volume_cannot_be_activated_fails_its_task(tmp_path):
    # vm_start's worker activates the volumes (storage_check_enabled): a disk
    # on a storage its node does not have fails the task, nothing runs
    if REAL:
        pytest.skip("needs a guest whose disk is on a storage its node lacks")
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED + """
guests:
  - {vmid: 150, node: pve2, config: {name: stray, scsi0: "thick:vm-150-disk-0,size=1G"}}
  - {vmid: 151, node: pve2, type: lxc, config: {hostname: ct, rootfs: "thick:vm-151-disk-0,size=1G"}}
""")
    info = start_sim("--seed", seed)
    try:
        pve = Api(info["url"], info["token"], info["password"])
        for kind, vmid in (("qemu", 150), ("lxc", 151)):
            st, log = pve.end(pve.write("POST", f"/nodes/pve2/{kind}/{vmid}/status/start"))
            assert st["exitstatus"] == "storage 'thick' is not available on node 'pve2'", st
            assert log[-1] == "TASK ERROR: " + st["exitstatus"]
            assert pve.get(f"/nodes/pve2/{kind}/{vmid}/status/current")["status"] == "stopped"
    finally:
        assert stop_sim(info)[0] == 0
