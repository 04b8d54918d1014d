"""Firewall changes are history and have a way back: each scope an apply
changes (the datacenter's options, aliases, IP sets and groups, a node's
rules, a guest's options and rules) gets history rows with the state it
found and the state it left, `pvelab history firewall:...` shows them as
rule-level differences, and `pvelab rollback RUN` puts every scope back
exactly (order included) through apply's digest check, refusing a scope
that changed behind pvelab's back since the run."""
import json
import re

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for

BEFORE = """\
project: fwh
firewall:
  options: {enable: true}
  aliases:
    nas: {cidr: 192.168.1.20, comment: the NAS}
  ipsets:
    admins: {comment: admin laptops, entries: [10.0.0.0/24, "!10.0.0.99"]}
  groups:
    web:
      comment: web servers
      rules:
        - {action: ACCEPT, macro: HTTPS}
  nodes:
    pve:
      rules:
        - {action: ACCEPT, proto: tcp, dport: 8006, source: +admins, comment: web UI}
guests:
  - name: web
    type: lxc
    vmid: 120
    ostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    networks: [{bridge: vmbr0, ip: dhcp, firewall: true}]
    firewall:
      options: {enable: true, dhcp: true}
      rules:
        - {type: group, action: web}
        - {action: ACCEPT, proto: tcp, dport: "3000", source: nas, comment: grafana}
        - {action: ACCEPT, proto: udp, dport: 51820, comment: wireguard}
        - {action: DROP, proto: tcp, dport: "8000:8010", log: info, enable: false}
"""

# every scope changes: options, an alias, a new group, an IP set's entries,
# the node's rules, the guest's rules (moved, changed, dropped, added)
AFTER = BEFORE.replace("options: {enable: true}\n  aliases", "options: {enable: true, policy_in: REJECT}\n  aliases") \
    .replace("cidr: 192.168.1.20", "cidr: 192.168.1.21") \
    .replace("""        - {action: ACCEPT, macro: HTTPS}
""", """        - {action: ACCEPT, macro: HTTPS}
    dns:
      comment: resolvers
      rules:
        - {action: ACCEPT, macro: DNS}
""") \
    .replace('entries: [10.0.0.0/24, "!10.0.0.99"]', "entries: [10.0.0.0/24, 10.0.1.0/24]") \
    .replace("dport: 8006, source: +admins", "dport: 8006, source: 10.0.0.0/8") \
    .replace("options: {enable: true, dhcp: true}", "options: {enable: true, dhcp: false, policy_in: REJECT}") \
    .replace("""        - {type: group, action: web}
        - {action: ACCEPT, proto: tcp, dport: "3000", source: nas, comment: grafana}
        - {action: ACCEPT, proto: udp, dport: 51820, comment: wireguard}
        - {action: DROP, proto: tcp, dport: "8000:8010", log: info, enable: false}
""", """        - {action: ACCEPT, proto: tcp, dport: "3000", source: nas, comment: grafana}
        - {type: group, action: web}
        - {type: group, action: dns}
        - {action: ACCEPT, proto: udp, dport: 51821, comment: wireguard}
""")

LISTS = ["cluster/firewall/options", "cluster/firewall/rules", "cluster/firewall/aliases",
         "cluster/firewall/groups", "cluster/firewall/groups/web", "cluster/firewall/ipset",
         "cluster/firewall/ipset/admins", "nodes/pve/firewall/options", "nodes/pve/firewall/rules",
         "nodes/pve/lxc/120/firewall/options", "nodes/pve/lxc/120/firewall/rules"]


@pytest.fixture
def sim():
    info = start_sim("--task-ms", "10")
    yield info
    stop_sim(info)


def snapshot(sim):
    """Every list as the API answers it, digests and positions included."""
    out = {p: api(sim, "GET", p) for p in LISTS}
    if isinstance(out["cluster/firewall/ipset/admins"], list):
        out["cluster/firewall/ipset/admins"].sort(key=lambda e: e["cidr"])
    return out


def apply(cfg, env):
    r = run("apply", "-c", str(cfg), "--yes", env=env)
    assert r.rc == 0, r.out + r.err
    return int(re.search(r"\(run (\d+)\)", r.out).group(1))


def history(key, env):
    r = run("history", key, "-o", "json", env=env)
    assert r.rc == 0, r.err
    return json.loads(r.out)


