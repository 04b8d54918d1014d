"""pvelab sim driven by an unchanged real client: Debian's python3-proxmoxer,
with password (ticket + CSRF) and API-token auth; VM and CT life cycles and
PVE's error shapes."""
import time
import warnings

import pytest

from simfix import sim, start_sim, stop_sim  # noqa: F401  (fixture)

proxmoxer = pytest.importorskip("proxmoxer")
from proxmoxer import ProxmoxAPI  # noqa: E402
from proxmoxer.core import ResourceException  # noqa: E402

warnings.filterwarnings("ignore")
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def api_password(info, password=None):
    return ProxmoxAPI(info["host"], port=info["port"], user="root@pam",
                      password=password or info["password"], verify_ssl=False)


def api_token(info, which="token"):
    user_tok, secret = info[which].rsplit("=", 1)
    user, name = user_tok.split("!")
    return ProxmoxAPI(info["host"], port=info["port"], user=user, token_name=name,
                      token_value=secret, verify_ssl=False)


def raw(info, method, path, token="token", **kw):
    """A plain requests call, to see bodies proxmoxer does not expose."""
    import requests
    return requests.request(method, info["url"] + "/api2/json" + path, verify=False,
                            headers={"Authorization": "PVEAPIToken=" + info[token]}, **kw)


