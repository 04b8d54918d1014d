"""The state in a real PostgreSQL 15 (issue 33): two syncs and an apply
started at once from three processes leave a history without a duplicate or a
lost row; a second apply (as from another machine: its own lock directory) is
refused by the advisory lock with the holder named, and SIGKILL of the holder
releases it; a password in the YAML is refused; a schema newer than the
binary is refused; a password from PGPASSFILE works; a database without the
schema is no state (reads say so, a power action makes none); the local files
(serve's certificate, the proxy's CA) are beside the config, the metrics give
the tables' size."""
import os
import re
import signal
import subprocess
import time

import psycopg2
import pytest

import pgfix
from conftest import BIN, run
from simfix import start_sim, stop_sim

pytestmark = pytest.mark.skipif(not pgfix.available(), reason="PostgreSQL 15 is not installed")

GUESTS = 40


@pytest.fixture(scope="module")
def pg():
    server = pgfix.Server()
    yield server
    server.stop()


def rows(url, sql, *args):
    con = psycopg2.connect(url)
    try:
        cur = con.cursor()
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None
    finally:
        con.commit()
        con.close()


def apply_lab(info, url, tmp_path, prefix, n):
    """The environment of a command against the simulator and url (with a lock
    directory of its own), and a config of n new guests PREFIX0..."""
    env = dict(os.environ, PVELAB_URL=info["url"], PVELAB_TOKEN=info["token"],
               PVELAB_FINGERPRINT=info["fingerprint"], PVELAB_STATE=url,
               XDG_RUNTIME_DIR=str(tmp_path))
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("guests:\n" + "".join(
        f"  - name: {prefix}{i}\n    memory: 256\n    disks: [{{storage: local-lvm, size: 2G}}]\n"
        for i in range(n)))
    return env, cfg


def test_two_syncs_and_an_apply_at_once(pg, tmp_path):
    url = pg.createdb("race")
    info = start_sim("--nodes", "3", "--guests", str(GUESTS), "--task-ms", "1500")
    env, cfg = apply_lab(info, url, tmp_path, "c", 4)
    procs = []
    try:
        start = lambda *a: subprocess.Popen([BIN, "-c", str(cfg), *a], env=env, cwd=tmp_path,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True)
        procs = [start("sync"), start("sync"), start("apply", "--yes", "-j", "1")]
        syncs, apply = procs[:2], procs[2]
        for p in syncs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, (out, err)
        # the apply holds the advisory lock and its row names it
        holder = pgfix.wait_for(lambda: rows(url, "SELECT pid, host FROM apply_lock"),
                                what="the apply's lock row")
        assert holder[0][0] == apply.pid
        assert rows(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted")[0][0] >= 1
        # a second apply from "another machine" (its own lock directory) is refused
        other = dict(env, XDG_RUNTIME_DIR=str(tmp_path / "other"))
        os.mkdir(tmp_path / "other", 0o700)
        r = run("-c", str(cfg), "apply", "--yes", env=other, cwd=str(tmp_path))
        assert r.rc == 1, r
        assert f"another apply is running (run " in r.err, r
        assert f"pid {apply.pid} on host {os.uname().nodename}, since " in r.err, r
        # history: each guest the syncs found, discovered exactly once
        hist = rows(url, "SELECT vmid, kind, count(*) FROM history WHERE vmid > 0 "
                    "GROUP BY vmid, kind ORDER BY vmid")
        discovered = [h for h in hist if h[1] == "discovered"]
        assert len(discovered) >= GUESTS and all(h[2] == 1 for h in discovered), hist
        assert rows(url, "SELECT count(*) FROM runs WHERE kind = 'sync' AND status = 'ok'")[0][0] >= 2
        ids = [r[0] for r in rows(url, "SELECT id FROM history ORDER BY id")]
        assert len(ids) == len(set(ids))
        # SIGKILL of the holder: PostgreSQL drops its session and the lock with it
        apply.send_signal(signal.SIGKILL)
        apply.communicate(timeout=30)
        pgfix.wait_for(lambda: rows(url, "SELECT count(*) FROM pg_locks WHERE locktype = "
                                    "'advisory'")[0][0] == 0, what="the lock's release")
        r = run("-c", str(cfg), "apply", "--yes", env=other, cwd=str(tmp_path), timeout=300)
        assert r.rc == 0, r
        assert "another apply" not in r.err, r
        # every guest the config wants, once
        r = run("-o", "json", "list", env=other)
        names = sorted(g["name"] for g in r.json() if re.fullmatch(r"c\d", g["name"] or ""))
        assert names == [f"c{i}" for i in range(4)], names
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        stop_sim(info)


def test_password_in_yaml_refused_and_pgpassfile_used(pg, tmp_path):
    pg.createdb("pw")
    pg.psql("CREATE ROLE pvuser LOGIN PASSWORD 's3cret-pw'; GRANT ALL ON DATABASE pw TO pvuser;"
            "ALTER DATABASE pw OWNER TO pvuser")
    info = start_sim("--nodes", "1", "--guests", "2")
    env = {"PVELAB_STATE": "", "PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"]}
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"state: postgresql://pvuser:s3cret-pw@/pw?host={pg.dir}\nguests: []\n")
    r = run("-c", str(cfg), "sync", env=env)
    assert r.rc != 0 and "holds a password" in r.err and "s3cret-pw" not in r.err, r
    # from PGPASSFILE: a connection string without one
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:pw:pvuser:s3cret-pw\n")
    passfile.chmod(0o600)
    cfg.write_text(f"state: host={pg.dir} dbname=pw user=pvuser\nguests: []\n")
    try:
        r = run("-c", str(cfg), "sync", env=dict(env, PGPASSFILE=str(passfile)))
        assert r.rc == 0, r
        assert rows(pg.url("pw"), "SELECT count(*) FROM guests")[0][0] == 2
        # without it, the server's refusal, and no password in the message
        r = run("-c", str(cfg), "sync", env=dict(env, PGPASSFILE=str(tmp_path / "none")))
        assert r.rc != 0 and "password" in r.err, r
    finally:
        stop_sim(info)


