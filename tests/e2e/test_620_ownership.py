"""Ownership per configuration (issue 15, part A) against the simulator: each
config is a project whose guests carry the tag pvelab-<project>; a plan only
ever deletes its own project's guests, lists the others as managed elsewhere
and blocks declared ones; legacy pvelab guests are claimed with `pvelab adopt`;
apply deletes only with --allow-delete (and safety.max_deletes); import --out
never overwrites and --merge adds to an existing file; destroy respects the
project."""
import json
import os
import pty
import select
import subprocess

import pytest

from conftest import BIN, state_rows
from test_600_plan_apply import TEMPLATE, Lab

LAB1 = f"""
guests:
  - name: a1
    memory: 512
    networks: [{{bridge: vmbr0}}]
  - name: a2
    type: lxc
    ostemplate: {TEMPLATE}
    memory: 256
"""

LAB2 = """
guests:
  - name: b1
    memory: 512
    networks: [{bridge: vmbr0}]
"""


@pytest.fixture
def lab(tmp_path):
    l = Lab(tmp_path)
    yield l
    l.close()


class Project:
    """One config file (its name is its project) on the lab's cluster."""

    def __init__(self, lab, name, text, state=None):
        self.lab = lab
        self.cfg = lab.dir / f"{name}.yaml"
        self.cfg.write_text(text)
        self.env = dict(lab.env)
        if state:
            self.env["PVELAB_STATE"] = str(lab.dir / state)

    def write(self, text):
        self.cfg.write_text(text)

    def pvelab(self, *args, **kw):
        return subprocess_run(self, *args, **kw)

    def plan_json(self, *args):
        r = self.pvelab("-o", "json", "plan", *args)
        assert r.rc in (0, 2), r
        return r.json()


def subprocess_run(p, *args, **kw):
    from conftest import run
    return run("-c", str(p.cfg), *args, env=p.env, cwd=str(p.lab.dir), **kw)


def tags_of(lab):
    return {g["name"]: set(filter(None, g.get("tags", "").split(";"))) for g in lab.guests()}


def vmids(lab):
    return {g["name"]: g["vmid"] for g in lab.guests()}


@pytest.mark.parametrize("state", ["shared", "separate"])
def test_two_projects_never_touch_each_other(lab, state):
    p1 = Project(lab, "lab1", LAB1, None if state == "shared" else "s1.db")
    p2 = Project(lab, "lab2", LAB2, None if state == "shared" else "s2.db")
    r = p1.pvelab("apply", "--yes")
    assert r.rc == 0, r
    tags = tags_of(lab)
    assert tags["a1"] == {"pvelab", "pvelab-lab1"} and tags["a2"] == {"pvelab", "pvelab-lab1"}
    # lab2 sees lab1's guests as managed elsewhere, plans no delete of them
    plan = p2.plan_json()
    assert [(c["action"], c["guest"]) for c in plan["changes"]] == [("create", "b1")]
    assert plan["project"] == "lab2"
    assert sorted((e["name"], e["project"]) for e in plan["elsewhere"]) == [("a1", "lab1"), ("a2", "lab1")]
    assert plan["summary"]["delete"] == 0
    r = p2.pvelab("plan")
    assert "2 guests are managed elsewhere (never touched by project 'lab2'): " in r.out, r
    assert "(project 'lab1')" in r.out
    before = vmids(lab)
    r = p2.pvelab("apply", "--yes", "--allow-delete")
    assert r.rc == 0, r
    after = vmids(lab)
    assert {k: v for k, v in after.items() if k != "b1"} == before
    assert tags_of(lab)["b1"] == {"pvelab", "pvelab-lab2"}
    # each converged, neither wants the other's guests
    for p in (p1, p2):
        r = p.pvelab("plan", "--detailed-exitcode")
        assert r.rc == 0 and "No changes." in r.out, r
    # lab2 dropping its guest deletes only its own
    p2.write("guests: []\n")
    plan = p2.plan_json()
    assert [(c["action"], c["guest"]) for c in plan["changes"]] == [("delete", "b1")]
    r = p2.pvelab("apply", "--yes", "--allow-delete")
    assert r.rc == 0, r
    assert set(vmids(lab)) == {"vm100", "vm101", "vm102", "a1", "a2"}
    r = p1.pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0, r
    # a guest lab2 declares by a name lab1 owns is blocked, never taken
    p2.write("guests:\n  - name: a1\n    memory: 1G\n")
    plan = p2.plan_json()
    assert plan["changes"] == []
    assert [b["reason"] for b in plan["blocked"]] == [
        f"{before['a1']} 'a1' is managed by project 'lab1' (pvelab adopt a1 --from lab1 moves it here)"]
    r = p2.pvelab("apply", "--yes", "--allow-delete")
    assert r.rc == 1 and "blocked" in r.err, r
    assert next(g for g in lab.guests() if g["name"] == "a1")["maxmem"] == 512 << 20


