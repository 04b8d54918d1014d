"""Several clusters in one config (issue 33 item 4): two simulators named
under clusters:, the same guest name in both, plan/apply per cluster with
--cluster, replans with zero changes, one sync and one status over both,
a store per cluster, and the refusals that keep one cluster's changes from
reaching the other."""
import json
import os

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, full_token

WEB = """
  - name: web
    cluster: {c}
    memory: 1G
    cores: 1
    networks: [{{bridge: vmbr0, ip: 10.0.0.5/24, gw: 10.0.0.1}}]
    disks: [{{storage: local-lvm, size: 4G}}]
"""


def cluster_entry(name, info):
    user = full_token(info).split("=", 1)[0]
    return (f"  {name}:\n    endpoints: [{info['url']}]\n"
            f"    fingerprint: \"{info['fingerprint']}\"\n"
            f"    token_id: \"{user}\"\n    token_secret_env: SECRET_{name.upper()}\n")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    a = start_sim("--guests", "2")
    b = start_sim("--guests", "3")
    d = tmp_path_factory.mktemp("clusters")
    cfg = d / "pvelab.yaml"
    cfg.write_text("project: two\nclusters:\n" + cluster_entry("home", a) +
                   cluster_entry("lab", b) + "guests:" + WEB.format(c="home") +
                   WEB.format(c="lab") +
                   "  - name: db\n    cluster: lab\n    memory: 512\n")
    env = {"SECRET_HOME": full_token(a).split("=", 1)[1],
           "SECRET_LAB": full_token(b).split("=", 1)[1]}
    # the connection comes from the config alone: nothing of it in the environment
    for k in ("PVELAB_URL", "PVELAB_TOKEN", "PVELAB_FINGERPRINT", "PVELAB_STATE",
              "PVELAB_CA_FILE", "PVELAB_USER"):
        env[k] = ""
    lab = {"a": a, "b": b, "dir": d, "cfg": cfg, "env": env}
    yield lab
    for info in (a, b):
        if not info["proc"].stdout.closed:  # the last test stops one itself
            rc, err = stop_sim(info)
            assert rc == 0, err


def pv(lab, *args):
    return run("-c", lab["cfg"], *args, env=lab["env"], cwd=lab["dir"])


def names(info):
    return sorted(g.get("name") for g in api(info, "GET", "cluster/resources", type="vm"))


def test_apply_each_cluster_then_zero_changes(lab):
    r = pv(lab, "validate", "--offline")
    assert r.rc == 0, r.err
    # a change needs its cluster named when there are several
    r = pv(lab, "plan")
    assert r.rc == 1
    assert r.err.strip().splitlines() == [r.err.strip()]
    assert "several clusters (home, lab): choose one with --cluster NAME" in r.err
    before_a, before_b = names(lab["a"]), names(lab["b"])
    r = pv(lab, "--cluster", "home", "apply", "--yes")
    assert r.rc == 0, r.err
    assert names(lab["a"]) == sorted(before_a + ["web"])
    assert names(lab["b"]) == before_b  # home's apply never reached lab
    r = pv(lab, "apply", "--yes", "--cluster", "lab")
    assert r.rc == 0, r.err
    assert names(lab["b"]) == sorted(before_b + ["db", "web"])
    assert names(lab["a"]) == sorted(before_a + ["web"])
    for c in ("home", "lab"):
        r = pv(lab, "--cluster", c, "plan", "--detailed-exitcode")
        assert r.rc == 0, (c, r.out, r.err)
    # one store per cluster, beside where the one store would be
    assert (lab["dir"] / ".pvelab" / "state-home.db").exists()
    assert (lab["dir"] / ".pvelab" / "state-lab.db").exists()
    assert not (lab["dir"] / ".pvelab" / "state.db").exists()


def test_sync_list_status_cover_both(lab):
    r = pv(lab, "sync")
    assert r.rc == 0, r.err
    lines = r.out.strip().splitlines()
    assert [l.split(":")[0] for l in lines] == ["home", "lab"]
    r = pv(lab, "-o", "json", "sync")
    assert r.rc == 0, r.err
    res = json.loads(r.out)
    assert [x["cluster"] for x in res] == ["home", "lab"]
    assert all(x["added"] == x["changed"] == x["removed"] == 0 for x in res)

    # each cluster's part of the config against its own state
    r = pv(lab, "validate")
    assert r.rc == 0 and "checked against the cluster" in r.out, (r.out, r.err)
    text = lab["cfg"].read_text()
    bad = lab["dir"] / "node.yaml"
    bad.write_text(text.replace("cluster: lab\n    memory: 512",
                                "cluster: lab\n    node: nosuch\n    memory: 512"))
    line = bad.read_text().splitlines().index("    node: nosuch") + 1
    r = pv(lab, "validate", bad)
    assert r.rc == 1, r.err
    assert [l for l in r.err.splitlines() if "nosuch" in l] == [
        f"{bad}:{line}:5: error: guests[2].node: cluster 'lab': no node 'nosuch' in the cluster"]

    r = pv(lab, "-o", "json", "list")
    assert r.rc == 0, r.err
    guests = json.loads(r.out)
    webs = sorted(g["cluster"] for g in guests if g["name"] == "web")
    assert webs == ["home", "lab"]
    assert [g["cluster"] for g in guests if g["name"] == "db"] == ["lab"]
    assert sum(g["cluster"] == "home" for g in guests) == len(names(lab["a"]))
    assert sum(g["cluster"] == "lab" for g in guests) == len(names(lab["b"]))
    r = pv(lab, "list")
    assert r.out.splitlines()[0].split()[:2] == ["CLUSTER", "VMID"]
    # one cluster chosen: as a one-cluster config shows it
    r = pv(lab, "--cluster", "lab", "-o", "json", "list")
    assert "cluster" not in json.loads(r.out)[0]
    assert sorted(g["name"] for g in json.loads(r.out)) == names(lab["b"])

    r = pv(lab, "status")
    assert r.rc == 0, r.err
    assert r.out.splitlines()[0].split()[:2] == ["CLUSTER", "NODE"]
    assert any(l.startswith("home: guests: ") for l in r.out.splitlines())
    assert any(l.startswith("lab: guests: ") for l in r.out.splitlines())
    r = pv(lab, "-o", "json", "status")
    st = json.loads(r.out)
    assert [(s["cluster"], s["guests"]["total"]) for s in st] == [
        ("home", len(names(lab["a"]))), ("lab", len(names(lab["b"])))]


