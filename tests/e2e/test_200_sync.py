"""`pvelab sync` and the read commands (status, list, describe, history)
against the simulator: counts, no history on an unchanged resync, filters,
-o json, dry runs, config changes shown as diffs, connection from pvelab.yaml."""
import json
import os

import pytest

from conftest import run, state_rows
from simfix import start_sim, stop_sim


def full_token(info, key="token"):
    t = info[key]
    return t if "!" in t and "=" in t else f"root@pam!pvelab={t}"


def env_for(info, state, **extra):
    e = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": full_token(info),
         "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(state)}
    e.update(extra)
    return e


def api(info, method, path, **params):
    """Talk to the simulator directly, as a second client would (proxmoxer)."""
    import urllib3
    from proxmoxer import ProxmoxAPI
    urllib3.disable_warnings()
    host = info["url"].split("://", 1)[1].rstrip("/")
    h, port = host.rsplit(":", 1)
    user, _, rest = full_token(info).partition("!")
    name, _, secret = rest.partition("=")
    px = ProxmoxAPI(h, port=int(port), user=user, token_name=name, token_value=secret,
                    verify_ssl=False)
    node = px
    for part in path.strip("/").split("/"):
        node = node(part)
    return getattr(node, method.lower())(**params)


def history_rows(state):
    # the guests' rows (storages, jobs and pools have theirs with vmid 0)
    return state_rows(state, "select count(*) from history where vmid > 0")[0][0]


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--nodes", "3", "--guests", "40")
    yield info
    stop_sim(info)


@pytest.fixture(scope="module")
def synced(sim, tmp_path_factory):
    state = tmp_path_factory.mktemp("st") / "state.db"
    env = env_for(sim, state)
    r = run("sync", env=env)
    assert r.rc == 0, r
    return sim, state, env, r


def test_first_sync_discovers_everything(synced):
    sim, state, env, r = synced
    assert "+40 new ~0 changed -0 gone" in r.out
    assert r.err == ""  # no progress bar when not on a TTY
    assert history_rows(state) == 40


def test_second_sync_writes_no_history(synced):
    sim, state, env, _ = synced
    before = history_rows(state)
    r = run("-o", "json", "sync", env=env)
    assert r.rc == 0, r
    j = r.json()
    assert (j["added"], j["changed"], j["removed"], j["unchanged"]) == (0, 0, 0, 40)
    assert history_rows(state) == before


def test_list_json_and_filters(synced):
    sim, state, env, _ = synced
    allg = run("-o", "json", "list", env=env).json()
    assert len(allg) == 40
    for g in allg:
        for k in ("vmid", "name", "node", "type", "status"):
            assert k in g
    truth = {g["vmid"]: g for g in api(sim, "GET", "cluster/resources", type="vm")}
    assert {g["vmid"] for g in allg} == set(truth)
    for g in allg:
        assert g["node"] == truth[g["vmid"]]["node"]
        assert g["type"] == truth[g["vmid"]]["type"]
        assert g["status"] == truth[g["vmid"]]["status"]
        # The counters come from the sync's overlay of the resource entry.
        assert g["maxmem"] == truth[g["vmid"]]["maxmem"] and g["maxcpu"] == truth[g["vmid"]]["maxcpu"]
    vms = run("-o", "json", "list", "--type", "vm", env=env).json()
    assert vms and all(g["type"] == "qemu" for g in vms)
    cts = run("-o", "json", "list", "--type", "lxc", env=env).json()
    assert len(vms) + len(cts) == 40
    node = allg[0]["node"]
    on = run("-o", "json", "list", "--node", node, env=env).json()
    assert [g["vmid"] for g in on] == [g["vmid"] for g in allg if g["node"] == node]
    st = allg[0]["status"]
    got = run("-o", "json", "list", "--status", st, "--node", node, "--type", allg[0]["type"],
              env=env).json()
    assert [g["vmid"] for g in got] == [g["vmid"] for g in allg if g["status"] == st and
                                        g["node"] == node and g["type"] == allg[0]["type"]]
    assert run("-o", "json", "list", "--node", "no-such-node", env=env).json() == []
    byname = run("-o", "json", "list", "--sort", "name", env=env).json()
    names = [g["name"] or "" for g in byname]
    assert names == sorted(names)
    tagged = [g for g in allg if g.get("tags")]
    if tagged:
        tag = tagged[0]["tags"].split(";")[0]
        got = run("-o", "json", "list", "--tag", tag, env=env).json()
        assert got and all(tag in g["tags"].split(";") for g in got)
    text = run("list", env=env)
    assert text.rc == 0 and text.out.startswith("VMID") and len(text.out.splitlines()) == 41
    assert run("list", "--type", "floppy", env=env).rc == 64
    assert run("list", "--sort", "colour", env=env).rc == 64


