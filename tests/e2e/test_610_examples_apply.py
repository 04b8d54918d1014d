"""make demo's job as a test: homelab-gitops applies to the 3-node demo cluster
(examples/sim/demo.yaml keeps its own guests on VMIDs 300-311 for that), the
next plan shows no changes, and status reads the result. Each example against
its own seed is test_501."""
import os

from conftest import SRC, run
from plancheck import assert_steps_match, last_apply_result
from simfix import start_sim, stop_sim
import stackfix


def test_homelab_gitops_applies_on_the_demo_cluster(tmp_path):
    example = os.path.join(SRC, "examples", "homelab-gitops.yaml")
    info = start_sim("--seed", os.path.join(SRC, "examples", "sim", "demo.yaml"), "--task-ms", "20")
    guests = stackfix.for_example(example, tmp_path)  # its docker container's stack
    env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(tmp_path / "s.db"),
           **guests.env}
    try:
        assert run("-c", example, "validate", "--live", env=env).rc == 0
        plan = run("-c", example, "-o", "json", "plan", env=env).json()
        r = run("-c", example, "apply", "--yes", "-j", "8", env=env)
        assert r.rc == 0, r
        assert_steps_match(plan, last_apply_result(env["PVELAB_STATE"]))
        assert run("-c", example, "plan", "--detailed-exitcode", env=env).rc == 0
        r = run("status", env=env)
        assert r.rc == 0 and "pve3" in r.out, r
        # the demo cluster's own guests were left alone
        r = run("-o", "json", "list", env=env)
        names = {g["vmid"]: g["name"] for g in r.json()}
        assert names[300] == "proxy" and names[310] == "dns"
    finally:
        guests.close()
        rc, err = stop_sim(info)
        assert rc == 0, err