def test_one_guest_reads_find_its_cluster(lab):
    r = pv(lab, "-o", "json", "describe", "db")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["cluster"] == "lab"
    r = pv(lab, "describe", "web")
    assert r.rc == 1
    assert "'web' is in clusters 'home' and 'lab' (choose one with --cluster NAME)" in r.err
    r = pv(lab, "history", "web", "--cluster", "home", "-o", "json")  # after the command
    assert r.rc == 0, r.err
    assert json.loads(r.out)[-1]["kind"] in ("created", "discovered")
    r = pv(lab, "history", "nosuch")
    assert r.rc == 1 and "not found in any cluster (home, lab" in r.err


def test_refusals_name_the_problem(lab, tmp_path):
    r = pv(lab, "--cluster", "office", "plan")
    assert r.rc == 1
    assert "unknown cluster 'office'" in r.err and "home, lab" in r.err
    env = dict(lab["env"], PVELAB_URL=lab["b"]["url"])
    r = run("-c", lab["cfg"], "--cluster", "home", "plan", env=env, cwd=lab["dir"])
    assert r.rc == 1 and "PVELAB_URL is set" in r.err

    text = lab["cfg"].read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("cluster: lab\n    memory: 512", "cluster: labb\n    memory: 512"))
    r = run("validate", "--offline", bad)
    assert r.rc == 1
    assert "unknown cluster 'labb' (clusters: home, lab)" in r.err
    assert "guests[2].cluster" in r.err
    bad.write_text(text.replace("    cluster: home\n", ""))
    r = run("validate", "--offline", bad)
    assert r.rc == 1 and "cluster: missing (this config has several clusters: home, lab)" in r.err
    bad.write_text("cluster:\n  endpoints: [https://x:8006]\n" + text)
    r = run("validate", "--offline", bad)
    assert r.rc == 1 and "cluster: and clusters: are both set" in r.err
    # the same name twice in one cluster is still a duplicate
    bad.write_text(text + WEB.format(c="lab").replace("10.0.0.5", "10.0.0.6"))
    r = run("validate", "--offline", bad)
    assert r.rc == 1 and "duplicate guest name 'web'" in r.err


def test_import_merges_into_its_cluster(lab):
    r = pv(lab, "--cluster", "lab", "import", "100", "--out", lab["cfg"], "--merge")
    assert r.rc == 0, r.err
    r = pv(lab, "validate", "--offline")
    assert r.rc == 0, r.err
    # lab's vm100 is declared now, as lab's: home's vm100 stays unmanaged
    for c in ("home", "lab"):
        r = pv(lab, "--cluster", c, "-o", "json", "plan", "--detailed-exitcode")
        assert r.rc == 0, (c, r.out, r.err)
        plan = json.loads(r.out)
        assert ("vm100" in str(plan.get("unmanaged", ""))) == (c == "home"), plan
    # again: lab declares it already
    r = pv(lab, "--cluster", "lab", "import", "100", "--out", lab["cfg"], "--merge")
    assert r.rc == 1 and "already declares a guest named 'vm100'" in r.err


def test_a_cluster_may_name_its_own_state(lab, tmp_path):
    own = tmp_path / "lab-own.db"
    text = lab["cfg"].read_text().replace(
        "    token_secret_env: SECRET_LAB\n",
        f"    token_secret_env: SECRET_LAB\n    state: {own}\n")
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(text)
    r = run("-c", cfg, "--cluster", "lab", "sync", env=lab["env"], cwd=tmp_path)
    assert r.rc == 0, r.err
    assert own.exists()
    assert not (tmp_path / ".pvelab" / "state-lab.db").exists()
    # home was never synced here: the reads show lab and say so
    for cmd in ("list", "status"):
        r = run("-c", cfg, "-o", "json", cmd, env=lab["env"], cwd=tmp_path)
        assert r.rc == 0, r.err
        assert "warning: cluster 'home': " in r.err
        assert {x["cluster"] for x in json.loads(r.out)} == {"lab"}
    assert not (tmp_path / ".pvelab" / "state-home.db").exists()  # reads made none


def test_a_stopped_cluster_does_not_stop_the_others_sync(lab):
    """Last: it stops home's simulator (the fixture's stop then finds it
    stopped)."""
    rc, err = stop_sim(lab["a"])
    assert rc == 0, err
    r = pv(lab, "sync")
    assert r.rc == 1
    assert "sync of cluster 'home' failed: cannot reach" in r.err
    assert [l.split(":")[0] for l in r.out.strip().splitlines()] == ["lab"]
    r = pv(lab, "--cluster", "lab", "sync")
    assert r.rc == 0, r.err
