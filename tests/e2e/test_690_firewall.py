"""The Proxmox firewall as code against the simulator: declared cluster
options, aliases, IP sets, security groups, node and guest rules apply and
replan to zero; rule order is state (PVE puts every new rule at position 0,
pvelab moves them); a rule changed behind pvelab's back between plan and
apply is caught by the list's digest and nothing of that guest's firewall is
written; import of hand-made rules, groups, IP sets and aliases round-trips
to a zero plan; validate names the place of each mistake in one line."""
import json
import os
import pty
import select
import subprocess
import time

import pytest

from conftest import BIN, run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for

CONFIG = """\
project: fw
firewall:
  options: {enable: true, policy_in: DROP}
  aliases:
    nas: {cidr: 192.168.1.20, comment: the NAS}
  ipsets:
    admins: {comment: admin laptops, entries: [10.0.0.0/24, "!10.0.0.99"]}
  groups:
    web:
      comment: web servers
      rules:
        - {action: ACCEPT, macro: HTTPS}
        - {action: ACCEPT, macro: http}
  rules:
    - {action: ACCEPT, macro: SSH, source: +admins}
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
      options: {enable: true, policy_in: DROP, dhcp: true, macfilter: true}
      rules:
        - {type: group, action: web}
        - {action: ACCEPT, proto: tcp, dport: "3000", source: nas, comment: grafana}
        - {action: ACCEPT, proto: udp, dport: 51820, comment: wireguard}
        - {action: DROP, proto: tcp, dport: "8000:8010", log: info, enable: false}
"""


@pytest.fixture(scope="module")
def sim():
    info = start_sim()
    yield info
    stop_sim(info)


def env_of(sim, tmp_path):
    return env_for(sim, tmp_path / "state.db")


def rules(sim, path):
    return [{k: v for k, v in r.items() if k not in ("digest", "pos", "ipversion")}
            for r in api(sim, "GET", path)]


def plan_json(cfg, env):
    r = run("plan", "-c", str(cfg), "-o", "json", env=env)
    assert r.rc in (0, 2), r.err
    return json.loads(r.out)


def fw_changes(plan):
    return [c for c in plan["changes"] if c["action"] == "firewall"]


def test_apply_replans_to_zero_with_order(sim, tmp_path):
    env = env_of(sim, tmp_path)
    cfg = tmp_path / "fw.yaml"
    cfg.write_text(CONFIG)
    r = run("plan", "-c", str(cfg), env=env)
    assert r.rc == 0, r.err
    assert "firewall" in r.out and "rule 1" in r.out
    r = run("apply", "-c", str(cfg), "--yes", env=env)
    assert r.rc == 0, r.out + r.err
    got = rules(sim, "nodes/pve/lxc/120/firewall/rules")
    assert [(g["type"], g["action"], g.get("dport"), g.get("enable")) for g in got] == [
        ("group", "web", None, 1), ("in", "ACCEPT", "3000", 1), ("in", "ACCEPT", "51820", 1),
        ("in", "DROP", "8000:8010", 0)]
    assert got[1]["source"] == "nas" and got[3]["log"] == "info"
    assert [g["macro"] for g in rules(sim, "cluster/firewall/groups/web")] == ["HTTPS", "HTTP"]
    opts = api(sim, "GET", "nodes/pve/lxc/120/firewall/options")
    assert opts["enable"] == 1 and opts["dhcp"] == 1 and opts.get("policy_in", "DROP") == "DROP"
    assert api(sim, "GET", "cluster/firewall/options")["enable"] == 1
    ent = sorted((e["cidr"], e.get("nomatch", 0)) for e in api(sim, "GET", "cluster/firewall/ipset/admins"))
    assert ent == [("10.0.0.0/24", 0), ("10.0.0.99", 1)]
    assert rules(sim, "nodes/pve/firewall/rules")[0]["comment"] == "web UI"
    r = run("plan", "-c", str(cfg), "--detailed-exitcode", env=env)
    assert r.rc == 0, r.out
    # reorder, change one, drop one, add one: rule-level diffs, one apply
    cfg.write_text(CONFIG.replace(
        """        - {action: ACCEPT, proto: udp, dport: 51820, comment: wireguard}
        - {action: DROP, proto: tcp, dport: "8000:8010", log: info, enable: false}
""", """        - {action: ACCEPT, proto: udp, dport: 51821, comment: wireguard}
        - {action: ACCEPT, proto: tcp, dport: 9090, comment: files}
""").replace("""        - {type: group, action: web}
        - {action: ACCEPT, proto: tcp, dport: "3000", source: nas, comment: grafana}
""", """        - {action: ACCEPT, proto: tcp, dport: "3000", source: nas, comment: grafana}
        - {type: group, action: web}
"""))
    plan = plan_json(cfg, env)
    guest = [c for c in fw_changes(plan) if c["guest"] == "web"]
    assert len(guest) == 1
    notes = sorted((d["key"], d["note"]) for d in guest[0]["diffs"])
    assert ("rule 2", "changed") in notes and ("rule 3", "changed") in notes
    assert any(n == "moved" for _, n in notes)
    assert guest[0]["steps"] == ["firewall"]
    r = run("apply", "-c", str(cfg), "--yes", env=env)
    assert r.rc == 0, r.out + r.err
    got = rules(sim, "nodes/pve/lxc/120/firewall/rules")
    assert [(g["type"], g["action"], g.get("dport")) for g in got] == [
        ("in", "ACCEPT", "3000"), ("group", "web", None), ("in", "ACCEPT", "51821"),
        ("in", "ACCEPT", "9090")]
    assert all(g.get("enable") == 1 for g in got) and "log" not in got[3]
    r = run("plan", "-c", str(cfg), "--detailed-exitcode", env=env)
    assert r.rc == 0, r.out


