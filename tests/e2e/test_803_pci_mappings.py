"""PCI resource mappings (/cluster/mapping/pci, issue 30): the simulator's
endpoint as pve-manager's API2/Cluster/Mapping/PCI.pm and pve-guest-common's
Mapping/PCI.pm answer (digest, 400s, errors, Mapping privileges) and the
hostpci rules of qemu-server (only root@pam passes a raw device; a mapping
needs Mapping.Use; a VM does not start on a node the mapping lacks);
pci_mappings: planned, applied, replanned to zero, updated, imported and
removed like pools; and `host check` holding a mapping against the node."""
import json
import os
import time

import pytest
import requests
import urllib3

from conftest import TESTDATA, run
from simfix import start_sim, stop_sim
from test_200_sync import env_for, full_token

urllib3.disable_warnings()
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

GPU = "id=10de:2184,iommugroup=2,node=pve,path=0000:01:00"


@pytest.fixture
def sim():
    info = start_sim("--task-ms", "10")
    yield info
    rc, err = stop_sim(info)
    assert rc == 0, err


def call(info, method, where, token=None, **params):
    """A request as a second client makes it; list values become repeated keys."""
    h = {"Authorization": "PVEAPIToken=" + (token or full_token(info))}
    data = [(k, x) for k, v in params.items() for x in (v if isinstance(v, list) else [v])]
    kw = {"params": data} if method == "GET" else {"data": data}
    return requests.request(method, info["url"] + "/api2/json" + where, headers=h, verify=False,
                            timeout=30, **kw)


