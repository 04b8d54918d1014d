"""Service stacks inside guests (pvelab deploy): through the simulator's QEMU
guest agent (plan create/update/unchanged with a diff of the files without
secrets, a snapshot before a change, rollback when compose up fails), and
through a real sshd on loopback with a stub `docker` (files and modes, host
key trust on first use and a changed key refused, an unreachable host, Ctrl-C
in pvelab console while compose up runs)."""
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_752_console import console, leave, prompt

COMPOSE = """services:
  web:
    image: nginx:1.27
    ports: ["8080:80"]
  grafana:
    image: grafana/grafana:11.0.0
    profiles: [monitoring]
  mcp:
    image: example/mcp:1.0
    profiles: [mcp]
"""

CONFIG = """
guests:
  - name: docker1
    memory: 2G
    agent: true
    networks: [{bridge: vmbr0, ip: 10.0.0.7/24, gw: 10.0.0.1}]
    stacks:
      - name: app
        compose: [compose.yaml]
        env: {TAG: "1.2", MODE: prod}
        env_files: [secret.env]
        profiles: [monitoring]
        files: [{src: prometheus.yml, dest: config/prometheus.yml, mode: "0640"}]
"""


@pytest.fixture
def lab(tmp_path):
    info = start_sim("--nodes", "1")
    env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(tmp_path / "state.db")}
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "prometheus.yml").write_text("global:\n  scrape_interval: 30s\n")
    secret = tmp_path / "secret.env"
    secret.write_text("DB_PASSWORD=first-secret-value\n")
    secret.chmod(0o600)
    (tmp_path / "pvelab.yaml").write_text(CONFIG)

    def pvelab(*args):
        return run("-c", str(tmp_path / "pvelab.yaml"), *args, env=env, cwd=str(tmp_path))

    yield tmp_path, pvelab, info
    stop_sim(info)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def agent(info, method, vmid, what, **params):
    import requests
    r = getattr(requests, method)(f"{info['url']}/api2/json/nodes/pve/qemu/{vmid}/agent/{what}",
                                  headers={"Authorization": f"PVEAPIToken={info['token']}"},
                                  data=params if method == "post" else None,
                                  params=params if method == "get" else None, verify=False)
    return r.status_code, r.json()


def test_agent_deploy_update_unchanged_rollback(lab):
    d, pvelab, info = lab
    assert pvelab("apply", "--yes", "--no-stacks").rc == 0
    r = pvelab("-o", "json", "deploy", "--dry-run")
    assert r.rc == 2, r.err
    assert [(s["name"], s["action"]) for s in r.json()["stacks"]] == [("app", "create")]

    r = pvelab("-o", "json", "deploy")
    assert r.rc == 0, r.err
    dep = r.json()["deployed"]
    assert len(dep) == 1 and dep[0]["ok"] and dep[0]["transport"] == "agent"
    assert "snapshot" not in dep[0]  # nothing ran before: nothing to snapshot
    vmid = dep[0]["vmid"]

    # the files are in the guest, with their modes; compose ran the profile's services
    st, body = agent(info, "get", vmid, "file-read", file="/opt/pvelab/stacks/app/.env")
    assert st == 200 and body["data"]["content"] == "MODE=prod\nTAG=1.2\n"
    st, body = agent(info, "post", vmid, "exec", command=["docker", "compose", "-p", "app", "ps",
                                                          "--format", "json"])
    st, body = agent(info, "get", vmid, "exec-status", pid=body["data"]["pid"])
    services = sorted(json.loads(line)["Service"] for line in body["data"]["out-data"].splitlines())
    assert services == ["grafana", "web"]
    st, body = agent(info, "post", vmid, "exec", command=["stat", "x"])
    st, body = agent(info, "get", vmid, "exec-status", pid=body["data"]["pid"])
    assert body["data"]["exitcode"] == 127

    # one env value changes: exactly that stack, that file, with its diff
    (d / "pvelab.yaml").write_text(CONFIG.replace('TAG: "1.2"', 'TAG: "1.3"'))
    r = pvelab("-o", "json", "deploy", "--dry-run")
    assert r.rc == 2
    (plan,) = r.json()["stacks"]
    assert plan["action"] == "update"
    assert plan["files"] == [{"path": "/opt/pvelab/stacks/app/.env", "change": "update",
                              "secret": False, "diff": "-TAG=1.2\n+TAG=1.3\n",
                              "sha256": sha("MODE=prod\nTAG=1.3\n")}]
    r = pvelab("-o", "json", "deploy")
    assert r.rc == 0, r.err
    # a deploy is a run of its own: its snapshot is named after it
    assert r.json()["deployed"][0]["snapshot"] == f"pvelab-pre-{r.json()['run']}"
    assert pvelab("deploy", "--dry-run").rc == 0  # replan: no change

    # a secret changes: shown as changed, its content never
    (d / "secret.env").write_text("DB_PASSWORD=second-secret-value\n")
    r = pvelab("-o", "json", "deploy", "--dry-run")
    assert r.json()["stacks"][0]["files"] == [
        {"path": "/opt/pvelab/stacks/app/secret.env", "change": "update", "secret": True}]
    r = pvelab("deploy", "--dry-run")
    assert "secret-value" not in r.out + r.err

    # compose up fails: rolled back to the snapshot taken before
    (d / "compose.yaml").write_text(COMPOSE.replace("nginx:1.27", "nginx:broken"))
    r = pvelab("-o", "json", "deploy", "--rollback-on-failure")
    assert r.rc == 1
    rep = r.json()["deployed"][0]
    assert not rep["ok"] and rep["rolled_back"] is True
    assert "manifest for nginx:broken not found" in rep["error"]
    st, body = agent(info, "get", vmid, "file-read", file="/opt/pvelab/stacks/app/compose.yaml")
    assert "nginx:1.27" in body["data"]["content"]  # the guest is as before
    # still planned as a change (the record is of the last good deploy)
    assert pvelab("deploy", "--dry-run").rc == 2


