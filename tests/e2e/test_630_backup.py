"""Nothing destroyed without a way back (issue 15, part B): apply backs a guest
up with vzdump before a delete or a replace destroys it and records the
archive in the run; rollback restores deleted and replaced guests from it; a
replace creates the new guest first when it gets a vmid of its own, else
proves the create possible before the destroy; a VM <-> container replace
stops and destroys the old guest with its own type; disk defaults pvelab
fills in for a create are never compared with a live guest."""
import json

import pytest

from plancheck import assert_steps_match
from simfix import start_sim
from test_600_plan_apply import TEMPLATE, Lab

# Extra flags every apply that deletes needs (part A adds --allow-delete).
DELETE_FLAGS = ["--allow-delete"]

WEB = """
guests:
  - name: web
    memory: 2G
    cores: 2
    tags: [frontend]
    description: the web server
    networks: [{bridge: vmbr0, ip: 10.0.0.5/24, gw: 10.0.0.1}]
    disks: [{storage: local-lvm, size: 8G}]
  - name: ct1
    type: lxc
    ostemplate: %s
    memory: 512
    tags: [db]
    networks: [{bridge: vmbr0, ip: dhcp}]
""" % TEMPLATE

ONLY_CT1 = WEB[:WEB.index("  - name: ct1")].split("guests:")[0] + "guests:\n" + WEB[WEB.index("  - name: ct1"):]

KEYS_VM = ("name", "memory", "cores", "net0", "scsi0", "tags", "description", "ipconfig0")
KEYS_CT = ("hostname", "memory", "net0", "rootfs", "tags", "unprivileged")


@pytest.fixture
def lab(tmp_path):
    l = Lab(tmp_path)
    yield l
    l.close()


class SeedLab(Lab):
    """A one-node lab from a seed: 'local' holds backups only when asked, and
    'vault' is a second storage for container root filesystems."""

    def __init__(self, tmp_path, backups=True, guests="", storages="", sim_args=()):
        seed = tmp_path / "seed.yaml"
        seed.write_text(f"""
nodes: [{{name: pve}}]
storages:
  - {{id: local, type: dir, path: /var/lib/vz, content: "iso,vztmpl{',backup' if backups else ''}", size: 100G}}
  - {{id: local-lvm, type: lvmthin, content: "images,rootdir", size: 1T}}
  - {{id: vault, type: zfspool, content: "images,rootdir", size: 4T}}
{storages}templates:
  - {TEMPLATE}
guests:
{guests or "  []"}
""")
        self.dir = tmp_path
        self.info = start_sim("--seed", str(seed), *sim_args)
        self.env = {"PVELAB_URL": self.info["url"], "PVELAB_TOKEN": self.info["token"],
                    "PVELAB_FINGERPRINT": self.info["fingerprint"],
                    "PVELAB_STATE": str(tmp_path / "state.db")}
        self.cfg = tmp_path / "pvelab.yaml"


def guest(lab, name):
    found = [g for g in lab.guests() if g.get("name") == name]
    assert len(found) == 1, found
    return found[0]


def config(lab, g):
    return lab.api("GET", f"/nodes/{g['node']}/{g['type']}/{g['vmid']}/config")


def backups(lab, node, vmid, storage="local"):
    return [v["volid"] for v in lab.api("GET", f"/nodes/{node}/storage/{storage}/content",
                                         content="backup", vmid=vmid)]


def apply_json(lab, *args):
    """apply -o json; when it succeeds, it ran exactly the steps plan listed."""
    flags = [a for a in args if a.startswith("--")]
    plan = lab.plan_json(*flags) if len(flags) == len(args) else None
    r = lab.pvelab("-o", "json", "apply", "--yes", *args)
    res = json.loads(r.out) if r.out.strip().startswith("{") else None
    if r.rc == 0 and plan and res:
        assert_steps_match(plan, res)
    return r, res


