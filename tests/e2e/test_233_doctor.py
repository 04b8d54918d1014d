"""Issue 32: `pvelab doctor` against four kinds of token, and `--print-setup`'s
pveum commands, run against the simulator's /access API as pveum would make
them, give a token with which the config applies and nothing more is allowed.
Also the simulator's custom roles, groups and token expiry they rest on."""
import json
import os
import shlex
import time

import pytest
from proxmoxer.core import ResourceException

from conftest import SRC, run
from simfix import start_sim, stop_sim
import stackfix
from test_200_sync import api, env_for
from test_232_token_view import _root, acl

CONFIG = """project: lab
pools:
  - name: lab
guests:
  - name: web
    vmid: 150
    node: pve
    pool: lab
    memory: 1G
    disks: [{storage: local-lvm, size: 4G}]
    networks: [{bridge: vmbr0}]
"""


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--nodes", "1", "--guests", "4")
    api(info, "POST", "pools", poolid="other")
    api(info, "PUT", "pools/other", vms="100")
    # a pool-scoped PVEVMAdmin (its user's token, not separated)
    api(info, "POST", "access/users", userid="ops@pve")
    ops = api(info, "POST", "access/users/ops@pve/token/tk", privsep=0)
    acl(info, {"path": "/pool/lab", "users": "ops@pve", "roles": "PVEVMAdmin"})
    acl(info, {"path": "/nodes", "users": "ops@pve", "roles": "PVEAuditor"})
    acl(info, {"path": "/storage", "users": "ops@pve", "roles": "PVEAuditor"})
    # a separated token without any ACL of its own
    api(info, "POST", "access/users", userid="bare@pve")
    bare = api(info, "POST", "access/users/bare@pve/token/tk")
    acl(info, {"path": "/", "users": "bare@pve", "roles": "Administrator"})
    info["ops"] = f"{ops['full-tokenid']}={ops['value']}"
    info["bare"] = f"{bare['full-tokenid']}={bare['value']}"
    yield info
    stop_sim(info)


def doctor(sim, tmp_path, token=None, *args):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(CONFIG)
    extra = {"PVELAB_TOKEN": token} if token else {}
    env = env_for(sim, tmp_path / "s.db", **extra)
    return run("-c", cfg, "doctor", *args, env=env)


def missing(report):
    return {(n["what"], n["path"]): n["missing"] for n in report["needs"] if n["missing"]}


def test_full_admin_token(sim, tmp_path):
    r = doctor(sim, tmp_path, None, "-o", "json")
    assert r.rc == 0, r
    rep = r.json()
    assert rep["problems"] == 0 and missing(rep) == {}
    assert rep["api"]["release"] in ("8.4", "9.1")
    assert rep["trust"] == "fingerprint"
    assert rep["token"]["privsep"] is False  # the one warning
    assert rep["nodes"][0]["clock_skew_s"] in (-1, 0, 1)
    assert rep["nodes"][0]["certificate"]["days_left"] > 3000
    assert rep["sees_all_guests"] is True and rep["state"]["writable"] is True
    text = doctor(sim, tmp_path).out
    assert "warning  token root@pam!pvelab: not privilege separated" in text
    assert text.rstrip().endswith("0 problems, 1 warning")


def test_auditor_token(sim, tmp_path):
    r = doctor(sim, tmp_path, sim["readonly_token"], "-o", "json")
    assert r.rc == 1, r
    m = missing(r.json())
    guest = m[("guest web: create, configure, power, snapshot, back up", "/pool/lab")]
    assert "VM.Allocate" in guest and "VM.Audit" not in guest  # PVEAuditor on / reads
    assert ("pools", "/pool/lab") in m
    assert m[("guest web: its disks", "/storage/local-lvm")] == ["Datastore.AllocateSpace"]
    fix = next(n["fix"] for n in r.json()["needs"] if n["path"] == "/storage/local-lvm")
    # a separated token needs the grant on its user too
    assert fix == ("pveum acl modify /storage/local-lvm --users audit@pve --tokens "
                   "'audit@pve!ro' --roles PVEDatastoreUser")