def test_agent_errors_as_pve(lab):
    d, pvelab, info = lab
    (d / "pvelab.yaml").write_text(CONFIG.replace("agent: true", "agent: false") + """
  - name: docker2
    agent: true
    state: stopped
""")
    assert pvelab("apply", "--yes", "--no-stacks").rc == 0
    vmids = {g["name"]: g["vmid"] for g in pvelab("-o", "json", "list").json()}
    st, body = agent(info, "post", vmids["docker1"], "exec", command="true")
    assert st == 500 and body["message"] == "No QEMU guest agent configured\n"
    st, body = agent(info, "get", vmids["docker2"], "get-osinfo")
    assert st == 500 and body["message"] == f"VM {vmids['docker2']} is not running\n"
    # docker1 has no agent: deploy goes over SSH, and there is no sshd at 10.0.0.7
    r = pvelab("deploy", "docker1")
    assert r.rc == 1 and "ssh" in r.err


STUB_DOCKER = """#!/bin/sh
# a stand-in for docker: records each call, keeps whether the stack is up
echo "$*" >> {dir}/docker.log
case " $* " in
  *" up "*) touch {dir}/up; echo " Container app-web-1  Started" >&2 ;;
  *" ps "*) [ -f {dir}/up ] && echo '{{"Name":"app-web-1","Service":"web","State":"running","Health":"healthy"}}' ;;
  *" down "*) rm -f {dir}/up ;;
esac
exit 0
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(tmp, hostkey, port, opt=None):
    """sshd on 127.0.0.1:port with its own host key; this user's throwaway key
    is authorised; the stub docker is first on the commands' PATH. With opt, a
    mount namespace of its own whose /opt is that directory (a guest's
    /opt/pvelab/stacks lands there, not on this machine)."""
    cfg = tmp / f"sshd_{hostkey}.conf"
    cfg.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp}/{hostkey}\n"
                   f"AuthorizedKeysFile {tmp}/authorized_keys\nStrictModes no\nUsePAM no\n"
                   f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPidFile none\n"
                   f"SetEnv PATH={tmp}/bin:/usr/bin:/bin\n")
    os.makedirs("/run/sshd", exist_ok=True)
    argv = ["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)]
    if opt is not None:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f'mount --bind "$0" /opt && exec "$@"', str(opt), *argv]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4) == b"SSH-":
                    return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("sshd did not start: " + p.stderr.read().decode())


@pytest.fixture
def sshlab(lab):
    d, pvelab, info = lab
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        pytest.skip("sshd cannot run here (needs root and openssh-server)")
    for k in ("host1", "host2", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / k)], check=True)
    shutil.copy(d / "user.pub", d / "authorized_keys")
    (d / "bin").mkdir()
    (d / "bin" / "docker").write_text(STUB_DOCKER.format(dir=d))
    (d / "bin" / "docker").chmod(0o755)
    port = free_port()
    procs = [start_sshd(d, "host1", port)]

    def config(ssh_port, extra=""):
        (d / "pvelab.yaml").write_text(CONFIG.replace("agent: true", "agent: false").replace(
            "        files:", f"        directory: {d}/guest/app\n        files:") + f"""
    ssh: {{host: 127.0.0.1, port: {ssh_port}, identity: user}}
