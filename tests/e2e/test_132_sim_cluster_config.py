"""pvelab sim's cluster configuration as PVE's own code answers it: the
storage configuration (/storage, pve-storage's API2/Storage/Config.pm), HA
(/cluster/ha, pve-ha-manager; start/stop of an HA-managed guest become HA
requests), backup jobs (/cluster/backup, pve-manager's API2/Backup.pm) and
the firewall (pve-firewall's API2/Firewall/*.pm: digests, pos, 400s), and
their seeds and state file. Only the API is used, so the checks hold for a
real node too."""
import hashlib
import json
import os
import re
import time
import warnings

import pytest
import yaml

from simfix import start_sim, stop_sim

requests = pytest.importorskip("requests")
warnings.filterwarnings("ignore")
pytestmark = pytest.mark.filterwarnings("ignore")


class Client:
    def __init__(self, info):
        self.info = info
        self.h = {"Authorization": "PVEAPIToken=" + info["token"]}
        self.s = requests.Session()

    def req(self, method, path, /, **data):
        kw = {"params": data} if method == "GET" else {"data": data}
        return self.s.request(method, self.info["url"] + "/api2/json" + path, headers=self.h,
                              verify=False, **kw)

    def get(self, path, /, **params):
        r = self.req("GET", path, **params)
        assert r.status_code == 200, (path, r.status_code, r.reason, r.text)
        return r.json()["data"]

    def write(self, method, path, /, **data):
        r = self.req(method, path, **data)
        assert r.status_code == 200, (method, path, r.status_code, r.reason, r.text)
        return r.json()["data"]

    def fails(self, method, path, status, /, **data):
        """The call fails with status; returns (message, errors)."""
        r = self.req(method, path, **data)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        body = r.json()
        return body["message"].rstrip("\n"), body.get("errors") or {}

    def wait(self, upid):
        node = upid.split(":")[1]
        for _ in range(3000):
            st = self.get(f"/nodes/{node}/tasks/{upid}/status")
            if st["status"] == "stopped":
                return st
            time.sleep(0.01)
        raise AssertionError("task did not end: " + upid)

    def until(self, fn, what):
        for _ in range(3000):
            v = fn()
            if v:
                return v
            time.sleep(0.01)
        raise AssertionError("never happened: " + what)


@pytest.fixture
def pve(tmp_path):
    info = start_sim("--guests", "4")
    yield Client(info)
    rc, err = stop_sim(info)
    assert rc == 0, err


def vm(c, vmid):
    return [r for r in c.get("/cluster/resources", type="vm") if r["vmid"] == vmid][0]


# --- storage configuration ---

def test_storage_list_is_the_clusters_storage_cfg(pve):
    stores = {s["storage"]: s for s in pve.get("/storage")}
    assert set(stores) == {"local", "local-lvm"}
    assert stores["local-lvm"]["type"] == "lvmthin"
    assert stores["local-lvm"]["content"] == "images,rootdir"
    assert (stores["local-lvm"]["thinpool"], stores["local-lvm"]["vgname"]) == ("data", "pve")
    assert stores["local"]["path"] == "/var/lib/vz"
    # one digest for the whole file
    assert len({s["digest"] for s in stores.values()}) == 1
    assert re.fullmatch(r"[0-9a-f]{40}", stores["local"]["digest"])
    assert [s["storage"] for s in pve.get("/storage", type="dir")] == ["local"]
    assert pve.get("/storage/local-lvm") == stores["local-lvm"]


