"""Password login: the form pvelab builds for POST /access/ticket carries a
password with characters that need escaping (& = % + space ; / and UTF-8)
exactly, so the ticket it gets works for reads and for a write with its CSRF
token; one character off is refused."""
import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for

PASSWORD = "p&ss=w%rd+ x;/\u00fc"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    pw = tmp_path_factory.mktemp("login") / "password"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    pw.chmod(0o600)
    info = start_sim("--guests", "2", "--password-file", str(pw))
    yield info
    rc, err = stop_sim(info)
    assert rc == 0, err


def login_env(sim, tmp_path, password):
    return env_for(sim, tmp_path / "state.db", PVELAB_TOKEN="", PVELAB_USER="root@pam",
                   PVELAB_PASSWORD=password)


def test_password_with_reserved_characters_logs_in(sim, tmp_path):
    assert sim["password"] == PASSWORD
    env = login_env(sim, tmp_path, PASSWORD)
    r = run("sync", env=env)
    assert r.rc == 0, r
    g = sorted(api(sim, "GET", "cluster/resources", type="vm"), key=lambda g: g["vmid"])[0]
    path = f"nodes/{g['node']}/{g['type']}/{g['vmid']}/status/current"
    before = api(sim, "GET", path)["status"]
    action, after = ("stop", "stopped") if before == "running" else ("start", "running")
    r = run(action, str(g["vmid"]), env=env)  # a POST: the ticket's CSRF token
    assert r.rc == 0, r
    assert api(sim, "GET", path)["status"] == after


def test_one_character_off_is_refused(sim, tmp_path):
    r = run("sync", env=login_env(sim, tmp_path, PASSWORD[:-1]))
    assert r.rc == 1
    assert "login as" in r.err
