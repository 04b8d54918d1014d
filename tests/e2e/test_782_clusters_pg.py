"""Several clusters in one PostgreSQL database (issue 33): with `state:
postgresql://...` and no clusters.NAME.state, each cluster keeps its tables
in a schema of its own (pvelab_NAME) of that one database; the CLI's sync
writes both at once, the reads cover both, and pvelab serve watches both."""
import json
import os

import pytest

import pgfix
from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import full_token
from test_700_serve import Server, until
from test_780_clusters import cluster_entry

pytestmark = pytest.mark.skipif(not pgfix.available(), reason="PostgreSQL 15 is not installed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pg = pgfix.Server()
    a = start_sim("--guests", "2")
    b = start_sim("--guests", "3")
    d = tmp_path_factory.mktemp("clusterspg")
    url = pg.createdb("shared")
    cfg = d / "pvelab.yaml"
    cfg.write_text(f"project: two\nstate: \"{url}\"\nserve:\n  status_interval: 1\n"
                   "clusters:\n" + cluster_entry("home", a) + cluster_entry("lab", b))
    env = {"SECRET_HOME": full_token(a).split("=", 1)[1],
           "SECRET_LAB": full_token(b).split("=", 1)[1]}
    for k in ("PVELAB_URL", "PVELAB_TOKEN", "PVELAB_FINGERPRINT", "PVELAB_STATE",
              "PVELAB_CA_FILE", "PVELAB_USER"):
        env[k] = ""
    yield {"pg": pg, "a": a, "b": b, "dir": d, "cfg": cfg, "env": env}
    for info in (a, b):
        stop_sim(info)
    pg.stop()


def pv(lab, *args):
    return run("-c", lab["cfg"], *args, env=lab["env"], cwd=lab["dir"])


def sql(lab, q):
    return lab["pg"].psql(q, db="shared")


def test_each_cluster_its_schema_in_one_database(lab):
    r = pv(lab, "sync")
    assert r.rc == 0, r
    assert [line.split(":")[0] for line in r.out.strip().splitlines()] == ["home", "lab"]
    assert sql(lab, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pvelab_%' "
               "ORDER BY 1").splitlines() == ["pvelab_home", "pvelab_lab"]
    assert sql(lab, "SELECT to_regclass('public.guests') IS NULL") == "t"
    home = int(sql(lab, "SELECT count(*) FROM pvelab_home.guests"))
    lab_n = int(sql(lab, "SELECT count(*) FROM pvelab_lab.guests"))
    assert (home, lab_n) == (2, 3)
    r = pv(lab, "-o", "json", "list")
    assert r.rc == 0, r
    rows = json.loads(r.out)
    assert [g["cluster"] for g in rows].count("home") == home
    assert [g["cluster"] for g in rows].count("lab") == lab_n
    # a second sync of both changes nothing, in either schema
    r = pv(lab, "-o", "json", "sync")
    assert r.rc == 0, r
    assert [(x["cluster"], x["added"], x["removed"]) for x in json.loads(r.out)] == [
        ("home", 0, 0), ("lab", 0, 0)]
    assert sql(lab, "SELECT count(*) FROM pvelab_lab.runs WHERE kind = 'sync'") == "2"
    r = pv(lab, "--cluster", "lab", "-o", "json", "history", "100")
    assert r.rc == 0, r
    assert json.loads(r.out)[0]["kind"] == "discovered"


def test_serve_watches_both_in_the_shared_database(lab):
    r = pv(lab, "--cluster", "home", "token", "create", "v", "--role", "viewer")
    assert r.rc == 0, r
    tok = r.out.strip()
    srv = Server("--listen", "127.0.0.1:0", "-c", lab["cfg"], env=lab["env"], cwd=lab["dir"])
    try:
        st = srv.info["clusters"]
        assert st["home"].endswith("/shared (schema pvelab_home)"), st
        assert st["lab"].endswith("/shared (schema pvelab_lab)"), st
        import requests
        h = {"Authorization": "Bearer " + tok}

        def both_synced():
            s = requests.get(srv.url + "/api/v1/sync", headers=h, timeout=20).json()
            return all(s["clusters"][c]["sync"]["state"] == "ok" for c in ("home", "lab"))
        until(both_synced, "both clusters synced")
        guests = requests.get(srv.url + "/api/v1/guests", headers=h, timeout=20).json()
        assert sorted({g["cluster"] for g in guests}) == ["home", "lab"]
    finally:
        assert srv.stop() == 0, srv.err


def test_each_cluster_has_its_own_write_lock(lab):
    """Another process holding home's write lock (as a sync writing home
    would) keeps home's writers waiting, never lab's."""
    import psycopg2
    con = psycopg2.connect(lab["pg"].url("shared"))
    try:
        cur = con.cursor()
        cur.execute("SELECT pg_advisory_lock(1886807404, hashtext('pvelab_home'))")
        r = pv(lab, "--cluster", "lab", "sync")
        assert r.rc == 0, r
        r = pv(lab, "--cluster", "home", "sync")  # waits lock_timeout (10 s), then says so
        assert r.rc == 1
        assert r.err.startswith("pvelab: sync failed: state database 'postgresql://")
        assert r.err.endswith("/shared (schema pvelab_home)' is being written by another "
                              "process\n"), r.err
    finally:
        con.close()
    r = pv(lab, "--cluster", "home", "sync")
    assert r.rc == 0, r
