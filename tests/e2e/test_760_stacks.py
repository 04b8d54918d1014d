"""Service stacks inside guests (pvelab deploy): through the simulator's QEMU
guest agent (plan create/update/unchanged with a diff of the files without
secrets, a snapshot before a change, rollback when compose up fails), and
through a real sshd on loopback with a stub `docker` (files and modes, host
key trust on first use and a changed key refused, an unreachable host)."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import run
from simfix import start_sim, stop_sim

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


def agent(info, method, vmid, what, **params):
    import requests
    r = getattr(requests, method)(f"{info['url']}/api2/json/nodes/pve/qemu/{vmid}/agent/{what}",
                                  headers={"Authorization": f"PVEAPIToken={info['token']}"},
                                  data=params if method == "post" else None,
                                  params=params if method == "get" else None, verify=False)
    return r.status_code, r.json()


def test_agent_deploy_update_unchanged_rollback(lab):
    d, pvelab, info = lab
    assert pvelab("apply", "--yes").rc == 0
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
                              "secret": False, "diff": "-TAG=1.2\n+TAG=1.3\n"}]
    r = pvelab("-o", "json", "deploy")
    assert r.rc == 0, r.err
    assert r.json()["deployed"][0]["snapshot"].startswith("pvelab-pre-deploy-")
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
    assert pvelab("apply", "--yes").rc == 0
    vmids = {g["name"]: g["vmid"] for g in pvelab("-o", "json", "list").json()}
    st, body = agent(info, "post", vmids["docker1"], "exec", command="true")
    assert st == 500 and body["message"] == "No QEMU guest agent configured\n"
    st, body = agent(info, "get", vmids["docker2"], "get-osinfo")
    assert st == 500 and body["message"] == f"VM {vmids['docker2']} is not running\n"
    # docker1 has no agent: deploy goes over SSH, and there is no sshd at 10.0.0.7
    r = pvelab("deploy", "docker1")
    assert r.rc == 1 and "ssh" in r.err
