"""pvelab host check|plan|apply over SSH against a real sshd on loopback:
the sshd user reads a fixture tree through --root on the far side and gets
exactly the findings of a local read; the host key is trusted on first use
and a changed one is refused before anything is read."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import TESTDATA, run

HOSTS = os.path.join(TESTDATA, "hosts")
SSHD = "/usr/sbin/sshd"

pytestmark = pytest.mark.skipif(not os.access(SSHD, os.X_OK), reason="no sshd (openssh-server)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def greets(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            return c.recv(4) == b"SSH-"
    except OSError:
        return False


class Sshd:
    def __init__(self, d, hostkey, port):
        cfg = d / f"sshd_{hostkey}.conf"
        cfg.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/{hostkey}\n"
                       f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n"
                       "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                       "PermitRootLogin prohibit-password\nPidFile none\nLogLevel ERROR\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = open(d / f"sshd_{hostkey}.log", "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stderr=self.log)
        deadline = time.monotonic() + 15
        while not greets(port):
            assert self.proc.poll() is None, open(d / f"sshd_{hostkey}.log").read()
            assert time.monotonic() < deadline, "sshd did not answer within 15 s"
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def lab(tmp_path):
    d = tmp_path / "ssh"
    d.mkdir()
    for k in ("host1", "host2", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / k)],
                       check=True)
    shutil.copy(d / "user.pub", d / "authorized_keys")
    port = free_port()
    sshd = Sshd(d, "host1", port)
    lab = {"dir": d, "port": port, "sshd": sshd, "tmp": tmp_path,
           "env": {"PVELAB_STATE": str(tmp_path / "state.db"), "SSH_AUTH_SOCK": ""}}
    yield lab
    lab["sshd"].stop()


def over_ssh(lab, *args, root=None):
    user = os.environ.get("USER") or "root"
    return run("host", *args, "--ssh", f"{user}@127.0.0.1:{lab['port']}", "-i",
               lab["dir"] / "user", *(("--root", root) if root else ()), env=lab["env"])


def findings(r):
    return r.json()["hosts"][0]["findings"]


def test_check_over_ssh_reads_what_a_local_read_does(lab):
    tree = os.path.join(HOSTS, "nouveau-holds")
    local = run("host", "check", "--root", tree, "-o", "json")
    r = over_ssh(lab, "check", "-o", "json", root=tree)
    assert r.rc == 1, r
    assert findings(r) == findings(local)
    assert r.json()["hosts"][0]["where"] == f"ssh {os.environ.get('USER') or 'root'}@127.0.0.1:" \
        f"{lab['port']}, --root {tree}"
    # trusted on first use: the second connection is checked against it
    r = over_ssh(lab, "check", "-o", "json", root=tree)
    assert r.rc == 1 and findings(r) == findings(local), r


def test_changed_host_key_is_refused(lab):
    tree = os.path.join(HOSTS, "intel-nvidia-grub")
    r = over_ssh(lab, "check", root=tree)
    assert r.rc == 0, r
    lab["sshd"].stop()
    lab["sshd"] = Sshd(lab["dir"], "host2", lab["port"])
    r = over_ssh(lab, "check", root=tree)
    assert r.rc == 1, r
    assert "127.0.0.1" in r.err and "SHA256:" in r.err, r
    assert r.out == ""  # nothing was read from the impostor


def test_plan_apply_over_ssh(lab):
    tree = lab["tmp"] / "node"
    shutil.copytree(os.path.join(HOSTS, "iommu-off"), tree, symlinks=True)
    cfg = lab["tmp"] / "pvelab.yaml"
    cfg.write_text("hosts:\n  - node: pve-old\n    iommu: on\n    ntp: [time.example.org]\n")
    r = over_ssh(lab, "-c", cfg, "apply", "--yes", root=tree)
    assert r.rc == 0, r
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"' in \
        (tree / "etc/default/grub").read_text()
    assert "server time.example.org iburst\n" in (tree / "etc/chrony/chrony.conf").read_text()
    assert [p for p in os.listdir(tree / "etc/default") if p.startswith("grub.pvelab-2")]
    r = over_ssh(lab, "-c", cfg, "plan", root=tree)
    assert r.rc == 0 and r.out == "No changes: pve-old is as declared.\n", r
