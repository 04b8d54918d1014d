"""Tampered saved plans (issue 17 item 6): a saved plan must carry exactly the
changes a fresh plan of the same config and cluster has, whatever their kind;
plan files are private (0600)."""
import json
import stat

import pytest

from test_600_plan_apply import Lab
from test_620_ownership import LAB2, Project


@pytest.fixture
def lab(tmp_path):
    l = Lab(tmp_path)
    yield l
    l.close()


def status_of(lab, vmid):
    return next(g for g in lab.guests() if g["vmid"] == vmid)["status"]


def saved_plan(lab, p):
    p.write(LAB2.replace("memory: 512", "memory: 768"))
    assert p.pvelab("plan", "--out", "p.json").rc == 0
    return json.loads((lab.dir / "p.json").read_text())


def test_plan_file_is_private(lab):
    p = Project(lab, "lab2", LAB2)
    assert p.pvelab("apply", "--yes").rc == 0
    saved_plan(lab, p)
    assert stat.S_IMODE((lab.dir / "p.json").stat().st_mode) == 0o600


def test_stop_of_an_unmanaged_guest_is_refused(lab):
    p = Project(lab, "lab2", LAB2)
    assert p.pvelab("apply", "--yes").rc == 0
    other = next(g for g in lab.guests() if g["status"] == "running" and g["name"] != "b1")
    plan = saved_plan(lab, p)
    plan["changes"].append({"action": "stop", "guest": other["name"], "type": "qemu",
                            "vmid": other["vmid"], "node": other["node"], "class": "stop"})
    (lab.dir / "p.json").write_text(json.dumps(plan))
    r = p.pvelab("apply", "p.json", "--yes")
    assert r.rc == 1 and f"'p.json' stops {other['vmid']} '{other['name']}', which a plan of" in r.err, r
    assert status_of(lab, other["vmid"]) == "running"


def test_edited_update_is_refused(lab):
    p = Project(lab, "lab2", LAB2)
    assert p.pvelab("apply", "--yes").rc == 0
    plan = saved_plan(lab, p)
    ch = next(c for c in plan["changes"] if c["action"] == "update")
    ch["set"]["memory"] = 4096
    (lab.dir / "p.json").write_text(json.dumps(plan))
    r = p.pvelab("apply", "p.json", "--yes")
    assert r.rc == 1 and f"'p.json' updates {ch['vmid']} 'b1' differently" in r.err, r
    # the untouched plan still applies
    saved_plan(lab, p)
    r = p.pvelab("apply", "p.json", "--yes")
    assert r.rc == 0, r
