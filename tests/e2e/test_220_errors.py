"""The connection errors users hit, each one line with a hint: unreachable,
wrong token, missing privilege, fingerprint mismatch, untrusted certificate,
locked guest."""
import socket

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for, full_token


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--nodes", "1", "--guests", "4")
    yield info
    stop_sim(info)


def one_line(r):
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r
    return lines[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_unreachable(tmp_path):
    url = f"https://127.0.0.1:{free_port()}"
    r = run("sync", env={"PVELAB_URL": url, "PVELAB_TOKEN": "root@pam!x=y",
                         "PVELAB_STATE": str(tmp_path / "s.db")})
    assert r.rc == 1
    line = one_line(r)
    assert f"cannot reach '{url}'" in line and "is the node up?" in line


def test_wrong_token(sim, tmp_path):
    env = env_for(sim, tmp_path / "s.db", PVELAB_TOKEN="root@pam!pvelab=00000000-bad")
    r = run("sync", env=env, timeout=60)
    assert r.rc == 1
    line = one_line(r)
    assert "authentication failed" in line and "PVELAB_TOKEN" in line
    assert "00000000-bad" not in r.err  # secrets never printed


def test_missing_privilege_named(sim, tmp_path):
    env = env_for(sim, tmp_path / "s.db", PVELAB_TOKEN=full_token(sim, "readonly_token"))
    assert run("sync", env=env).rc == 0  # reading is allowed
    g = api(sim, "GET", "cluster/resources", type="vm")[0]
    r = run("start", g["vmid"], env=env)
    assert r.rc == 1
    line = one_line(r)
    assert "permission denied" in line
    assert "VM.PowerMgmt" in line and f"/vms/{g['vmid']}" in line


def test_fingerprint_mismatch(sim, tmp_path):
    wrong = ":".join(["AB"] * 32)
    r = run("sync", env=env_for(sim, tmp_path / "s.db", PVELAB_FINGERPRINT=wrong))
    assert r.rc == 1
    line = one_line(r)
    assert "fingerprint mismatch" in line
    assert f"expected {wrong}" in line and f"got {sim['fingerprint'].upper()}" in line
    r = run("sync", env=env_for(sim, tmp_path / "s.db", PVELAB_FINGERPRINT="nothex"))
    assert r.rc == 1 and "not a SHA-256 fingerprint" in one_line(r)


def test_untrusted_certificate_shows_how_to_pin(sim, tmp_path):
    r = run("sync", env=env_for(sim, tmp_path / "s.db", PVELAB_FINGERPRINT=""))
    assert r.rc == 1
    line = one_line(r)
    assert "not trusted" in line
    assert f"PVELAB_FINGERPRINT={sim['fingerprint'].upper()}" in line
    assert "cluster.fingerprint" in line


def test_locked_guest_names_the_lock(tmp_path):
    # A backup holds the guest's lock for as long as its task runs.
    info = start_sim("--nodes", "1", "--guests", "2", "--task-ms", "4000")
    try:
        env = env_for(info, tmp_path / "s.db")
        g = api(info, "GET", "cluster/resources", type="vm")[0]
        api(info, "POST", f"nodes/{g['node']}/vzdump", vmid=str(g["vmid"]), storage="local")
        r = run("stop", g["vmid"], env=env)
        assert r.rc == 1
        line = one_line(r)
        assert "locked" in line and "'backup'" in line and "unlock" in line
    finally:
        stop_sim(info)


def test_ca_file_verifies_without_a_pin(sim, tmp_path):
    import ssl
    host, port = sim["url"].split("://", 1)[1].rstrip("/").rsplit(":", 1)
    pem = ssl.get_server_certificate((host, int(port)))
    ca = tmp_path / "ca.pem"
    ca.write_text(pem)
    env = env_for(sim, tmp_path / "s.db", PVELAB_FINGERPRINT="", PVELAB_CA_FILE=str(ca))
    r = run("sync", env=env)
    assert r.rc == 0, r


def test_secrets_never_in_verbose_output(sim, tmp_path):
    env = env_for(sim, tmp_path / "s.db")
    secret = full_token(sim).split("=", 1)[1]
    r = run("-v", "-v", "sync", env=env)
    assert r.rc == 0, r
    assert secret not in r.out and secret not in r.err
    r = run("-v", "-v", "sync", env=dict(env, PVELAB_TOKEN=full_token(sim)[:-3] + "xyz"))
    assert r.rc == 1 and secret[:-3] not in r.err


def test_pve_84_schema(tmp_path):
    info = start_sim("--nodes", "2", "--guests", "6", "--pve-version", "8.4")
    try:
        r = run("-o", "json", "sync", env=env_for(info, tmp_path / "s.db"))
        assert r.rc == 0, r
        assert r.json()["added"] == 6
    finally:
        stop_sim(info)


def test_read_commands_never_write_the_store(tmp_path):
    """status/list on an empty file say there is no state and leave the file
    empty; on a store of an older schema they say how to upgrade it and leave
    it as it was; a store whose WAL index cannot be made beside it (as on a
    read-only mount) is still read."""
    import sqlite3
    db = tmp_path / "s.db"
    db.write_bytes(b"")
    env = {"PVELAB_STATE": str(db)}
    for cmd in ("status", "list"):
        r = run(cmd, env=env)
        assert r.rc == 1 and f"no state in '{db}' yet" in one_line(r), r
    assert db.stat().st_size == 0
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    r = run("list", env=env)
    assert r.rc == 1 and "schema version 1, older" in one_line(r) and "pvelab sync" in r.err, r
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    con.close()
    db.unlink()
    # a store that sync wrote, with a directory where its -shm file would go
    info = start_sim("--nodes", "1", "--guests", "3")
    try:
        assert run("sync", env=env_for(info, db)).rc == 0
    finally:
        stop_sim(info)
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    (tmp_path / "s.db-shm").unlink(missing_ok=True)
    (tmp_path / "s.db-shm").mkdir()
    r = run("-o", "json", "list", env=env)
    assert r.rc == 0 and len(r.json()) == 3, r
