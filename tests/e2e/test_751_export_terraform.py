"""Issue 31: `pvelab export terraform` writes HCL that parses (@cdktf/hcl2json,
pinned in tests/hcl/) for every example, and every resource and attribute in
it is one the bpg/proxmox provider documents (tests/data/bpg/attributes.json,
taken from its docs/resources). Import blocks name bpg's ids; text from the
config can never become a template."""
import glob
import json
import os
import shutil
import subprocess

import pytest

from conftest import SRC, run

EXAMPLES = sorted(glob.glob(os.path.join(SRC, "examples", "*.yaml")))
HCL = os.path.join(SRC, "tests", "hcl")
with open(os.path.join(SRC, "tests", "data", "bpg", "attributes.json")) as f:
    KNOWN = {k: set(v) for k, v in json.load(f)["resources"].items()}

needs_parser = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.isdir(os.path.join(HCL, "node_modules")),
    reason="node or tests/hcl/node_modules missing (make check installs both)")


def parse(path):
    r = subprocess.run(["node", os.path.join(HCL, "hcl2json.js"), str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[str(path)]


def attributes(body, prefix=""):
    """Every attribute path of a resource body ("cpu.cores", "disk.size")."""
    for k, v in body.items():
        path = prefix + k
        blocks = v if isinstance(v, list) and v and all(isinstance(x, dict) for x in v) else \
            [v] if isinstance(v, dict) else None
        if blocks is None:
            yield path
            continue
        yield path
        for b in blocks:
            yield from attributes(b, path + ".")


def export(example, out):
    r = run("-c", example, "export", "terraform", "--out", out)
    assert r.rc == 0, r
    return os.path.join(out, "main.tf")


@needs_parser
@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_every_example_is_bpg_hcl(example, tmp_path):
    doc = parse(export(example, tmp_path / "t"))
    assert doc["provider"]["proxmox"][0]["endpoint"] == "${var.pve_endpoint}"
    resources = doc["resource"]
    assert set(resources) <= set(KNOWN), set(resources) - set(KNOWN)
    unknown = []
    for rtype, named in resources.items():
        for name, bodies in named.items():
            for body in bodies:
                unknown += [f"{rtype}.{name}: {a}" for a in attributes(body)
                            if a not in KNOWN[rtype]]
    assert not unknown, unknown
    # a resource for every guest, and an import block for each with a vmid and node
    import yaml
    with open(example) as f:
        guests = yaml.safe_load(f)["guests"]
    made = sum(len(v) for k, v in resources.items() if "network_linux_bridge" not in k)
    assert made == len(guests)
    ids = {i["id"] for i in doc.get("import", [])}
    for g in guests:
        if g.get("vmid") and g.get("node"):
            assert f"{g['node']}/{g['vmid']}" in ids, g["name"]


@needs_parser
def test_what_the_hcl_says(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("""project: t
guests:
  - name: web
    vmid: 120
    node: pve
    description: "cost ${var.x} and %{if true}y%{endif}"
    cores: 2
    memory: 2G
    disks: [{storage: local-lvm, size: 16G, options: {discard: "on", ssd: 1}}]
    networks: [{bridge: vmbr0, vlan: 20, ip: 10.0.0.5/24, gw: 10.0.0.1}]
  - name: box
    type: lxc
    vmid: 121
    node: pve
    ostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    rootfs: {storage: local-lvm, size: 8G}
    mounts: [{storage: local-lvm, size: 10G, path: /data}]
    networks: [{name: eth0, bridge: vmbr0, ip: dhcp}]
""")
    doc = parse(export(cfg, tmp_path / "t"))
    vm = doc["resource"]["proxmox_virtual_environment_vm"]["web"][0]
    # the description stays text: HCL's template sequences escaped
    assert vm["description"] == "cost $${var.x} and %%{if true}y%%{endif}"
    assert vm["tags"] == ["pvelab", "pvelab-t"]
    assert vm["cpu"][0]["cores"] == 2 and vm["memory"][0]["dedicated"] == 2048
    assert vm["disk"][0] == {"interface": "scsi0", "datastore_id": "local-lvm", "size": 16,
                             "discard": "on", "ssd": True}
    assert vm["network_device"][0]["vlan_id"] == 20
    assert vm["initialization"][0]["ip_config"][0]["ipv4"][0] == {
        "address": "10.0.0.5/24", "gateway": "10.0.0.1"}
    ct = doc["resource"]["proxmox_virtual_environment_container"]["box"][0]
    assert ct["operating_system"][0]["template_file_id"].endswith("debian-12-standard_12.7-1_amd64.tar.zst")
    assert ct["disk"][0] == {"datastore_id": "local-lvm", "size": 8}
    assert ct["mount_point"][0]["path"] == "/data" and ct["mount_point"][0]["size"] == "10G"
    assert {i["id"] for i in doc["import"]} == {"pve/120", "pve/121"}
    r = run("-c", cfg, "export", "terraform", "--out", tmp_path / "t")
    assert r.rc == 1 and "main.tf: File exists" in r.err