def test_storage_create_update_delete(pve):
    pve.write("POST", "/storage", storage="nas", type="nfs", server="10.0.0.5",
              export="/tank/pve", path="/mnt/pve/nas", content="iso,images,backup")
    nas = pve.get("/storage/nas")
    # content sorted, network storages shared
    assert (nas["content"], nas["shared"], nas["server"]) == ("backup,images,iso", 1, "10.0.0.5")
    assert "nas" in [s["storage"] for s in pve.get("/nodes/pve/storage")]
    assert "storage/pve/nas" in [r["id"] for r in pve.get("/cluster/resources", type="storage")]
    msg, _ = pve.fails("POST", "/storage", 500, storage="nas", type="nfs", server="x",
                       export="/x", path="/mnt/x")
    assert msg == "create storage failed: storage ID 'nas' already defined"
    # options of another type, missing required ones (SectionConfig::check_config)
    msg, _ = pve.fails("POST", "/storage", 500, storage="thin2", type="lvmthin", vgname="pve",
                       thinpool="t2", server="10.0.0.5")
    assert msg == "unexpected property 'server'"
    msg, _ = pve.fails("POST", "/storage", 500, storage="thin2", type="lvmthin", vgname="pve")
    assert msg == "missing value for required option 'thinpool'"
    # unsupported content types are dropped, 'none' only where allowed
    pve.write("POST", "/storage", storage="thin2", type="lvmthin", vgname="pve",
              thinpool="t2", content="images,iso")
    assert pve.get("/storage/thin2")["content"] == "images"
    msg, _ = pve.fails("PUT", "/storage/thin2", 500, content="iso")
    assert msg == "update storage failed: storage does not support content type 'none'"
    # digest, fixed and required options
    digest = pve.get("/storage/nas")["digest"]
    pve.write("PUT", "/storage/nas", content="backup", digest=digest)
    assert pve.get("/storage/nas")["content"] == "backup"
    msg, _ = pve.fails("PUT", "/storage/nas", 500, content="iso", digest=digest)
    assert msg == ("update storage failed: detected modified configuration - file changed "
                   "by other user? Try again.")
    msg, _ = pve.fails("PUT", "/storage/nas", 500, server="10.0.0.6")
    assert msg == "update storage failed: can't change value of fixed parameter 'server'"
    msg, _ = pve.fails("PUT", "/storage/thin2", 500, delete="thinpool")
    assert msg == "update storage failed: unable to delete required option 'thinpool'"
    msg, _ = pve.fails("PUT", "/storage/nas", 500, delete="bogus")
    assert msg == "update storage failed: no such option 'bogus'"
    msg, _ = pve.fails("PUT", "/storage/nas", 500, delete="options", options="vers=4.2")
    assert msg == ("update storage failed: cannot set and delete property 'options' at the "
                   "same time!")
    pve.write("PUT", "/storage/nas", options="vers=4.2", nodes="pve")
    assert (pve.get("/storage/nas")["options"], pve.get("/storage/nas")["nodes"]) == \
        ("vers=4.2", "pve")
    pve.write("PUT", "/storage/nas", delete="options,nodes")
    assert "options" not in pve.get("/storage/nas") and "nodes" not in pve.get("/storage/nas")
    # a PBS with its password kept out of storage.cfg
    pve.write("POST", "/storage", storage="pbs1", type="pbs", server="10.0.0.7",
              datastore="main", username="backup@pbs", password="secret",
              fingerprint="AA:" * 31 + "AA")
    pbs = pve.get("/storage/pbs1")
    assert pbs["content"] == "backup" and pbs["shared"] == 1 and "password" not in pbs
    pve.write("DELETE", "/storage/nas")
    assert "nas" not in [s["storage"] for s in pve.get("/storage")]
    msg, _ = pve.fails("DELETE", "/storage/nas", 500)
    assert msg == "delete storage failed: storage 'nas' does not exist"
    msg, _ = pve.fails("GET", "/storage/nas", 500)
    assert msg == "storage 'nas' does not exist"


def test_removing_a_storage_in_use_is_allowed_as_on_pve(pve):
    """PVE's delete refuses only a storage that is the base of another; guests
    keep their lines and their volumes become unreachable."""
    pve.write("POST", "/storage", storage="data", type="dir", path="/srv/data",
              content="images,rootdir")
    pve.write("POST", "/pools", poolid="p1")
    pve.write("PUT", "/pools/p1", storage="data")
    pve.wait(pve.write("POST", "/nodes/pve/qemu", vmid=500, scsi0="data:4"))
    assert pve.get("/nodes/pve/qemu/500/config")["scsi0"].startswith("data:500/vm-500-disk-0")
    pve.write("DELETE", "/storage/data")
    assert pve.get("/nodes/pve/qemu/500/config")["scsi0"].startswith("data:500/vm-500-disk-0")
    msg, _ = pve.fails("GET", "/nodes/pve/storage/data/status", 500)
    assert msg == "storage 'data' does not exist"
    # PVE::AccessControl::remove_storage_access: it leaves its pools
    assert pve.get("/pools/p1")["members"] == []
    # 'local' always comes back (PVE::Storage::Plugin::parse_config)
    pve.write("DELETE", "/storage/local")
    local = pve.get("/storage/local")
    assert (local["type"], local["path"]) == ("dir", "/var/lib/vz")
    assert local["content"] == "backup,images,iso,rootdir,snippets,vztmpl"


# --- HA ---

def ha_resources(c):
    return {r["sid"]: r for r in c.get("/cluster/ha/resources")}