def test_delete_is_backed_up_and_rollback_restores_it(lab):
    lab.write(WEB)
    assert lab.pvelab("apply", "--yes").rc == 0
    web = guest(lab, "web")
    before = config(lab, web)
    lab.write(ONLY_CT1)
    r = lab.pvelab("plan")
    assert "delete  web" in r.out, r
    r, res = apply_json(lab, *DELETE_FLAGS)
    assert r.rc == 0, r
    ch = next(c for c in res["changes"] if c["action"] == "delete")
    assert ch["status"] == "ok" and ch["backup_storage"] == "local", ch
    assert ch["backup"].startswith(f"local:backup/vzdump-qemu-{web['vmid']}-"), ch
    assert ch["backup"].endswith(".vma.zst"), ch
    # the archive is on the storage, the guest is gone
    assert backups(lab, web["node"], web["vmid"]) == [ch["backup"]]
    assert not [g for g in lab.guests() if g.get("name") == "web"]
    # the run record holds the backup too
    r = lab.pvelab("rollback")
    assert f"run {res['run']}" in r.out, r
    r = lab.pvelab("rollback", str(res["run"]), "--yes")
    assert r.rc == 0, r
    assert f"restore web (qemu {web['vmid']}) on {web['node']} from {ch['backup']}" in r.out, r
    back = guest(lab, "web")
    assert back["vmid"] == web["vmid"] and back["type"] == "qemu" and back["status"] == "running"
    after = config(lab, back)
    for k in KEYS_VM:
        assert str(after.get(k)) == str(before.get(k)), k
    # pvelab manages it again: the config without web still deletes it, with web nothing to do
    lab.write(WEB)
    r = lab.pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0 and "No changes." in r.out, r


def test_replace_vm_by_container_in_place_and_rollback(lab):
    vm = WEB.replace("  - name: web\n", "  - name: web\n    vmid: 150\n    node: pve1\n")
    lab.write(vm)
    assert lab.pvelab("apply", "--yes").rc == 0
    web = guest(lab, "web")
    assert web["vmid"] == 150 and web["status"] == "running"
    before = config(lab, web)
    ct = f"""
guests:
  - name: web
    vmid: 150
    node: pve1
    type: lxc
    ostemplate: {TEMPLATE}
    memory: 1G
    networks: [{{bridge: vmbr0, ip: 10.0.0.5/24, gw: 10.0.0.1}}]
""" + ONLY_CT1.split("guests:\n")[1]
    lab.write(ct)
    r = lab.pvelab("plan", "--allow-replace")
    assert "replace web (lxc 150 on pve1) replacing qemu 150" in r.out, r
    r, res = apply_json(lab, "--allow-replace", *DELETE_FLAGS)
    assert r.rc == 0, r
    ch = next(c for c in res["changes"] if c["action"] == "replace")
    assert ch["status"] == "ok" and ch["from_type"] == "qemu" and ch["old_vmid"] == 150, ch
    assert ch["backup"].startswith("local:backup/vzdump-qemu-150-"), ch
    now = guest(lab, "web")
    assert now["type"] == "lxc" and now["vmid"] == 150 and now["status"] == "running"
    assert backups(lab, "pve1", 150) == [ch["backup"]]
    # rollback: the container is backed up and destroyed, the VM comes back
    r = lab.pvelab("rollback", str(res["run"]), "--yes")
    assert r.rc == 0, r
    assert "destroy web (lxc 150), the guest that replaced it" in r.out, r
    back = guest(lab, "web")
    assert back["type"] == "qemu" and back["vmid"] == 150 and back["status"] == "running"
    after = config(lab, back)
    for k in KEYS_VM:
        assert str(after.get(k)) == str(before.get(k)), k
    ct_backups = [v for v in backups(lab, "pve1", 150) if "vzdump-lxc-150-" in v]
    assert len(ct_backups) == 1, backups(lab, "pve1", 150)


def test_replace_without_fixed_vmid_creates_first(lab):
    lab.write(WEB)
    assert lab.pvelab("apply", "--yes").rc == 0
    web = guest(lab, "web")
    ct = f"""
guests:
  - name: web
    type: lxc
    ostemplate: {TEMPLATE}
    memory: 1G
""" + ONLY_CT1.split("guests:\n")[1]
    lab.write(ct)
    r = lab.pvelab("-v", "apply", "--yes", "--allow-replace", *DELETE_FLAGS)
    assert r.rc == 0, r
    run_id = int(r.out.split("(run ")[1].split(")")[0])
    steps = [l.split("web: ", 1)[1].strip() for l in r.err.splitlines() if "  ...    web: " in l]
    assert steps.index("create") < steps.index("backup") < steps.index("destroy") < steps.index("start"), steps
    now = guest(lab, "web")
    assert now["type"] == "lxc" and now["vmid"] != web["vmid"] and now["status"] == "running"
    assert not [g for g in lab.guests() if g["vmid"] == web["vmid"]]
    assert len(backups(lab, web["node"], web["vmid"])) == 1
    r = lab.pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0, r
    # rollback: the container (its own vmid) goes, the VM comes back under its vmid
    r = lab.pvelab("rollback", str(run_id), "--yes")
    assert r.rc == 0, r
    back = guest(lab, "web")
    assert back["type"] == "qemu" and back["vmid"] == web["vmid"] and back["status"] == "running"
    assert not [g for g in lab.guests() if g["vmid"] == now["vmid"]]