def test_status(synced):
    sim, state, env, _ = synced
    r = run("status", env=env)
    assert r.rc == 0, r
    assert "guests: 40" in r.out and "last sync:" in r.out
    j = run("-o", "json", "status", env=env).json()
    assert len(j["nodes"]) == 3
    total = sum(sum(v.values()) for v in (j["guests"]["qemu"], j["guests"]["lxc"]))
    assert total == 40 and j["guests"]["total"] == 40
    allg = run("-o", "json", "list", env=env).json()
    for t in ("qemu", "lxc"):
        for st, n in j["guests"][t].items():
            assert n == sum(1 for g in allg if g["type"] == t and g["status"] == st)
    for n in j["nodes"]:
        assert n["maxmem"] > 0 and n["status"] == "online"


def test_describe_by_vmid_and_name(synced):
    sim, state, env, _ = synced
    g = run("-o", "json", "list", "--type", "vm", env=env).json()[0]
    r = run("describe", g["vmid"], env=env)
    assert r.rc == 0, r
    assert "config:" in r.out and "snapshots:" in r.out and "recent tasks:" in r.out
    j = run("-o", "json", "describe", g["name"], env=env).json()
    assert j["vmid"] == g["vmid"]
    cfg = api(sim, "GET", f"nodes/{g['node']}/qemu/{g['vmid']}/config")
    for k, v in cfg.items():
        assert str(j["config"][k]) == str(v)
    assert isinstance(j["snapshots"], list)


def test_guest_not_found_names_the_closest(synced):
    sim, state, env, _ = synced
    g = run("-o", "json", "list", env=env).json()[0]
    typo = g["name"][:-1] + ("x" if g["name"][-1] != "x" else "y")
    r = run("describe", typo, env=env)
    assert r.rc == 1
    assert f"guest '{typo}' not found" in r.err and f"'{g['name']}'" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = run("history", "zzzzzzzzzzzzzzzzzzzz", env=env)
    assert r.rc == 1 and "not found" in r.err


def test_change_shows_in_sync_and_history(synced):
    sim, state, env, _ = synced
    g = run("-o", "json", "list", "--type", "vm", env=env).json()[1]
    path = f"nodes/{g['node']}/qemu/{g['vmid']}/config"
    old = int(api(sim, "GET", path).get("memory", 512))
    new = old + 512
    api(sim, "PUT", path, memory=new)
    before = history_rows(state)
    dry = run("sync", "--dry-run", env=env)
    assert dry.rc == 0, dry
    assert "~1 changed" in dry.out and "nothing written" in dry.out
    assert f"~ {g['vmid']} " in dry.out
    assert history_rows(state) == before
    r = run("sync", env=env)
    assert "+0 new ~1 changed -0 gone" in r.out, r
    assert history_rows(state) == before + 1
    h = run("history", g["name"], env=env)
    assert h.rc == 0, h
    assert "discovered" in h.out and "updated" in h.out
    assert f"~ config.memory: {old} -> {new}" in h.out
    hj = run("-o", "json", "history", str(g["vmid"]), env=env).json()
    assert [e["kind"] for e in hj] == ["discovered", "updated"]
    ch = hj[1]["changes"]
    assert [c["key"] for c in ch] == ["config.memory"]
    assert str(ch[0]["old"]) == str(old) and str(ch[0]["new"]) == str(new)
    assert len(hj[1]["sha256"]) == 64 and hj[0]["sha256"] != hj[1]["sha256"]