def test_ha_start_and_stop_become_ha_requests(pve):
    pve.wait(pve.write("POST", "/nodes/pve/qemu/100/status/stop"))
    assert "hastate" not in vm(pve, 100)
    pve.write("POST", "/cluster/ha/resources", sid="vm:100", state="stopped", comment="web")
    res = ha_resources(pve)["vm:100"]
    assert {k: res[k] for k in ("sid", "type", "state", "comment")} == \
        {"sid": "vm:100", "type": "vm", "state": "stopped", "comment": "web"}
    assert re.fullmatch(r"[0-9a-f]{40}", res["digest"])
    assert pve.get("/cluster/ha/resources/100")["sid"] == "vm:100"
    assert vm(pve, 100)["hastate"] == "stopped"
    # the exporter's pve_ha_state reads hastate; nodes get theirs too
    assert all(n["hastate"] == "online" for n in pve.get("/cluster/resources", type="node"))

    upid = pve.write("POST", "/nodes/pve/qemu/100/status/start")
    assert ":hastart:100:" in upid
    st = pve.wait(upid)
    assert st["exitstatus"] == "OK"
    log = [line["t"] for line in pve.get(f"/nodes/pve/tasks/{upid}/log")]
    assert log == ["Requesting HA start for VM 100", "TASK OK"]
    # the guest is started by the LRM afterwards, in its own task
    lrm = pve.until(lambda: [t for t in pve.get("/nodes/pve/tasks", vmid=100, typefilter="qmstart")
                             if t["user"] == "root@pam"], "LRM start task")
    assert lrm[0]["starttime"] >= st["endtime"]
    pve.until(lambda: vm(pve, 100)["status"] == "running", "guest runs")
    assert vm(pve, 100)["hastate"] == "started"
    assert ha_resources(pve)["vm:100"]["state"] == "started"

    msg, errors = pve.fails("POST", "/nodes/pve/qemu/100/status/stop", 400,
                            **{"overrule-shutdown": 1})
    assert errors == {"overrule-shutdown": "Not applicable for HA resources."}
    upid = pve.write("POST", "/nodes/pve/qemu/100/status/shutdown")
    assert ":hastop:100:" in upid
    assert pve.wait(upid)["exitstatus"] == "OK"
    assert [line["t"] for line in pve.get(f"/nodes/pve/tasks/{upid}/log")][0] == \
        "Requesting HA stop for VM 100"
    pve.until(lambda: vm(pve, 100)["status"] == "stopped", "guest stops")
    pve.until(lambda: vm(pve, 100)["hastate"] == "stopped", "hastate stopped")
    services = {s["sid"]: s for s in pve.get("/cluster/ha/status/current") if s["type"] == "service"}
    assert services["vm:100"]["request_state"] == "stopped"

    # ignored: behaves as not HA managed
    pve.write("PUT", "/cluster/ha/resources/vm:100", state="ignored")
    upid = pve.write("POST", "/nodes/pve/qemu/100/status/start")
    assert ":qmstart:100:" in upid
    pve.wait(upid)
    assert vm(pve, 100)["hastate"] == "ignored"
    pve.write("DELETE", "/cluster/ha/resources/vm:100")
    assert "hastate" not in vm(pve, 100)
    msg, _ = pve.fails("DELETE", "/cluster/ha/resources/vm:100", 500)
    assert msg == "cannot delete service 'vm:100', not HA managed!"


def test_ha_resource_errors_rules_and_groups(pve):
    msg, _ = pve.fails("POST", "/cluster/ha/resources", 500, sid="vm:999")
    assert msg == "resource 'vm:999' does not exist in cluster"
    msg, _ = pve.fails("POST", "/cluster/ha/resources", 500, sid="ct:100")
    assert msg == "resource 'ct:100' - guest with ID 100 is not a container"
    msg, _ = pve.fails("POST", "/cluster/ha/resources", 500, sid="999")
    assert msg == "unable to detect SID from VMID - VM/CT 999 does not exist"
    pve.write("POST", "/cluster/ha/resources", sid="101", state="started")
    msg, _ = pve.fails("POST", "/cluster/ha/resources", 500, sid="vm:101")
    assert msg == "create resource failed: resource ID 'vm:101' already defined"
    msg, _ = pve.fails("POST", "/cluster/ha/resources", 500, sid="vm:102", group="g1")
    assert msg == "invalid parameter 'group': ha groups have been migrated to rules"
    msg, _ = pve.fails("GET", "/cluster/ha/groups", 500)
    assert msg == "cannot index groups: ha groups have been migrated to rules"
    digest = ha_resources(pve)["vm:101"]["digest"]
    pve.write("PUT", "/cluster/ha/resources/vm:101", max_restart=3, digest=digest)
    assert ha_resources(pve)["vm:101"]["max_restart"] == 3
    msg, _ = pve.fails("PUT", "/cluster/ha/resources/vm:101", 500, comment="x", digest=digest)
    assert msg.endswith("detected modified configuration - file changed by other user? Try again.")
    # PVE 9 rules: resources must be HA managed; a purged resource leaves them
    msg, _ = pve.fails("POST", "/cluster/ha/rules", 500, rule="keep", type="node-affinity",
                       resources="vm:101,vm:102", nodes="pve")
    assert msg == "create ha rule failed: cannot use unmanaged resource(s) vm:102."
    pve.write("POST", "/cluster/ha/rules", rule="keep", type="node-affinity",
              resources="vm:101", nodes="pve")
    rule = pve.get("/cluster/ha/rules/keep")
    assert (rule["rule"], rule["type"], rule["resources"]) == ("keep", "node-affinity", "vm:101")
    pve.write("DELETE", "/cluster/ha/resources/vm:101")
    assert pve.get("/cluster/ha/rules") == []