def test_newer_schema_refused(pg, tmp_path):
    url = pg.createdb("newer")
    env = {"PVELAB_STATE": url}
    info = start_sim("--nodes", "1", "--guests", "2")
    try:
        env.update(PVELAB_URL=info["url"], PVELAB_TOKEN=info["token"],
                   PVELAB_FINGERPRINT=info["fingerprint"])
        assert run("sync", env=env).rc == 0
        rows(url, "UPDATE pvelab_schema SET version = 999")
        for cmd in (["sync"], ["list"]):
            r = run(*cmd, env=env)
            assert r.rc != 0 and "schema version 999, newer than this pvelab knows" in r.err, r
    finally:
        stop_sim(info)


def test_state_migrate_round_trip(pg, tmp_path):
    """SQLite -> PostgreSQL -> SQLite: every guest's history -o json identical,
    a second run resumes (copies only what is missing), and the hash chain is
    checked."""
    import requests
    import urllib3
    urllib3.disable_warnings()
    info = start_sim("--nodes", "2", "--guests", "12")
    lite = str(tmp_path / "state.db")
    env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": lite}
    try:
        assert run("sync", env=env).rc == 0
        guests = run("-o", "json", "list", env=env).json()
        for g in guests[:4]:  # changes: "updated" rows with a run each
            kind = "qemu" if g["type"] in ("vm", "qemu") else "lxc"
            r = requests.put(f"{info['url']}/api2/json/nodes/{g['node']}/{kind}/{g['vmid']}/config",
                             headers={"Authorization": "PVEAPIToken=" + info["token"]},
                             data={"description": f"changed {g['vmid']}"}, verify=False, timeout=30)
            assert r.status_code == 200, r.text
        assert run("sync", env=env).rc == 0
        # a storage import adopts is recorded as the project's (no comment to mark)
        lab = tmp_path / "lab.yaml"
        lab.write_text("project: lab\n")
        r = run("-c", lab, "import", "storage:local", env=env)
        assert r.rc == 0, r
        url = pg.createdb("migrate")
        r = run("-o", "json", "state", "migrate", "--to", url, env=env)
        assert r.rc == 0, r
        rep = r.json()
        assert rep["tables"]["guests"] == {"copied": 12, "source": 12, "target": 12}
        assert rep["tables"]["storage_owners"] == {"copied": 1, "source": 1, "target": 1}
        assert rows(url, "SELECT storage, project FROM storage_owners") == [("local", "lab")]
        assert rep["tables"]["history"]["target"] == rep["tables"]["history"]["source"] >= 16
        # a cut copy: rows missing at the end are copied again, nothing else
        rows(url, "DELETE FROM history WHERE id > (SELECT max(id) - 5 FROM history)")
        r = run("-o", "json", "state", "migrate", "--to", url, env=env)
        assert r.rc == 0, r
        assert r.json()["tables"]["history"]["copied"] == 5
        assert r.json()["history_chain"] == rep["history_chain"]
        back = str(tmp_path / "back.db")
        r = run("state", "migrate", "--to", back, env=dict(env, PVELAB_STATE=url))
        assert r.rc == 0 and "hash chain" in r.out, r
        for g in guests:
            want = run("-o", "json", "history", g["vmid"], env=env)
            assert want.rc == 0 and want.out, want
            for where in (url, back):
                got = run("-o", "json", "history", g["vmid"], env=dict(env, PVELAB_STATE=where))
                assert got.out == want.out, (where, g["vmid"])
        # the PostgreSQL copy goes on with new ids after the copied ones
        assert run("sync", env=dict(env, PVELAB_STATE=url)).rc == 0
        # and records the storages an apply creates and destroy removes
        lab.write_text("project: lab\nstorages:\n"
                       "  - {name: scratch, type: dir, path: /srv/scratch, content: [iso]}\n")
        r = run("-c", lab, "apply", "--yes", env=dict(env, PVELAB_STATE=url))
        assert r.rc == 0, r
        assert sorted(rows(url, "SELECT storage, project FROM storage_owners")) == \
            [("local", "lab"), ("scratch", "lab")]
        r = run("-c", lab, "destroy", "--yes", env=dict(env, PVELAB_STATE=url))
        assert r.rc == 0 and "destroy scratch (storage)" in r.out, r
        assert rows(url, "SELECT storage, project FROM storage_owners") == [("local", "lab")]
        # into the store it copies from: refused
        r = run("state", "migrate", "--to", lite, env=env)
        assert r.rc == 1 and "names the store it copies from" in r.err, r
    finally:
        stop_sim(info)


