"""Issue 31: `pvelab console` in a real pseudo-terminal (pexpect): completion
of a command, an option and a guest name, history kept across restarts,
Ctrl-C stopping the running command but not the console, `set -o json`; and
piped input run line by line, stopping at the first failure; apply, rollback,
destroy, sync, deploy and verify inside the console on its connection, Ctrl-C
reaching an apply's guard, a sync's worker threads and a deploy's health
wait."""
import os
import sqlite3
import subprocess
import termios
import time

import pexpect
import pytest

from conftest import BIN, run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for
from test_761_stacks_plan import COMPOSE, CONFIG as STACK_CONFIG


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


def prompt(c):
    """Wait for the prompt and for libedit to read the terminal: keys typed
    before it has the terminal raw are the line discipline's (a Tab, a Ctrl-D,
    an echo of their own), which made this test fail now and then under load."""
    c.expect(r"\)> ")
    wait_raw(c)


def leave(c):
    """exit, and the console's status is 0 (under ASan: nothing leaked)."""
    c.send("exit\r")
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0


def say(c, text, *answers):
    """Type a line, expect each answer in turn, then the prompt."""
    c.send(text + "\r")
    for a in answers:
        c.expect(a)
    prompt(c)


def console(env, *args):
    c = pexpect.spawn(BIN, [*args, "console"], env=env, encoding="utf-8", timeout=60,
                      dimensions=(40, 200))
    c.expect(r"pvelab \S+ \((\d+ guests, synced \d+ s ago|not synced)\)> ")
    wait_raw(c)
    return c


def test_completion_history_and_ctrl_c(lab):
    info, env = lab
    c = console(env)
    c.send("sta\t")  # start, status, ...: the common part, then the list
    c.send("tu\t")   # status
    c.expect_exact("status ")
    c.send("\r")
    c.expect(r"guests")
    prompt(c)
    c.send("list --no-c\t")
    c.expect_exact("--no-color ")
    c.send("\r")
    prompt(c)
    c.send("list --node \t")  # an option's value: the nodes of the store
    c.expect_exact("--node pve ")
    c.send("\r")
    c.expect("webserver")
    prompt(c)
    c.send("describe web\t")
    c.expect_exact("webserver ")
    c.send("\r")
    c.expect(r"snapshots:")
    prompt(c)
    # Ctrl-C stops a command that runs until stopped, not the console
    c.send("sim --listen 127.0.0.1:0 --nodes 1\r")
    c.expect(r'"url"')
    c.sendintr()
    prompt(c)
    # Ctrl-C at the prompt drops the line, as a shell does, and never leaves
    c.send("descr")
    c.expect_exact("descr")
    c.sendintr()
    prompt(c)
    c.send("set -o json\r")
    prompt(c)
    c.send("status\r")
    c.expect(r'"guests": \{')
    prompt(c)
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


def test_piped_input_stops_at_the_first_failure(lab, tmp_path):
    info, env = lab
    r = run("console", env=env, input="# a comment\nstatus\ndescribe nosuchguest\nlist\n")
    assert r.rc == 1, r
    assert "guests" in r.out and "line 3 failed" in r.err, r
    assert r.out.count("vmid") == 0  # list never ran
    r = run("console", "--keep-going", env=env,
            input="describe nosuchguest\nset -o json\nlist\n")
    assert r.rc == 1 and r.out.lstrip().startswith("["), r
    assert run("console", env=env, input="status\nexit\nstatus\n").out.count("guests") == 1
    # set -c: the next commands read another config
    other = tmp_path / "other.yaml"
    other.write_text("guests:\n  - name: switched\n    memory: 256\n")
    r = run("console", env=env, cwd=str(tmp_path), input=f"set -c {other}\nvalidate\n")
    assert r.rc == 0 and f"{other}: valid (1 guest, project 'other'" in r.out, r


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
        prompt(c)
        ports.append(established(c.pid, info["port"]))
    # one connection, opened by the first command and kept by the others
    assert len(ports[0]) == 1 and all(p == ports[0] for p in ports), ports
    leave(c)


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
        prompt(c)
        c.send("list\r")  # the console and its store carry on
        c.expect("webserver")
        prompt(c)
        leave(c)
    finally:
        stop_sim(mute)


