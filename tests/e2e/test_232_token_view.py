"""Issue 32: a token that sees only one pool. The simulator filters lists and
refuses forbidden reads as PVE does (pve-access-control RPCEnvironment,
pve-manager API2::Cluster resources); pvelab's sync keeps the guests it
cannot see as last synced, never records them deleted, and takes them back
without history once the ACL is granted."""
import json

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--nodes", "1", "--guests", "6")
    api(info, "POST", "pools", poolid="web")
    api(info, "PUT", "pools/web", vms="100,101")
    api(info, "POST", "access/users", userid="ops@pve", password="opspass1")
    tok = api(info, "POST", "access/users/ops@pve/token/auto", privsep=0)
    acl(info, {"path": "/pool/web", "users": "ops@pve", "roles": "PVEVMAdmin"})
    for path in ("/nodes", "/storage"):  # what sync reads besides guests
        acl(info, {"path": path, "users": "ops@pve", "roles": "PVEAuditor"})
    # a separated token: its user is PVEAdmin, the token itself only PVEAuditor
    api(info, "POST", "access/users", userid="aud@pve")
    aud = api(info, "POST", "access/users/aud@pve/token/tk")
    acl(info, {"path": "/", "users": "aud@pve", "roles": "PVEAdmin"})
    acl(info, {"path": "/", "tokens": "aud@pve!tk", "roles": "PVEAuditor"})
    info["aud"] = f"{aud['full-tokenid']}={aud['value']}"
    info["ops"] = f"{tok['full-tokenid']}={tok['value']}"
    yield info
    stop_sim(info)


def acl(info, params):
    """PUT /access/acl (its 'path' parameter clashes with api()'s)."""
    return api(info, "GET", "version") and _root(info).access.acl.put(**params)


def _root(info):
    host = info["url"].split("://", 1)[1].rstrip("/")
    h, port = host.rsplit(":", 1)
    user, _, rest = info["token"].partition("!")
    name, _, secret = rest.partition("=")
    return ProxmoxAPI(h, port=int(port), user=user, token_name=name, token_value=secret,
                      verify_ssl=False)


def as_user(info):
    host = info["url"].split("://", 1)[1].rstrip("/")
    h, port = host.rsplit(":", 1)
    return ProxmoxAPI(h, port=int(port), user="ops@pve", password="opspass1",
                      verify_ssl=False)


def test_proxmoxer_pool_user_sees_filtered_lists(sim):
    px = as_user(sim)
    assert sorted(g["vmid"] for g in px.cluster.resources.get(type="vm")) == [100, 101]
    assert sorted(g["vmid"] for g in px.nodes("pve").qemu.get() + px.nodes("pve").lxc.get()) \
        == [100, 101]
    assert px.pools.get() == []  # PVEVMAdmin has no Pool.Audit
    assert px.nodes("pve").qemu(101).status.current.get()["vmid"] == 101
    with pytest.raises(ResourceException) as e:
        px.nodes("pve").qemu(102).status.current.get()
    assert e.value.status_code == 403
    assert "Permission check failed (/vms/102, VM.Audit)" in str(e.value)
    perms = px.access.permissions.get()
    assert perms["/vms/100"]["VM.Audit"] == 1 and "/vms/102" not in perms
    # a write outside the pool is refused, inside allowed
    with pytest.raises(ResourceException) as e:
        px.nodes("pve").qemu(103).status.start.post()
    assert e.value.status_code == 403 and "VM.PowerMgmt" in str(e.value)


def test_proxmoxer_pool_only_user_sees_what_pve_shows(sim):
    """A user whose one ACL is PVEVMAdmin on /pool/web, as pve-manager's
    Cluster.pm resources, Nodes.pm index (API2Tools::extract_node_stats) and
    pve-storage's Config/Status index answer it."""
    api(sim, "POST", "access/users", userid="poolonly@pve", password="poolpass1")
    acl(sim, {"path": "/pool/web", "users": "poolonly@pve", "roles": "PVEVMAdmin"})
    host = sim["url"].split("://", 1)[1].rstrip("/")
    h, port = host.rsplit(":", 1)
    px = ProxmoxAPI(h, port=int(port), user="poolonly@pve", password="poolpass1",
                    verify_ssl=False)
    res = px.cluster.resources.get()
    guests = [r for r in res if r["type"] in ("qemu", "lxc")]
    assert sorted(r["vmid"] for r in guests) == [100, 101]
    assert not any("pool" in r for r in guests)  # no Pool.Audit on /pool/web
    nodes = [r for r in res if r["type"] == "node"]
    assert [r["node"] for r in nodes] == ["pve"]  # every node, without its figures
    assert set(nodes[0]) == {"id", "node", "type", "status", "level", "cgroup-mode"}, nodes
    assert not any(r["type"] in ("storage", "pool") for r in res)
    (node,) = px.nodes.get()
    assert "ssl_fingerprint" in node and not {"cpu", "mem", "maxmem", "uptime"} & set(node)
    assert px.storage.get() == [] and px.nodes("pve").storage.get() == []
    assert int(px.cluster.nextid.get()) >= 106  # every user may ask
    for call, perm in ((lambda: px.pools("web").get(), "(/pool/web, Pool.Audit)"),
                       (lambda: px.nodes("pve").status.get(), "(/nodes/pve, Sys.Audit)")):
        with pytest.raises(ResourceException) as e:
            call()
        assert e.value.status_code == 403 and perm in str(e.value)
    # the same lists for ops, who also has PVEAuditor on /nodes and /storage
    ops = as_user(sim)
    full = ops.cluster.resources.get()
    assert {"cpu", "maxmem"} <= set(next(r for r in full if r["type"] == "node"))
    assert {s["storage"] for s in ops.storage.get()} == \
        {s["storage"] for s in api(sim, "GET", "storage")}
    assert not any("pool" in r for r in full if r["type"] in ("qemu", "lxc"))


