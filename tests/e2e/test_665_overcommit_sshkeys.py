"""validate warns when the running guests of a node need more memory than it
has (this config's guests where they will run, plus the running guests it
does not declare), and a container's ssh_keys reach PVE's create as
ssh-public-keys, checked as PVE checks them (ssh-keygen -l)."""
import os

import pytest
import requests
import urllib3
import yaml

from conftest import SRC, run
from simfix import DEMO_SEED, start_sim, stop_sim

urllib3.disable_warnings()
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

EXAMPLES = os.path.join(SRC, "examples")
# made with ssh-keygen; the private half was deleted at once
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKs86tQAW4v4TTndgNnyO6pHXTXzSRIkK81TAxpEaFrR ops@example"


def env_of(info, tmp_path):
    return {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
            "PVELAB_FINGERPRINT": info["fingerprint"],
            "PVELAB_STATE": str(tmp_path / "state.db")}


def overcommit(diags):
    return [d for d in diags if "need" in d["message"] and "GiB of memory" in d["message"]]


@pytest.fixture
def gitops_sim():
    info = start_sim("--seed", os.path.join(EXAMPLES, "sim", "homelab-gitops.yaml"),
                     "--pve-version", "8.4")
    yield info
    rc, err = stop_sim(info)
    assert rc == 0, err


def test_homelab_gitops_fits_its_31g_host_until_immich_backup_runs(gitops_sim, tmp_path):
    env = env_of(gitops_sim, tmp_path)
    example = os.path.join(EXAMPLES, "homelab-gitops.yaml")
    r = run("-c", example, "-o", "json", "validate", "--live", env=env, cwd=str(tmp_path))
    assert r.rc == 0 and overcommit(r.json()["diagnostics"]) == [], r
    # the seed's 9 GB Immich backup instance is stopped by default: running it
    # over-commits the 31 GB host (27.5 + 9 = 36.5 GiB)
    with open(example) as f:
        doc = yaml.safe_load(f)
    for g in doc["guests"]:
        if g["name"] == "immich-backup":
            g["state"] = "running"
    cfg = tmp_path / "gitops.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    r = run("-c", str(cfg), "-o", "json", "validate", "--live", env=env, cwd=str(tmp_path))
    assert r.rc == 0, r  # a warning, not an error
    warn = overcommit(r.json()["diagnostics"])
    assert len(warn) == 1, r.json()
    assert warn[0]["level"] == "warning"
    assert warn[0]["message"].startswith(
        "running guests on node 'pve' need 36.50 GiB of memory, more than its 31.00 GiB "
        "(30 of this config's guests take 36.50 GiB of it;"), warn
    # the same from the state database alone, without --live
    r = run("-c", str(cfg), "-o", "json", "validate", env=env, cwd=str(tmp_path))
    assert len(overcommit(r.json()["diagnostics"])) == 1, r.json()
    # stopped guests do not count
    assert run("-c", str(cfg), "validate", "--offline", env=env, cwd=str(tmp_path)).rc == 0


