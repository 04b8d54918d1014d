"""The command line's promises that need a cluster (issue 18): global options
after the command, -q, views that follow the commands that change a guest,
environment values checked as the YAML keys they stand for, paths with ~,
and errors that carry their cause."""
import os
import time

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--guests", "4")
    yield info
    stop_sim(info)


@pytest.fixture
def env(sim, tmp_path):
    return env_for(sim, tmp_path / "state.db")


def first_guest(sim, status=None):
    gs = sorted(api(sim, "GET", "cluster/resources", type="vm"), key=lambda g: g["vmid"])
    return next(g for g in gs if not g.get("template") and g["type"] == "qemu"
                and (status is None or g["status"] == status))


def create(sim, vmid, name):
    wait_task(sim, api(sim, "POST", "nodes/pve/qemu", vmid=vmid, name=name, memory=512))


def delete(sim, vmid):
    wait_task(sim, api(sim, "DELETE", f"nodes/pve/qemu/{vmid}"))


def wait_task(sim, upid):
    """Wait (with a deadline) until a task is done."""
    deadline = time.monotonic() + 20
    while api(sim, "GET", f"nodes/pve/tasks/{upid}/status")["status"] != "stopped":
        assert time.monotonic() < deadline, "create task did not finish"
        time.sleep(0.02)


def test_verbose_after_the_command_logs_as_before_it(env):
    before = run("-v", "sync", env=env)
    after = run("sync", "-v", env=env)
    assert before.rc == after.rc == 0, (before, after)
    assert "sync: fetched" in before.err
    assert "sync: fetched" in after.err


def test_quiet_silences_success_lines(sim, env):
    g = first_guest(sim)
    for args in (["sync"], ["stop", g["vmid"]], ["start", g["vmid"]],
                 ["snapshot", g["vmid"], "quiet1"], ["start", g["vmid"]]):
        r = run(*args, "-q", env=env)
        assert r.rc == 0, r
        assert r.out == "" and r.err == "", (args, r)
    assert run("sync", env=env).out != ""


def test_list_and_describe_follow_start_and_stop(sim, env):
    g = first_guest(sim)
    vmid = str(g["vmid"])
    run("stop", vmid, env=env)
    assert run("sync", env=env).rc == 0

    def shown():
        lst = run("-o", "json", "list", env=env).json()
        d = run("-o", "json", "describe", vmid, env=env).json()
        return next(x["status"] for x in lst if x["vmid"] == g["vmid"]), d["status"]

    assert shown() == ("stopped", "stopped")
    assert run("start", vmid, env=env).rc == 0
    assert shown() == ("running", "running")
    assert run("stop", vmid, env=env).rc == 0
    assert shown() == ("stopped", "stopped")
    # the next sync still records the change in the history
    assert run("sync", env=env).rc == 0


def test_history_finds_a_deleted_guest_by_name(sim, env):
    vmid = 950
    create(sim, vmid, "gone-soon")
    assert run("sync", env=env).rc == 0
    delete(sim, vmid)
    assert run("sync", env=env).rc == 0
    r = run("-o", "json", "history", "gone-soon", env=env)
    assert r.rc == 0, r
    kinds = [h["kind"] for h in r.json()]
    assert kinds[0] in ("discovered", "created") and kinds[-1] == "deleted", kinds


def test_two_guests_with_one_name_are_listed_by_vmid(sim, env):
    for vmid in (961, 962):
        create(sim, vmid, "twin")
    try:
        assert run("sync", env=env).rc == 0
        r = run("describe", "twin", env=env)
        assert r.rc == 1 and "2 guests are named 'twin': vmids 961, 962" in r.err, r
    finally:
        for vmid in (961, 962):
            delete(sim, vmid)


@pytest.mark.parametrize("var,value,key", [
    ("PVELAB_TIMEOUT", "abc", "cluster.timeout"),
    ("PVELAB_TIMEOUT", "0", "cluster.timeout"),
    ("PVELAB_TIMEOUT", "3601", "cluster.timeout"),
    ("PVELAB_CONCURRENCY", "0", "cluster.concurrency"),
    ("PVELAB_CONCURRENCY", "1000", "cluster.concurrency"),
])
def test_environment_numbers_are_checked(env, var, value, key):
    r = run("sync", env={**env, var: value})
    assert r.rc == 1, r
    assert f"{var}='{value}' is not a number from" in r.err and key in r.err, r
    assert len(r.err.strip().splitlines()) == 1


def test_url_list_with_spaces(sim, env):
    r = run("sync", env={**env, "PVELAB_URL": f"{sim['url']}, {sim['url']}"})
    assert r.rc == 0, r


def test_state_in_a_missing_directory_is_refused(env, tmp_path):
    r = run("sync", env={**env, "PVELAB_STATE": str(tmp_path / "no" / "dir" / "state.db")})
    assert r.rc == 1 and "does not exist" in r.err, r
    assert not (tmp_path / "no").exists()
    # one new directory level is still made, as for the default .pvelab/
    r = run("sync", env={**env, "PVELAB_STATE": str(tmp_path / "new" / "state.db")})
    assert r.rc == 0, r