CT_BOX = f"""
guests:
  - name: box
    vmid: 160
    node: pve1
    type: lxc
    ostemplate: {TEMPLATE}
    unprivileged: true
    memory: 512
    rootfs: {{storage: local-lvm, size: 4G}}
    networks: [{{bridge: vmbr0, ip: dhcp}}]
"""


def intact(lab, before):
    box = guest(lab, "box")
    assert box["vmid"] == 160 and box["type"] == "lxc" and box["status"] == "running"
    now = config(lab, box)
    for k in KEYS_CT:
        assert str(now.get(k)) == str(before.get(k)), k


def test_replace_whose_create_would_fail_leaves_the_guest(lab):
    lab.write(CT_BOX)
    assert lab.pvelab("apply", "--yes").rc == 0
    before = config(lab, guest(lab, "box"))
    # a storage the node does not have: blocked at plan time, nothing done
    lab.write(CT_BOX.replace("unprivileged: true", "unprivileged: false")
              .replace("storage: local-lvm", "storage: nosuch"))
    r = lab.pvelab("plan", "--allow-replace")
    assert "blocked box: cannot be replaced: storage 'nosuch' does not exist on node 'pve1'" in r.out, r
    r = lab.pvelab("apply", "--yes", "--allow-replace")
    assert r.rc != 0 and "nothing was done" in r.err, r
    intact(lab, before)
    # no ostemplate to recreate it from (the CT 320): blocked too
    lab.write(CT_BOX.replace("unprivileged: true", "unprivileged: false")
              .replace(f"    ostemplate: {TEMPLATE}\n", ""))
    r = lab.pvelab("plan", "--allow-replace")
    assert "blocked box: cannot be replaced: no ostemplate" in r.out, r
    assert lab.pvelab("apply", "--yes", "--allow-replace").rc != 0
    intact(lab, before)
    # a template neither on the node nor in aplinfo: blocked at plan time, nothing destroyed
    lab.write(CT_BOX.replace("unprivileged: true", "unprivileged: false")
              .replace(TEMPLATE, "local:vztmpl/nosuch-1.0_amd64.tar.zst"))
    plan = lab.plan_json("--allow-replace")
    assert any("nosuch-1.0_amd64.tar.zst" in b["reason"] for b in plan["blocked"]), plan["blocked"]
    r = lab.pvelab("apply", "--yes", "--allow-replace")
    assert r.rc != 0 and "blocked" in r.err, r
    intact(lab, before)
    # a saved plan edited to name a missing storage never reaches the executor:
    # its changes must be the fresh plan's (issue 17)
    lab.write(CT_BOX.replace("unprivileged: true", "unprivileged: false"))
    r = lab.pvelab("plan", "--allow-replace", "--out", "p.json")
    assert r.rc in (0, 2), r
    p = json.loads((lab.dir / "p.json").read_text())
    ch = next(c for c in p["changes"] if c["action"] == "replace")
    ch["config"]["rootfs"] = "nosuch:4"
    (lab.dir / "p.json").write_text(json.dumps(p))
    r = lab.pvelab("apply", str(lab.dir / "p.json"), "--yes")
    assert r.rc == 1 and "replaces " in r.err and "differently, which a plan of" in r.err, r
    intact(lab, before)


def test_container_by_vmid_without_rootfs_plans_no_replace(tmp_path):
    # guests whose disks live on 'vault', made by this config
    lab = SeedLab(tmp_path)
    try:
        lab.write(f"""
guests:
  - name: vault-ct
    vmid: 320
    type: lxc
    ostemplate: {TEMPLATE}
    memory: 512
    rootfs: {{storage: vault, size: 4G}}
    networks: [{{bridge: vmbr0, ip: dhcp}}]
  - name: vault-vm
    vmid: 321
    memory: 1G
    disks: [{{storage: vault, size: 4G}}]
    networks: [{{bridge: vmbr0, ip: dhcp}}]
""")
        r = lab.pvelab("apply", "--yes")
        assert r.rc == 0, r
        assert config(lab, guest(lab, "vault-ct"))["rootfs"].startswith("vault:")
        assert config(lab, guest(lab, "vault-vm"))["ide2"].startswith("vault:")
        # declared by vmid without rootfs/ostemplate (the CT 320), the VM
        # without disks: what pvelab would default for a create is not compared
        lab.write("""
guests:
  - name: vault-ct
    vmid: 320
    type: lxc
    memory: 512
    networks: [{bridge: vmbr0, ip: dhcp}]
  - name: vault-vm
    vmid: 321
    memory: 1G
    networks: [{bridge: vmbr0, ip: dhcp}]
""")
        r = lab.pvelab("plan", "--detailed-exitcode")
        assert r.rc == 0 and "No changes." in r.out, r
        # a size alone compares the size, on the live storage
        lab.write(lab.cfg.read_text().replace("    memory: 512\n", "    memory: 512\n    rootfs: {size: 6G}\n"))
        p = lab.plan_json()
        assert [c["action"] for c in p["changes"]] == ["update"], p
        assert p["changes"][0]["resize"] == {"rootfs": "6G"}, p
    finally:
        lab.close()