def test_history_and_rollback_restore_every_scope_exactly(sim, tmp_path):
    env = env_for(sim, tmp_path / "state.db")
    cfg = tmp_path / "fw.yaml"
    cfg.write_text(BEFORE)
    first = apply(cfg, env)
    was = snapshot(sim)
    cfg.write_text(AFTER)
    second = apply(cfg, env)
    assert snapshot(sim) != was
    assert [r["macro"] for r in api(sim, "GET", "cluster/firewall/groups/dns")] == ["DNS"]

    # history: the guest's scope, first made by run 1 then changed by run 2
    rows = history("firewall:web", env)
    assert [(h["kind"], h["run"]) for h in rows] == [("discovered", None), ("updated", first),
                                                     ("updated", second)]
    changes = [(c["key"], c.get("old"), c.get("new")) for c in rows[2]["changes"]]
    assert sorted(changes, key=str) == sorted([
        ("option dhcp", "1", "0"),
        ("option policy_in", None, "REJECT"),
        ("rule 0", "GROUP web", None),
        ("rule 1", None, "GROUP web"),
        ("rule 2", None, "GROUP dns"),
        ("rule 2", "IN ACCEPT -p udp -dport 51820 # wireguard", None),
        ("rule 3", "|IN DROP -p tcp -dport 8000:8010 -log info", None),
        ("rule 3", None, "IN ACCEPT -p udp -dport 51821 # wireguard"),
    ], key=str), changes
    assert history("firewall:guest:120", env) == rows
    cl = history("firewall:cluster", env)[-1]
    assert cl["run"] == second
    keys = {c["key"] for c in cl["changes"]}
    assert {"option policy_in", "alias nas", "ipset admins", "group dns", "group dns rule 0"} <= keys
    node = history("firewall:node:pve", env)[-1]
    assert node["run"] == second and [c["key"] for c in node["changes"]] == ["rule 0", "rule 0"]
    text = run("history", "firewall:web", env=env)
    assert text.rc == 0 and "- rule 0: GROUP web" in text.out and "~ option dhcp: 1 -> 0" in text.out

    # rollback shows the firewall first, then puts it back exactly
    r = run("rollback", str(second), "--yes", env=env)
    assert r.rc == 0, r.out + r.err
    assert "firewall of web" in r.out and "firewall of cluster" in r.out, r.out
    assert snapshot(sim) == was  # digests equal: every list, order included
    assert "dns" not in [g["group"] for g in api(sim, "GET", "cluster/firewall/groups")]
    r = run("plan", "-c", str(tmp_path / "before.yaml"), "--detailed-exitcode", env=env) \
        if (tmp_path / "before.yaml").write_text(BEFORE) else None
    assert r.rc == 0, r.out + r.err
    # the rollback is history too
    rows = history("firewall:web", env)
    assert rows[-1]["kind"] == "updated" and rows[-1]["run"] > second
    assert rows[-1]["state"] == rows[1]["state"]


def test_a_scope_changed_since_the_run_is_refused(sim, tmp_path):
    env = env_for(sim, tmp_path / "state.db")
    cfg = tmp_path / "fw.yaml"
    cfg.write_text(BEFORE)
    apply(cfg, env)
    node_was = api(sim, "GET", "nodes/pve/firewall/rules")
    cfg.write_text(AFTER)
    second = apply(cfg, env)
    cluster_after = {p: api(sim, "GET", p) for p in LISTS if p.startswith("cluster/")}
    # someone edits the guest's rules by hand after the run
    api(sim, "PUT", "nodes/pve/lxc/120/firewall/rules/1", comment="by hand")
    by_hand = api(sim, "GET", "nodes/pve/lxc/120/firewall/rules")
    r = run("rollback", str(second), "--yes", env=env)
    assert r.rc == 1, r.out + r.err
    lines = [l for l in r.err.splitlines() if "not rolled back" in l]
    assert len(lines) == 2, r.err
    assert lines[0].startswith("pvelab: the firewall of web is not rolled back: its firewall "
                               "changed since the run (rule 1)"), lines
    # the guest's rules name the group dns the run made: the datacenter's
    # firewall stays as the run left it, or the guest would lose a group
    assert lines[1].startswith("pvelab: the firewall of cluster is not rolled back: the group "
                               "dns it would delete is used by the firewall of web"), lines
    assert api(sim, "GET", "nodes/pve/lxc/120/firewall/rules") == by_hand
    assert {p: api(sim, "GET", p) for p in cluster_after} == cluster_after
    # the node's scope is independent: it went back
    assert api(sim, "GET", "nodes/pve/firewall/rules") == node_was
    assert "firewall of pve" in r.out


def test_a_profile_applies_its_guests_firewall_and_the_sets_they_name(sim, tmp_path):
    env = env_for(sim, tmp_path / "state.db")
    cfg = tmp_path / "fw.yaml"
    cfg.write_text(BEFORE + """\
  - name: db
    type: lxc
    vmid: 121
    ostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    firewall:
      rules:
        - {action: ACCEPT, proto: tcp, dport: 5432}
profiles:
  front: [web]
""")
    r = run("plan", "-c", str(cfg), "--profile", "front", "-o", "json", env=env)
    assert r.rc in (0, 2), r.err
    fw = {c["guest"]: c for c in json.loads(r.out)["changes"] if c["action"] == "firewall"}
    # web's own, and the datacenter's sets its rules name; not db's, not the
    # node's, not the datacenter's options
    assert sorted(fw) == ["cluster", "web"], sorted(fw)
    assert not [d for d in fw["cluster"]["diffs"] if d["key"].startswith("option")]
    apply_run = run("apply", "-c", str(cfg), "--profile", "front", "--yes", env=env)
    assert apply_run.rc == 0, apply_run.out + apply_run.err
    assert [x.get("action") for x in api(sim, "GET", "nodes/pve/lxc/120/firewall/rules")] == \
        ["web", "ACCEPT", "ACCEPT", "DROP"]
    assert "web" in [g["group"] for g in api(sim, "GET", "cluster/firewall/groups")]
    assert api(sim, "GET", "cluster/firewall/options").get("enable", 0) == 0
    assert api(sim, "GET", "nodes/pve/firewall/rules") == []
    assert run("plan", "-c", str(cfg), "--profile", "front", "--detailed-exitcode", env=env).rc == 0
    # the whole config still has the rest to do
    rest = {c["guest"] for c in json.loads(run("plan", "-c", str(cfg), "-o", "json", env=env).out)["changes"]}
    assert {"db", "cluster", "pve"} <= rest and "web" not in rest, rest
