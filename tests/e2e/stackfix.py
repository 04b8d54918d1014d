"""The examples' containers for their stacks, which go over SSH to 192.168.x
addresses the simulator's guests do not have (issue 29): one real sshd on
loopback in a mount namespace of its own whose /opt is the test's directory,
a stub docker compose answering from the example's own compose files, the
test's key in an ssh-agent, and PVELAB_SSH_HOSTS sending every guest there.

    from stackfix import Guests, ssh_stacks
    guests = Guests(tmp_path) if ssh_stacks(doc) else None   # doc: the example
    env.update(guests.env); ...; guests.calls(); guests.close()"""
import os
import shutil
import subprocess

import pytest

from test_760_stacks import free_port, start_sshd

# docker compose in the examples' containers, which the tests reach over SSH:
# each call recorded; up starts the services of its -f files and profiles
# (their compose files as the example has them), ps lists them as docker
# compose ps --format json does, healthy where they have a healthcheck
STUB_COMPOSE = """#!/usr/bin/python3
import json, os, sys, yaml
state = {state!r}
a = sys.argv[1:]
with open(os.path.join(state, "calls.log"), "a") as f:
    f.write(" ".join(a) + "\\n")
opts, files, profiles, i = {{}}, [], set(), 1
while i < len(a) and a[i].startswith("-"):
    if a[i] == "-f":
        files.append(a[i + 1])
    elif a[i] == "--profile":
        profiles.add(a[i + 1])
    else:
        opts[a[i]] = a[i + 1]
    i += 2
verb, saved = a[i], os.path.join(state, opts["-p"] + ".json")
if verb == "up":
    svcs = {{}}
    for f in files:
        with open(f) as fh:
            for k, v in (yaml.safe_load(fh).get("services") or {{}}).items():
                if not v.get("profiles") or profiles & set(v["profiles"]):
                    svcs[k] = "healthy" if "healthcheck" in v else ""
    with open(saved, "w") as fh:
        json.dump(svcs, fh)
    for k in svcs:
        print(" Container %s-%s-1  Started" % (opts["-p"], k), file=sys.stderr)
elif verb == "ps" and os.path.exists(saved):
    for k, h in json.load(open(saved)).items():
        print(json.dumps({{"Name": "%s-%s-1" % (opts["-p"], k), "Service": k,
                          "State": "running", "Health": h}}))
elif verb == "down" and os.path.exists(saved):
    os.unlink(saved)
"""


def ssh_stacks(doc):
    """The example's stacks that go over SSH (containers, VMs without the agent)."""
    guests = [{**(doc.get("defaults") or {}), **g} for g in doc["guests"]]
    return [(g["name"], st["name"]) for g in guests for st in g.get("stacks") or []
            if g.get("type") == "lxc" or not g.get("agent")]


class Guests:
    """The examples' containers for SSH: one real sshd on loopback in a mount
    namespace whose /opt is a directory of the test's (the stacks' files land
    there), the stub compose first on PATH, the test's key in an ssh-agent,
    and PVELAB_SSH_HOSTS sending every guest to it, as a user behind a NAT
    would send them to a forwarded port."""

    def __init__(self, d):
        if os.geteuid() != 0 or not shutil.which("sshd", path="/usr/sbin") or \
                subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
            pytest.skip("sshd in a mount namespace cannot run here (root, openssh-server)")
        self.d, self.opt, self.state = d, d / "opt", d / "compose"
        for x in (self.opt, self.state, d / "bin"):
            x.mkdir()
        for k in ("host1", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / k)],
                           check=True)
        shutil.copy(d / "user.pub", d / "authorized_keys")
        (d / "bin" / "docker").write_text(STUB_COMPOSE.format(state=str(self.state)))
        (d / "bin" / "docker").chmod(0o755)
        self.port = free_port()
        self.sshd = start_sshd(d, "host1", self.port, opt=self.opt)
        out = subprocess.run(["ssh-agent", "-s", "-a", str(d / "agent.sock")], check=True,
                             capture_output=True, text=True).stdout
        self.agent_pid = int(out.split("SSH_AGENT_PID=")[1].split(";")[0])
        self.env = {"SSH_AUTH_SOCK": str(d / "agent.sock"),
                    "PVELAB_SSH_HOSTS": f"*=127.0.0.1:{self.port}"}
        subprocess.run(["ssh-add", "-q", str(d / "user")], check=True,
                       env=dict(os.environ, **self.env))

    def calls(self):
        p = self.state / "calls.log"
        return p.read_text().splitlines() if p.exists() else []

    def close(self):
        self.sshd.terminate()
        self.sshd.wait()
        os.kill(self.agent_pid, 15)


def for_example(path, d):
    """Guests in d/guests for the example at path when its stacks need SSH,
    else None."""
    import yaml
    with open(path) as f:
        doc = yaml.safe_load(f)
    if not ssh_stacks(doc):
        return None
    (d / "guests").mkdir()
    return Guests(d / "guests")
