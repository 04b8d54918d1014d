"""pvelab discover --save: hosts are remembered in the state database with
first and last seen; a rescan of the same range reports what is new and what
vanished. Plus the command's polite defaults and usage errors."""
import json
import os
import socket
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
import discover_lab  # noqa: E402
from discover_lab import NET  # noqa: E402  this run's own 127.a.b.0/24
from conftest import run  # noqa: E402

SSH = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


def test_save_new_and_vanished(tmp_path):
    db = tmp_path / "state.db"
    env = {"PVELAB_STATE": str(db)}
    a = discover_lab.banner_server(f"{NET}.20", 2222, SSH)
    b = discover_lab.banner_server(f"{NET}.21", 2222, SSH)
    try:
        r = run("discover", f"{NET}.20", f"{NET}.21", "--ports", "2222", "--save", env=env)
        assert r.rc == 0, r
        assert f"new: {NET}.20 (linux-ssh)" in r.out
        assert f"new: {NET}.21 (linux-ssh)" in r.out
        r = run("discover", f"{NET}.20", f"{NET}.21", "--ports", "2222", "--save", env=env)
        assert r.rc == 0, r
        assert "no new or vanished hosts" in r.out
    finally:
        b.stop()
    # a scan of another range does not call .20 vanished
    try:
        r = run("discover", f"{NET}.30", "--ports", "2222", "--save", env=env)
        assert "vanished:" not in r.out, r
        r = run("discover", f"{NET}.20/31", "--ports", "2222", "--save", "-o", "json",
                env=env)
        assert r.rc == 0, r
        assert [h["address"] for h in r.json()] == [f"{NET}.20"]
        assert f"vanished: {NET}.21 (linux-ssh)" in r.err
    finally:
        a.stop()
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT address, kind, first_seen, last_seen, present, record FROM discovered_hosts")}
    finally:
        con.close()
    assert set(rows) == {f"{NET}.20", f"{NET}.21"}
    kind, first, last, present, record = rows[f"{NET}.20"]
    assert kind == "linux-ssh" and present == 1 and first <= last
    assert json.loads(record)["evidence"][0]["software"] == "OpenSSH_9.2p1"
    assert rows[f"{NET}.21"][3] == 0


def test_state_beside_config(tmp_path):
    cfg = tmp_path / "lab" / "pvelab.yaml"
    cfg.parent.mkdir()
    s = discover_lab.banner_server(f"{NET}.22", 2222, SSH)
    try:
        r = run("-c", cfg, "discover", f"{NET}.22", "--ports", "2222", "--save",
                env={"PVELAB_STATE": ""})
    finally:
        s.stop()
    assert r.rc == 0, r
    assert (tmp_path / "lab" / ".pvelab" / "state.db").exists()


def test_state_where_the_config_says(tmp_path):
    """state: in the config decides where --save remembers the hosts, as it does
    for sync; the store is the same database, its table made by a migration."""
    cfg = tmp_path / "lab" / "pvelab.yaml"
    cfg.parent.mkdir()
    cfg.write_text("state: db/lab.db\n")
    s = discover_lab.banner_server(f"{NET}.24", 2222, SSH)
    try:
        r = run("-c", cfg, "discover", f"{NET}.24", "--ports", "2222", "--save",
                env={"PVELAB_STATE": ""})
    finally:
        s.stop()
    assert r.rc == 0, r
    assert f"new: {NET}.24 (linux-ssh)" in r.out
    assert not (tmp_path / "lab" / ".pvelab").exists()
    con = sqlite3.connect(tmp_path / "lab" / "db" / "lab.db")
    try:
        assert [r[0] for r in con.execute("SELECT address FROM discovered_hosts")] == [
            f"{NET}.24"]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()
    assert {"runs", "guests", "discovered_hosts"} <= tables
    # the same database the other commands use: a read command finds it
    r = run("-c", cfg, "rollback", env={"PVELAB_STATE": ""})
    assert r.rc == 0 and "No apply runs recorded yet." in r.out, r
    assert version >= 6