stack_defaults:
  ssh: {{timeout: 2}}
""" + extra)

    config(port)
    assert pvelab("apply", "--yes", "--no-stacks").rc == 0
    yield d, pvelab, port, procs, config
    for p in procs:
        p.terminate()
        p.wait()


def test_ssh_deploy_files_modes_and_calls(sshlab):
    d, pvelab, port, procs, config = sshlab
    r = pvelab("-o", "json", "deploy")
    assert r.rc == 0, r
    rep = r.json()["deployed"][0]
    assert rep["ok"] and rep["transport"] == "ssh"
    g = d / "guest" / "app"
    assert (g / "compose.yaml").read_text() == COMPOSE
    assert (g / ".env").read_text() == "MODE=prod\nTAG=1.2\n"
    assert (g / "secret.env").read_text() == "DB_PASSWORD=first-secret-value\n"
    assert (g / "config" / "prometheus.yml").read_text() == "global:\n  scrape_interval: 30s\n"
    modes = {p.name: p.stat().st_mode & 0o7777 for p in [g / "compose.yaml", g / ".env",
             g / "secret.env", g / "config" / "prometheus.yml"]}
    assert modes == {"compose.yaml": 0o644, ".env": 0o644, "secret.env": 0o600,
                     "prometheus.yml": 0o640}
    assert sorted(os.listdir(g)) == [".env", "compose.yaml", "config", "secret.env"]  # no temp files
    calls = (d / "docker.log").read_text().splitlines()
    assert calls == [
        f"compose -p app --project-directory {g} -f {g}/compose.yaml --env-file {g}/.env "
        f"--env-file {g}/secret.env --profile monitoring up -d --remove-orphans",
        f"compose -p app --project-directory {g} -f {g}/compose.yaml --env-file {g}/.env "
        f"--env-file {g}/secret.env --profile monitoring ps --all --format json"]
    # --profile replaces the stacks' profiles (the seed's deploy-stack.sh --profile full)
    r = pvelab("deploy", "--profile", "full")
    assert r.rc == 0, r
    assert "    |  Container app-web-1  Started" in r.err  # compose's output, streamed
    assert (d / "docker.log").read_text().splitlines()[-2].endswith(
        "--profile full up -d --remove-orphans")


def test_ssh_host_key_changed_is_refused(sshlab):
    d, pvelab, port, procs, config = sshlab
    assert pvelab("deploy").rc == 0  # trusted on first use
    procs[0].terminate()
    procs[0].wait()
    procs[0] = start_sshd(d, "host2", port)
    (d / "docker.log").unlink()
    (d / "pvelab.yaml").write_text((d / "pvelab.yaml").read_text().replace('"1.2"', '"1.4"'))
    r = pvelab("deploy")
    assert r.rc == 1
    fp = lambda k: subprocess.run(["ssh-keygen", "-l", "-f", str(d / f"{k}.pub")],
                                  capture_output=True, text=True).stdout.split()[1]
    assert f"ssh 127.0.0.1:{port}: host key changed" in r.err
    assert fp("host1") in r.err and fp("host2") in r.err
    assert f"pvelab ssh forget 127.0.0.1:{port}" in r.err  # the refusal names the way out
    assert not (d / "docker.log").exists()  # nothing ran
    assert (d / "guest" / "app" / ".env").read_text() == "MODE=prod\nTAG=1.2\n"
    # the key pvelab trusts, then forgotten on purpose: the new one is trusted
    r = pvelab("-o", "json", "ssh", "hosts")
    assert [(h["host"], h["port"], h["fingerprint"]) for h in r.json()] == [
        ("127.0.0.1", port, fp("host1"))]
    r = pvelab("ssh", "forget", f"127.0.0.1:{port}")
    assert r.rc == 0 and "Forgot the host key of 127.0.0.1:" in r.out, r
    r = pvelab("ssh", "forget", f"127.0.0.1:{port}")
    assert r.rc == 1 and "no ssh host key recorded" in r.err
    assert pvelab("ssh", "forget", "127.0.0.1:notaport").rc == 64
    r = pvelab("deploy")
    assert r.rc == 0, r
    assert (d / "guest" / "app" / ".env").read_text() == "MODE=prod\nTAG=1.4\n"
    assert pvelab("-o", "json", "ssh", "hosts").json()[0]["fingerprint"] == fp("host2")


def test_ssh_unreachable_fails_within_timeout(sshlab):
    d, pvelab, port, procs, config = sshlab
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts TCP, never speaks SSH
    config(silent.getsockname()[1])
    t0 = time.monotonic()
    r = pvelab("deploy")
    took = time.monotonic() - t0
    silent.close()
    assert r.rc == 1 and "timeout 2000 ms" in r.err
    assert took < 15


def wait_for(path):
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.05)


def test_ssh_deploy_in_the_console_stops_on_ctrl_c(sshlab, lab):
    """Inside pvelab console, Ctrl-C while compose up runs over SSH ends the
    deploy (its run recorded as interrupted), and while compose ps runs ends
    verify; the console goes on."""
    d = sshlab[0]
    (d / "bin" / "docker").write_text(f"""#!/bin/sh