def read_until(fd, text, out=b""):
    end = time.monotonic() + 60
    while text.encode() not in out:
        assert time.monotonic() < end, out
        ready, _, _ = select.select([fd], [], [], 5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_a_change_behind_pvelabs_back_stops_that_guest(sim, tmp_path):
    env = env_of(sim, tmp_path)
    cfg = tmp_path / "fw.yaml"
    cfg.write_text(CONFIG)
    assert run("apply", "-c", str(cfg), "--yes", env=env).rc == 0
    cfg.write_text(CONFIG.replace("dport: 51820", "dport: 51822").replace(
        "policy_in: DROP}", "policy_in: REJECT}"))
    # apply plans, shows the plan and asks; someone edits the guest's rules
    # by hand before the answer comes
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "-c", str(cfg), "apply"], stdin=slave, stdout=slave,
                            stderr=slave, env={**os.environ, **env})
    os.close(slave)
    out = read_until(master, "[y/N]")
    assert b"51822" in out
    api(sim, "PUT", "nodes/pve/lxc/120/firewall/rules/0", comment="by hand")
    before = rules(sim, "nodes/pve/lxc/120/firewall/rules")
    opts_before = api(sim, "GET", "nodes/pve/lxc/120/firewall/options")
    os.write(master, b"y\n")
    out = read_until(master, "\x00", out)
    rc = proc.wait(timeout=60)
    os.close(master)
    text = out.decode(errors="replace")
    assert rc != 0, text
    assert "the firewall of web changed since the plan" in text, text
    assert "nodes/pve/lxc/120/firewall/rules" in text, text
    # nothing of that guest's firewall was written: neither rules nor options
    assert rules(sim, "nodes/pve/lxc/120/firewall/rules") == before
    assert api(sim, "GET", "nodes/pve/lxc/120/firewall/options") == opts_before
    # a fresh plan sees the hand-made change and puts it right
    assert run("apply", "-c", str(cfg), "--yes", env=env).rc == 0
    assert "comment" not in rules(sim, "nodes/pve/lxc/120/firewall/rules")[0]