def test_empty_config_plans_no_delete_of_other_projects(lab):
    p1 = Project(lab, "lab1", LAB1)
    assert p1.pvelab("apply", "--yes").rc == 0
    before = vmids(lab)
    empty = Project(lab, "empty", "")
    r = empty.pvelab("validate")
    assert r.rc == 0 and "valid (0 guests, project 'empty'" in r.out, r
    assert json.loads(empty.pvelab("-o", "json", "validate").out)["project"] == "empty"
    plan = empty.plan_json("--detailed-exitcode")
    assert plan["changes"] == [] and plan["summary"]["delete"] == 0
    assert {e["name"] for e in plan["elsewhere"]} == {"a1", "a2"}
    r = empty.pvelab("apply", "--yes", "--allow-delete")
    assert r.rc == 0 and "No changes." in r.out, r
    assert vmids(lab) == before
    # pvelab.yaml's project is its directory's name
    lab.write("guests: []\n")
    r = lab.pvelab("validate")
    proj = lab.dir.name.lower()[:32].rstrip("-_")
    assert f"project '{proj}'" in r.out, r


def test_bad_project_is_a_located_error(lab):
    lab.write("project: Lab 2\nguests: []\n")
    r = lab.pvelab("validate")
    assert r.rc == 1 and "pvelab.yaml:1:1: error: project: 'Lab 2' is not a project name" in r.err, r


def test_legacy_guests_are_elsewhere_blocked_then_adopted(lab):
    # two guests pvelab made before projects: tagged only "pvelab"
    for vmid, name in ((150, "old1"), (151, "old2")):
        upid = lab.api("POST", "/nodes/pve1/qemu", vmid=vmid, name=name, memory=1024, cores=1,
                       net0="virtio,bridge=vmbr0", tags="pvelab;keep")
        lab.wait("pve1", upid)
    # their YAML, without tagging them
    lab.write("")
    r = lab.pvelab("import", "old1", "--no-adopt", "--out", "old.yaml")
    assert r.rc == 0, r
    assert tags_of(lab)["old1"] == {"pvelab", "keep"}
    old = Project(lab, "old", (lab.dir / "old.yaml").read_text())
    plan = old.plan_json()
    assert plan["changes"] == []
    assert [b["reason"] for b in plan["blocked"]] == [
        "150 'old1' was made by pvelab before projects (pvelab adopt old1 claims it for project 'old')"]
    assert plan["elsewhere"] == [{"vmid": 151, "name": "old2", "type": "qemu", "node": "pve1",
                                  "project": None}]
    r = old.pvelab("apply", "--yes", "--allow-delete")
    assert r.rc == 1 and "blocked" in r.err, r
    # adopt needs --yes without a terminal, then claims it (other tags kept)
    r = old.pvelab("adopt", "old1")
    assert r.rc == 64 and "--yes" in r.err, r
    assert tags_of(lab)["old1"] == {"pvelab", "keep"}
    r = old.pvelab("-o", "json", "adopt", "old1", "--yes")
    assert r.rc == 0, r
    assert r.json() == {"project": "old", "adopted": [{"vmid": 150, "name": "old1", "type": "qemu",
                                                        "node": "pve1"}]}
    assert tags_of(lab)["old1"] == {"pvelab", "pvelab-old", "keep"}
    r = old.pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0 and "No changes." in r.out, r
    assert "151 old2 (pvelab before projects" in r.out
    # the old guest was not deleted by anyone; old2 is still legacy
    assert tags_of(lab)["old2"] == {"pvelab", "keep"}


