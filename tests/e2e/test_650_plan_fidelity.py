"""The plan shows exactly what apply does (issue 15, part D): the steps of
every change (and apply carries out those steps, change by change), reboots
under --reboot, clone sources resolved at plan time, migrations checked
against the target node's storages (the simulator refuses them too), disk
shrinks blocked (never a replace), and create lines uncut when piped."""
import json
import time
import urllib.parse

import pytest

requests = pytest.importorskip("requests")

from plancheck import assert_steps_match, assert_summary_matches_lines
from simfix import start_sim, stop_sim
from test_600_plan_apply import Lab, TEMPLATE

# Flags every apply of this file passes. Part A (issue 15) makes apply
# refuse deletes without --allow-delete: add it here once that is merged.
APPLY_FLAGS = ["--allow-delete"]

SEED = f"""
cluster: fidelity
nodes:
  - name: pve1
  - name: pve2
storages:
  - {{id: local, type: dir, path: /var/lib/vz, content: "iso,vztmpl,backup", size: 100G}}
  - {{id: local-lvm, type: lvmthin, content: "images,rootdir", size: 1T}}
  - {{id: fast, type: lvmthin, content: "images,rootdir", size: 1T, nodes: [pve1]}}
templates:
  - {TEMPLATE}
guests:
  - vmid: 9000
    type: qemu
    node: pve1
    config:
      name: debian12-cloud
      template: 1
      memory: 1024
      cores: 1
      scsi0: "local-lvm:base-9000-disk-0,size=4G"
      ide2: "local-lvm:cloudinit,media=cdrom"
      net0: "virtio,bridge=vmbr0"
      ipconfig0: "ip=dhcp"
"""