def test_ha_groups_on_pve8():
    info = start_sim("--pve-version", "8.4", "--guests", "2")
    try:
        c = Client(info)
        c.write("POST", "/cluster/ha/groups", group="prefer1", nodes="pve:2")
        groups = c.get("/cluster/ha/groups")
        assert [(g["group"], g["nodes"]) for g in groups] == [("prefer1", "pve:2")]
        c.write("POST", "/cluster/ha/resources", sid="vm:100", group="prefer1")
        assert ha_resources(c)["vm:100"]["group"] == "prefer1"
        msg, _ = c.fails("PUT", "/cluster/ha/resources/vm:100", 500, group="nope")
        assert msg == "HA group 'nope' does not exist"
        msg, _ = c.fails("DELETE", "/cluster/ha/groups/prefer1", 500)
        assert msg == "delete ha group failed: ha group is used by service 'vm:100'"
    finally:
        rc, err = stop_sim(info)
    assert rc == 0, err


# --- backup jobs ---

def test_backup_jobs(pve):
    pve.write("POST", "/cluster/backup", schedule="mon..fri 02:30", storage="local",
              vmid="100,101", mode="snapshot", compress="zstd",
              **{"prune-backups": "keep-daily=7,keep-weekly=4"})
    jobs = pve.get("/cluster/backup")
    assert len(jobs) == 1
    job = jobs[0]
    # PVE generates the id with UUID::uuid()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", job["id"])
    assert {k: job[k] for k in ("type", "schedule", "enabled", "vmid", "storage", "mode")} == \
        {"type": "vzdump", "schedule": "mon..fri 02:30", "enabled": 1, "vmid": "100,101",
         "storage": "local", "mode": "snapshot"}
    assert pve.get("/cluster/backup/" + job["id"])["prune-backups"] == "keep-daily=7,keep-weekly=4"
    for good in ("daily", "sat 02:00", "*-*-1 03:00", "mon..fri *:0/15", "*/15", "02:30",
                 "2026-12-24 18:00", "sun,wed 22:00 UTC", "monthly"):
        pve.write("POST", "/cluster/backup", id="ok" + hashlib.sha1(good.encode()).hexdigest()[:8],
                  schedule=good, all=1)
    # "25:00" is minute 25, second 0 for proxmox-time's parser; "24:00:00" is not
    pve.write("POST", "/cluster/backup", id="minute25", schedule="25:00", all=1)
    for bad in ("02:70", "someday", "mon..fri 24:00:00", "1..", "*-13-01", "fri..mon.."):
        msg, errors = pve.fails("POST", "/cluster/backup", 400, schedule=bad, all=1)
        assert errors == {"schedule": f"invalid calendar event '{bad}' - unable to parse "
                          "calendar event"}, errors
    _, errors = pve.fails("POST", "/cluster/backup", 400, all=1)
    assert errors == {"schedule": "neither 'starttime' nor 'schedule' were set"}
    _, errors = pve.fails("POST", "/cluster/backup", 400, schedule="daily", all=1, vmid="100")
    assert errors == {"all": "option conflicts with option 'vmid'"}
    _, errors = pve.fails("POST", "/cluster/backup", 400, schedule="daily", storage="local")
    assert errors == {"vmid": "property is missing"}
    # deprecated starttime/dow become a schedule
    pve.write("POST", "/cluster/backup", id="legacy", starttime="03:15", dow="sat,sun", all=1)
    assert pve.get("/cluster/backup/legacy")["schedule"] == "sat,sun 03:15"
    msg, _ = pve.fails("POST", "/cluster/backup", 500, id="legacy", schedule="daily", all=1)
    assert msg == "Job 'legacy' already exists"
    # update: the selection this call sets wins
    pve.write("PUT", "/cluster/backup/legacy", vmid="102", enabled=0, comment="weekend")
    legacy = pve.get("/cluster/backup/legacy")
    assert (legacy["vmid"], legacy["enabled"], "all" in legacy) == ("102", 0, False)
    pve.write("PUT", "/cluster/backup/legacy", delete="comment")
    assert "comment" not in pve.get("/cluster/backup/legacy")
    _, errors = pve.fails("PUT", "/cluster/backup/legacy", 400, delete="bogus")
    assert errors == {"delete": "unknown option 'bogus'"}
    msg, _ = pve.fails("PUT", "/cluster/backup/nojob", 500, enabled=1)
    assert msg == "no such vzdump job"
    pve.write("DELETE", "/cluster/backup/legacy")
    _, errors = pve.fails("DELETE", "/cluster/backup/legacy", 400)
    assert errors == {"id": "No such job 'legacy'"}
    _, errors = pve.fails("GET", "/cluster/backup/legacy", 400)
    assert errors == {"id": "No such job 'legacy'"}