def no_schema(url):
    return rows(url, "SELECT to_regclass('pvelab_schema') IS NULL")[0][0] is True


def test_an_empty_database_is_no_state_yet(pg, tmp_path):
    """Reads and a power action against a database without pvelab's schema:
    one line naming the database (never its password), and no schema made."""
    url = pg.createdb("empty")
    shown = f"postgresql://pvelab@{pg.dir}/empty"
    info = start_sim("--nodes", "1", "--guests", "2")
    env = {"PVELAB_STATE": url, "PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"]}
    try:
        for cmd in (["list"], ["status"], ["history", "100"]):
            r = run(*cmd, env=env, cwd=str(tmp_path))
            assert r.rc != 0, r
            assert r.err.strip().splitlines() == [
                f"pvelab: no state in '{shown}' yet (run 'pvelab sync' first, or use --live)"], r
        # a power action records its run only where a store exists
        vmid = run("-o", "json", "list", "--live", env=dict(env, PVELAB_STATE=str(
            tmp_path / "other.db")), cwd=str(tmp_path)).json()[0]["vmid"]
        r = run("stop", vmid, env=env, cwd=str(tmp_path))
        assert r.rc == 0, r
        r = run("-o", "json", "doctor", env=env, cwd=str(tmp_path))
        assert r.json()["state"] == {"path": shown, "postgres": True, "version": 0}, r
        assert no_schema(url)
        assert run("sync", env=env, cwd=str(tmp_path)).rc == 0
        assert not no_schema(url)
        r = run("-o", "json", "doctor", env=env, cwd=str(tmp_path))
        assert r.json()["state"]["version"] >= 9, r
    finally:
        stop_sim(info)


def test_local_files_beside_the_config_and_the_size_of_the_tables(pg, tmp_path):
    """With the state in PostgreSQL, serve's certificate and the proxy's CA are
    kept where the SQLite store would be (.pvelab beside the config), not in a
    directory made of the URL; /metrics gives the size of pvelab's tables."""
    import requests
    import urllib3
    from test_700_serve import Server
    urllib3.disable_warnings()
    url = pg.createdb("local")
    info = start_sim("--nodes", "1", "--guests", "3")
    env = {"PVELAB_STATE": url, "PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"]}
    (tmp_path / "pvelab.yaml").write_text("guests: []\n")
    srv = None
    try:
        assert run("sync", env=env, cwd=str(tmp_path)).rc == 0
        tok = run("token", "create", "t", "--role", "viewer", env=env, cwd=str(tmp_path))
        assert tok.rc == 0, tok
        srv = Server("--listen", "0.0.0.0:0", env=env, cwd=str(tmp_path))
        assert srv.info["url"].startswith("https://")
        assert srv.info["state"] == f"postgresql://pvelab@{pg.dir}/local"
        assert (tmp_path / ".pvelab" / "proxy-ca.pem").is_file()
        r = requests.get(srv.url + "/metrics", verify=False, timeout=20,
                         headers={"Authorization": "Bearer " + tok.out.strip()})
        assert r.status_code == 200, r.text
        size = [float(l.split()[-1]) for l in r.text.splitlines()
                if l.startswith("pvelab_state_db_bytes ")]
        want = rows(url, "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE "
                    "relkind = 'r' AND relnamespace = 'public'::regnamespace")[0][0]
        want = float(want)
        assert len(size) == 1 and 0 < size[0] and abs(size[0] - want) <= want / 2, (size, want)
        r = run("proxy", "ca", env=env, cwd=str(tmp_path))
        assert r.rc == 0, r
        assert r.out.startswith("-----BEGIN CERTIFICATE-----"), r
        assert (tmp_path / ".pvelab" / "proxy-ca.pem").read_text() in r.out
        assert sorted(os.listdir(tmp_path)) == [".pvelab", "pvelab.yaml"]
    finally:
        if srv:
            assert srv.stop() == 0, srv.err
        stop_sim(info)