def test_read_commands_without_state(sim, tmp_path):
    env = env_for(sim, tmp_path / "none" / "state.db")
    r = run("list", env=env)
    assert r.rc == 1 and "pvelab sync" in r.err
    r = run("-o", "json", "list", "--live", env=env)
    assert r.rc == 0, r
    assert len(r.json()) >= 40


def test_connection_from_config_file(sim, tmp_path):
    secret = full_token(sim).split("=", 1)[1]
    token_id = full_token(sim).split("=", 1)[0]
    sf = tmp_path / "token"
    sf.write_text(secret + "\n")
    os.chmod(sf, 0o600)
    (tmp_path / "pvelab.yaml").write_text(
        "cluster:\n"
        f"  endpoints: [{sim['url']}]\n"
        f"  token_id: '{token_id}'\n"
        "  token_secret_file: token\n"
        f"  fingerprint: '{sim['fingerprint']}'\n")
    env = {k: "" for k in ("PVELAB_URL", "PVELAB_TOKEN", "PVELAB_FINGERPRINT", "PVELAB_STATE")}
    r = run("sync", env=env, cwd=tmp_path)
    assert r.rc == 0, r
    assert (tmp_path / ".pvelab" / "state.db").exists()
    # A secret file others can read is refused.
    os.chmod(sf, 0o644)
    r = run("sync", env=env, cwd=tmp_path)
    assert r.rc == 1 and "token_secret_file" in r.err


def test_sync_keeps_to_its_concurrency(sim, tmp_path):
    """Node status, bridges and tasks go through the workers' connections:
    a sync opens its first connection plus at most `concurrency` more (it
    used to open another pool for the node requests). -v counts them."""
    import re
    env = env_for(sim, tmp_path / "state.db", PVELAB_CONCURRENCY="4")
    r = run("-v", "sync", env=env)
    assert r.rc == 0, r
    m = re.search(r"on (\d+) TLS connections, (\d+) of them resumed", r.err)
    assert m, r.err
    assert 2 <= int(m.group(1)) <= 1 + 4, r.err


OFFLINE_SEED = """\
cluster: homelab
nodes:
  - name: pve1
  - name: pve2
  - {name: pve3, online: %s}
guests:
  - {vmid: 100, type: qemu, node: pve1, status: running, config: {name: web, memory: 1024}}
  - {vmid: 101, type: qemu, node: pve2, status: running, config: {name: db, memory: 2048}}
  - {vmid: 102, type: qemu, node: pve3, status: running, config: {name: backup, memory: 1024}}
  - {vmid: 200, type: lxc, node: pve3, status: stopped, config: {hostname: dns, memory: 256}}
"""