def conn_bytes(pid, port):
    """{local port: bytes received} of process pid's TCP connections to 127.0.0.1:port."""
    out = subprocess.run(["ss", "-tniHp", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    conns = {}
    for line, info in zip(out, out[1:]):
        if f"pid={pid}," in line and not line[0].isspace():
            got = [w for w in info.split() if w.startswith("bytes_received:")]
            conns[line.split()[2].rsplit(":", 1)[1]] = int(got[0].split(":")[1]) if got else 0
    return conns


def newest_run(path, kind="apply"):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT id, status FROM runs WHERE kind=? "
                           "ORDER BY id DESC LIMIT 1", (kind,)).fetchone() or (0, None)
    finally:
        con.close()


def own_env(info, tmp_path):
    """The state path and environment of a console on simulator info, all in tmp_path."""
    state = str(tmp_path / "s.db")
    env = dict(os.environ, **env_for(info, state), XDG_STATE_HOME=str(tmp_path / "xdg"),
               HOME=str(tmp_path), TERM="dumb")
    env.pop("NO_COLOR", None)
    return state, env


GUESTS = "guests:\n" + "".join(
    f"  - name: n{i}\n    memory: 256\n    disks: [{{storage: local-lvm, size: 2G}}]\n"
    for i in range(4))


def test_guarded_commands_inside_on_the_same_connection(tmp_path):
    """apply, rollback, destroy and sync run inside the console: an apply stopped with
    Ctrl-C starts nothing new, records the run as interrupted and returns to
    the prompt; its requests went over the console's connection, which the
    next command uses; confirmations and --allow-delete work as on the
    command line."""
    slow = start_sim("--nodes", "1", "--guests", "3", "--task-ms", "1500")
    try:
        state, env = own_env(slow, tmp_path)
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text(GUESTS)
        assert run("sync", env=env).rc == 0
        c = console(env, "-c", str(cfg))
        c.logfile_read = open(tmp_path / "console.log", "w")
        port = slow["port"]

        say(c, "snapshots vm100", "has no snapshots")
        first = conn_bytes(c.pid, port)
        assert len(first) == 1, first
        (kept, before), = first.items()
        # an apply stopped by Ctrl-C while its first guest is being created (-j 1)
        c.send("apply --yes -j 1\r")
        c.expect(r"\[0/4\] n0:create")
        c.sendintr()
        c.expect("interrupted: starting nothing new")
        c.expect(r"Apply interrupted\S* \(run (\d+)\)")
        run_id = int(c.match.group(1))
        prompt(c)
        assert newest_run(state) == (run_id, "interrupted")
        made = {g["name"] for g in api(slow, "GET", "cluster/resources", type="vm")}
        assert "n0" in made and not {"n1", "n2", "n3"} & made, made  # n0's task finished
        # the apply talked over the console's connection, still open
        after = conn_bytes(c.pid, port)
        assert kept in after and after[kept] > before, (first, after)
        say(c, "snapshots n0", "pvelab-pre|has no snapshots")
        assert set(conn_bytes(c.pid, port)) == set(after)  # no new connection
        say(c, f"rollback {run_id} --yes",
            f"Run {run_id} changed no existing guest: nothing to roll back.")
        # the next apply finishes the work
        say(c, "apply --yes -j 4", r"Apply complete\S* \(run \d+\)")
        # a change, and its rollback, inside too
        cfg.write_text(GUESTS.replace("memory: 256", "memory: 384", 1))
        c.send("apply --yes\r")
        c.expect(r"Apply complete\S* \(run (\d+)\)")
        changed = int(c.match.group(1))
        prompt(c)
        say(c, f"rollback {changed} --yes", f"Rolled back 1 change to the state before run {changed}")
        n0 = [g for g in api(slow, "GET", "cluster/resources", type="vm") if g["name"] == "n0"][0]
        assert n0["maxmem"] == 256 * 1024 * 1024, n0
        cfg.write_text(GUESTS)
        # a delete without --allow-delete is refused, and nothing is destroyed
        cfg.write_text(GUESTS.split("  - name: n3")[0])
        say(c, "apply --yes", "--allow-delete")
        assert newest_run(state)[1] == "ok"
        # a confirmation answered no, then one interrupted: nothing destroyed
        c.send("destroy n3\r")
        c.expect_exact("Destroy these guests and their disks? [y/N]")
        c.send("n\r")
        c.expect("destroy cancelled; nothing was done")
        prompt(c)
        c.send("destroy n3\r")
        c.expect_exact("Destroy these guests and their disks? [y/N]")
        c.sendintr()
        c.expect("destroy cancelled; nothing was done")
        prompt(c)
        # a guest of no project is refused
        say(c, "destroy vm100 --yes", "vm100")
        made = {g["name"] for g in api(slow, "GET", "cluster/resources", type="vm")}
        assert {"n3", "vm100"} <= made, made
        # sync inside: over the same connection too
        before = conn_bytes(c.pid, port)
        say(c, "sync", r"\+0 new ~\d+ changed -0 gone")
        after = conn_bytes(c.pid, port)
        assert kept in after and after[kept] > before[kept], (before, after)
        leave(c)
    finally:
        stop_sim(slow)


def test_ctrl_c_reaches_the_sync_workers(tmp_path):
    """A sync inside the console reads the guests' configs on worker threads,
    each with a clone of the console's client: Ctrl-C once the guest list is
    in (only the workers' requests are open) stops them too, and nothing is
    recorded. Before, the workers went on and the sync was recorded."""
    slow = start_sim("--nodes", "1", "--guests", "3", "--faults", "latency=4s")
    try:
        state, env = own_env(slow, tmp_path)
        c = console(env)
        c.send("sync\r")
        c.expect(r"syncing \[")  # drawn once the list is in: the configs are being read
        c.sendintr()
        c.expect("interrupted")
        prompt(c)
        assert "new ~" not in c.before, c.before
        con = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
        try:
            assert con.execute("SELECT count(*) FROM runs WHERE kind='sync'").fetchone()[0] == 0
        finally:
            con.close()
        leave(c)
    finally:
        stop_sim(slow)


def test_second_ctrl_c_while_an_apply_records_returns_to_the_prompt(tmp_path):
    """Once an apply's changes are done, it refreshes the store: a Ctrl-C then
    waits for that, and a second one on the command line ends the process.
    Inside the console it fails the refresh's requests instead: the run is
    recorded, the prompt comes back and the console goes on."""
    slow = start_sim("--nodes", "1", "--guests", "1", "--faults", "latency=1s")
    try:
        state, env = own_env(slow, tmp_path)
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text(GUESTS.split("  - name: n1")[0])
        c = console(env, "-c", str(cfg))
        c.logfile_read = open(tmp_path / "console.log", "w")
        c.send("apply --yes\r")
        c.expect(r"done\S*\s+n0 \(create\)")  # the change is done: the refresh begins
        c.sendintr()
        c.expect("recording the run first")
        c.sendintr()
        c.expect("stopping at once")
        c.expect("the refresh afterwards failed: interrupted")
        prompt(c)
        assert newest_run(state)[1] == "ok"
        c.send("snapshots n0\r")  # the client takes requests again
        c.expect("has no snapshots")
        prompt(c)
        leave(c)
    finally:
        stop_sim(slow)


def test_deploy_and_verify_inside_on_the_same_connection(tmp_path):
    """deploy and verify run inside the console, through the simulator's guest
    agent over the console's one connection; a usage error is one line and
    the prompt; Ctrl-C while a deploy waits for a healthcheck ends it, records
    its run as interrupted and returns to the prompt, the console going on."""
    info = start_sim("--nodes", "1", "--task-ms", "20")
    try:
        state, env = own_env(info, tmp_path)
        (tmp_path / "compose.yaml").write_text(COMPOSE)
        (tmp_path / "secret.env").write_text("DB_PASSWORD=console-secret\n")
        (tmp_path / "secret.env").chmod(0o600)
        cfg = tmp_path / "pvelab.yaml"
        cfg.write_text(STACK_CONFIG)
        assert run("-c", str(cfg), "apply", "--yes", "--no-stacks", env=env,
                   cwd=str(tmp_path)).rc == 0
        c = console(env, "-c", str(cfg))
        c.logfile_read = open(tmp_path / "console.log", "w")
        port = info["port"]

        # a usage error: its one line, then the prompt
        say(c, "deploy --bogus",
            r"\r\npvelab: deploy: unknown option '--bogus' \(usage: [^\r\n]*\)\r\npvelab \S+ \(")
        c.send("deploy\r")
        c.expect(r"Deploy run (\d+): 1 deployed, 0 failed")
        first = int(c.match.group(1))
        prompt(c)
        assert newest_run(state, "deploy") == (first, "ok")
        ports = established(c.pid, port)
        assert len(ports) == 1, ports
        say(c, "verify", r"stack app\s+(\x1b\[\d+m)?ok", "verify: all ok")
        say(c, "deploy", "No stack changes")
        assert established(c.pid, port) == ports  # the same connection throughout

        # a healthcheck that never passes: Ctrl-C while the deploy waits on it
        (tmp_path / "compose.yaml").write_text(
            "services:\n  web:\n    image: nginx:1.27\n    healthcheck:\n"
            "      test: [\"CMD\", \"true\"]\n      interval: 1h\n")
        c.send("deploy --health-timeout 3600\r")
        c.expect("waiting for healthchecks")
        c.sendintr()
        c.expect(r"Deploy run (\d+) interrupted: 0 deployed, 1 failed")
        stopped = int(c.match.group(1))
        prompt(c)
        assert stopped > first and newest_run(state, "deploy") == (stopped, "interrupted")
        # the client takes requests again (a request cut short closed its
        # connection: one connection still)
        say(c, "verify docker1", r"reachable \(agent\)\s+(\x1b\[\d+m)?ok")
        assert len(established(c.pid, port)) == 1
        leave(c)
    finally:
        stop_sim(info)