def restart(pg):
    """PostgreSQL stopped (fast: every session ended) and started again."""
    pg._as(["pg_ctl", "-D", pg.data, "-l", os.path.join(pg.dir, "log"), "-m", "fast", "-w",
            "-t", "60", "restart"])


def test_serve_connects_again_after_a_postgresql_restart(pg, tmp_path):
    """A restart of PostgreSQL under a running server: its answers come from
    the store again, a CLI sync made after the restart shows in the next one
    (it listens again), and it says it connected again."""
    import requests
    from test_700_serve import Server
    url = pg.createdb("restart")
    info = start_sim("--nodes", "1", "--guests", "3")
    env = {"PVELAB_STATE": url, "PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"]}
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("serve:\n  status_interval: 1\n  sync_interval: 3600\n")
    srv = None
    try:
        assert run("sync", env=env, cwd=str(tmp_path)).rc == 0
        tok = run("token", "create", "t", "--role", "viewer", env=env, cwd=str(tmp_path))
        srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env, cwd=str(tmp_path))
        g = run("-o", "json", "list", env=env, cwd=str(tmp_path)).json()[0]
        get = lambda: requests.get(f"{srv.url}/api/v1/guests/{g['name']}", timeout=20,
                                   headers={"Authorization": "Bearer " + tok.out.strip()})
        assert get().status_code == 200
        restart(pg)
        kind = "qemu" if g["type"] in ("vm", "qemu") else "lxc"
        import urllib3
        urllib3.disable_warnings()
        r = requests.put(f"{info['url']}/api2/json/nodes/{g['node']}/{kind}/{g['vmid']}/config",
                         headers={"Authorization": "PVEAPIToken=" + info["token"]},
                         data={"description": "after the restart"}, verify=False, timeout=30)
        assert r.status_code == 200, r.text
        assert run("sync", env=env, cwd=str(tmp_path)).rc == 0
        # the first call after the restart may fail (it finds the connection
        # broken); the ones after it connect again
        pgfix.wait_for(lambda: get().status_code == 200 and
                       get().json()["config"].get("description") == "after the restart",
                       timeout=60, what="the server's answer after the restart")
        assert srv.proc.poll() is None
        # and what it is told from now on, it hears at once
        r = requests.put(f"{info['url']}/api2/json/nodes/{g['node']}/{kind}/{g['vmid']}/config",
                         headers={"Authorization": "PVEAPIToken=" + info["token"]},
                         data={"description": "and again"}, verify=False, timeout=30)
        assert run("sync", env=env, cwd=str(tmp_path)).rc == 0
        assert get().json()["config"]["description"] == "and again"
    finally:
        if srv:
            assert srv.stop() == 0, srv.err
            assert f"connected to 'postgresql://pvelab@{pg.dir}/restart' again" in srv.err
        stop_sim(info)


def test_an_apply_that_loses_its_lock_stops(pg, tmp_path):
    """PostgreSQL restarted under an apply: its advisory lock died with the
    connection, so it starts no more changes (another apply may hold the
    lock now) and says why; the lock is not taken again behind its back."""
    url = pg.createdb("lost")
    info = start_sim("--nodes", "1", "--guests", "2", "--task-ms", "1500")
    env, cfg = apply_lab(info, url, tmp_path, "l", 6)
    p = None
    try:
        assert run("-c", str(cfg), "sync", env=env).rc == 0
        p = subprocess.Popen([BIN, "-c", str(cfg), "apply", "--yes", "-j", "1"], env=env,
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        pgfix.wait_for(lambda: rows(url, "SELECT count(*) FROM runs WHERE kind = 'apply' AND "
                                    "summary IS NOT NULL")[0][0], timeout=60,
                       what="the apply's first recorded step")
        restart(pg)
        out, err = p.communicate(timeout=300)
        assert "the apply lock was lost with the connection to the state database" in err, err
        assert p.returncode != 0, (out, err)
        made = [g for g in run("-o", "json", "list", "--live", env=env).json()
                if re.fullmatch(r"l\d", g["name"] or "")]
        assert 0 < len(made) < 6, made
        # no lock left behind: another apply may run
        assert rows(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0] == 0
        assert rows(url, "SELECT status FROM runs WHERE kind = 'apply'") == [("interrupted",)]
    finally:
        if p and p.poll() is None:
            p.kill()
            p.communicate()
        stop_sim(info)
