"""Issue 31: `pvelab console` in a real pseudo-terminal (pexpect): completion
of a command, an option and a guest name, history kept across restarts,
Ctrl-C stopping the running command but not the console, `set -o json`; and
piped input run line by line, stopping at the first failure."""
import os
import subprocess
import termios
import time

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


def wait_raw(c):
    """Wait until libedit has put the terminal in raw mode: a Ctrl-D typed
    while it is still canonical becomes an empty line, not an EOF key."""
    deadline = time.monotonic() + 20
    while termios.tcgetattr(c.child_fd)[3] & termios.ICANON:
        assert time.monotonic() < deadline, "the console never read the terminal"
        time.sleep(0.01)


def console(env):
    c = pexpect.spawn(BIN, ["console"], env=env, encoding="utf-8", timeout=30,
                      dimensions=(40, 200))
    c.expect(r"pvelab \S+ \(\d+ guests, synced \d+ s ago\)> ")
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
    wait_raw(c)
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


def established(pid, port):
    """The local ports of process pid's TCP connections to 127.0.0.1:port."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[2].rsplit(":", 1)[1] for line in out.splitlines()
                  if f"pid={pid}," in line)


def test_commands_inside_share_one_connection(lab):
    info, env = lab
    c = console(env)
    assert f"127.0.0.1:{info['port']}" in c.after  # the prompt names the cluster
    ports = []
    for line, answer in [("snapshots webserver", "has no snapshots"),
                         ("snapshot webserver console1", "console1"),
                         ("stop webserver", "stop .*ok"),
                         ("start webserver", "start .*ok"),
                         ("snapshots webserver", "console1")]:
        c.send(line + "\r")
        c.expect(answer)
        c.expect(r"\)> ")
        ports.append(established(c.pid, info["port"]))
    # one connection, opened by the first command and kept by the others
    assert len(ports[0]) == 1 and all(p == ports[0] for p in ports), ports
    c.send("exit\r")
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0


def test_ctrl_c_stops_a_command_inside(lab, tmp_path):
    info, env = lab
    mute = start_sim("--nodes", "1", "--guests", "3", "--faults", "latency=60000")
    try:
        env2 = dict(env, **{k: v for k, v in env_for(mute, env["PVELAB_STATE"]).items()
                            if k != "PVELAB_STATE"})
        c = console(env2)
        c.send("snapshots vm100\r")  # the simulator answers after a minute
        deadline = time.monotonic() + 20
        while not established(c.pid, mute["port"]):  # the command waits on it
            assert time.monotonic() < deadline, "the command never reached the simulator"
            time.sleep(0.05)
        c.sendintr()
        c.expect("interrupted")
        c.expect(r"\)> ")
        c.send("list\r")  # the console and its store carry on
        c.expect("webserver")
        c.expect(r"\)> ")
        c.send("exit\r")
        c.expect(pexpect.EOF)
        c.close()
        assert c.exitstatus == 0
    finally:
        stop_sim(mute)