def test_not_backed_up(pve):
    names = {r["vmid"]: r["name"] for r in pve.get("/cluster/resources", type="vm")}

    def missing():
        return sorted(g["vmid"] for g in pve.get("/cluster/backup-info/not-backed-up"))
    assert missing() == [100, 101, 102, 103]
    entry = [g for g in pve.get("/cluster/backup-info/not-backed-up") if g["vmid"] == 103][0]
    assert entry == {"vmid": 103, "type": "qemu", "name": names[103]}
    pve.write("POST", "/cluster/backup", id="some", schedule="daily", vmid="100")
    assert missing() == [101, 102, 103]
    pve.write("POST", "/pools", poolid="web")
    pve.write("PUT", "/pools/web", vms="101")
    # disabled jobs count: BackupInfo.pm reads every vzdump job
    pve.write("POST", "/cluster/backup", id="pool", schedule="daily", pool="web", enabled=0)
    assert missing() == [102, 103]
    pve.write("POST", "/cluster/backup", id="rest", schedule="daily", exclude="103")
    assert pve.get("/cluster/backup/rest")["all"] == 1
    assert missing() == [103]
    pve.write("PUT", "/cluster/backup/rest", node="other")
    assert missing() == [102, 103]


# --- firewall ---

def pve_digest(entries):
    """PVE::Firewall::copy_list_with_digest, reimplemented: SHA-1 of each
    entry's sorted 'key:value\\n' lines."""
    sha = hashlib.sha1()
    for e in entries:
        for k in sorted(e):
            if k in ("pos", "digest"):
                continue
            sha.update(f"{k}:{e[k]}\n".encode())
    return sha.hexdigest()


def test_firewall_rules_order_digest_and_moves(pve):
    R = "/cluster/firewall/rules"
    pve.write("POST", R, type="in", action="ACCEPT", proto="tcp", dport="22", comment="ssh")
    pve.write("POST", R, type="in", action="ACCEPT", macro="https", enable=1)
    pve.write("POST", R, type="in", action="DROP", source="10.0.0.0/8", pos=2)
    rules = pve.get(R)
    # register_create_rule unshifts: the newest rule is first, pos is ignored
    assert [r["pos"] for r in rules] == [0, 1, 2]
    assert [r.get("source") or r.get("macro") or r.get("dport") for r in rules] == \
        ["10.0.0.0/8", "HTTPS", "22"]
    # enable defaults to 0 on create; macro names normalised
    assert [r["enable"] for r in rules] == [0, 1, 0]
    assert rules[0]["ipversion"] == 4
    digest = rules[0]["digest"]
    assert {r["digest"] for r in rules} == {digest}
    assert digest == pve_digest(rules)
    assert pve.get(R + "/2")["comment"] == "ssh"
    msg, _ = pve.fails("GET", R + "/3", 500)
    assert msg == "no rule at position 3"
    # moveto: before the rule now at that position
    pve.write("PUT", R + "/2", moveto=0, digest=digest)
    assert [r.get("dport") for r in pve.get(R)] == ["22", None, None]
    msg, _ = pve.fails("PUT", R + "/0", 500, enable=1, digest=digest)
    assert msg == "detected modified configuration - file changed by other user? Try again."
    msg, _ = pve.fails("DELETE", R + "/0", 500, digest=digest)
    assert msg.endswith("detected modified configuration - file changed by other user? Try again.")
    pve.write("PUT", R + "/0", moveto=5)
    assert [r.get("dport") for r in pve.get(R)] == [None, None, "22"]
    pve.write("PUT", R + "/2", enable=1, dport="2222", delete="comment")
    last = pve.get(R + "/2")
    assert (last["enable"], last["dport"], "comment" in last) == (1, "2222", False)
    pve.write("DELETE", R + "/0", digest=pve.get(R)[0]["digest"])
    assert len(pve.get(R)) == 2
    msg, _ = pve.fails("DELETE", R + "/7", 500)
    assert msg == "no rule at position 7"