case " $* " in
  *" up "*) touch {d}/up-started ;;
  *" ps "*) touch {d}/ps-started ;;
esac
for i in $(seq 600); do [ -e {d}/release ] && exit 0; sleep 0.1; done
""")
    info = lab[2]
    env = dict(os.environ, PVELAB_URL=info["url"], PVELAB_TOKEN=info["token"],
               PVELAB_FINGERPRINT=info["fingerprint"], PVELAB_STATE=str(d / "state.db"),
               HOME=str(d), XDG_STATE_HOME=str(d / "xdg"), TERM="dumb")
    env.pop("NO_COLOR", None)
    try:
        c = console(env, "-c", str(d / "pvelab.yaml"))
        c.logfile_read = open(d / "console.log", "w")
        c.send("deploy\r")
        wait_for(d / "up-started")  # compose up runs in the "guest"
        c.sendintr()
        c.expect(r"ssh \S+@127\.0\.0\.1:\d+: interrupted")
        c.expect(r"Deploy run (\d+) interrupted: 0 deployed, 1 failed")
        run_id = int(c.match.group(1))
        prompt(c)
        con = sqlite3.connect(f"file:{env['PVELAB_STATE']}?mode=ro", uri=True, timeout=5)
        try:
            assert con.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone() == (
                "interrupted",)
        finally:
            con.close()
        c.send("deploy --dry-run\r")  # the console goes on; nothing was recorded deployed
        c.expect(r"docker1/app\S* \(create")
        prompt(c)
        c.send("verify\r")
        wait_for(d / "ps-started")
        c.sendintr()
        c.expect("verify: interrupted")
        prompt(c)
        leave(c)
    finally:
        (d / "release").touch()


def test_verify_reports_up_and_down(lab):
    import http.server
    import threading
    d, pvelab, info = lab

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/" else 503)
            self.end_headers()

        def log_message(self, *a):
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    closed = free_port()
    web_port, tcp_port = web.server_address[1], tcp.getsockname()[1]
    (d / "pvelab.yaml").write_text(CONFIG + f"""
    services:
      - {{name: web, port: {web_port}, protocol: http, host: 127.0.0.1}}
      - {{name: db, port: {tcp_port}, protocol: tcp, host: 127.0.0.1}}