def test_token_secret_file_with_tilde(sim, tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "pvelab").mkdir(parents=True)
    user, _, secret = sim["token"].rpartition("=")
    tok = home / ".config" / "pvelab" / "token"
    tok.write_text(secret + "\n")
    tok.chmod(0o600)
    for path in ("~/.config/pvelab/token", "$XDG_CONFIG_HOME/pvelab/token"):
        (tmp_path / "pvelab.yaml").write_text(
            "project: t\ncluster:\n"
            f"  endpoints: [{sim['url']}]\n  fingerprint: \"{sim['fingerprint']}\"\n"
            f"  token_id: \"{user}\"\n  token_secret_file: {path}\n")
        r = run("sync", cwd=tmp_path, env={"HOME": str(home), "XDG_CONFIG_HOME": "",
                                           "PVELAB_URL": "", "PVELAB_TOKEN": "",
                                           "PVELAB_STATE": ""})
        assert r.rc == 0, (path, r)
    # a relative path is shown as written, without "./"
    (tmp_path / "pvelab.yaml").write_text(
        "project: t\ncluster:\n"
        f"  endpoints: [{sim['url']}]\n  token_id: \"{user}\"\n"
        "  token_secret_file: ./missing-token\n")
    r = run("sync", cwd=tmp_path, env={"PVELAB_URL": "", "PVELAB_TOKEN": "", "PVELAB_STATE": ""})
    assert r.rc == 1 and "'missing-token'" in r.err and "./" not in r.err, r


def test_snapshot_error_names_the_parameter(sim, env):
    g = first_guest(sim)
    r = run("snapshot", g["vmid"], "x y", env=env)
    assert r.rc == 1, r
    assert "snapname" in r.err, r


def test_missing_token_names_every_way_to_log_in(tmp_path):
    r = run("sync", cwd=tmp_path, env={"PVELAB_URL": "https://127.0.0.1:1", "PVELAB_TOKEN": "",
                                       "PVELAB_USER": "", "PVELAB_PASSWORD": "",
                                       "PVELAB_STATE": str(tmp_path / "s.db")})
    assert r.rc == 1
    for word in ("PVELAB_TOKEN", "cluster.token_id", "PVELAB_USER", "PVELAB_PASSWORD"):
        assert word in r.err, r


def test_permission_hint_names_the_token_in_use(sim, env):
    g = first_guest(sim)
    r = run("start", g["vmid"], env={**env, "PVELAB_TOKEN": sim["readonly_token"]})
    assert r.rc == 1, r
    assert "pveum acl modify" in r.err, r
    assert "--tokens 'audit@pve!ro' " in r.err and "USER@REALM!TOKENID" not in r.err, r
    assert sim["readonly_token"].split("=")[1] not in r.err


def test_list_sorts_by_the_columns_it_shows(sim, env):
    assert run("sync", env=env).rc == 0
    for key, field in (("mem", "maxmem"), ("cpu", "maxcpu")):
        rows = run("-o", "json", "list", "--sort", key, env=env).json()
        shown = [(-(g.get(field) or 0), g["vmid"]) for g in rows]
        assert shown == sorted(shown), (key, shown)


def test_unknown_profile_lists_the_profiles(sim, env, tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("project: p\nprofiles:\n  lab: [web]\n  prod: [db]\n"
                   "guests:\n  - name: web\n    vmid: 990\n  - name: db\n    vmid: 991\n")
    r = run("-c", cfg, "plan", "--profile", "nosuch", env=env)
    assert r.rc == 1, r
    assert "no profile 'nosuch'" in r.err and "lab, prod" in r.err, r


def test_proxy_listens_on_port_zero(tmp_path):
    import subprocess
    from conftest import BIN
    p = subprocess.Popen([BIN, "proxy", "-v", "--listen", "127.0.0.1:0", "--upstream",
                          "https://127.0.0.1:9", "--insecure"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                         env={**os.environ, "PVELAB_STATE": str(tmp_path / "s.db")})
    try:
        line = p.stderr.readline()  # blocks until the first log line (or exit)
        assert "proxy: listening on 127.0.0.1:" in line, line
        port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
        assert port > 0
    finally:
        p.terminate()
        p.wait(timeout=20)
        p.stderr.close()


def test_plan_says_what_changes_in_the_users_words(tmp_path):
    from test_600_plan_apply import Lab
    lab = Lab(tmp_path)
    try:
        lab.write("project: words\nguests:\n  - name: w1\n    vmid: 700\n    memory: 1G\n"
                  "    cpu: host\n    networks: [{bridge: vmbr0}]\n")
        r = lab.pvelab("apply", "--yes", "-q")
        assert r.rc == 0, r
        assert "Apply complete" not in r.out and r.err == "", r  # -q: only errors
        lab.write("project: words\nguests:\n  - name: w1\n    vmid: 700\n    memory: 2G\n"
                  "    cpu: x86-64-v2-AES\n    networks: [{bridge: vmbr0, firewall: true}]\n")
        r = lab.pvelab("-o", "json", "plan")
        assert r.rc == 0, r
        diffs = {d["key"]: d for c in r.json()["changes"] for d in c.get("diffs", [])}
        for key in ("memory", "cpu"):
            assert "current" not in (diffs[key].get("note") or ""), diffs[key]
            assert "cputype" not in (diffs[key].get("note") or ""), diffs[key]
        net = diffs["net0"]
        mac = net["from"].split(",")[0].split("=")[1]
        assert mac in net["to"], net  # apply keeps the MAC: the plan shows it kept
        text = lab.pvelab("plan").out
        assert "'current'" not in text and "'cputype'" not in text, text
    finally:
        stop_sim(lab.info)