@pytest.mark.parametrize("params,errors", [
    ({"macro": "Nope"}, {"macro": "unknown macro 'Nope'"}),
    ({"proto": "tcp", "dport": "90:80"},
     {"dport": "backwards range '90:80' not allowed, did you mean '80:90'?"}),
    ({"proto": "tcp", "dport": "70000"}, {"dport": "invalid port '70000'"}),
    ({"dport": "80"}, {"proto": "missing property - 'dport' requires this property"}),
    ({"proto": "gre", "dport": "80"}, {"dport": "protocol 'gre' does not support ports"}),
    ({"proto": "nosuch"}, {"proto": "unknown protocol 'nosuch'"}),
    ({"source": "+nope"}, {"source": "no such ipset 'nope'"}),
    ({"dest": "nas"}, {"dest": "no such alias 'nas'"}),
    ({"action": "MAYBE"}, {"action": "unknown action 'MAYBE'"}),
    ({"type": "forward", "action": "REJECT"},
     {"action": "cannot define REJECT rules on forward chain"}),
])
def test_firewall_rule_400s(pve, params, errors):
    data = {"type": "in", "action": "ACCEPT", **params}
    msg, errs = pve.fails("POST", "/cluster/firewall/rules", 400, **data)
    assert (msg, errs) == ("Parameter verification failed.", errors)


def test_firewall_groups_ipsets_aliases_options(pve):
    C = "/cluster/firewall"
    pve.write("PUT", C + "/options", enable=1, policy_in="DROP")
    opts = pve.get(C + "/options")
    assert (opts["enable"], opts["policy_in"]) == (1, "DROP")
    assert opts["digest"] == hashlib.sha1(b"enable:1\npolicy_in:DROP\n").hexdigest()
    msg, _ = pve.fails("PUT", C + "/options", 500, policy_out="DROP", digest="0" * 40)
    assert msg.endswith("detected modified configuration - file changed by other user? Try again.")
    _, errors = pve.fails("PUT", C + "/options", 400, delete="bogus")
    assert errors == {"delete": "no such option 'bogus'"}
    pve.write("PUT", C + "/options", delete="policy_in")
    assert "policy_in" not in pve.get(C + "/options")

    pve.write("POST", C + "/aliases", name="NAS", cidr="192.168.1.5", comment="storage")
    alias = pve.get(C + "/aliases/nas")
    assert (alias["name"], alias["cidr"], alias["ipversion"]) == ("NAS", "192.168.1.5", 4)
    _, errors = pve.fails("POST", C + "/aliases", 400, name="nas", cidr="10.0.0.1")
    assert errors == {"name": "alias 'nas' already exists"}
    pve.write("PUT", C + "/aliases/nas", cidr="192.168.1.6", rename="nas2")
    assert [a["name"] for a in pve.get(C + "/aliases")] == ["nas2"]

    pve.write("POST", C + "/ipset", name="mgmt", comment="admins")
    pve.write("POST", C + "/ipset/mgmt", cidr="10.0.0.0/24")
    pve.write("POST", C + "/ipset/mgmt", cidr="nas2", nomatch=1)
    entries = pve.get(C + "/ipset/mgmt")
    assert [(e["cidr"], e.get("nomatch")) for e in entries] == [("10.0.0.0/24", None),
                                                                 ("nas2", 1)]
    assert entries[0]["digest"] == pve_digest(entries)
    _, errors = pve.fails("POST", C + "/ipset/mgmt", 400, cidr="10.0.0.0/24")
    assert errors == {"cidr": "address '10.0.0.0/24' already exists"}
    _, errors = pve.fails("POST", C + "/ipset/mgmt", 400, cidr="0.0.0.0/0")
    assert errors == {"cidr": "a zero prefix is not allowed in ipset entries"}
    msg, _ = pve.fails("DELETE", C + "/ipset/mgmt", 500)
    assert msg == "IPSet 'mgmt' is not empty"
    _, errors = pve.fails("GET", C + "/ipset/mgmt/10.9.9.9", 400)
    assert errors == {"cidr": "no such IP/Network"}

    pve.write("POST", C + "/groups", group="webserver", comment="http")
    pve.write("POST", C + "/groups/webserver", type="in", action="ACCEPT", macro="HTTP",
              source="+mgmt", enable=1)
    assert [r["macro"] for r in pve.get(C + "/groups/webserver")] == ["HTTP"]
    _, errors = pve.fails("POST", C + "/groups/webserver", 400, type="group", action="other")
    assert errors == {"type": "invalid rule type 'group' for rule_env 'group'"}
    _, errors = pve.fails("POST", C + "/groups", 400, group="webserver")
    assert errors == {"group": "Security group 'webserver' already exists"}
    msg, _ = pve.fails("DELETE", C + "/groups/webserver", 500)
    assert msg == "Security group 'webserver' is not empty"
    assert [g["group"] for g in pve.get(C + "/groups")] == ["webserver"]

    # a guest: its own options, rules with net<N> interfaces and the group
    G = "/nodes/pve/qemu/100/firewall"
    pve.write("PUT", G + "/options", enable=1, policy_in="DROP", ipfilter=1)
    assert pve.get(G + "/options")["ipfilter"] == 1
    pve.write("POST", G + "/rules", type="group", action="webserver", iface="net0", enable=1)
    assert pve.get(G + "/rules")[0]["action"] == "webserver"
    _, errors = pve.fails("POST", G + "/rules", 400, type="in", action="ACCEPT", iface="eth0")
    assert errors == {"iface": "value does not match the regex pattern 'net\\d+'"}
    msg, _ = pve.fails("PUT", G + "/rules/0", 500, enable=0, digest="0" * 40)
    assert msg == "detected modified configuration - file changed by other user? Try again."
    msg, _ = pve.fails("GET", "/nodes/pve/qemu/999/firewall/rules", 500)
    assert "does not exist" in msg
    # a node: host.fw
    pve.write("POST", "/nodes/pve/firewall/rules", type="in", action="ACCEPT", macro="SSH",
              source="10.0.0.0/24", enable=1)
    assert pve.get("/nodes/pve/firewall/rules")[0]["macro"] == "SSH"
    assert "SSH" in [m["macro"] for m in pve.get(C + "/macros")]