def wait(api, node, upid, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        st = api.nodes(node).tasks(upid).status.get()
        if st["status"] == "stopped":
            return st
        time.sleep(0.02)
    raise AssertionError(f"task {upid} did not finish")


def test_nodes_and_version(sim):
    api = api_password(sim)
    assert api.version.get()["release"] == "9.1"
    nodes = api.nodes.get()
    assert [n["node"] for n in nodes] == ["pve"]
    assert nodes[0]["status"] == "online"
    st = api.nodes("pve").status.get()
    assert st["memory"]["total"] > 0 and "cpuinfo" in st


@pytest.fixture
def slow_sim():
    """Tasks long enough that the lock they hold is seen even on a busy machine."""
    info = start_sim("--task-ms", "600")
    yield info
    assert stop_sim(info)[0] == 0


def test_vm_life_cycle_password(slow_sim):
    sim = slow_sim
    api = api_password(sim)
    node = api.nodes("pve")
    vmid = int(api.cluster.nextid.get())
    upid = node.qemu.create(vmid=vmid, name="web", memory=2048, cores=2,
                            scsi0="local-lvm:32", net0="virtio,bridge=vmbr0",
                            scsihw="virtio-scsi-single")
    assert upid.startswith(f"UPID:pve:") and f":qmcreate:{vmid}:root@pam:" in upid
    assert wait(api, "pve", upid)["exitstatus"] == "OK"
    conf = node.qemu(vmid).config.get()
    assert conf["scsi0"] == f"local-lvm:vm-{vmid}-disk-0,size=32G"
    assert conf["net0"].startswith("virtio=BC:24:11:") and conf["net0"].endswith(",bridge=vmbr0")
    assert conf["cores"] == 2 and len(conf["digest"]) == 40
    vols = node.storage("local-lvm").content.get(vmid=vmid)
    assert vols[0]["volid"] == f"local-lvm:vm-{vmid}-disk-0" and vols[0]["size"] == 32 << 30

    assert wait(api, "pve", node.qemu(vmid).status.start.post())["exitstatus"] == "OK"
    cur = node.qemu(vmid).status.current.get()
    assert cur["status"] == "running" and cur["qmpstatus"] == "running"

    # hotplug: net applies at once, cpu type waits for a restart
    node.qemu(vmid).config.put(net1="virtio,bridge=vmbr0", cpu="host")
    conf = node.qemu(vmid).config.get(current=1)
    assert "net1" in conf and "cpu" not in conf
    pending = {p["key"]: p for p in node.qemu(vmid).pending.get()}
    assert pending["cpu"]["pending"] == "host"

    upid = node.qemu(vmid).snapshot.post(snapname="before", description="first")
    # the guest is locked while the snapshot task runs
    with pytest.raises(ResourceException) as e:
        node.qemu(vmid).config.put(name="x")
    assert e.value.status_code == 500 and "VM is locked (snapshot)" in str(e.value)
    wait(api, "pve", upid)
    snaps = [s["name"] for s in node.qemu(vmid).snapshot.get()]
    assert snaps == ["before", "current"]
    node.qemu(vmid).config.put(name="changed")
    wait(api, "pve", node.qemu(vmid).snapshot("before").rollback.post())
    assert node.qemu(vmid).config.get()["name"] == "web"
    wait(api, "pve", node.qemu(vmid).snapshot("before").delete())
    assert [s["name"] for s in node.qemu(vmid).snapshot.get()] == ["current"]

    if node.qemu(vmid).status.current.get()["status"] == "running":
        wait(api, "pve", node.qemu(vmid).status.stop.post())
    assert node.qemu(vmid).status.current.get()["status"] == "stopped"
    wait(api, "pve", node.qemu(vmid).delete(purge=1))
    assert vmid not in [v["vmid"] for v in node.qemu.get()]
    assert node.storage("local-lvm").content.get(vmid=vmid) == []
    tasks = node.tasks.get(vmid=vmid, limit=100)
    assert {t["type"] for t in tasks} >= {"qmcreate", "qmstart", "qmsnapshot", "qmdestroy"}


def test_ct_life_cycle_token(sim):
    api = api_token(sim)
    node = api.nodes("pve")
    with pytest.raises(ResourceException) as e:
        node.lxc.create(vmid=200, ostemplate="local:vztmpl/nope.tar.zst")
    assert e.value.status_code == 500 and "does not exist" in str(e.value)
    upid = node.lxc.create(vmid=200, ostemplate=TEMPLATE, hostname="ct1", memory=512,
                           rootfs="local-lvm:8", net0="name=eth0,bridge=vmbr0,ip=dhcp")
    assert ":vzcreate:200:root@pam!pvelab:" in upid
    wait(api, "pve", upid)
    conf = node.lxc(200).config.get()
    assert conf["rootfs"] == "local-lvm:vm-200-disk-0,size=8G"
    assert "hwaddr=BC:24:11:" in conf["net0"] and conf["ostype"] == "debian"
    wait(api, "pve", node.lxc(200).status.start.post())
    assert node.lxc(200).status.current.get()["status"] == "running"
    wait(api, "pve", node.lxc(200).snapshot.post(snapname="s1"))
    wait(api, "pve", node.lxc(200).snapshot("s1").rollback.post())
    assert node.lxc(200).status.current.get()["status"] == "stopped"
    with pytest.raises(ResourceException) as e:
        node.lxc(200).status.stop.post()
    assert "CT 200 not running" in str(e.value)
    wait(api, "pve", node.lxc(200).delete())
    with pytest.raises(ResourceException) as e:
        node.lxc(200).status.current.get()
    assert e.value.status_code == 500
    assert "Configuration file 'nodes/pve/lxc/200.conf' does not exist" in str(e.value)


def test_error_shapes(sim):
    api = api_password(sim)
    with pytest.raises(ResourceException) as e:
        api.cluster.nextid.get(vmid=99)
    assert e.value.status_code == 400
    assert e.value.content == "Parameter verification failed."
    r = raw(sim, "GET", "/cluster/nextid", params={"vmid": 99})
    assert r.status_code == 400 and r.reason == "Parameter verification failed."
    assert r.json() == {"data": None, "message": "Parameter verification failed.\n",
                        "errors": {"vmid": "invalid format - value does not look like a "
                                           "valid VM ID\n"}}
    r = raw(sim, "POST", "/nodes/pve/qemu", data={"vmid": 300, "bogus": 1})
    assert r.json()["errors"] == {"bogus": "property is not defined in schema and the "
                                           "schema does not allow additional properties"}
    r = raw(sim, "POST", "/nodes/pve/qemu", data={"vmid": 300, "cores": "lots"})
    assert r.json()["errors"] == {"cores": "type check ('integer') failed - got 'lots'"}
    r = raw(sim, "POST", "/nodes/pve/qemu", data={"vmid": 300, "net0": "virtio,tag=99999"})
    assert r.status_code == 400 and "tag" in r.json()["errors"]["net0"]
    r = raw(sim, "POST", "/nodes/pve/qemu", json={"vmid": 300, "ostype": "plan9"})
    assert "enumeration" in r.json()["errors"]["ostype"]
    r = raw(sim, "POST", "/nodes/pve/qemu", data={})
    assert r.json()["errors"] == {"vmid": "property is missing and it is not optional"}
    with pytest.raises(ResourceException) as e:
        api.nodes("pve").qemu.create(vmid=300, memory="lots")
    assert e.value.status_code == 400
    wait(api, "pve", api.nodes("pve").qemu.create(vmid=300))
    with pytest.raises(ResourceException) as e:
        api.nodes("pve").qemu.create(vmid=300)
    assert e.value.status_code == 500
    assert e.value.content == "unable to create VM 300 - VM 300 already exists on node 'pve'"
    with pytest.raises(ResourceException) as e:
        api.nodes("pve").frobnicate.get()
    assert e.value.status_code == 501
    assert e.value.content == "Method 'GET /nodes/pve/frobnicate' not implemented"
    # read-only token: reads work, writes get 403
    ro = api_token(sim, "readonly_token")
    assert ro.nodes("pve").qemu.get()[0]["vmid"] == 300
    with pytest.raises(ResourceException) as e:
        ro.nodes("pve").qemu(300).status.start.post()
    assert e.value.status_code == 403
    assert e.value.content.startswith("Permission check failed (/vms/300, VM.PowerMgmt")
    # wrong password / wrong token: 401
    with pytest.raises(Exception) as e:
        api_password(sim, password="wrong")
    assert "authenticat" in str(e.value).lower() or "401" in str(e.value)
    bad = dict(sim, token=sim["token"][:-4] + "0000")
    with pytest.raises(ResourceException) as e:
        api_token(bad).version.get()
    assert e.value.status_code == 401


def test_faults_are_deterministic():
    def run_once():
        info = start_sim("--faults", "error=0.5", "--rng-seed", "42")
        try:
            api = api_token(info)
            out = []
            for _ in range(12):
                try:
                    api.version.get()
                    out.append("ok")
                except ResourceException as e:
                    out.append(e.status_code)
            return out
        finally:
            stop_sim(info)
    a, b = run_once(), run_once()
    assert a == b and "ok" in a and 500 in a