def wait_task(info, upid, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        st = call(info, "GET", f"/nodes/pve/tasks/{upid}/status").json()["data"]
        if st["status"] == "stopped":
            return st
        time.sleep(0.02)
    raise AssertionError(f"task {upid} did not end")


def test_endpoint_as_pve_answers(sim):
    r = call(sim, "POST", "/cluster/mapping/pci", id="gpu", map=[GPU, GPU.replace("=pve,", "=pve2,")],
             description="the GPU")
    assert r.status_code == 200 and r.json() == {"data": None}, r.text
    (m,) = call(sim, "GET", "/cluster/mapping/pci").json()["data"]
    assert m["id"] == "gpu" and m["description"] == "the GPU" and len(m["digest"]) == 40
    assert m["map"] == [GPU, GPU.replace("=pve,", "=pve2,")]
    one = call(sim, "GET", "/cluster/mapping/pci/gpu").json()["data"]
    assert one["digest"] == m["digest"] and "id" not in one
    # check-node reports a node the mapping lacks
    (c,) = call(sim, "GET", "/cluster/mapping/pci", **{"check-node": "pve"}).json()["data"]
    assert c["checks"] == []
    call(sim, "PUT", "/cluster/mapping/pci/gpu", map=[GPU.replace("=pve,", "=pve2,")])
    (c,) = call(sim, "GET", "/cluster/mapping/pci", **{"check-node": "pve"}).json()["data"]
    assert c["checks"] == [{"severity": "warning", "message": "No mapping for node pve."}]
    # the digest: the old one is refused, the new one taken
    r = call(sim, "PUT", "/cluster/mapping/pci/gpu", digest=m["digest"], map=[GPU])
    assert r.status_code == 500 and "detected modified configuration" in r.json()["message"]
    digest = call(sim, "GET", "/cluster/mapping/pci/gpu").json()["data"]["digest"]
    assert call(sim, "PUT", "/cluster/mapping/pci/gpu", digest=digest, map=[GPU]).status_code == 200
    # map_fmt's checks, before anything else (400)
    for bad, key in [("id=10de:2184,node=pve,path=01:00", "path"),
                     ("id=10de,node=pve,path=0000:01:00", "id"),
                     ("node=pve,path=0000:01:00", "id")]:
        r = call(sim, "POST", "/cluster/mapping/pci", id="gpu", map=bad)
        assert r.status_code == 400, (bad, r.text)
        assert key in r.json()["errors"]["map"], r.json()
    r = call(sim, "POST", "/cluster/mapping/pci", id="other")
    assert r.status_code == 400 and "map" in r.json()["errors"]
    r = call(sim, "POST", "/cluster/mapping/pci", id="gpu", map=GPU)
    assert r.status_code == 500
    assert r.json()["message"] == "create hardware mapping failed: pci ID 'gpu' already defined\n"
    r = call(sim, "PUT", "/cluster/mapping/pci/gpu", delete="map")
    assert r.status_code == 500 and "unable to delete required option 'map'" in r.json()["message"]
    r = call(sim, "PUT", "/cluster/mapping/pci/nope", description="x")
    assert r.status_code == 500 and "pci ID 'nope' does not exist" in r.json()["message"]
    r = call(sim, "GET", "/cluster/mapping/pci/nope")
    assert r.status_code == 500 and r.json()["message"] == "mapping 'nope' not found\n"
    assert call(sim, "PUT", "/cluster/mapping/pci/gpu", mdev="1").status_code == 200
    assert call(sim, "GET", "/cluster/mapping/pci/gpu").json()["data"]["mdev"] == 1
    assert call(sim, "PUT", "/cluster/mapping/pci/gpu", delete="mdev").status_code == 200
    assert "mdev" not in call(sim, "GET", "/cluster/mapping/pci/gpu").json()["data"]
    # the auditor sees it and cannot change it
    ro = sim["readonly_token"]
    assert [x["id"] for x in call(sim, "GET", "/cluster/mapping/pci", token=ro).json()["data"]] == ["gpu"]
    r = call(sim, "POST", "/cluster/mapping/pci", token=ro, id="other", map=GPU)
    assert r.status_code == 403 and "/mapping/pci, Mapping.Modify" in r.json()["message"]
    # a mapping that is not there is no error to delete
    assert call(sim, "DELETE", "/cluster/mapping/pci/nope").status_code == 200
    assert call(sim, "DELETE", "/cluster/mapping/pci/gpu").status_code == 200
    assert call(sim, "GET", "/cluster/mapping/pci").json()["data"] == []


def test_hostpci_rules(sim):
    call(sim, "POST", "/cluster/mapping/pci", id="gpu", map=GPU)
    call(sim, "POST", "/cluster/mapping/pci", id="elsewhere", map=GPU.replace("=pve,", "=pve9,"))
    # a token, even root@pam's, passes no raw device
    r = call(sim, "POST", "/nodes/pve/qemu", vmid="300", hostpci0="0000:01:00,pcie=1")
    assert r.status_code == 500
    assert r.json()["message"] == "only root can set 'hostpci0' config for non-mapped devices\n"
    up = call(sim, "POST", "/nodes/pve/qemu", vmid="300", machine="q35",
              hostpci0="mapping=gpu,pcie=1").json()["data"]
    assert wait_task(sim, up)["exitstatus"] == "OK"
    assert call(sim, "GET", "/nodes/pve/qemu/300/config").json()["data"]["hostpci0"] == \
        "mapping=gpu,pcie=1"
    # a user with the VM but not the mapping
    assert call(sim, "POST", "/access/users", userid="gamer@pve").status_code == 200
    tok = call(sim, "POST", "/access/users/gamer@pve/token/tok", privsep="0").json()["data"]
    gamer = tok["full-tokenid"] + "=" + tok["value"]
    call(sim, "PUT", "/access/acl", path="/vms/300", users="gamer@pve", roles="PVEVMAdmin")
    assert call(sim, "GET", "/cluster/mapping/pci", token=gamer).json()["data"] == []
    r = call(sim, "PUT", "/nodes/pve/qemu/300/config", token=gamer, hostpci1="mapping=gpu")
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "Permission check failed (/mapping/pci/gpu, Mapping.Use)\n"
    call(sim, "PUT", "/access/acl", path="/mapping/pci/gpu", users="gamer@pve",
         roles="PVEMappingUser")
    assert [x["id"] for x in call(sim, "GET", "/cluster/mapping/pci", token=gamer).json()["data"]] \
        == ["gpu"]
    r = call(sim, "PUT", "/nodes/pve/qemu/300/config", token=gamer, hostpci1="mapping=gpu")
    assert r.status_code == 200, r.text
    # the VM starts where the mapping has the node, not where it lacks it
    up = call(sim, "POST", "/nodes/pve/qemu/300/status/start").json()["data"]
    assert wait_task(sim, up)["exitstatus"] == "OK"
    call(sim, "POST", "/nodes/pve/qemu/300/status/stop")
    call(sim, "PUT", "/nodes/pve/qemu/300/config", hostpci1="mapping=elsewhere")
    end = time.monotonic() + 30
    while call(sim, "GET", "/nodes/pve/qemu/300/status/current").json()["data"]["status"] != "stopped":
        assert time.monotonic() < end
        time.sleep(0.02)
    up = call(sim, "POST", "/nodes/pve/qemu/300/status/start").json()["data"]
    assert wait_task(sim, up)["exitstatus"] == "PCI device mapping not found for 'elsewhere'"


LAB = """
project: lab
pci_mappings:
  - name: gpu
    description: the gaming card
    map:
      - {{ node: pve, path: "0000:01:00", id: "10de:2184", iommugroup: {group} }}
guests:
  - name: gaming
    vmid: 310
    node: pve
    machine: q35
    bios: ovmf
    state: stopped
    hostpci:
      - {{ mapping: gpu, pcie: true }}
"""


def test_plan_apply_import(sim, tmp_path):
    env = env_for(sim, tmp_path / "state.db")
    cfg = tmp_path / "lab.yaml"
    cfg.write_text(LAB.format(group=2))
    plan = json.loads(run("-c", cfg, "-o", "json", "plan", env=env).out)
    (ch,) = [c for c in plan["changes"] if c["action"] == "pci_mapping"]
    assert ch["class"] == "create" and ch["params"]["map"] == [GPU]
    assert ch["params"]["description"] == "the gaming card [pvelab:lab]"
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    (m,) = call(sim, "GET", "/cluster/mapping/pci").json()["data"]
    assert m["map"] == [GPU] and m["description"] == "the gaming card [pvelab:lab]"
    assert call(sim, "GET", "/nodes/pve/qemu/310/config").json()["data"]["hostpci0"] == \
        "mapping=gpu,pcie=1"
    r = run("-c", cfg, "plan", "--detailed-exitcode", env=env)
    assert r.rc == 0 and "No changes." in r.out, r
    # the same entry written in another key order by hand is no change
    call(sim, "PUT", "/cluster/mapping/pci/gpu", map="path=0000:01:00,node=pve,iommugroup=2,id=10de:2184")
    r = run("-c", cfg, "plan", "--detailed-exitcode", env=env)
    assert r.rc == 0, r
    # a changed group is one update of map
    cfg.write_text(LAB.format(group=5))
    r = run("-c", cfg, "plan", env=env)
    assert "~   mapping gpu (PCI mapping)" in r.out, r
    assert "~ map: " in r.out and "iommugroup=5" in r.out, r
    assert run("-c", cfg, "apply", "--yes", env=env).rc == 0
    assert call(sim, "GET", "/cluster/mapping/pci/gpu").json()["data"]["map"] == \
        [GPU.replace("=2,", "=5,")]
    # the sync keeps its history
    r = run("history", "pci-mapping:gpu", "-o", "json", env=env)
    assert r.rc == 0 and r.out.count('"kind"') >= 2, r
    # no longer declared while the VM still passes it: refused
    text = LAB.format(group=5)
    cfg.write_text(text.split("pci_mappings:")[0] + "guests:" + text.split("guests:")[1])
    r = run("-c", cfg, "plan", env=env)
    assert "blocked PCI mapping gpu: PCI mapping 'gpu' is still passed to gaming (310)" in r.out, r
    # a guest naming a mapping nobody has
    bad = tmp_path / "bad.yaml"
    bad.write_text("project: lab\nguests:\n  - {name: other, vmid: 311, node: pve, machine: q35,"
                   " state: stopped, hostpci: [{mapping: nope}]}\n")
    r = run("-c", bad, "plan", env=env)
    assert "guest 'other' passes PCI mapping 'nope', which does not exist" in r.out, r
    # a hand-made mapping imported: the next plan has nothing to do for it
    call(sim, "POST", "/cluster/mapping/pci", id="nic", description="the 10G card",
         map="id=8086:1572,iommugroup=7,node=pve,path=0000:03:00.0", mdev="0")
    out = tmp_path / "nic.yaml"
    r = run("import", "pci-mapping:nic", "--out", out, env=env)
    assert r.rc == 0, r
    text = out.read_text()
    assert "pci_mappings:" in text and "iommugroup: 7" in text and "the 10G card" in text, text
    assert call(sim, "GET", "/cluster/mapping/pci/nic").json()["data"]["description"] == \
        "the 10G card [pvelab:nic]"
    r = run("-c", out, "plan", "--detailed-exitcode", env=env)
    assert r.rc == 0, r
    # destroy removes the project's mapping
    r = run("-c", out, "destroy", "--yes", env=env)
    assert r.rc == 0, r
    assert [x["id"] for x in call(sim, "GET", "/cluster/mapping/pci").json()["data"]] == ["gpu"]


def test_host_check_holds_the_declared_mapping_against_the_node(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("project: t\npci_mappings:\n  - name: gpu\n    map:\n"
                   "      - {node: pve-cml, path: \"0000:01:00\", id: \"10de:2184\", iommugroup: 3}\n"
                   "      - {node: other, path: \"0000:02:00\", id: \"10de:2184\"}\n")
    r = run("-c", cfg, "host", "check", "--root", os.path.join(TESTDATA, "hosts", "nouveau-holds"),
            "-o", "json")
    assert r.rc == 1, r
    found = {(f["id"], f["subject"]): f for f in r.json()["hosts"][0]["findings"]}
    f = found[("pci-mapping", "mapping gpu")]
    assert f["status"] == "fail"
    assert f["evidence"][1:] == [
        "0000:01:00.0 is 10de:21c4, the mapping says id=10de:2184",
        "0000:01:00.0 is in IOMMU group 1, the mapping says iommugroup=3",
        "subsystem-id is missing: 0000:01:00.0 has 1043:877f"]
    assert f["fix"]["change"] == ('pci_mappings: gpu, map: { node: pve-cml, path: "0000:01:00", '
                                  'id: "10de:21c4", iommugroup: 1, subsystem_id: "1043:877f" }')
    # the node's own pci.cfg entry matches
    assert found[("pci-mapping", "mapping gtx1660")]["status"] == "pass"