""")
    try:
        assert pvelab("apply", "--yes", "--no-stacks").rc == 0
        # stack not deployed yet: compose ps lists nothing
        r = pvelab("-o", "json", "verify")
        assert r.rc == 1
        checks = {c["check"]: c["status"] for c in r.json()["checks"]}
        assert checks == {"reachable (agent)": "ok", "stack app": "failed",
                          "service web": "ok", "service db": "ok"}
        assert pvelab("deploy").rc == 0
        r = pvelab("verify", "docker1")
        assert r.rc == 0, r
        assert "verify: all ok" in r.out
        # a service stops answering, a web UI answers 503
        (d / "pvelab.yaml").write_text(CONFIG + f"""
    services:
      - {{name: web, port: {web_port}, protocol: http, host: 127.0.0.1, path: /health}}
      - {{name: db, port: {closed}, protocol: tcp, host: 127.0.0.1}}
""")
        r = pvelab("-o", "json", "verify")
        assert r.rc == 1
        checks = {c["check"]: c for c in r.json()["checks"]}
        assert checks["service web"]["status"] == "failed" and "503" in checks["service web"]["detail"]
        assert checks["service db"]["status"] == "failed"
        assert checks["stack app"]["status"] == "ok"
    finally:
        web.shutdown()
        tcp.close()


def test_apply_deploys_stacks_then_verifies(lab):
    d, pvelab, info = lab
    r = pvelab("-o", "json", "apply", "--yes", "--verify")
    assert r.rc == 0, r
    json.loads(r.out)  # one JSON document: deploy and verify ran quietly
    assert pvelab("deploy", "--dry-run").rc == 0  # the stack went in with the guest
    # a changed stack with nothing else to change: apply deploys it
    (d / "pvelab.yaml").write_text(CONFIG.replace('TAG: "1.2"', 'TAG: "2.0"'))
    r = pvelab("apply", "--yes", "--verify")
    assert r.rc == 0, r
    assert "stack app in docker1: deployed" in r.out and "verify: all ok" in r.out
    assert pvelab("deploy", "--dry-run").rc == 0
    # --no-stacks leaves them
    (d / "pvelab.yaml").write_text(CONFIG.replace('TAG: "1.2"', 'TAG: "2.1"'))
    assert pvelab("apply", "--yes", "--no-stacks").rc == 0
    assert pvelab("deploy", "--dry-run").rc == 2


def test_ssh_hosts_sends_a_guest_to_another_address(sshlab, monkeypatch):
    # the guest's own address (10.0.0.7) is out of reach, as behind a NAT:
    # PVELAB_SSH_HOSTS sends pvelab to the port that reaches it
    d, pvelab, port, procs, config = sshlab
    config(port)
    text = (d / "pvelab.yaml").read_text()
    (d / "pvelab.yaml").write_text(text.replace(f"host: 127.0.0.1, port: {port}, ", ""))
    monkeypatch.setenv("PVELAB_SSH_HOSTS", f"other=192.0.2.1,docker1=127.0.0.1:{port}")
    r = pvelab("-o", "json", "deploy")
    assert r.rc == 0, r
    assert r.json()["deployed"][0]["transport"] == "ssh"
    assert (d / "guest" / "app" / ".env").read_text() == "MODE=prod\nTAG=1.2\n"
    # "*" is every guest not named; a guest's own pair comes first
    monkeypatch.setenv("PVELAB_SSH_HOSTS", f"*=127.0.0.1:{port}")
    r = pvelab("-o", "json", "verify", "docker1")
    assert r.rc == 0, r
    monkeypatch.setenv("PVELAB_SSH_HOSTS", f"*=127.0.0.1:{port},docker1=[::1]:1")
    r = pvelab("deploy", "--force")
    assert r.rc == 1 and "::1" in r.err, r
    for bad in ("docker1", "docker1=", "docker1=127.0.0.1:0", "docker1=127.0.0.1:x",
                "docker1=[::1"):
        monkeypatch.setenv("PVELAB_SSH_HOSTS", bad)
        r = pvelab("deploy", "--force")
        assert r.rc == 1 and "PVELAB_SSH_HOSTS: '" in r.err and "HOST[:PORT]" in r.err, (bad, r)
