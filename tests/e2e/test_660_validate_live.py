"""Issue 15, part "live": validate --live refuses what apply would (templates
that exist nowhere, storages without the content type a volume needs or not on
the node, containers by vmid that are not there), raw config: keys and values
against the official schema and unset password_env (offline too); the cloud-init
password of cloned VMs; bridge updates; template downloads as plan changes and
templates: entries no guest uses."""
import glob
import os

import pytest

from conftest import run
from simfix import DEMO_SEED, start_sim
from test_600_plan_apply import ALPINE, TEMPLATE, Lab

SECRET = "Tr0ub4dor-and-3-horses"


class DemoLab(Lab):
    """Lab on the 3-node demo cluster: template 9000 'debian12-cloud' on pve1,
    storage 'nas' only on pve1 and pve2, containers 310 and 311, VM 300."""

    def __init__(self, tmp_path):  # pylint: disable=super-init-not-called
        self.dir = tmp_path
        self.info = start_sim("--seed", DEMO_SEED, "--task-ms", "20")
        self.env = {"PVELAB_URL": self.info["url"], "PVELAB_TOKEN": self.info["token"],
                    "PVELAB_FINGERPRINT": self.info["fingerprint"],
                    "PVELAB_STATE": str(tmp_path / "state.db")}
        self.cfg = tmp_path / "pvelab.yaml"


@pytest.fixture
def lab(tmp_path):
    l = Lab(tmp_path)
    yield l
    l.close()


@pytest.fixture
def demo(tmp_path):
    l = DemoLab(tmp_path)
    yield l
    l.close()


def errors(r):
    return [l for l in r.err.splitlines() if ": error: " in l or ": warning: " in l]


def test_validate_live_checks_templates_and_storage_content_types(demo):
    demo.write(
        "guests:\n"                                                           # 1
        "  - name: a\n"                                                       # 2
        "    node: pve3\n"                                                    # 3
        "    disks: [{storage: local, size: 8}, {storage: nas, size: 8}]\n"   # 4
        "    efidisk: {storage: local}\n"                                     # 5
        "  - name: b\n"                                                       # 6
        "    type: lxc\n"                                                     # 7
        "    node: pve1\n"                                                    # 8
        "    ostemplate: local:vztmpl/debian-12-standrd_12.7-1_amd64.tar.zst\n"  # 9
        "    rootfs: {storage: local, size: 4}\n"                             # 10
        "  - name: c\n"                                                       # 11
        "    type: lxc\n"                                                     # 12
        f"    ostemplate: {ALPINE}\n"                                         # 13
        "  - name: d\n"                                                       # 14
        "    type: lxc\n"                                                     # 15
        "    ostemplate: local:vztmpl/nothing-like-it.tar.gz\n"               # 16
        "  - name: e\n"                                                       # 17
        "    node: pve1\n"                                                    # 18
        "    config: {ide2: 'local-lvm:iso/x.iso,media=cdrom'}\n"             # 19
        "templates:\n"                                                        # 20
        "  - template: nosuch.tar.zst\n"                                      # 21
        "  - {template: ubuntu-24.04-standard_24.04-2_amd64.tar.zst, storage: local-lvm}\n")  # 22
    # none of this can be known without the cluster
    assert demo.pvelab("validate", "--offline").rc == 0
    r = demo.pvelab("validate", "--live")
    assert r.rc == 1, r
    f = str(demo.cfg)
    want = [
        f"{f}:4:14: error: guests[0].disks[0].storage: storage 'local' does not allow content type "
        "'images' for VM disks (it allows 'iso,vztmpl,backup,snippets')",
        f"{f}:4:41: error: guests[0].disks[1].storage: no storage 'nas' on node 'pve3' "
        "(it is on pve1, pve2 only)",
        f"{f}:5:15: error: guests[0].efidisk.storage: storage 'local' does not allow content type "
        "'images' for an EFI disk (it allows 'iso,vztmpl,backup,snippets')",
        f"{f}:9:5: error: guests[1].ostemplate: no template "
        "'local:vztmpl/debian-12-standrd_12.7-1_amd64.tar.zst' on node 'pve1', and the appliance "
        "index does not have it to download (did you mean "
        f"'{TEMPLATE}'?)",
        f"{f}:10:14: error: guests[1].rootfs.storage: storage 'local' does not allow content type "
        "'rootdir' for container volumes (it allows 'iso,vztmpl,backup,snippets')",
        f"{f}:16:5: error: guests[3].ostemplate: no template 'local:vztmpl/nothing-like-it.tar.gz' "
        "in the cluster, and the appliance index does not have it to download (pveam available "
        "lists what does)",
        f"{f}:19:14: error: guests[4].config.ide2: storage 'local-lvm' does not allow content type "
        "'iso' for ISO images (it allows 'images,rootdir')",
        f"{f}:21:5: error: templates[0].template: no template 'local:vztmpl/nosuch.tar.zst' in the "
        "cluster, and the appliance index does not have it to download (pveam available lists "
        "what does)",
        f"{f}:22:61: error: templates[1].storage: storage 'local-lvm' does not allow content type "
        "'vztmpl' for container templates (it allows 'images,rootdir')",
    ]
    assert errors(r) == want, r
    # ALPINE is not on disk but aplinfo has it: apply would download it
    assert "guests[2]" not in r.err