def test_import_round_trips_to_zero(sim, tmp_path):
    env = env_of(sim, tmp_path)
    upid = api(sim, "POST", "nodes/pve/qemu", vmid=100, name="hand", memory=512,
               net0="virtio,bridge=vmbr0,firewall=1")
    end = time.monotonic() + 30
    while api(sim, "GET", f"nodes/pve/tasks/{upid}/status")["status"] != "stopped":
        assert time.monotonic() < end
        time.sleep(0.05)
    api(sim, "POST", "cluster/firewall/aliases", name="printer", cidr="192.168.1.50")
    api(sim, "POST", "cluster/firewall/ipset", name="iot", comment="things")
    api(sim, "POST", "cluster/firewall/ipset/iot", cidr="192.168.50.0/24")
    api(sim, "POST", "cluster/firewall/groups", group="dns", comment="resolvers")
    api(sim, "POST", "cluster/firewall/groups/dns", type="in", action="ACCEPT", macro="DNS", enable=1)
    api(sim, "POST", "nodes/pve/qemu/100/firewall/rules", type="in", action="ACCEPT", proto="tcp",
        dport="22", source="+iot", enable=1, comment="ssh")
    api(sim, "POST", "nodes/pve/qemu/100/firewall/rules", type="group", action="dns")
    api(sim, "PUT", "nodes/pve/qemu/100/firewall/options", enable=1, policy_in="REJECT")
    # the node's host firewall, made by hand too
    api(sim, "POST", "nodes/pve/firewall/rules", type="in", action="ACCEPT", proto="tcp",
        dport="8006", source="192.168.1.0/24", enable=1, comment="web ui")
    api(sim, "PUT", "nodes/pve/firewall/options", log_level_in="info")
    out = tmp_path / "imported.yaml"
    r = run("import", "100", "--firewall", "--out", str(out), env=env)
    assert r.rc == 0, r.err
    text = out.read_text()
    assert "firewall:" in text and "dns" in text and "iot" in text
    assert "nodes:" in text and "8006" in text and "log_level_in" in text, text
    r = run("plan", "-c", str(out), "--detailed-exitcode", env=env)
    assert r.rc == 0, r.out + r.err


@pytest.mark.parametrize("rule,where,what", [
    ("{action: ACCEPT, macro: NoSuchMacro}", "/guests/0/firewall/rules/0/macro", "unknown macro 'NoSuchMacro'"),
    ("{action: ACCEPT, proto: tcp, dport: '90:80'}", "/guests/0/firewall/rules/0/dport", "90:80"),
    ("{action: ACCEPT, proto: tcp, dport: 70000}", "/guests/0/firewall/rules/0/dport", "70000"),
    ("{type: group, action: nogroup}", "/guests/0/firewall/rules/0/action", "no security group 'nogroup'"),
    ("{action: ACCEPT, source: +noset}", "/guests/0/firewall/rules/0/source", "no IP set 'noset'"),
    ("{action: ACCEPT, dest: noalias}", "/guests/0/firewall/rules/0/dest", "no alias 'noalias'"),
    ("{action: ACCEPT, dport: 80}", "/guests/0/firewall/rules/0/dport", "needs proto"),
])
def test_validate_names_the_place(tmp_path, rule, where, what):
    cfg = tmp_path / "v.yaml"
    cfg.write_text("guests:\n  - name: a\n    firewall:\n      rules:\n        - " + rule + "\n")
    r = run("validate", "-c", str(cfg))
    assert r.rc != 0
    lines = [l for l in (r.out + r.err).splitlines() if what in l]
    assert len(lines) == 1, r.out + r.err
    assert where in lines[0] or "v.yaml:5" in lines[0], lines[0]


@pytest.mark.parametrize("name", ["homelab-gitops.yaml", "homeserver.yaml"])
def test_examples_firewall_is_live_after_apply(name, tmp_path):
    """The seeds' firewall (homelab-gitops' ten containers' ports, the host
    and the datacenter; homeserver's isolation and access control) is what
    the cluster has after apply, rule by rule and in order."""
    import yaml
    from conftest import SRC
    import stackfix
    example = os.path.join(SRC, "examples", name)
    guests = stackfix.for_example(example, tmp_path)  # a stack over SSH, when it has one
    info = start_sim("--seed", os.path.join(SRC, "examples", "sim", name), "--task-ms", "10",
                     "--pve-version", "8.4")
    try:
        env = env_for(info, tmp_path / "s.db", **(guests.env if guests else {}))
        r = run("-c", example, "apply", "--yes", "-j", "8", env=env)
        assert r.rc == 0, r
        assert run("-c", example, "plan", "--detailed-exitcode", env=env).rc == 0
        with open(example) as f:
            doc = yaml.safe_load(f)
        live = {g["name"]: g for g in api(info, "GET", "cluster/resources", type="vm")}
        checked = 0
        for g in doc["guests"]:
            if "firewall" not in g:
                continue
            lg = live[g["name"]]
            base = f"nodes/{lg['node']}/{lg['type']}/{lg['vmid']}/firewall"
            got = [(r["type"], r["action"], r.get("dport"), r.get("iface"), r.get("enable"))
                   for r in api(info, "GET", base + "/rules")]
            want = [(r.get("type", "in"), r["action"], str(r["dport"]) if "dport" in r else None,
                     r.get("iface"), 1) for r in g["firewall"]["rules"]]
            assert got == want, g["name"]
            assert api(info, "GET", base + "/options")["enable"] == 1
            checked += 1
        assert checked == (10 if name == "homelab-gitops.yaml" else 3)
        host = [(r["action"], r.get("dport"), r.get("macro")) for r in api(info, "GET", "nodes/pve/firewall/rules")]
        assert host == [(r["action"], str(r["dport"]) if "dport" in r else None, r.get("macro"))
                        for r in doc["firewall"]["host"]["rules"]]
        assert api(info, "GET", "cluster/firewall/options")["enable"] == 1
    finally:
        if guests:
            guests.close()
        stop_sim(info)


