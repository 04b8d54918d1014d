"""Issue 31: `pvelab console` in a real pseudo-terminal (pexpect): completion
of a command, an option and a guest name, history kept across restarts,
Ctrl-C stopping the running command but not the console, `set -o json`; and
piped input run line by line, stopping at the first failure."""
import os

import pexpect
import pytest

from conftest import BIN, run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    info = start_sim("--nodes", "1", "--guests", "3")
    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ, **env_for(info, home / "s.db"), XDG_STATE_HOME=str(home / "state"),
               HOME=str(home), TERM="dumb")
    env.pop("NO_COLOR", None)
    assert run("sync", env=env).rc == 0
    g = run("-o", "json", "list", env=env).json()[0]  # given a name no other starts like
    key = "hostname" if g["type"] == "lxc" else "name"
    api(info, "PUT", f"nodes/{g['node']}/{g['type']}/{g['vmid']}/config", **{key: "webserver"})
    assert run("sync", env=env).rc == 0
    yield info, env
    stop_sim(info)


def console(env):
    c = pexpect.spawn(BIN, ["console"], env=env, encoding="utf-8", timeout=30,
                      dimensions=(40, 200))
    c.expect(r"synced \d+ s ago\)> ")
    return c


def test_completion_history_and_ctrl_c(lab):
    info, env = lab
    c = console(env)
    c.send("sta\t")  # start, status, ...: the common part, then the list
    c.send("tu\t")   # status
    c.expect_exact("status ")
    c.send("\r")
    c.expect(r"guests")
    c.expect(r"\)> ")
    c.send("list --no-c\t")
    c.expect_exact("--no-color ")
    c.send("\r")
    c.expect(r"\)> ")
    c.send("describe web\t")
    c.expect_exact("webserver ")
    c.send("\r")
    c.expect(r"snapshots:")
    c.expect(r"\)> ")
    # Ctrl-C stops a command that runs until stopped, not the console
    c.send("sim --listen 127.0.0.1:0 --nodes 1\r")
    c.expect(r'"url"')
    c.sendintr()
    c.expect(r"\)> ")
    c.send("set -o json\r")
    c.expect(r"\)> ")
    c.send("status\r")
    c.expect(r'"guests": \{')
    c.expect(r"\)> ")
    c.sendeof()
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0
    # the history survives: the previous session's last command comes back
    c = console(env)
    c.send("\x10")  # Ctrl-P: previous line
    c.expect_exact("status")
    c.send("\x15exit\r")
    c.expect(pexpect.EOF)
    with open(os.path.join(env["XDG_STATE_HOME"], "pvelab", "history")) as f:
        # libedit's file encodes spaces as \040
        assert "describe\\040webserver\n" in f.read()


def test_piped_input_stops_at_the_first_failure(lab):
    info, env = lab
    r = run("console", env=env, input="# a comment\nstatus\ndescribe nosuchguest\nlist\n")
    assert r.rc == 1, r
    assert "guests" in r.out and "line 3 failed" in r.err, r
    assert r.out.count("vmid") == 0  # list never ran
    r = run("console", "--keep-going", env=env,
            input="describe nosuchguest\nset -o json\nlist\n")
    assert r.rc == 1 and r.out.lstrip().startswith("["), r
    assert run("console", env=env, input="status\nexit\nstatus\n").out.count("guests") == 1