def test_validate_live_containers_by_vmid_and_clone_sources(demo):
    demo.write("guests:\n"
               "  - {name: gone, type: lxc, vmid: 555}\n"
               "  - {name: was-vm, type: lxc, vmid: 300}\n"
               "  - {name: dns, type: lxc, vmid: 310}\n"
               "  - {name: c1, node: pve1, clone: {template: debian12-cloud}}\n"
               "  - {name: c2, node: pve1, clone: {template: '9000'}}\n"
               "  - {name: c3, node: pve1, clone: {template: '300'}}\n"
               "  - {name: c4, node: pve1, clone: {template: nosuch}}\n")
    r = demo.pvelab("validate", "--live")
    assert r.rc == 1, r
    f = str(demo.cfg)
    assert errors(r) == [
        f"{f}:2:29: error: guests[0].vmid: no container 555 in the cluster, and a new container "
        "needs 'ostemplate' (set it, or fix the vmid)",
        f"{f}:3:31: error: guests[1].vmid: vmid 300 is a VM ('proxy'): declaring it a container "
        "replaces it, and the new container needs 'ostemplate'",
        f"{f}:7:36: error: guests[5].clone.template: 'proxy' (300) is a VM, not a VM template "
        "(qm template 300 converts a VM)",
        f"{f}:8:36: error: guests[6].clone.template: no template 'nosuch' in the cluster",
    ], r