def test_pool_scoped_token(sim, tmp_path):
    r = doctor(sim, tmp_path, sim["ops"])
    assert r.rc == 1, r
    out = " ".join(r.out.split())
    assert "warning view: the token sees only part of the cluster" in out
    assert "ok guest web: create, configure, power, snapshot, back up" in out
    assert ("problem guest web: its disks: Datastore.AllocateSpace on /storage/local-lvm "
            "missing: pveum acl modify /storage/local-lvm --tokens 'ops@pve!tk' "
            "--roles PVEDatastoreUser") in out
    assert "problem pools: Pool.Allocate,Pool.Audit on /pool/lab missing" in out
    assert "problem guest web: its network: SDN.Use on /sdn/zones/localnetwork/vmbr0" in out


def test_separated_token_without_acls(sim, tmp_path):
    r = doctor(sim, tmp_path, sim["bare"], "-o", "json")
    assert r.rc == 1
    m = missing(r.json())
    assert m[("sync and plan: read the nodes", "/nodes")] == ["Sys.Audit"]
    assert r.json()["sees_all_guests"] is False
    assert r.json()["token"]["privsep"] is True


def pveum(sim, line):
    """Make the API call a pveum command line makes."""
    a = shlex.split(line)
    assert a[0] == "pveum", line
    opts, pos, i = {}, [], 1
    while i < len(a):
        if a[i].startswith("--"):
            opts[a[i][2:]] = a[i + 1]
            i += 2
        else:
            pos.append(a[i])
            i += 1
    if pos[:2] == ["role", "add"]:
        return api(sim, "POST", "access/roles", roleid=pos[2], privs=opts["privs"])
    if pos[:2] == ["user", "add"]:
        return api(sim, "POST", "access/users", userid=pos[2], comment=opts.get("comment", ""))
    if pos[:3] == ["user", "token", "add"]:
        return api(sim, "POST", f"access/users/{pos[3]}/token/{pos[4]}",
                   privsep=opts.get("privsep", "1"))
    if pos[:2] == ["acl", "modify"]:
        params = {"path": pos[2], "roles": opts["roles"]}
        for k in ("users", "tokens", "groups", "propagate"):
            if k in opts:
                params[k] = opts[k]
        return acl(sim, params)
    raise AssertionError(f"unknown pveum command: {line}")


def test_print_setup_gives_a_least_privilege_token(sim, tmp_path):
    r = doctor(sim, tmp_path, None, "--print-setup")
    assert r.rc == 0, r
    lines = [ln for ln in r.out.splitlines() if ln.startswith("pveum")]
    assert lines[0].startswith("pveum role add PVELab-lab-")
    token = None
    for ln in lines:
        got = pveum(sim, ln)
        if " token add " in ln:
            token = f"{got['full-tokenid']}={got['value']}"
    assert token and token.startswith("pvelab-lab@pve!pvelab=")
    # the new token: doctor finds nothing missing, and the config applies
    again = doctor(sim, tmp_path, token, "-o", "json")
    assert again.json()["problems"] == 0, again.json()
    cfg = tmp_path / "pvelab.yaml"
    env = env_for(sim, tmp_path / "s.db", PVELAB_TOKEN=token)
    applied = run("-c", cfg, "apply", "--yes", env=env)
    assert applied.rc == 0, applied
    assert run("-c", cfg, "plan", "--detailed-exitcode", env=env).rc == 0
    # and nothing more: a write in another pool is refused
    user, _, rest = token.partition("!")
    name, _, secret = rest.partition("=")
    px = _root(dict(sim, token=token))
    with pytest.raises(ResourceException) as e:
        px.nodes("pve").qemu(100).status.start.post()
    assert e.value.status_code == 403
    with pytest.raises(ResourceException) as e:
        px.nodes("pve").qemu(100).config.put(memory=2048)
    assert e.value.status_code == 403


