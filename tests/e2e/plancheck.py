"""Checks that a plan shows what apply does, for any e2e test that applies.

    from plancheck import assert_steps_match, assert_summary_matches_lines
    plan = lab.plan_json(*flags)                     # pvelab -o json plan ...
    result = lab.pvelab("-o", "json", "apply", "--yes", *flags).json()
    assert_steps_match(plan, result)                 # change by change
    assert_summary_matches_lines(lab.pvelab("plan", *flags).out)

Every change of a plan lists the steps apply will run ("steps"); apply's
result records the steps it carried out ("steps_done")."""
import json
import re

from conftest import state_rows

SIGNS = {"+": None, "~": "update", "-/+": "replace", "-": "delete", ">": "start",
         "#": "stop", "@": "reboot"}


def last_apply_result(state_db):
    """The result the newest apply run recorded in a state database."""
    row = state_rows(state_db, "SELECT summary FROM runs WHERE kind='apply' "
                     "ORDER BY id DESC LIMIT 1")[0]
    return json.loads(row[0])


def assert_steps_match(plan, result):
    """Each change apply ran did exactly the steps the plan listed for it.
    Changes of one guest and action (a bridge on each node) pair up in order."""
    planned, done = {}, {}
    for c in plan["changes"]:
        planned.setdefault((c["guest"], c["action"]), []).append(c["steps"])
    for c in result["changes"]:
        done.setdefault((c["guest"], c["action"]), []).append(c)
    assert set(done) == set(planned), (sorted(done), sorted(planned))
    for key, steps in planned.items():
        assert len(done[key]) == len(steps), (key, len(done[key]), len(steps))
        for d, want in zip(done[key], steps):
            assert d["status"] == "ok", d
            assert d["steps_done"] == want, (key, d["steps_done"], want)


def assert_summary_matches_lines(text):
    """The "Plan: ..." line of a text plan counts what its change lines show."""
    counts = {}
    reboots = 0
    for line in text.splitlines():
        m = re.match(r"  (\+|~|-/\+|-|>|#|@)\s+(\w+)\s", line)
        if not m:
            continue
        counts[m.group(2)] = counts.get(m.group(2), 0) + 1
        if m.group(2) == "reboot" or "(then reboot)" in line:
            reboots += 1
    m = re.search(r"^Plan: (\d+) to create, (\d+) to update, (\d+) to replace, (\d+) to delete, "
                  r"(\d+) to start, (\d+) to stop, (\d+) bridges?, (\d+) reboots?\.", text, re.M)
    assert m, text
    got = dict(zip(["create", "update", "replace", "delete", "start", "stop", "bridge"],
                   map(int, m.groups()[:7])))
    for action, n in got.items():
        assert counts.get(action, 0) == n, (action, counts, text)
    assert reboots == int(m.group(8)), text
    blocked = len(re.findall(r"^  !   blocked", text, re.M))
    bm = re.search(r" (\d+) blocked\.", text)
    assert (int(bm.group(1)) if bm else 0) == blocked, text