def test_delete_refused_without_backup_storage_and_no_backup(tmp_path):
    lab = SeedLab(tmp_path, backups=False)
    try:
        lab.write("""
guests:
  - name: gone
    vmid: 400
    memory: 512
    disks: [{storage: local-lvm, size: 2G}]
""")
        assert lab.pvelab("apply", "--yes").rc == 0
        assert guest(lab, "gone")["status"] == "running"
        lab.write("guests: []\n")
        r = lab.pvelab("apply", "--yes", *DELETE_FLAGS)
        assert r.rc != 0, r
        assert ("no storage on node 'pve' holds backups, so VM 400 would be destroyed without a "
                "way back; nothing was destroyed") in r.out, r
        g = guest(lab, "gone")
        assert g["vmid"] == 400 and g["status"] == "running"
        r = lab.pvelab("apply", "--yes", "--no-backup", *DELETE_FLAGS)
        assert r.rc == 0, r
        assert "--no-backup: 1 guest will be destroyed without a backup" in r.out, r
        assert not [g for g in lab.guests() if g.get("vmid") == 400]
        run_id = int(r.out.split("(run ")[1].split(")")[0])
        r = lab.pvelab("-o", "json", "rollback")
        rec = next(x for x in r.json() if x["id"] == run_id)
        ch = rec["result"]["changes"][0]
        assert ch["no_backup"] is True and "backup" not in ch and rec["result"]["no_backup"] is True, rec
        r = lab.pvelab("rollback", str(run_id), "--yes")
        assert "destroyed gone (400) without a backup (--no-backup): it cannot be restored" in r.out, r
    finally:
        lab.close()


def test_backup_storage_from_config(tmp_path):
    lab = SeedLab(tmp_path, backups=False)
    try:
        lab.write("""
backup: {storage: nosuch}
guests:
  - name: gone
    vmid: 400
    memory: 512
    disks: [{storage: local-lvm, size: 2G}]
""")
        assert lab.pvelab("apply", "--yes").rc == 0
        lab.write("backup: {storage: nosuch}\nguests: []\n")
        r = lab.pvelab("apply", "--yes", *DELETE_FLAGS)
        assert r.rc != 0, r
        assert "backup storage 'nosuch' does not exist on node 'pve' or does not hold backups" in r.out, r
        assert guest(lab, "gone")["status"] == "running"
    finally:
        lab.close()


def test_destroy_is_backed_up_and_rolled_back(lab):
    lab.write(WEB)
    assert lab.pvelab("apply", "--yes").rc == 0
    web = guest(lab, "web")
    before = config(lab, web)
    r = lab.pvelab("-o", "json", "destroy", "web", "--yes")
    assert r.rc == 0, r
    res = r.json()
    ch = res["changes"][0]
    assert ch["status"] == "ok" and ch["backup"].startswith(f"local:backup/vzdump-qemu-{web['vmid']}-"), ch
    assert not [g for g in lab.guests() if g.get("name") == "web"]
    r = lab.pvelab("rollback", str(res["run"]), "--yes")
    assert r.rc == 0 and "restore web" in r.out, r
    back = guest(lab, "web")
    assert back["vmid"] == web["vmid"] and back["status"] == "running"
    after = config(lab, back)
    for k in KEYS_VM:
        assert str(after.get(k)) == str(before.get(k)), k


def test_failed_backup_stops_before_the_destroy(tmp_path):
    # a backup storage too small for the archive: vzdump fails, nothing is destroyed
    lab = SeedLab(tmp_path, backups=False,
                  storages='  - {id: tiny, type: dir, path: /mnt/tiny, content: backup, size: 1M}\n')
    try:
        lab.write("""
backup: {storage: tiny}
guests:
  - name: gone
    vmid: 400
    memory: 512
    disks: [{storage: local-lvm, size: 2G}]
""")
        assert lab.pvelab("apply", "--yes").rc == 0
        lab.write("backup: {storage: tiny}\nguests: []\n")
        r, res = apply_json(lab, *DELETE_FLAGS)
        assert r.rc != 0, r
        ch = res["changes"][0]
        assert ch["status"] == "failed" and ch["error"].startswith("backup failed: "), ch
        assert "No space left on device" in ch["error"], ch
        assert "destroyed" not in ch and "backup" not in ch, ch
        g = guest(lab, "gone")
        assert g["vmid"] == 400 and g["status"] == "running"
    finally:
        lab.close()