def test_custom_roles_groups_and_expiry(sim):
    with pytest.raises(ResourceException) as e:
        api(sim, "POST", "access/roles", roleid="Bad", privs="VM.Audit,VM.Fly")
    assert "invalid privilege 'VM.Fly'" in str(e.value)
    with pytest.raises(ResourceException) as e:
        api(sim, "PUT", "access/roles/PVEAdmin", privs="VM.Audit")
    assert "auto-generated role 'PVEAdmin' cannot be modified" in str(e.value)
    api(sim, "POST", "access/roles", roleid="Peek", privs="VM.Audit")
    assert api(sim, "GET", "access/roles/Peek") == {"VM.Audit": 1}
    # a group's ACL reaches its members, unless a user has entries of its own
    api(sim, "POST", "access/groups", groupid="watchers")
    api(sim, "POST", "access/users", userid="w1@pve", groups="watchers")
    api(sim, "POST", "access/users", userid="w2@pve", groups="watchers")
    acl(sim, {"path": "/vms", "groups": "watchers", "roles": "Peek"})
    acl(sim, {"path": "/vms", "users": "w2@pve", "roles": "NoAccess"})
    t1 = api(sim, "POST", "access/users/w1@pve/token/ab", privsep=0)
    t2 = api(sim, "POST", "access/users/w2@pve/token/ab", privsep=0)
    see = lambda t: sorted(g["vmid"] for g in _root(  # noqa: E731
        dict(sim, token=f"{t['full-tokenid']}={t['value']}")).cluster.resources.get(type="vm"))
    everything = sorted(g["vmid"] for g in api(sim, "GET", "cluster/resources", type="vm"))
    assert see(t1) == everything and len(everything) >= 4
    assert see(t2) == []
    groups = {g["groupid"]: g for g in api(sim, "GET", "access/groups")}
    assert groups["watchers"]["users"] == "w1@pve,w2@pve"
    # an expired token is refused like a wrong secret
    past = api(sim, "POST", "access/users/w1@pve/token/old", privsep=0,
               expire=int(time.time()) - 60)
    with pytest.raises(Exception):
        _root(dict(sim, token=f"{past['full-tokenid']}={past['value']}")).version.get()
    assert api(sim, "GET", "access/users/w1@pve/token/old")["expire"] > 0


def test_clock_skew_is_reported(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"nodes": [{"name": "pve", "clock_offset": 45}]}))
    info = start_sim("--seed", str(seed))
    try:
        r = run("-o", "json", "doctor", env=env_for(info, tmp_path / "s.db"))
        node = r.json()["nodes"][0]
        assert 44 <= node["clock_skew_s"] <= 46, node
        text = run("doctor", env=env_for(info, tmp_path / "s.db")).out
        assert "warning  node pve: clock +4" in text and "chrony" in text
    finally:
        stop_sim(info)


def test_print_setup_applies_an_example(tmp_path):
    """The issue's proof on a seed's own example: minio-spark (an LXC from a
    template, a VM cloned from a template by name, storages, the firewall,
    a snapshot policy) applies with the --print-setup token and replans to
    zero; the template it clones is audited and cloned, nothing more."""
    example = os.path.join(SRC, "examples", "minio-spark.yaml")
    guests = stackfix.for_example(example, tmp_path)  # its MinIO stack goes over SSH
    info = start_sim("--seed", os.path.join(SRC, "examples", "sim", "minio-spark.yaml"),
                     "--task-ms", "10", "--health-ms", "50")
    try:
        r = run("-c", example, "doctor", "--print-setup", env=env_for(info, tmp_path / "r.db"))
        assert r.rc == 0, r
        token = None
        for ln in r.out.splitlines():
            if ln.startswith("pveum"):
                got = pveum(info, ln)
                if " token add " in ln:
                    token = f"{got['full-tokenid']}={got['value']}"
        env = env_for(info, tmp_path / "s.db", PVELAB_TOKEN=token, **guests.env)
        assert run("-c", example, "-o", "json", "doctor", env=env).json()["problems"] == 0
        applied = run("-c", example, "apply", "--yes", "-j", "8", env=env)
        assert applied.rc == 0, applied
        assert run("-c", example, "plan", "--detailed-exitcode", env=env).rc == 0
        tmpl = next(g for g in api(info, "GET", "cluster/resources", type="vm")
                    if g.get("template"))
        with pytest.raises(ResourceException) as e:
            _root(dict(info, token=token)).nodes(tmpl["node"]).qemu(tmpl["vmid"]).config.put(
                memory=4096)
        assert e.value.status_code == 403
    finally:
        guests.close()
        stop_sim(info)