def test_sync_keeps_invisible_guests(sim, tmp_path):
    state = tmp_path / "s.db"
    root = env_for(sim, state)
    ops = env_for(sim, state, PVELAB_TOKEN=sim["ops"])
    assert run("sync", env=root).rc == 0
    before = run("-o", "json", "history", env=root).out
    r = run("sync", env=ops)
    assert r.rc == 0, r
    assert "4 guests outside the token's view" in r.err, r
    assert "deleted" not in run("-o", "json", "history", env=root).out
    assert run("-o", "json", "history", env=root).out == before
    listed = run("list", env=ops)
    assert listed.rc == 0, listed
    rows = [ln.split()[0] for ln in listed.out.splitlines()[1:]]
    assert rows == ["100", "101"]
    assert "4 guests outside the token's view" in listed.err
    full = json.loads(run("-o", "json", "list", env=ops).out)
    assert sorted(g["vmid"] for g in full) == [100, 101, 102, 103, 104, 105]
    assert sum(1 for g in full if "_unseen" in g) == 4
    st = run("status", env=ops)
    assert "outside the token's view: 4 of them" in st.out, st
    assert json.loads(run("-o", "json", "status", env=ops).out)["guests"]["unseen"] == 4
    # grant the ACL on /vms: everything visible again, no history added
    acl(sim, {"path": "/vms", "users": "ops@pve", "roles": "PVEAuditor"})
    r = run("sync", env=ops)
    assert r.rc == 0 and "outside the token's view" not in r.err, r
    assert run("-o", "json", "history", env=root).out == before
    full = json.loads(run("-o", "json", "list", env=ops).out)
    assert not any("_unseen" in g for g in full)
    assert json.loads(run("-o", "json", "status", env=ops).out)["guests"]["unseen"] == 0
    acl(sim, {"path": "/vms", "users": "ops@pve", "roles": "PVEAuditor", "delete": 1})


def test_plan_refuses_a_vmid_out_of_view(sim, tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("project: p\nguests:\n  - name: intruder\n    vmid: 103\n    memory: 1G\n")
    ops = env_for(sim, tmp_path / "s.db", PVELAB_TOKEN=sim["ops"])
    r = run("-c", cfg, "-o", "json", "plan", env=ops)
    plan = r.json()
    assert not any(c.get("vmid") == 103 for c in plan["changes"]), plan
    blocked = [b for b in plan["blocked"] if b["guest"] == "intruder"]
    assert len(blocked) == 1, plan
    assert "the token cannot see vmid 103 (no VM.Audit on /vms/103)" in blocked[0]["reason"]
    # the same plan with a token that sees everything names the real owner
    r = run("-c", cfg, "-o", "json", "plan", env=env_for(sim, tmp_path / "s.db"))
    reasons = [b["reason"] for b in r.json()["blocked"]]
    assert any("vmid 103 is taken by" in x for x in reasons), reasons


def test_forbidden_write_names_the_smallest_role(sim, tmp_path):
    aud = env_for(sim, tmp_path / "s.db", PVELAB_TOKEN=sim["aud"])
    assert run("sync", env=aud).rc == 0  # sees everything: PVEAuditor on /
    r = run("start", "103", env=aud)
    assert r.rc == 1
    assert "missing privilege 'VM.PowerMgmt' on '/vms/103'" in r.err, r
    assert "pveum acl modify /vms/103 --tokens 'aud@pve!tk' --roles PVEVMUser" in r.err, r


def test_seeded_users_tokens_and_acls(tmp_path):
    """A seed's access section; the state file keeps it; the built-in tokens
    keep this run's secrets."""
    seed = tmp_path / "seed.json"
    state = tmp_path / "state.json"
    seed.write_text(json.dumps({
        "nodes": ["pve"],
        "pools": [{"poolid": "lab", "members": [100]}],
        "guests": [{"vmid": 100, "config": {"name": "a"}},
                   {"vmid": 101, "config": {"name": "b"}}],
        "access": {
            "users": {"ci@pve": {"tokens": {"run": {"privsep": True, "value": "s3cret-1"}}}},
            "acl": [{"path": "/pool/lab", "ugid": "ci@pve", "roleid": "PVEVMAdmin"},
                    {"path": "/pool/lab", "ugid": "ci@pve!run", "roleid": "PVEAuditor"}],
        },
    }))
    for _ in range(2):  # the seed, then the state file it left
        info = start_sim("--seed", str(seed), "--state-file", str(state))
        try:
            info = dict(info, token="ci@pve!run=s3cret-1")
            px = _root(info)
            assert [g["vmid"] for g in px.cluster.resources.get(type="vm")] == [100]
            perms = px.access.permissions.get()
            # separated token: the intersection of PVEVMAdmin and PVEAuditor
            assert sorted(perms["/vms/100"]) == ["VM.Audit", "VM.GuestAgent.Audit"]
            with pytest.raises(ResourceException) as e:
                px.nodes("pve").qemu(100).status.start.post()
            assert e.value.status_code == 403
            assert "Permission check failed (/vms/100, VM.PowerMgmt)" in str(e.value)
        finally:
            stop_sim(info)
        assert json.loads(state.read_text())["access"]["users"]["ci@pve"]