def test_adopt_from_another_project_needs_from(lab):
    p1 = Project(lab, "lab1", LAB1)
    p2 = Project(lab, "lab2", LAB2)
    assert p1.pvelab("apply", "--yes").rc == 0
    r = p2.pvelab("adopt", "a1", "--yes")
    assert r.rc == 1 and "refusing to take" in r.err and "pvelab adopt a1 --from lab1" in r.err, r
    r = p2.pvelab("adopt", "a1", "--yes", "--from", "other")
    assert r.rc == 1 and "managed by project 'lab1', not 'other'" in r.err, r
    assert tags_of(lab)["a1"] == {"pvelab", "pvelab-lab1"}
    r = p2.pvelab("adopt", "a1", "--yes", "--from", "lab1")
    assert r.rc == 0 and "does not change" in r.out and "--merge" in r.out, r
    assert tags_of(lab)["a1"] == {"pvelab", "pvelab-lab2"}
    # lab1 now sees it as lab2's: blocked, never recreated nor deleted
    plan = p1.plan_json()
    assert [b["guest"] for b in plan["blocked"]] == ["a1"]
    assert "managed by project 'lab2'" in plan["blocked"][0]["reason"]
    # the runs are recorded with their project
    runs = state_rows(p2.env["PVELAB_STATE"],
                      "SELECT kind, project FROM runs WHERE kind != 'sync' ORDER BY id")
    assert runs == [("apply", "lab1"), ("adopt", "lab2")]


def test_apply_refuses_deletes_without_allow_delete(lab):
    p = Project(lab, "lab1", LAB1)
    assert p.pvelab("apply", "--yes").rc == 0
    before = vmids(lab)
    p.write("guests: []\n")
    r = p.pvelab("plan")
    assert "Plan: 0 to create, 0 to update, 0 to replace, 2 to delete," in r.out, r
    assert "2 guests will be DESTROYED: a1, a2 (apply deletes only with --allow-delete)" in r.out
    r = p.pvelab("apply", "--yes")
    assert r.rc == 1, r
    assert r.err.strip().splitlines()[-1] == (
        "pvelab: refusing to delete 2 guests (a1, a2) without --allow-delete; nothing was done")
    assert vmids(lab) == before
    # a saved plan made without --allow-delete is refused too
    assert p.pvelab("plan", "--out", "p.json").rc == 0
    assert json.loads((lab.dir / "p.json").read_text())["options"]["allow_delete"] is False
    r = p.pvelab("apply", "p.json", "--yes")
    assert r.rc == 1 and "without --allow-delete" in r.err, r
    assert vmids(lab) == before
    # a configured limit holds even with --allow-delete
    p.write("safety: {max_deletes: 1}\nguests: []\n")
    r = p.pvelab("apply", "--yes", "--allow-delete")
    assert r.rc == 1 and "refusing to delete 2 guests (a1, a2): safety.max_deletes in" in r.err, r
    assert "allows 1; nothing was done" in r.err
    assert vmids(lab) == before
    # a saved plan made with --allow-delete records it, and apply honours it
    p.write("guests: []\n")
    assert p.pvelab("plan", "--out", "p.json", "--allow-delete").rc == 0
    assert json.loads((lab.dir / "p.json").read_text())["options"]["allow_delete"] is True
    r = p.pvelab("apply", "p.json", "--yes")
    assert r.rc == 0, r
    assert set(vmids(lab)) == {"vm100", "vm101", "vm102"}


def test_saved_plan_cannot_smuggle_a_delete(lab):
    p1 = Project(lab, "lab1", LAB1)
    p2 = Project(lab, "lab2", LAB2)
    assert p1.pvelab("apply", "--yes").rc == 0
    assert p2.pvelab("apply", "--yes").rc == 0
    before = vmids(lab)
    p2.write(LAB2.replace("memory: 512", "memory: 768"))
    assert p2.pvelab("plan", "--out", "p.json", "--allow-delete").rc == 0
    plan = json.loads((lab.dir / "p.json").read_text())
    a1 = next(g for g in lab.guests() if g["name"] == "a1")
    plan["changes"].append({"action": "delete", "guest": "a1", "type": "qemu", "vmid": a1["vmid"],
                            "node": a1["node"], "class": "delete"})
    plan["summary"]["delete"] = 1
    (lab.dir / "p.json").write_text(json.dumps(plan))
    r = p2.pvelab("apply", "p.json", "--yes")
    assert r.rc == 1 and f"deletes {a1['vmid']} 'a1'" in r.err, r
    assert vmids(lab) == before


def test_delete_count_is_red_on_a_terminal(lab):
    p = Project(lab, "lab1", LAB1)
    assert p.pvelab("apply", "--yes").rc == 0
    p.write("guests: []\n")
    env = dict(os.environ, **p.env)
    env.pop("NO_COLOR", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "-c", str(p.cfg), "plan"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=str(lab.dir))
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, out
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0
    os.close(master)
    text = out.decode()
    assert "\x1b[31m2 to delete\x1b[0m" in text, text
    assert "\x1b[31m2 guests will be DESTROYED:\x1b[0m a1, a2" in text, text


