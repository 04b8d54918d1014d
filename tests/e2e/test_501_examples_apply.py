"""The seed homelabs applied to their simulated clusters: every example in
examples/ validates against examples/sim/<example>.yaml (--live), applies to
it, and the next plan shows no changes (`plan --detailed-exitcode` exits 0)
-- no phantom diffs from the settings real homelabs use (efidisk/TPM, PCI passthrough, imported disks,
bind mounts, dual-network containers, clones of cloud-init templates)."""
import json
import os

import pytest
import requests
import urllib3
import yaml

from conftest import SRC, run
from plancheck import assert_steps_match, assert_summary_matches_lines, last_apply_result
from simfix import start_sim, stop_sim
from stackfix import Guests, ssh_stacks

urllib3.disable_warnings()
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

EXAMPLES = os.path.join(SRC, "examples")
# the seeds whose hosts run Proxmox VE 8 say so; the rest take the default
PVE8 = {"homelab-gitops.yaml", "homeserver.yaml"}
NAMES = sorted(n for n in os.listdir(EXAMPLES)
               if n.endswith(".yaml") and os.path.exists(os.path.join(EXAMPLES, "sim", n)))


@pytest.mark.parametrize("name", NAMES)
def test_example_applies_and_converges(name, tmp_path):
    # healthchecks of the examples' stacks pass after 50 ms, not their 30 s
    args = ["--seed", os.path.join(EXAMPLES, "sim", name), "--task-ms", "10", "--health-ms", "50"]
    if name in PVE8:
        args += ["--pve-version", "8.4"]
    cfg = os.path.join(EXAMPLES, name)
    with open(cfg) as f:
        doc = yaml.safe_load(f)
    guests = Guests(tmp_path) if ssh_stacks(doc) else None
    info = start_sim(*args)
    try:
        env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
               "PVELAB_FINGERPRINT": info["fingerprint"],
               "PVELAB_STATE": str(tmp_path / "state.db"), **(guests.env if guests else {})}
        r = run("-c", cfg, "validate", "--live", env=env, cwd=str(tmp_path))
        assert r.rc == 0 and "0 warnings" in r.out, r
        plan = run("-c", cfg, "-o", "json", "plan", env=env, cwd=str(tmp_path)).json()
        r = run("-c", cfg, "apply", "--yes", "-j", "8", env=env, cwd=str(tmp_path))
        assert r.rc == 0, r
        assert "Apply complete" in r.out, r
        # apply did exactly what its plan listed, and the plan's summary counts its lines
        assert_steps_match(plan, last_apply_result(env["PVELAB_STATE"]))
        assert_summary_matches_lines(r.out)
        r = run("-c", cfg, "plan", "--detailed-exitcode", env=env, cwd=str(tmp_path))
        assert r.rc == 0, r
        assert "No changes." in r.out, r
        # every declared guest exists with its VMID (where given) and power state
        live = requests.get(info["url"] + "/api2/json/cluster/resources",
                            params={"type": "vm"}, verify=False, timeout=30,
                            headers={"Authorization": "PVEAPIToken=" + info["token"]}).json()["data"]
        by_name = {g.get("name"): g for g in live}
        for g in doc["guests"]:
            g = {**(doc.get("defaults") or {}), **g}
            assert g["name"] in by_name, (g["name"], sorted(by_name))
            if "vmid" in g:
                assert by_name[g["name"]]["vmid"] == g["vmid"], g["name"]
            assert by_name[g["name"]]["status"] == g.get("state", "running"), g["name"]
        # and every declared storage, backup job and pool (issue 28)
        def get(path):
            return requests.get(info["url"] + "/api2/json/" + path, verify=False, timeout=30,
                                headers={"Authorization": "PVEAPIToken=" + info["token"]}).json()["data"]
        stores = {s["storage"]: s for s in get("storage")}
        for s in doc.get("storages") or []:
            assert stores[s["name"]]["type"] == s["type"], s["name"]
        jobs = {j["id"]: j for j in get("cluster/backup")}
        for b in doc.get("backups") or []:
            assert jobs[b["id"]]["schedule"] == b["schedule"], b["id"]
            assert jobs[b["id"]]["comment"].endswith("[pvelab:" + doc.get("project", name[:-5]) + "]")
        pools = {p["poolid"] for p in get("pools")}
        assert {p["name"] for p in doc.get("pools") or []} <= pools
        # the stacks went over SSH into the containers: the example's own
        # compose files, brought up and checked (issue 29)
        if guests:
            calls = guests.calls()
            for gname, stack in ssh_stacks(doc):
                (st,) = [s for g in doc["guests"] if g["name"] == gname for s in g["stacks"]
                         if s["name"] == stack]
                where = guests.opt / "pvelab" / "stacks" / stack
                for c in st["compose"]:
                    with open(os.path.join(EXAMPLES, c)) as f:
                        assert (where / os.path.basename(c)).read_text() == f.read(), c
                ups = [c for c in calls if c.startswith(f"compose -p {stack} ") and
                       c.endswith(" up -d --remove-orphans")]
                assert len(ups) == 1, calls
                assert json.loads((guests.state / f"{stack}.json").read_text()), stack
    finally:
        rc, err = stop_sim(info)
        if guests:
            guests.close()
        assert rc == 0, err


def test_timeshift_profiles_select_their_category(tmp_path):
    """The seed's five profiles: `full` is the hybrid VM 220, the others the VM
    of their own category."""
    info = start_sim("--seed", os.path.join(EXAMPLES, "sim", "timeshift.yaml"))
    try:
        env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
               "PVELAB_FINGERPRINT": info["fingerprint"],
               "PVELAB_STATE": str(tmp_path / "state.db")}
        cfg = os.path.join(EXAMPLES, "timeshift.yaml")
        want = {"full": 220, "mcp": 200, "idrac": 210, "timeshift": 230, "monitoring": 240}
        for profile, vmid in want.items():
            r = run("-c", cfg, "-o", "json", "plan", "--profile", profile, env=env,
                    cwd=str(tmp_path))
            assert r.rc == 0, r
            changes = r.json()["changes"]
            assert [(c["action"], c["vmid"]) for c in changes] == [("create", vmid)], profile
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err