def test_refuses_more_than_a_slash_16():
    r = run("discover", "10.0.0.0/15", "--ports", "22")
    assert r.rc == 1
    assert "refusing to scan more than a /16" in r.err and "--force" in r.err
    r = run("discover", "10.0.0.0/16", "10.1.0.1", "--ports", "22")
    assert r.rc == 1 and "--force" in r.err


def test_usage_errors():
    r = run("discover")
    assert r.rc == 64 and "missing CIDR|HOST..." in r.err
    r = run("discover", "127.0.0.1", "--ports", "22,x")
    assert r.rc == 64 and "invalid port list '22,x'" in r.err
    r = run("discover", "127.0.0.1", "--ports", "53/udp")
    assert r.rc == 64 and "only 623/udp" in r.err
    r = run("discover", "127.0.0.1", "--export", "csv")
    assert r.rc == 64 and "unknown export format 'csv'" in r.err
    r = run("discover", "127.0.0.1", "--out", "x")
    assert r.rc == 64 and "--out needs --export" in r.err
    r = run("discover", "300.1.1.1/24")
    assert r.rc == 1 and "invalid range '300.1.1.1/24'" in r.err
    r = run("discover", "127.0.0.1", "--timeout", "0")
    assert r.rc == 64


def test_generic_port_banner():
    """A port with no known protocol: the banner is recorded, SSH recognised."""
    s = discover_lab.banner_server(f"{NET}.23", 2222, SSH)
    t = discover_lab.banner_server(f"{NET}.23", 2323, b"220 ftp.example ready\r\n")
    try:
        r = run("discover", f"{NET}.23", "--ports", "2222,2323", "-o", "json")
    finally:
        s.stop()
        t.stop()
    assert r.rc == 0, r
    ev = {e["port"]: e for e in r.json()[0]["evidence"]}
    assert ev[2222]["service"] == "ssh" and ev[2222]["os"] == "Debian"
    assert ev[2323]["banner"] == "220 ftp.example ready"
    assert r.json()[0]["urls"] == [f"ssh://{NET}.23:2222"]


def test_rate_and_concurrency_bounds():
    """A sweep with one socket at a time and a low rate still covers every port."""
    r = run("discover", f"{NET}.0/28", "--ports", "1,2", "--concurrency", "1", "--rate", "500",
            "--all", "-o", "json", timeout=60)
    assert r.rc == 0, r
    recs = r.json()
    assert len(recs) == 16
    assert all(e["state"] == "closed" for h in recs for e in h["evidence"])


def _hosts_name(addr):
    try:
        with open("/etc/hosts") as f:
            for line in f:
                parts = line.split("#")[0].split()
                if len(parts) >= 2 and parts[0] == addr:
                    return parts[1]
    except OSError:
        pass
    return None


def test_name_from_etc_hosts():
    """Names come from /etc/hosts first (as getnameinfo would); loopback
    addresses are never sent to a network resolver; --no-dns skips names."""
    name = _hosts_name("127.0.0.1")
    if name is None:
        import pytest
        pytest.skip("no /etc/hosts entry for 127.0.0.1")
    s = discover_lab.banner_server("127.0.0.1", 0, SSH)
    port = s.sock.getsockname()[1]
    try:
        r = run("discover", "127.0.0.1", "--ports", str(port), "-o", "json")
        n = run("discover", "127.0.0.1", "--ports", str(port), "--no-dns", "-o", "json")
    finally:
        s.stop()
    assert r.rc == 0, r
    assert r.json()[0]["name"] == name
    assert n.json()[0]["name"] is None


def test_ipv6_loopback():
    s = socket.socket(socket.AF_INET6)
    try:
        s.bind(("::1", 0))
    except OSError:
        import pytest
        pytest.skip("no IPv6 loopback here")
    s.listen(4)
    port = s.getsockname()[1]
    try:
        r = run("discover", "::1", "--ports", f"{port},1", "-o", "json")
    finally:
        s.close()
    assert r.rc == 0, r
    (rec,) = r.json()
    assert rec["address"] == "::1"
    assert [e["state"] for e in rec["evidence"]] == ["open", "closed"]