class SeedLab(Lab):
    """Lab on the seeded cluster above: pve1 has storage 'fast', pve2 not."""

    def __init__(self, tmp_path):
        seed = tmp_path / "seed.yaml"
        seed.write_text(SEED)
        self.dir = tmp_path
        self.info = start_sim("--seed", str(seed))
        self.env = {"PVELAB_URL": self.info["url"], "PVELAB_TOKEN": self.info["token"],
                    "PVELAB_FINGERPRINT": self.info["fingerprint"],
                    "PVELAB_STATE": str(tmp_path / "state.db")}
        self.cfg = tmp_path / "pvelab.yaml"

    def apply_checked(self, *flags):
        """Plan, then apply with the same flags; apply must do what the plan listed."""
        plan = self.plan_json(*flags)
        assert plan["changes"] and not plan["blocked"], plan
        assert_summary_matches_lines(self.pvelab("plan", *flags).out)
        r = self.pvelab("-o", "json", "apply", "--yes", *APPLY_FLAGS, *flags)
        assert r.rc == 0, r
        result = r.json()
        assert_steps_match(plan, result)
        return plan, result

    def guest(self, name):
        return next(g for g in self.guests() if g.get("name") == name)

    def task(self, node, upid):
        """Wait for a task; its status and log."""
        q = urllib.parse.quote(upid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = self.api("GET", f"/nodes/{node}/tasks/{q}/status")
            if st["status"] == "stopped":
                return st, [l["t"] for l in self.api("GET", f"/nodes/{node}/tasks/{q}/log")]
            time.sleep(0.02)
        raise AssertionError("task did not finish")


@pytest.fixture
def lab(tmp_path):
    l = SeedLab(tmp_path)
    yield l
    l.close()


def converged(lab, *flags):
    r = lab.pvelab("plan", "--detailed-exitcode", *flags)
    assert r.rc == 0 and "No changes." in r.out, r


def by_guest(plan):
    return {(c["guest"], c["action"]): c for c in plan["changes"]}


WEB = """
  - name: web
    node: pve1
    memory: 2G
    cores: 2
    description: the web server
    networks: [{bridge: vmbr0}]
    disks: [{storage: local-lvm, size: 8G}]
"""
CT = f"""
  - name: ct
    type: lxc
    node: pve1
    ostemplate: {TEMPLATE}
    memory: 512
    networks: [{{bridge: vmbr0, ip: dhcp}}]
"""
CLONE = """
  - name: cl
    node: pve2
    memory: 2G
    clone: {template: debian12-cloud}
    networks: [{bridge: vmbr0, ip: dhcp}]
    disks: [{storage: local-lvm, size: 8G}]
    cloudinit: {user: admin}
"""
FAST = """
  - name: fa
    node: pve1
    memory: 1G
    disks: [{storage: fast, size: 4G}]
"""


def test_plan_reboot_lists_the_reboot_and_apply_does_exactly_that(lab):
    lab.write("guests:" + WEB)
    lab.apply_checked()
    lab.write("guests:" + WEB.replace("memory: 2G", "memory: 3G"))
    # without --reboot the change stays pending, and the plan says so
    plan = lab.plan_json()
    web = by_guest(plan)[("web", "update")]
    assert web["steps"] == ["snapshot", "config"] and web["reboot"] is True
    assert plan["summary"]["reboot"] == 0
    # with --reboot the plan shows the reboot apply will do
    plan = lab.plan_json("--reboot")
    web = by_guest(plan)[("web", "update")]
    assert web["steps"] == ["snapshot", "config", "reboot"]
    assert plan["summary"]["reboot"] == 1 and plan["summary"]["update"] == 1
    text = lab.pvelab("plan", "--reboot").out
    assert "(then reboot)" in text and "steps: snapshot, config, reboot" in text
    assert ", 1 reboot." in text and "pending until reboot" not in text
    assert_summary_matches_lines(text)
    lab.apply_checked("--reboot")
    converged(lab)
    assert "pending" not in lab.pvelab("plan").out
    # a change left pending by an apply without --reboot, then another change
    # of the same guest: one update that reboots once, not an update and a reboot
    lab.write("guests:" + WEB.replace("memory: 2G", "memory: 4G"))
    lab.apply_checked()
    assert "pending web" in lab.pvelab("plan").out
    lab.write("guests:" + WEB.replace("memory: 2G", "memory: 4G").replace("the web", "our web"))
    plan = lab.plan_json("--reboot")
    assert [(c["action"], c["guest"], c["steps"]) for c in plan["changes"]] == \
        [("update", "web", ["snapshot", "config", "reboot"])]
    assert plan["summary"]["reboot"] == 1
    lab.apply_checked("--reboot")
    converged(lab)
    assert "pending" not in lab.pvelab("plan").out
    # pending alone: a reboot change
    lab.write("guests:" + WEB.replace("memory: 2G", "memory: 3G").replace("the web", "our web"))
    lab.apply_checked()
    plan, _ = lab.apply_checked("--reboot")
    assert [(c["action"], c["steps"]) for c in plan["changes"]] == [("reboot", ["reboot"])]
    assert plan["summary"]["reboot"] == 1
    converged(lab)
    # --no-snapshot is an option of the plan too: no snapshot step (and two
    # disks grow in one resize step)
    lab.write("guests:" + WEB.replace("memory: 2G", "memory: 3G").replace("the web", "a web"))
    lab.apply_checked("--reboot")
    lab.write("guests:" + WEB.replace("memory: 2G", "memory: 3G").replace("the web", "a web")
              .replace("size: 8G}]", "size: 8G}, {storage: local-lvm, size: 4G}]"))
    lab.apply_checked()
    lab.write("guests:" + WEB.replace("memory: 2G", "memory: 3G").replace("the web", "a web")
              .replace("size: 8G}]", "size: 10G}, {storage: local-lvm, size: 6G}]"))
    plan, result = lab.apply_checked("--no-snapshot")
    assert by_guest(plan)[("web", "update")]["steps"] == ["resize"]
    conf = lab.api("GET", f"/nodes/pve1/qemu/{lab.guest('web')['vmid']}/config")
    assert "size=10G" in conf["scsi0"] and "size=6G" in conf["scsi1"], conf
    assert plan["options"]["snapshot"] is False
    snaps = lab.api("GET", f"/nodes/pve1/qemu/{lab.guest('web')['vmid']}/snapshot")
    assert f"pvelab-pre-{result['run']}" not in {s["name"] for s in snaps}


def test_steps_match_for_every_kind_of_apply(lab):
    # creates: a plain VM, a container (template on the node), a clone
    lab.write("guests:" + WEB + CT + CLONE + FAST)
    plan, _ = lab.apply_checked()
    ch = by_guest(plan)
    assert ch[("web", "create")]["steps"] == ["create", "start"]
    assert ch[("ct", "create")]["steps"] == ["template", "create", "start"]
    assert ch[("cl", "create")]["steps"] == ["find template", "clone", "configure clone", "start"]
    assert ch[("cl", "create")]["clone_from"] == {"vmid": 9000, "node": "pve1",
                                                  "name": "debian12-cloud"}
    converged(lab)
    # updates: a disk grows, a container stops
    cfg = "guests:" + WEB.replace("size: 8G", "size: 16G").replace("the web", "our web") + \
        CT.replace("memory: 512", "memory: 512\n    state: stopped") + CLONE + FAST
    lab.write(cfg)
    plan, _ = lab.apply_checked()
    ch = by_guest(plan)
    assert ch[("web", "update")]["steps"] == ["snapshot", "config", "resize"]
    assert ch[("ct", "stop")]["steps"] == ["shutdown"]
    converged(lab)
    # a start, and a migration to a node that has the guest's storage
    lab.write("guests:" + WEB.replace("size: 8G", "size: 16G").replace("the web", "our web")
              .replace("node: pve1", "node: pve2") + CT + CLONE + FAST)
    plan, _ = lab.apply_checked()
    ch = by_guest(plan)
    assert ch[("ct", "start")]["steps"] == ["start"]
    assert ch[("web", "update")]["steps"] == ["snapshot", "migrate"]
    assert lab.guest("web")["node"] == "pve2"
    converged(lab)
    # a replace (the disk moves to another storage), with --allow-replace
    lab.write("guests:" + WEB.replace("size: 8G", "size: 16G").replace("the web", "our web")
              .replace("node: pve1", "node: pve2") + CT + CLONE +
              FAST.replace("storage: fast", "storage: local-lvm").replace("memory: 1G", "memory: 2G"))
    assert lab.pvelab("apply", "--yes", *APPLY_FLAGS).rc == 1  # refused without the flag
    plan, _ = lab.apply_checked("--allow-replace")
    fa = by_guest(plan)[("fa", "replace")]
    # no vmid in the YAML: the new guest is made first, the old one backed up
    assert fa["steps"] == ["create", "backup", "stop", "destroy", "start"]
    # the new guest's settings, not per-key notes on the old one
    assert [d["key"] for d in fa["diffs"]] == ["scsi0"]
    assert {d["class"] for d in fa["diffs"]} == {"replace"}
    converged(lab)
    # a delete
    lab.write("guests:" + WEB.replace("size: 8G", "size: 16G").replace("the web", "our web")
              .replace("node: pve1", "node: pve2") + CT + CLONE)
    plan, _ = lab.apply_checked()
    assert by_guest(plan)[("fa", "delete")]["steps"] == ["backup", "stop", "destroy"]
    converged(lab)


def test_unknown_clone_template_is_blocked_at_plan_time(lab):
    lab.write("guests:" + CLONE.replace("debian12-cloud", "nosuch"))
    plan = lab.plan_json()
    assert plan["changes"] == []
    assert [(b["guest"], b["reason"]) for b in plan["blocked"]] == [
        ("cl", "no template 'nosuch' in the cluster (convert a VM with 'qm template', "
               "or fix clone.template)")]
    r = lab.pvelab("apply", "--yes", *APPLY_FLAGS)
    assert r.rc == 1 and "blocked" in r.err
    assert "cl" not in {g.get("name") for g in lab.guests()}
    # a known one, by name or by vmid, is shown with its source
    for ref in ("debian12-cloud", "9000"):
        lab.write("guests:" + CLONE.replace("debian12-cloud", ref))
        r = lab.pvelab("plan")
        assert "clone of debian12-cloud (9000 on pve1)" in r.out, r
    # a saved plan edited to clone from another source is refused before anything
    # runs: its changes must be the fresh plan's (issue 17)
    assert lab.pvelab("plan", "--out", "p.json").rc == 0
    saved = json.loads((lab.dir / "p.json").read_text())
    saved["changes"][0]["clone_from"]["vmid"] = 9999
    (lab.dir / "p.json").write_text(json.dumps(saved))
    r = lab.pvelab("apply", "p.json", "--yes", *APPLY_FLAGS)
    assert r.rc == 1 and "'p.json' creates " in r.err and " 'cl' differently" in r.err, r
    assert "cl" not in {g.get("name") for g in lab.guests()}
    lab.apply_checked()
    converged(lab)


def test_migration_to_a_node_without_the_storage_is_blocked(lab):
    lab.write("guests:" + FAST + CT.replace("memory: 512", "memory: 512\n    rootfs: {storage: fast, size: 4G}"))
    lab.apply_checked()
    lab.write("guests:" + FAST.replace("node: pve1", "node: pve2") +
              CT.replace("memory: 512", "memory: 512\n    rootfs: {storage: fast, size: 4G}")
              .replace("node: pve1", "node: pve2"))
    for flags in ((), ("--allow-replace",)):
        plan = lab.plan_json(*flags)
        assert not any(c.get("migrate_to") for c in plan["changes"]), plan["changes"]
        reasons = {b["guest"]: b["reason"] for b in plan["blocked"]}
        assert reasons == {"fa": "disk scsi0 is on 'fast', which node 'pve2' does not have",
                           "ct": "disk rootfs is on 'fast', which node 'pve2' does not have"}
    r = lab.pvelab("apply", "--yes", *APPLY_FLAGS)
    assert r.rc == 1 and "blocked" in r.err
    # Proxmox refuses it too: qemu-server before it forks
    # (check_storage_availability), pve-container in the task's prepare
    g = lab.guest("fa")
    assert g["status"] == "running"
    r = requests.post(lab.info["url"] + f"/api2/json/nodes/pve1/qemu/{g['vmid']}/migrate",
                      verify=False, headers={"Authorization": "PVEAPIToken=" + lab.info["token"]},
                      data={"target": "pve2", "online": 1}, timeout=30)
    assert r.status_code == 500 and r.reason == "storage 'fast' is not available on node 'pve2'"
    g = lab.guest("ct")
    assert g["status"] == "running"
    upid = lab.api("POST", f"/nodes/pve1/lxc/{g['vmid']}/migrate", target="pve2", restart=1)
    st, log = lab.task("pve1", upid)
    assert st["exitstatus"] == "migration aborted", st
    assert any("storage 'fast' is not available on node 'pve2'" in l for l in log), log
    for name in ("fa", "ct"):
        g = lab.guest(name)
        assert g["node"] == "pve1" and g["status"] == "running"


def test_shrink_is_blocked_never_a_replace(lab):
    lab.write("guests:" + WEB.replace("size: 8G", "size: 16G"))
    lab.apply_checked()
    lab.write("guests:" + WEB)
    for flags in ((), ("--allow-replace",)):
        plan = lab.plan_json(*flags)
        assert plan["changes"] == [] and plan["summary"]["replace"] == 0
        assert [(b["guest"], b["reason"]) for b in plan["blocked"]] == [
            ("web", "cannot shrink scsi0 from 16G to 8G: Proxmox only grows disks")]
        r = lab.pvelab("plan", *flags)
        assert "-/+" not in r.out and "replace" not in r.out
        assert "cannot shrink scsi0 from 16G to 8G" in r.out
        r = lab.pvelab("apply", "--yes", *APPLY_FLAGS, *flags)
        assert r.rc == 1 and "blocked" in r.err
    # with another change alongside: an update (without the shrink), still blocked
    lab.write("guests:" + WEB.replace("the web server", "still the web server"))
    plan = lab.plan_json("--allow-replace")
    assert [(c["action"], [d["key"] for d in c["diffs"]]) for c in plan["changes"]] == \
        [("update", ["description"])]
    assert plan["summary"]["replace"] == 0 and plan["summary"]["blocked"] == 1
    assert_summary_matches_lines(lab.pvelab("plan", "--allow-replace").out)
    assert "size=16G" in lab.api("GET", f"/nodes/pve1/qemu/{lab.guest('web')['vmid']}/config")["scsi0"]


def test_long_create_line_is_not_cut_when_piped(lab):
    long = "a description long enough to go past any terminal width " * 3 + "THE END"
    lab.write("guests:" + WEB.replace("the web server", long))
    r = lab.pvelab("plan")
    assert r.rc == 0
    line = next(l for l in r.out.splitlines() if "description=" in l)
    assert long in line and line.endswith("scsi0=local-lvm:8") and "..." not in line, line
    assert len(line) > 200


def test_live_migration_with_local_disks_needs_the_option(lab):
    """PVE refuses to move local disks of a running VM without with-local-disks
    (QemuMigrate's volume scan); apply passes it, so its migrations go through."""
    lab.write("guests:" + WEB)
    lab.apply_checked()
    web = lab.guest("web")
    upid = lab.api("POST", f"/nodes/pve1/qemu/{web['vmid']}/migrate", target="pve2", online=1)
    st, log = lab.task("pve1", upid)
    assert st["exitstatus"] == "migration aborted", st
    assert any("can't live migrate attached local disks without with-local-disks option" in l
               for l in log), log
    assert lab.guest("web")["node"] == "pve1"
    lab.write("guests:" + WEB.replace("node: pve1", "node: pve2"))
    lab.apply_checked()
    assert lab.guest("web")["node"] == "pve2" and lab.guest("web")["status"] == "running"
    converged(lab)
