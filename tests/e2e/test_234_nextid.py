"""Issue 32: a least-privilege (pool-scoped) token creates a guest that
declares no vmid. Plan says the vmid is assigned at apply; apply asks
Proxmox's /cluster/nextid (open to every user, it sees every guest) just
before the create, and asks again when another client took the id first
(PVE refuses a create whose vmid exists), a bounded number of times."""
import json

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for
from test_232_token_view import acl

CONFIG = """project: lab
guests:
  - name: web
    node: pve
    pool: lab
    memory: 1G
    disks: [{storage: local-lvm, size: 4G}]
    firewall:
      options: {enable: true}
      rules:
        - {action: ACCEPT, proto: tcp, dport: "443", comment: https}
"""

JOB = """backups:
  - id: nightly
    schedule: "02:00"
    storage: local
    guests: [web]
"""


def pool_sim(*faults):
    info = start_sim("--nodes", "1", "--guests", "4", *faults)
    api(info, "POST", "pools", poolid="lab")
    api(info, "POST", "access/users", userid="ops@pve")
    tok = api(info, "POST", "access/users/ops@pve/token/tk", privsep=0)
    acl(info, {"path": "/pool/lab", "users": "ops@pve", "roles": "PVEVMAdmin"})
    acl(info, {"path": "/nodes", "users": "ops@pve", "roles": "PVEAuditor"})
    acl(info, {"path": "/storage", "users": "ops@pve", "roles": "PVEDatastoreUser"})
    info["ops"] = f"{tok['full-tokenid']}={tok['value']}"
    return info


def guests(info):
    return {g["vmid"]: g.get("name") for g in api(info, "GET", "cluster/resources", type="vm")}


def test_plan_assigns_at_apply_and_apply_asks_nextid(tmp_path):
    info = pool_sim("--faults", "nextidrace=0.5", "--rng-seed", "3")
    try:
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text(CONFIG)
        env = env_for(info, tmp_path / "s.db", PVELAB_TOKEN=info["ops"])
        before = guests(info)
        plan = run("-c", cfg, "-o", "json", "plan", env=env).json()
        assert plan["blocked"] == [], plan
        create = next(c for c in plan["changes"] if c["action"] == "create")
        assert create["vmid"] is None and create["vmid_at_apply"] is True, create
        fw = next(c for c in plan["changes"] if c["action"] == "firewall")
        assert fw["vmid_at_apply"] is True, fw
        text = run("-c", cfg, "plan", env=env)
        assert "web (qemu on pve, vmid assigned at apply)" in text.out, text
        applied = run("-c", cfg, "apply", "--yes", env=env)
        assert applied.rc == 0, applied
        after = guests(info)
        made = [v for v, n in after.items() if n == "web"]
        assert len(made) == 1, after
        raced = sorted(v for v, n in after.items() if (n or "").startswith("raced-"))
        # the seeded race took the first id nextid gave; web got a later one
        assert raced and raced[0] == min(set(after) - set(before)), after
        assert made[0] not in before and made[0] > raced[0], after
        rules = api(info, "GET", f"nodes/pve/qemu/{made[0]}/firewall/rules")
        assert [r["dport"] for r in rules] == ["443"], rules
        assert api(info, "GET", "pools/lab")["members"][0]["vmid"] == made[0]
        again = run("-c", cfg, "plan", "--detailed-exitcode", env=env)
        assert again.rc == 0, again
    finally:
        stop_sim(info)


def test_a_job_cannot_name_a_vmid_not_yet_known(tmp_path):
    info = pool_sim()
    # backup jobs are read under /: Sys.Audit there, not reaching the guests below
    acl(info, {"path": "/", "users": "ops@pve", "roles": "PVEAuditor", "propagate": 0})
    try:
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text(CONFIG + JOB)
        env = env_for(info, tmp_path / "s.db", PVELAB_TOKEN=info["ops"])
        plan = run("-c", cfg, "-o", "json", "plan", env=env).json()
        reasons = [b["reason"] for b in plan["blocked"]]
        assert any("guest 'web' gets its vmid when apply creates it" in r for r in reasons), plan
        assert any(c["action"] == "create" for c in plan["changes"]), plan
    finally:
        stop_sim(info)


def test_the_race_is_retried_a_bounded_number_of_times(tmp_path):
    info = pool_sim("--faults", "nextidrace=1")
    try:
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text(CONFIG)
        env = env_for(info, tmp_path / "s.db", PVELAB_TOKEN=info["ops"])
        r = run("-c", cfg, "-o", "json", "apply", "--yes", env=env)
        assert r.rc == 1, r
        res = json.loads(r.out)
        web = next(c for c in res["changes"] if c["guest"] == "web" and c["action"] == "create")
        assert web["status"] == "failed" and "already exists" in web["error"], web
        raced = [v for v, n in guests(info).items() if (n or "").startswith("raced-")]
        assert len(raced) == 6, raced  # the first id and five more, then it stops
        assert "web" not in guests(info).values()
    finally:
        stop_sim(info)


def test_a_category_range_is_probed_with_nextid(tmp_path):
    """nextid gives the lowest free id of the cluster (100-103 are taken, so
    104): a guest of a category with vmids 102-110 gets the first id of its
    range that nextid?vmid= confirms free, and two new guests of one apply
    never get the same id."""
    info = pool_sim()
    try:
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text("project: lab\nconventions:\n  categories:\n"
                       "    web: {vmids: 106-110}\n"
                       "guests:\n"
                       "  - {name: a, node: pve, pool: lab, memory: 1G, category: web}\n"
                       "  - {name: b, node: pve, pool: lab, memory: 1G, category: web}\n"
                       "  - {name: c, node: pve, pool: lab, memory: 1G}\n")
        api(info, "POST", "nodes/pve/qemu", vmid=106, name="hand", memory=512)
        env = env_for(info, tmp_path / "s.db", PVELAB_TOKEN=info["ops"])
        plan = run("-c", cfg, "-o", "json", "plan", env=env).json()
        assert plan["blocked"] == [], plan
        ranges = {c["guest"]: c.get("vmid_range") for c in plan["changes"]}
        assert ranges == {"a": [106, 110], "b": [106, 110], "c": None}, plan
        r = run("-c", cfg, "apply", "--yes", env=env)
        assert r.rc == 0, r
        got = {n: v for v, n in guests(info).items()}
        assert got["c"] == 104, got
        assert sorted((got["a"], got["b"])) == [107, 108], got  # 106 is the hand-made one
        assert run("-c", cfg, "plan", "--detailed-exitcode", env=env).rc == 0
    finally:
        stop_sim(info)