def test_guests_the_config_does_not_declare_count_too(tmp_path):
    """On the demo cluster, pve1 (64 GiB) already runs guests of its own: a
    config guest that fits alone still over-commits the node, and guests
    with no node are counted against all online nodes together."""
    info = start_sim("--seed", DEMO_SEED)
    try:
        env = env_of(info, tmp_path)
        assert run("sync", env=env, cwd=str(tmp_path)).rc == 0
        r = run("-o", "json", "list", env=env, cwd=str(tmp_path))
        others = sum(g.get("maxmem", 0) for g in r.json()
                     if g["node"] == "pve1" and g["status"] == "running")
        assert others > 0
        fits = 64 * 1024 - others // 1048576  # MiB left on pve1
        cfg = tmp_path / "big.yaml"
        cfg.write_text(yaml.safe_dump({"guests": [
            {"name": "big", "type": "lxc", "node": "pve1", "memory": fits + 1024,
             "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}]}))
        r = run("-c", str(cfg), "-o", "json", "validate", env=env, cwd=str(tmp_path))
        warn = overcommit(r.json()["diagnostics"])
        assert len(warn) == 1 and "node 'pve1'" in warn[0]["message"], r.json()
        cfg.write_text(yaml.safe_dump({"guests": [
            {"name": "big", "type": "lxc", "node": "pve1", "memory": fits - 1024,
             "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}]}))
        r = run("-c", str(cfg), "-o", "json", "validate", env=env, cwd=str(tmp_path))
        assert overcommit(r.json()["diagnostics"]) == [], r.json()
        # 200 GiB in guests with no node: more than the 160 GiB of all three nodes
        cfg.write_text(yaml.safe_dump({"guests": [
            {"name": f"g{i}", "type": "lxc", "memory": "50G",
             "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
            for i in range(4)]}))
        r = run("-c", str(cfg), "-o", "json", "validate", env=env, cwd=str(tmp_path))
        warn = overcommit(r.json()["diagnostics"])
        assert len(warn) == 1, r.json()
        assert "more than the 160.00 GiB of all online nodes together" in warn[0]["message"]
        assert "200.00 GiB of them on no node yet" in warn[0]["message"]
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err


def test_container_ssh_keys_reach_create(tmp_path):
    info = start_sim("--seed", DEMO_SEED, "--task-ms", "10")
    try:
        env = env_of(info, tmp_path)
        guest = {"name": "keyed", "type": "lxc", "node": "pve1", "vmid": 450,
                 "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                 "ssh_keys": [KEY]}
        cfg = tmp_path / "keys.yaml"
        cfg.write_text(yaml.safe_dump({"guests": [guest]}))
        r = run("-c", str(cfg), "-o", "json", "plan", env=env, cwd=str(tmp_path))
        assert r.rc == 0, r
        (change,) = r.json()["changes"]
        assert change["create"]["ssh-public-keys"] == KEY + "\n"
        r = run("-c", str(cfg), "plan", env=env, cwd=str(tmp_path))
        assert "create  keyed (lxc 450 on pve1)  with 1 SSH key for root" in r.out, r
        r = run("-c", str(cfg), "apply", "--yes", env=env, cwd=str(tmp_path))
        assert r.rc == 0, r
        # PVE keeps no record of the keys: nothing to compare, no phantom diff
        r = run("-c", str(cfg), "plan", "--detailed-exitcode", env=env, cwd=str(tmp_path))
        assert r.rc == 0 and "No changes." in r.out, r
        # the simulator refuses a key as PVE does, so the parameter is really sent
        resp = requests.post(info["url"] + "/api2/json/nodes/pve1/lxc", verify=False, timeout=30,
                             headers={"Authorization": "PVEAPIToken=" + info["token"]},
                             data={"vmid": 451, "ostemplate":
                                   "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                                   "ssh-public-keys": KEY + "\nssh-ed25519 AAAA broken"})
        assert resp.status_code == 500, resp.text
        assert "SSH public key validation error" in resp.reason + resp.text
        resp = requests.get(info["url"] + "/api2/json/cluster/resources", verify=False, timeout=30,
                            headers={"Authorization": "PVEAPIToken=" + info["token"]})
        assert 451 not in {g.get("vmid") for g in resp.json()["data"]}
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err


@pytest.mark.parametrize("where", ["ssh_keys", "cloudinit"])
def test_validate_refuses_what_is_not_a_key(tmp_path, where):
    if where == "ssh_keys":
        g = {"name": "ct", "type": "lxc", "ostemplate": "local:vztmpl/x.tar.zst",
             "ssh_keys": [KEY, "ssh-ed25519 AAAA me@host"]}
    else:
        g = {"name": "vm", "cloudinit": {"ssh_keys": [KEY, "ssh-ed25519 AAAA me@host"]}}
    cfg = tmp_path / "k.yaml"
    cfg.write_text(yaml.safe_dump({"guests": [g]}))
    r = run("-c", str(cfg), "-o", "json", "validate", "--offline")
    assert r.rc == 1, r
    (d,) = r.json()["diagnostics"]
    assert d["message"].startswith("'ssh-ed25519 AAAA me@host' is not an OpenSSH public key"), d
    assert d["key"] == ("guests[0].ssh_keys[1]" if where == "ssh_keys"
                        else "guests[0].cloudinit.ssh_keys[1]"), d
    # a VM has no ssh_keys of its own: its keys are cloud-init's
    cfg.write_text(yaml.safe_dump({"guests": [{"name": "vm", "ssh_keys": [KEY]}]}))
    r = run("-c", str(cfg), "-o", "json", "validate", "--offline")
    assert r.rc == 1 and "only for containers" in r.out, r