# --- seeds and the state file ---

SEED = {
    "nodes": ["pve1", "pve2"],
    "storages": [
        {"id": "local", "type": "dir", "content": "iso,vztmpl,backup", "path": "/var/lib/vz"},
        {"id": "local-lvm", "type": "lvmthin", "content": "images,rootdir",
         "vgname": "vg0", "thinpool": "thin"},
        {"id": "nas", "type": "nfs", "content": "backup", "server": "192.168.1.20",
         "export": "/volume1/pve", "options": "vers=4.1"},
    ],
    "guests": [
        {"vmid": 100, "node": "pve1", "config": {"name": "web", "scsi0": "local-lvm:4"}},
        {"vmid": 101, "node": "pve2", "config": {"name": "db", "scsi0": "local-lvm:4"}},
    ],
    "ha": {"resources": [{"sid": "vm:100", "state": "started", "max_restart": 2}]},
    "backup_jobs": [{"id": "nightly", "schedule": "02:00", "storage": "nas", "vmid": "100",
                     "mode": "snapshot"}],
    "firewall": {
        "options": {"enable": 1},
        "aliases": {"nas": {"cidr": "192.168.1.20"}},
        "ipset": {"admins": {"entries": ["10.0.0.0/24"]}},
        "groups": {"web": {"rules": [{"type": "in", "action": "ACCEPT", "macro": "HTTPS"}]}},
        "rules": [{"type": "in", "action": "ACCEPT", "macro": "SSH", "source": "+admins"}],
        "nodes": {"pve1": {"rules": [{"type": "in", "action": "DROP", "proto": "tcp",
                                      "dport": "111"}]}},
        "guests": {"100": {"options": {"enable": 1},
                           "rules": [{"type": "group", "action": "web", "iface": "net0"}]}},
    },
}


def check_seeded(c):
    nas = c.get("/storage/nas")
    assert (nas["server"], nas["export"], nas["options"], nas["shared"]) == \
        ("192.168.1.20", "/volume1/pve", "vers=4.1", 1)
    assert c.get("/storage/local-lvm")["vgname"] == "vg0"
    assert ha_resources(c)["vm:100"]["max_restart"] == 2
    assert vm(c, 100)["hastate"] == "started" and vm(c, 100)["status"] == "running"
    assert "hastate" not in vm(c, 101)
    assert [j["id"] for j in c.get("/cluster/backup")] == ["nightly"]
    assert [g["vmid"] for g in c.get("/cluster/backup-info/not-backed-up")] == [101]
    assert c.get("/cluster/firewall/options")["enable"] == 1
    assert c.get("/cluster/firewall/rules")[-1]["source"] == "+admins"
    assert c.get("/cluster/firewall/rules")[-1]["enable"] == 1
    assert c.get("/cluster/firewall/aliases/nas")["cidr"] == "192.168.1.20"
    assert [e["cidr"] for e in c.get("/cluster/firewall/ipset/admins")] == ["10.0.0.0/24"]
    assert c.get("/cluster/firewall/groups/web")[0]["macro"] == "HTTPS"
    assert c.get("/nodes/pve1/firewall/rules")[0]["dport"] == "111"
    assert c.get("/nodes/pve1/qemu/100/firewall/rules")[0]["action"] == "web"


