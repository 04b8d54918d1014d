"""Start and stop `pvelab sim` for end-to-end tests.

    from simfix import start_sim, stop_sim, sim      # `sim` is a pytest fixture
    info = start_sim("--nodes", 3, "--guests", 10)   # extra args as needed
    info["url"], info["fingerprint"], info["token"], info["readonly_token"],
    info["password"], info["host"], info["port"], info["proc"]
    stop_sim(info)

The simulator runs with --listen 127.0.0.1:0 --task-ms 50 --auth-delay-ms 0
unless the extra arguments say otherwise. DEMO_SEED is the 3-node demo cluster
(start_sim("--seed", DEMO_SEED)); docs/sim.md describes everything else."""
import json
import os
import signal
import subprocess
import urllib.parse

import pytest

from conftest import BIN, SRC

DEMO_SEED = os.path.join(SRC, "examples", "sim", "demo.yaml")
DEFAULTS = {"--listen": "127.0.0.1:0", "--task-ms": "50", "--auth-delay-ms": "0"}


def start_sim(*extra_args, timeout=20):
    """Start the simulator; returns its start-up line as a dict plus host, port, proc."""
    args = [str(a) for a in extra_args]
    cmd = [BIN, "sim"]
    for k, v in DEFAULTS.items():
        if k not in args:
            cmd += [k, v]
    cmd += args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read()
        proc.wait(timeout=timeout)
        raise RuntimeError(f"pvelab sim did not start (rc={proc.returncode}): {err}")
    info = json.loads(line)
    u = urllib.parse.urlparse(info["url"])
    info["host"], info["port"], info["proc"] = u.hostname, u.port, proc
    return info


def stop_sim(info, timeout=20):
    """Stop the simulator with SIGTERM; returns (exit code, stderr text)."""
    proc = info["proc"]
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode, err


@pytest.fixture
def sim():
    """A fresh one-node simulator ("pve") for one test."""
    info = start_sim()
    yield info
    rc, err = stop_sim(info)
    assert rc == 0, err