def test_a_node_that_is_not_there_blocks(sim, tmp_path):
    cfg = tmp_path / "n.yaml"
    cfg.write_text("guests: []\nfirewall:\n  nodes:\n    nope:\n      rules: [{action: DROP, proto: tcp, dport: 25}]\n")
    plan = plan_json(cfg, env_of(sim, tmp_path))
    assert [b["guest"] for b in plan["blocked"]] == ["firewall of node nope"]
    assert fw_changes(plan) == []


def test_only_what_is_declared_is_touched_and_destroy_keeps_the_cluster_sets(sim, tmp_path):
    env = env_of(sim, tmp_path)
    # hand-made: a group, an alias and a datacenter rule the YAML does not declare
    api(sim, "POST", "cluster/firewall/groups", group="keepme", comment="by hand")
    api(sim, "POST", "cluster/firewall/aliases", name="keepalias", cidr="192.168.9.9")
    cfg = tmp_path / "fw.yaml"
    cfg.write_text(CONFIG.replace("  rules:\n    - {action: ACCEPT, macro: SSH, source: +admins}\n", ""))
    r = run("apply", "-c", str(cfg), "--yes", env=env)
    assert r.rc == 0, r.out + r.err
    assert "keepme" in [g["group"] for g in api(sim, "GET", "cluster/firewall/groups")]
    assert "keepalias" in [a["name"] for a in api(sim, "GET", "cluster/firewall/aliases")]
    # the datacenter's rules are not declared any more: left as they are
    assert [r["macro"] for r in rules(sim, "cluster/firewall/rules")] == ["SSH"]
    r = run("destroy", "-c", str(cfg), "web", "--yes", "--no-backup", env=env)
    assert r.rc == 0, r.out + r.err
    assert "web" in [g["group"] for g in api(sim, "GET", "cluster/firewall/groups")]
    assert "nas" in [a["name"] for a in api(sim, "GET", "cluster/firewall/aliases")]
    assert "admins" in [s["name"] for s in api(sim, "GET", "cluster/firewall/ipset")]


def test_a_guest_that_moves_gets_its_firewall_on_its_new_node(tmp_path):
    from simfix import DEMO_SEED
    info = start_sim("--seed", DEMO_SEED)
    try:
        env = env_for(info, tmp_path / "s.db")
        cfg = tmp_path / "m.yaml"
        base = ("guests:\n  - name: mover\n    vmid: 150\n    node: NODE\n    memory: 256\n"
                "    networks: [{bridge: vmbr0, firewall: true}]\n    firewall:\n"
                "      options: {enable: true}\n      rules:\n        - {action: ACCEPT, proto: tcp, dport: PORT}\n")
        cfg.write_text(base.replace("NODE", "pve1").replace("PORT", "22"))
        assert run("apply", "-c", str(cfg), "--yes", env=env).rc == 0
        cfg.write_text(base.replace("NODE", "pve2").replace("PORT", "2222"))
        plan = plan_json(cfg, env)
        (fw,) = fw_changes(plan)
        assert fw["node"] == "pve2" and all(c["path"].startswith("/nodes/pve2/") for c in fw["calls"])
        r = run("apply", "-c", str(cfg), "--yes", env=env)
        assert r.rc == 0, r.out + r.err
        assert [x["dport"] for x in api(info, "GET", "nodes/pve2/qemu/150/firewall/rules")] == ["2222"]
        assert run("plan", "-c", str(cfg), "--detailed-exitcode", env=env).rc == 0
    finally:
        stop_sim(info)
