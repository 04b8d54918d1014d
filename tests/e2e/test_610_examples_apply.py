"""Every example applies cleanly against its simulator seed, and the next plan
shows no changes (issue: the seed homelabs as working examples)."""
import glob
import os

import pytest

from conftest import SRC, run
from simfix import start_sim, stop_sim

EXAMPLES = sorted(glob.glob(os.path.join(SRC, "examples", "*.yaml")))


def seed_for(example):
    name = os.path.basename(example)
    own = os.path.join(SRC, "examples", "sim", name)
    return own if os.path.exists(own) else os.path.join(SRC, "examples", "sim", "demo.yaml")


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_example_applies_and_converges(example, tmp_path):
    info = start_sim("--seed", seed_for(example), "--task-ms", "20")
    env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(tmp_path / "s.db")}
    try:
        r = run("-c", example, "validate", "--live", env=env)
        assert r.rc == 0, r
        r = run("-c", example, "apply", "--yes", "-j", "8", env=env)
        assert r.rc == 0, r
        assert "Apply complete" in r.out
        r = run("-c", example, "plan", "--detailed-exitcode", env=env)
        assert r.rc == 0, r
        assert "No changes." in r.out
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err


def test_homelab_gitops_applies_on_the_demo_cluster(tmp_path):
    """make demo applies homelab-gitops to the 3-node demo cluster."""
    example = os.path.join(SRC, "examples", "homelab-gitops.yaml")
    info = start_sim("--seed", os.path.join(SRC, "examples", "sim", "demo.yaml"), "--task-ms", "20")
    env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(tmp_path / "s.db")}
    try:
        r = run("-c", example, "apply", "--yes", "-j", "8", env=env)
        assert r.rc == 0, r
        assert run("-c", example, "plan", "--detailed-exitcode", env=env).rc == 0
        r = run("status", env=env)
        assert r.rc == 0, r
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err