def test_validate_raw_config_against_the_schema_offline(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("guests:\n"
                   "  - name: a\n"
                   "    config:\n"
                   "      balloonx: 1\n"
                   "      cpuunits: lots\n"
                   "      vga: {type: std}\n"
                   "      agent: 'enabled=1'\n"
                   "      net3: 'virtio,bridge=vmbr0,tag=5000'\n"
                   "  - name: b\n"
                   "    type: lxc\n"
                   "    ostemplate: local:vztmpl/x.tar.zst\n"
                   "    config: {protection: 2, numa: 1}\n")
    r = run("-c", str(cfg), "validate", "--offline", cwd=str(tmp_path))
    assert r.rc == 1, r
    f = str(cfg)
    assert errors(r) == [
        f"{f}:4:7: error: guests[0].config.balloonx: unknown VM setting 'balloonx' (did you mean 'balloon'?)",
        f"{f}:5:7: error: guests[0].config.cpuunits: invalid value 'lots' for 'cpuunits': "
        "type check ('integer') failed - got 'lots' (expects an integer from 1 to 262144)",
        f"{f}:6:7: error: guests[0].config.vga: expected a scalar, got a mapping",
        f"{f}:8:7: error: guests[0].config.net3: invalid value 'virtio,bridge=vmbr0,tag=5000' "
        "for 'net3': invalid format - tag: value must have a maximum value of 4094 (expects a "
        "'netN' property string)",
        f"{f}:12:14: error: guests[1].config.protection: invalid value '2' for 'protection': "
        "type check ('boolean') failed - got '2' (expects a boolean (0 or 1))",
        f"{f}:12:29: error: guests[1].config.numa: unknown container setting 'numa' "
        "(not in the Proxmox VE API schema)",
    ], r  # agent: 'enabled=1' is valid


def test_unset_password_env_fails_validate_and_apply_does_nothing(lab):
    lab.write("guests:\n"
              "  - name: web\n"
              "    memory: 1G\n"
              "    cloudinit: {user: admin, password_env: PVELAB_TEST_UNSET_PW}\n")
    os.environ.pop("PVELAB_TEST_UNSET_PW", None)
    want = (f"{lab.cfg}:4:30: error: guests[0].cloudinit.password_env: environment variable "
            "'PVELAB_TEST_UNSET_PW' is not set (guest 'web' needs it for cloudinit.password_env; "
            "export it before plan and apply)")
    r = lab.pvelab("validate", "--offline")
    assert r.rc == 1 and errors(r) == [want], r
    before = {g["vmid"] for g in lab.guests()}
    r = lab.pvelab("apply", "--yes")
    assert r.rc == 1 and want in r.err and "pvelab validate shows all problems" in r.err, r
    assert {g["vmid"] for g in lab.guests()} == before
    # with the variable set it validates
    r = run("-c", str(lab.cfg), "validate", "--offline", env={"PVELAB_TEST_UNSET_PW": "x"})
    assert r.rc == 0, r


def test_cloned_vm_gets_its_cloud_init_password_and_nothing_stores_it(demo):
    demo.write("guests:\n"
               "  - name: vm1\n"
               "    vmid: 120\n"
               "    node: pve1\n"
               "    clone: {template: debian12-cloud}\n"
               "    cloudinit: {user: admin, password_env: VM1_PASSWORD}\n"
               "    networks: [{bridge: vmbr0, ip: dhcp}]\n")
    demo.env["VM1_PASSWORD"] = SECRET
    outputs = []
    r = demo.pvelab("plan", "--out", str(demo.dir / "p.json"))
    assert r.rc == 0, r
    outputs.append(r)
    r = demo.pvelab("-o", "json", "plan")
    outputs.append(r)
    r = demo.pvelab("-vv", "apply", "--yes", str(demo.dir / "p.json"))
    assert r.rc == 0 and "Apply complete" in r.out, r
    outputs.append(r)
    r = demo.pvelab("-o", "json", "history")
    outputs.append(r)
    # Proxmox has it: GET config answers '**********' for a set password
    conf = demo.api("GET", "/nodes/pve1/qemu/120/config")
    assert conf["cipassword"] == "**********", conf
    assert conf["ciuser"] == "admin"
    pending = demo.api("GET", "/nodes/pve1/qemu/120/pending")
    assert [p.get("value") for p in pending if p["key"] == "cipassword"] == ["**********"]
    converged(demo)
    # and pvelab printed and stored it nowhere
    for o in outputs:
        assert SECRET not in o.out and SECRET not in o.err
    files = [p for p in glob.glob(str(demo.dir / "**"), recursive=True) if os.path.isfile(p)]
    assert any(p.endswith("state.db") for p in files) and any(p.endswith("p.json") for p in files)
    for p in files:
        with open(p, "rb") as fh:
            assert SECRET.encode() not in fh.read(), p


def converged(lab):
    r = lab.pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0 and "No changes." in r.out, r


def bridge(lab, node, iface):
    return lab.api("GET", f"/nodes/{node}/network/{iface}")


def test_bridge_changes_are_planned_and_applied(lab):
    lab.write("bridges:\n"
              "  - {name: vmbr5, node: pve1, cidr: 10.50.0.1/24, comment: lab net}\n")
    assert lab.pvelab("apply", "--yes").rc == 0
    converged(lab)
    lab.write("bridges:\n"
              "  - {name: vmbr5, node: pve1, cidr: 10.51.0.1/24, comment: the lab net,"
              " vlan_aware: true}\n")
    plan = lab.plan_json("--detailed-exitcode")
    assert len(plan["changes"]) == 1, plan
    c = plan["changes"][0]
    assert (c["action"], c["class"], c["node"], c["guest"]) == ("bridge", "update", "pve1", "vmbr5")
    assert {d["key"]: (d["from"], d["to"]) for d in c["diffs"]} == {
        "cidr": ("10.50.0.1/24", "10.51.0.1/24"), "comment": ("lab net", "the lab net"),
        "vlan_aware": ("0", "1")}
    assert plan["summary"]["bridge"] == 1
    r = lab.pvelab("plan")
    assert "~   bridge  vmbr5 (bridge on pve1)" in r.out
    assert "~ cidr: 10.50.0.1/24 -> 10.51.0.1/24" in r.out and "1 bridge," in r.out, r
    r = lab.pvelab("apply", "--yes")
    assert r.rc == 0 and "1 change done" in r.out, r
    b = bridge(lab, "pve1", "vmbr5")
    assert (b["cidr"], b["address"], b["netmask"], b["method"]) == ("10.51.0.1/24", "10.51.0.1", "24", "static")
    assert b["comments"].strip() == "the lab net" and b["bridge_vlan_aware"] == 1
    converged(lab)
    # a key the YAML stops setting keeps its live value
    lab.write("bridges:\n  - {name: vmbr5, node: pve1, comment: renamed}\n")
    assert lab.pvelab("apply", "--yes").rc == 0
    b = bridge(lab, "pve1", "vmbr5")
    assert (b["cidr"], b["method"], b["comments"].strip()) == ("10.51.0.1/24", "static", "renamed")
    converged(lab)


def test_unused_templates_entry_is_downloaded(lab):
    rocky = "rockylinux-9-default_20240912_amd64.tar.xz"
    lab.write(f"templates:\n  - {{template: {rocky}, node: pve2}}\n")
    plan = lab.plan_json("--detailed-exitcode")
    assert [(c["action"], c["node"], c["volid"]) for c in plan["changes"]] == [
        ("template", "pve2", f"local:vztmpl/{rocky}")], plan
    assert plan["summary"]["template"] == 1
    r = lab.pvelab("apply", "--yes")
    assert r.rc == 0 and "1 change done" in r.out, r
    vols = [c["volid"] for c in lab.api("GET", "/nodes/pve2/storage/local/content", content="vztmpl")]
    assert f"local:vztmpl/{rocky}" in vols
    converged(lab)


def test_missing_template_is_its_own_plan_change(lab):
    lab.write("guests:\n"
              "  - name: ct1\n"
              "    type: lxc\n"
              "    node: pve1\n"
              f"    ostemplate: {ALPINE}\n"
              "  - name: ct2\n"
              "    type: lxc\n"
              "    node: pve1\n"
              f"    ostemplate: {ALPINE}\n"
              "  - name: ct3\n"
              "    type: lxc\n"
              "    node: pve2\n"
              f"    ostemplate: {TEMPLATE}\n")
    plan = lab.plan_json("--detailed-exitcode")
    tmpl = [c for c in plan["changes"] if c["action"] == "template"]
    creates = {c["guest"]: c for c in plan["changes"] if c["action"] == "create"}
    # one download for both containers on pve1; TEMPLATE is on pve2's disk already
    assert [(c["node"], c["volid"], c["class"]) for c in tmpl] == [("pve1", ALPINE, "create")], plan
    assert plan["changes"][0]["action"] == "template"
    assert creates["ct1"]["depends_on"] == [tmpl[0]["key"]] == creates["ct2"]["depends_on"]
    assert "depends_on" not in creates["ct3"]
    assert plan["summary"]["template"] == 1 and plan["summary"]["create"] == 3
    r = lab.pvelab("plan")
    assert f"+   template {ALPINE} (download on pve1)" in r.out and "1 template download." in r.out, r
    r = lab.pvelab("apply", "--yes")
    assert r.rc == 0 and "4 changes done" in r.out, r
    converged(lab)


def test_template_nowhere_to_be_found_blocks_the_plan(lab):
    lab.write("guests:\n  - {name: ct1, type: lxc, node: pve1, ostemplate: 'local:vztmpl/nosuch.tar.zst'}\n")
    plan = lab.plan_json()
    assert plan["blocked"] == [{"guest": "ct1", "reason": "template 'local:vztmpl/nosuch.tar.zst' is "
                                "not on node 'pve1' and its appliance index does not have it "
                                "(pveam available lists what does)"}], plan
    r = lab.pvelab("apply", "--yes")
    assert r.rc == 1 and "blocked" in r.err, r


def test_container_by_vmid_that_does_not_exist_is_blocked_not_created(lab):
    lab.write("guests:\n  - {name: ghost, type: lxc, vmid: 777}\n")
    plan = lab.plan_json()
    assert plan["changes"] == [] and plan["blocked"] == [
        {"guest": "ghost", "reason": "no container 777 to manage, and a new container needs 'ostemplate'"}], plan
    r = lab.pvelab("apply", "--yes")
    assert r.rc == 1 and "blocked" in r.err, r
    assert 777 not in {g["vmid"] for g in lab.guests()}