def test_import_out_never_overwrites_and_merges(lab):
    base = "# my lab, with comments kept\n" + LAB1 + "\n# the end\n"
    lab.write(base)
    assert lab.pvelab("apply", "--yes").rc == 0
    upid = lab.api("POST", "/nodes/pve1/qemu", vmid=321, name="handmade", memory=3072, cores=3,
                   net0="virtio,bridge=vmbr0,firewall=1", scsi0="local-lvm:4", tags="Prod")
    lab.wait("pve1", upid)
    r = lab.pvelab("import", "321", "--out", "pvelab.yaml")
    assert r.rc == 1, r
    assert r.err.strip() == ("pvelab: refusing to overwrite 'pvelab.yaml' (pvelab import --merge adds "
                             "the guests to it; --out a new file writes them apart)")
    assert lab.cfg.read_text() == base
    assert tags_of(lab)["handmade"] == {"Prod"}
    # a guest the file already declares is refused, the file untouched
    r = lab.pvelab("import", "a1", "--out", "pvelab.yaml", "--merge")
    assert r.rc == 1 and "'pvelab.yaml' already declares a guest named 'a1'" in r.err, r
    assert lab.cfg.read_text() == base
    r = lab.pvelab("import", "handmade", "--out", "pvelab.yaml", "--merge")
    assert r.rc == 0, r
    text = lab.cfg.read_text()
    assert text.startswith(base.split("\n# the end")[0]) and text.endswith("\n# the end\n"), text
    assert "  - name: handmade\n" in text
    proj = lab.dir.name.lower()[:32].rstrip("-_")
    assert tags_of(lab)["handmade"] == {"pvelab", f"pvelab-{proj}", "prod"}
    r = lab.pvelab("validate")
    assert r.rc == 0 and "valid (3 guests" in r.out, r
    r = lab.pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0 and "No changes." in r.out, r


def test_import_merge_into_empty_list_and_new_file(lab):
    lab.write("# nothing yet\nguests: []  # filled by import\ncluster: {timeout: 30}\n")
    upid = lab.api("POST", "/nodes/pve1/qemu", vmid=330, name="one", memory=1024,
                   net0="virtio,bridge=vmbr0")
    lab.wait("pve1", upid)
    r = lab.pvelab("import", "one", "--out", "pvelab.yaml", "--merge")
    assert r.rc == 0, r
    text = lab.cfg.read_text()
    assert text.startswith("# nothing yet\nguests:\n") and text.endswith("cluster: {timeout: 30}\n"), text
    assert lab.pvelab("plan", "--detailed-exitcode").rc == 0
    # a new file names its project, and a guest of another project is refused
    r = lab.pvelab("import", "vm100", "--out", "new.yaml")
    assert r.rc == 0, r
    assert "project: new\n" in (lab.dir / "new.yaml").read_text()
    assert tags_of(lab)["vm100"] >= {"pvelab", "pvelab-new"}
    r = lab.pvelab("import", "vm100", "--out", "other.yaml")
    assert r.rc == 1 and "managed by project 'new'" in r.err and "--from new" in r.err, r
    assert not (lab.dir / "other.yaml").exists()


def test_destroy_respects_projects(lab):
    p1 = Project(lab, "lab1", LAB1)
    p2 = Project(lab, "lab2", LAB2 + "  - name: a1\n    memory: 512\n    networks: [{bridge: vmbr0}]\n")
    assert p1.pvelab("apply", "--yes").rc == 0
    upid = lab.api("POST", "/nodes/pve1/qemu", vmid=160, name="legacy", memory=512, tags="pvelab")
    lab.wait("pve1", upid)
    r = p2.pvelab("destroy", "a1", "--yes")
    assert r.rc == 1, r
    assert "refusing to destroy" in r.err and "managed by project 'lab1', not 'lab2'" in r.err
    assert "pvelab adopt a1 --from lab1" in r.err
    r = p2.pvelab("destroy", "legacy", "--yes")
    assert r.rc == 1 and "made by pvelab before projects (pvelab adopt legacy claims it" in r.err, r
    # lab2 declares a1 (lab1's): destroy without arguments leaves it alone
    r = p2.pvelab("destroy", "--yes")
    assert r.rc == 0 and "Nothing to destroy." in r.out, r
    assert {"a1", "a2", "legacy"} <= set(vmids(lab))
    r = p1.pvelab("destroy", "--yes")
    assert r.rc == 0, r
    assert "a1" not in vmids(lab) and "a2" not in vmids(lab) and "legacy" in vmids(lab)
