"""Issue 31: `pvelab export ansible` writes an inventory and a playbook that
Debian's Ansible accepts for every example, and that really recreates the
guests: run against an empty simulated cluster it creates them, pvelab's
plan of the original YAML then has no change to what was exported, and a
second run changes nothing."""
import glob
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import SRC, run
from simfix import start_sim, stop_sim

EXAMPLES = sorted(glob.glob(os.path.join(SRC, "examples", "*.yaml")))
# what the round trip must bring back unchanged (issue 31)
EXPORTED = {"node", "name", "hostname", "cores", "memory", "tags", "onboot", "net0", "net1", "scsi0",
            "virtio0", "rootfs", "mp0"}

needs_ansible = pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                                   reason="ansible-playbook not installed (make check installs it)")


def export(example, out):
    r = run("-c", example, "export", "ansible", "--out", out)
    assert r.rc == 0, r
    return os.path.join(out, "inventory.yml"), os.path.join(out, "playbook.yml")


def ansible(*args, env=None):
    e = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0",
             ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
             ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
    e.update(env or {})
    return subprocess.run(list(args), capture_output=True, text=True, env=e, timeout=600)


@needs_ansible
@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_every_example_is_valid_ansible(example, tmp_path):
    inv, book = export(example, tmp_path / "a")
    r = ansible("ansible-playbook", "--syntax-check", "-i", inv, book)
    assert r.returncode == 0, r.stdout + r.stderr
    r = ansible("ansible-inventory", "-i", inv, "--list")
    assert r.returncode == 0, r.stdout + r.stderr
    hosts = json.loads(r.stdout)["_meta"]["hostvars"]
    with open(example) as f:
        declared = [g["name"] for g in yaml.safe_load(f)["guests"]]
    assert sorted(hosts) == sorted(declared)


def test_export_never_overwrites_and_names_unknown_guests(tmp_path):
    example = os.path.join(SRC, "examples", "proxmox-mpc.yaml")
    export(example, tmp_path / "a")
    r = run("-c", example, "export", "ansible", "--out", tmp_path / "a")
    assert r.rc == 1 and "inventory.yml: File exists" in r.err, r
    r = run("-c", example, "export", "ansible", "nope", "--out", tmp_path / "b")
    assert r.rc == 1 and "no guest 'nope'" in r.err, r
    r = run("-c", example, "export", "terraformish")
    assert r.rc == 64 and "unknown format 'terraformish'" in r.err, r


def test_text_from_the_config_is_never_templated(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("project: t\nguests:\n  - name: web\n    vmid: 120\n    node: pve\n"
                   "    description: \"{{ lookup('pipe', 'id') }}\"\n")
    _, book = export(cfg, tmp_path / "a")
    text = open(book).read()
    assert "description: !unsafe \"{{ lookup('pipe', 'id') }}\"" in text, text


@needs_ansible
def test_round_trip_against_the_simulator(tmp_path):
    example = os.path.join(SRC, "examples", "proxmox-mpc.yaml")
    seed = os.path.join(SRC, "examples", "sim", "proxmox-mpc.yaml")
    info = start_sim("--seed", seed, "--task-ms", "20")
    try:
        inv, book = export(example, tmp_path / "a")
        user, _, rest = info["token"].partition("!")
        name, _, secret = rest.partition("=")
        extra = ["-e", f"pve_api_host={info['host']}:{info['port']}", "-e", f"pve_api_user={user}",
                 "-e", f"pve_api_token_id={name}", "-e", f"pve_api_token_secret={secret}",
                 "-e", "pve_validate_certs=false"]
        first = ansible("ansible-playbook", "-i", inv, book, *extra)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        assert re.search(r"localhost\s*: ok=\d+\s+changed=[1-9]", first.stdout), first.stdout
        again = ansible("ansible-playbook", "-i", inv, book, *extra)
        assert again.returncode == 0, again.stdout[-3000:]
        assert re.search(r"localhost\s*: ok=\d+\s+changed=0 ", again.stdout), again.stdout[-3000:]
        env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
               "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(tmp_path / "s.db")}
        plan = run("-c", example, "-o", "json", "plan", env=env)
        assert plan.rc in (0, 2), plan
        print("left to pvelab:", [(c["guest"], [d["key"] for d in c.get("diffs", [])])
                                  for c in plan.json()["changes"]])
        for c in plan.json()["changes"]:
            assert c.get("action") not in ("create", "replace", "delete"), c
            changed = {d["key"] for d in c.get("diffs", [])}
            assert not changed & EXPORTED, c
        assert not plan.json().get("blocked"), plan.json()
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err