def test_seed_and_state_file(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(SEED))
    state = tmp_path / "state.json"
    info = start_sim("--seed", seed, "--state-file", state)
    try:
        c = Client(info)
        check_seeded(c)
        c.write("POST", "/cluster/firewall/rules", type="out", action="DROP", dport="25",
                proto="tcp")
        c.write("PUT", "/storage/nas", content="backup,iso")
    finally:
        rc, err = stop_sim(info)
    assert rc == 0, err
    saved = json.loads(state.read_text())
    assert saved["backup_jobs"][0]["id"] == "nightly"
    info = start_sim("--state-file", state)
    try:
        c = Client(info)
        check_seeded(c)
        assert c.get("/cluster/firewall/rules")[0]["dport"] == "25"
        assert c.get("/storage/nas")["content"] == "backup,iso"
    finally:
        rc, err = stop_sim(info)
    assert rc == 0, err


def refused_seed(path):
    """The simulator's start-up error for a seed; a simulator that starts
    anyway is stopped and the test fails."""
    try:
        info = start_sim("--seed", path)
    except RuntimeError as e:
        return str(e)
    stop_sim(info)
    raise AssertionError(f"seed {path} was accepted")


def test_seed_errors(tmp_path):
    bad = dict(SEED, backup_jobs=[{"id": "x", "schedule": "24:00:00", "all": 1}])
    seed = tmp_path / "bad.yaml"
    seed.write_text(yaml.safe_dump(bad))
    assert "backup_jobs[0]: not a calendar event '24:0" in refused_seed(seed)
    bad = dict(SEED, ha={"resources": [{"sid": "vm:555"}]})
    seed.write_text(yaml.safe_dump(bad))
    assert "HA resource 'vm:555' names no guest" in refused_seed(seed)


def test_destroy_of_a_configured_guest(pve):
    """qemu-server's destroy: refused for an HA resource without purge; the
    firewall file always goes; purge also takes the guest out of HA, its rules
    and the backup jobs."""
    pve.wait(pve.write("POST", "/nodes/pve/qemu/102/status/stop"))
    pve.wait(pve.write("POST", "/nodes/pve/qemu/103/status/stop"))
    pve.write("POST", "/cluster/ha/resources", sid="vm:102", state="stopped")
    pve.write("POST", "/cluster/ha/resources", sid="vm:101", state="started")
    pve.write("POST", "/cluster/ha/rules", rule="pair", type="resource-affinity",
              resources="vm:101,vm:102", affinity="positive")
    pve.write("POST", "/cluster/backup", id="two", schedule="daily", vmid="102,103")
    pve.write("POST", "/cluster/backup", id="only", schedule="daily", vmid="102")
    pve.write("POST", "/cluster/backup", id="most", schedule="daily", exclude="102")
    pve.write("POST", "/nodes/pve/qemu/103/firewall/rules", type="in", action="DROP")
    msg, _ = pve.fails("DELETE", "/nodes/pve/qemu/102", 500)
    assert msg == "unable to remove VM 102 - used in HA resources and purge parameter not set."
    assert pve.wait(pve.write("DELETE", "/nodes/pve/qemu/102", purge=1))["exitstatus"] == "OK"
    assert set(ha_resources(pve)) == {"vm:101"}
    assert pve.get("/cluster/ha/rules/pair")["resources"] == "vm:101"
    jobs = {j["id"]: j for j in pve.get("/cluster/backup")}
    assert set(jobs) == {"two", "most"}
    assert jobs["two"]["vmid"] == "103" and "exclude" not in jobs["most"]
    # without purge the jobs keep the guest; its firewall file goes anyway
    assert pve.wait(pve.write("DELETE", "/nodes/pve/qemu/103"))["exitstatus"] == "OK"
    assert pve.get("/cluster/backup/two")["vmid"] == "103"
    pve.wait(pve.write("POST", "/nodes/pve/qemu", vmid=103))
    assert pve.get("/nodes/pve/qemu/103/firewall/rules") == []