def test_sync_with_a_node_offline(tmp_path):
    """A homelab with one node powered off still syncs: the guests of that node
    are kept as last synced (or recorded from the resource list, without
    config, when new), with a warning naming the node, and nobody asks it.
    Their state reads "unknown", as PVE lists them, and comes back with the
    node without a history row."""
    state = tmp_path / "state.db"
    seeds = {}
    for online in ("true", "false"):
        seeds[online] = tmp_path / f"seed-{online}.yaml"
        seeds[online].write_text(OFFLINE_SEED % online)

    # First sync with pve3 down: its guests are new, known only by their entry.
    info = start_sim("--seed", seeds["false"], "--rng-seed", "7")
    try:
        env = env_for(info, state)
        r = run("-o", "json", "-v", "sync", env=env)
        assert r.rc == 0, r
        j = r.json()
        assert (j["added"], j["unread"], j["guests"]) == (4, 2, 4)
        assert "2 guests not read, kept as last synced: node pve3 (2) is offline" in r.err
        assert "/nodes/pve3/" not in r.err  # not even tried
        # PVE lists them without name or figures: those come from the
        # node's RRD data, dropped 5 minutes after the node went.
        assert node_guests(env, "pve3") == {102: (None, "unknown"), 200: (None, "unknown")}
        assert "config" not in run("-o", "json", "describe", "102", env=env).json()
        assert "could not be read from node 'pve3' (offline)" in run("import", "102", env=env).err
        # Acting on such a guest fails with a hint at the node.
        r = run("stop", "102", env=env)
        assert r.rc == 1 and "HTTP 595: its node did not answer; is it up?" in r.err, r
        r = run("snapshots", "102", env=env)
        assert r.rc == 1 and "the node it is for did not answer; is it up?" in r.err, r
        before = history_rows(state)
        j = run("-o", "json", "sync", env=env).json()
        assert (j["added"], j["changed"], j["removed"], j["unread"]) == (0, 0, 0, 2)
        assert history_rows(state) == before
    finally:
        stop_sim(info)

    # The node is back: its guests get their configs, as an update.
    info = start_sim("--seed", seeds["true"], "--rng-seed", "7")
    try:
        env = env_for(info, state)
        r = run("-o", "json", "sync", env=env)
        assert r.rc == 0, r
        assert "warning" not in r.err
        j = r.json()
        assert j["unread"] == 0 and j["removed"] == 0
        assert {c["vmid"] for c in j["changes"] if c["kind"] == "updated"} >= {102, 200}
        g = run("-o", "json", "describe", "102", env=env).json()
        assert str(g["config"]["memory"]) == "1024"
        assert node_guests(env, "pve3") == {102: ("backup", "running"), 200: ("dns", "stopped")}
    finally:
        stop_sim(info)

    # Down again: what was read stays, config included, with no history; the
    # state is the cluster's word for now.
    info = start_sim("--seed", seeds["false"], "--rng-seed", "7")
    try:
        env = env_for(info, state)
        before = history_rows(state)
        j = run("-o", "json", "sync", env=env).json()
        assert (j["unread"], j["removed"]) == (2, 0)
        g = run("-o", "json", "describe", "backup", env=env).json()
        assert (str(g["config"]["memory"]), g["status"]) == ("1024", "unknown")
        assert node_guests(env, "pve3") == {102: ("backup", "unknown"), 200: ("dns", "unknown")}
        counts = run("-o", "json", "status", env=env).json()["guests"]
        assert (counts["qemu"]["unknown"], counts["lxc"]["unknown"]) == (1, 1), counts
        assert j["changes"] == [] and history_rows(state) == before
    finally:
        stop_sim(info)

    # Back, unchanged: the states return, still with no history.
    info = start_sim("--seed", seeds["true"], "--rng-seed", "7")
    try:
        env = env_for(info, state)
        j = run("-o", "json", "sync", env=env).json()
        assert (j["unread"], j["changed"], j["changes"]) == (0, 0, [])
        assert node_guests(env, "pve3") == {102: ("backup", "running"), 200: ("dns", "stopped")}
        assert run("-o", "json", "describe", "backup", env=env).json()["status"] == "running"
        assert history_rows(state) == before
    finally:
        stop_sim(info)


def node_guests(env, node):
    """vmid -> (name, status) of the guests `list` shows on NODE."""
    return {g["vmid"]: (g.get("name"), g["status"])
            for g in run("-o", "json", "list", "--node", node, env=env).json()}


def test_sync_when_nodes_do_not_answer(tmp_path):
    """Calls under /nodes/ failing with 595 (--faults noanswer), still failing
    after their retries, cost only the guests they were for: the sync
    completes, those guests stay as they were, and the warning and -o json
    count them. (Under make tsan this is the workers' path for such guests.)"""
    state = tmp_path / "state.db"
    info = start_sim("--nodes", "3", "--guests", "60", "--rng-seed", "11")
    try:
        env = env_for(info, state)
        assert run("sync", env=env).rc == 0
        before = history_rows(state)
        truth = run("-o", "json", "list", env=env).json()
    finally:
        stop_sim(info)
    info = start_sim("--nodes", "3", "--guests", "60", "--rng-seed", "11",
                     "--faults", "noanswer=0.9")
    try:
        env = env_for(info, state)
        r = run("-o", "json", "sync", env=env)
        assert r.rc == 0, r
        j = r.json()
        assert 0 < j["unread"] < 60 and j["unread"] + j["unchanged"] == 60, j
        assert (j["added"], j["changed"], j["removed"]) == (0, 0, 0)
        assert "not read, kept as last synced" in r.err and "offline or not answering" in r.err
        assert history_rows(state) == before
        assert {g["vmid"] for g in run("-o", "json", "list", env=env).json()} == \
            {g["vmid"] for g in truth}
    finally:
        stop_sim(info)
