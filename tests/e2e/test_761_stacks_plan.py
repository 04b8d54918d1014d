"""Stacks in the plan and the way back (issue 29), against the simulator's
guest agent: plan (text, -o json, --detailed-exitcode, saved plans) shows each
stack apply will deploy with its files' names and hashes and never a secret;
apply deploys it inside its run with the run's snapshot, pvelab deploy is a
run of its own, and rollback RUN takes the guest's files and compose state
back (and the stacks' records, so the next plan shows the stack again);
apply_snapshots.keep covers deploy snapshots; compose healthchecks are waited
for and an unhealthy service fails the deploy; files over the agent's 60 KiB
file-write go in parts; compose's output is shown as it comes."""
import hashlib
import json

import pytest
import requests
import urllib3

from conftest import run
from simfix import start_sim, stop_sim

urllib3.disable_warnings()

COMPOSE = """services:
  web:
    image: nginx:1.27
  grafana:
    image: grafana/grafana:11.0.0
    profiles: [monitoring]
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
        env: {TAG: "1.2"}
        env_files: [secret.env]
        profiles: [monitoring]
"""


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def lab(tmp_path):
    info = start_sim("--nodes", "1", "--task-ms", "20")
    env = {"PVELAB_URL": info["url"], "PVELAB_TOKEN": info["token"],
           "PVELAB_FINGERPRINT": info["fingerprint"], "PVELAB_STATE": str(tmp_path / "state.db")}
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    secret = tmp_path / "secret.env"
    secret.write_text("DB_PASSWORD=very-secret-value\n")
    secret.chmod(0o600)
    (tmp_path / "pvelab.yaml").write_text(CONFIG)

    def pvelab(*args):
        return run("-c", str(tmp_path / "pvelab.yaml"), *args, env=env, cwd=str(tmp_path))

    yield tmp_path, pvelab, info
    rc, err = stop_sim(info)
    assert rc == 0, err


def api(info, method, path, **params):
    r = getattr(requests, method)(f"{info['url']}/api2/json/{path}",
                                  headers={"Authorization": f"PVEAPIToken={info['token']}"},
                                  data=params if method == "post" else None,
                                  params=params if method == "get" else None, verify=False,
                                  timeout=30)
    return r.status_code, r.json()


def guest_file(info, vmid, path):
    st, body = api(info, "get", f"nodes/pve/qemu/{vmid}/agent/file-read", file=path)
    assert st == 200, body
    return body["data"]["content"]


def compose_ps(info, vmid, project="app"):
    st, body = api(info, "post", f"nodes/pve/qemu/{vmid}/agent/exec",
                   command=["docker", "compose", "-p", project, "ps", "--format", "json"])
    st, body = api(info, "get", f"nodes/pve/qemu/{vmid}/agent/exec-status", pid=body["data"]["pid"])
    return [json.loads(line) for line in body["data"].get("out-data", "").splitlines()]


def snapshots(info, vmid):
    st, body = api(info, "get", f"nodes/pve/qemu/{vmid}/snapshot")
    return sorted(s["name"] for s in body["data"] if s["name"] != "current")


def test_plan_shows_stacks_and_saved_plans_hold_them(lab):
    d, pvelab, info = lab
    r = pvelab("-o", "json", "plan")
    assert r.rc == 0, r
    (st,) = r.json()["stacks"]
    assert (st["guest"], st["name"], st["action"]) == ("docker1", "app", "create")
    files = {f["path"]: f for f in st["files"]}
    assert files["/opt/pvelab/stacks/app/compose.yaml"]["sha256"] == sha(COMPOSE)
    assert files["/opt/pvelab/stacks/app/.env"]["sha256"] == sha("TAG=1.2\n")
    # a secret file is named, its content and hash never shown
    assert files["/opt/pvelab/stacks/app/secret.env"] == {
        "path": "/opt/pvelab/stacks/app/secret.env", "change": "create", "secret": True}
    assert "very-secret-value" not in r.out and sha("DB_PASSWORD=very-secret-value\n") not in r.out
    assert r.json()["summary"]["stacks"] == 1

    assert pvelab("apply", "--yes", "--no-stacks").rc == 0
    # only the stack is left to do: still a change
    r = pvelab("plan", "--detailed-exitcode")
    assert r.rc == 2, r
    assert "No changes." not in r.out
    assert "+   stack   docker1/app (create in 100, sha256 " in r.out
    assert f"+ /opt/pvelab/stacks/app/compose.yaml  sha256 {sha(COMPOSE)[:12]}" in r.out
    assert "secret.env  (secret: content and hash not shown)" in r.out
    assert "Stacks: 1 to deploy" in r.out

    # a saved plan holds the stacks; a stack that changed since is refused
    plan_file = d / "plan.json"
    assert pvelab("plan", "--out", str(plan_file)).rc == 0
    assert json.loads(plan_file.read_text())["stacks"][0]["action"] == "create"
    assert "very-secret-value" not in plan_file.read_text()
    (d / "pvelab.yaml").write_text(CONFIG.replace('TAG: "1.2"', 'TAG: "1.3"'))
    r = pvelab("apply", "--yes", str(plan_file))
    assert r.rc == 1 and "stack app in 'docker1'" in r.err, r
    st, body = api(info, "post", "nodes/pve/qemu/100/agent/exec", command=["cat", "/opt/pvelab/stacks/app/.env"])
    st, body = api(info, "get", "nodes/pve/qemu/100/agent/exec-status", pid=body["data"]["pid"])
    assert body["data"]["exitcode"] == 1  # nothing was deployed
    assert pvelab("plan", "--out", str(plan_file)).rc == 0
    r = pvelab("-o", "json", "apply", "--yes", str(plan_file))
    assert r.rc == 0, r
    assert [(s["name"], s["action"], s["ok"]) for s in r.json()["stacks"]] == [("app", "create", True)]
    assert guest_file(info, 100, "/opt/pvelab/stacks/app/.env") == "TAG=1.3\n"
    r = pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0 and "No changes." in r.out, r

    # a stack file that is gone: plan says which; apply --no-stacks does not read them
    (d / "compose.yaml").unlink()
    r = pvelab("plan")
    assert r.rc == 1 and "guests[0].stacks[0]" in r.err and "compose.yaml" in r.err, r
    assert pvelab("apply", "--yes", "--no-stacks").rc == 0


def test_apply_and_deploy_runs_roll_back(lab):
    d, pvelab, info = lab
    (d / "pvelab.yaml").write_text(CONFIG + "apply_snapshots: {keep: 1}\n")
    assert pvelab("apply", "--yes").rc == 0
    assert guest_file(info, 100, "/opt/pvelab/stacks/app/.env") == "TAG=1.2\n"

    # an apply whose only change is the stack: inside its run, with its snapshot
    (d / "pvelab.yaml").write_text(CONFIG.replace('TAG: "1.2"', 'TAG: "1.3"') +
                                   "apply_snapshots: {keep: 1}\n")
    r = pvelab("-o", "json", "apply", "--yes")
    assert r.rc == 0, r
    res = r.json()
    run1 = res["run"]
    (st,) = res["stacks"]
    assert st["ok"] and st["snapshot"] == f"pvelab-pre-{run1}" and st["action"] == "update"
    assert guest_file(info, 100, "/opt/pvelab/stacks/app/.env") == "TAG=1.3\n"
    assert snapshots(info, 100) == [f"pvelab-pre-{run1}"]

    # a guest change and a stack change in one apply: one snapshot, the run's
    (d / "pvelab.yaml").write_text(CONFIG.replace('TAG: "1.2"', 'TAG: "1.4"').replace(
        "memory: 2G", "memory: 3G") + "apply_snapshots: {keep: 2}\n")
    r = pvelab("-o", "json", "apply", "--yes")
    assert r.rc == 0, r
    run2 = r.json()["run"]
    assert r.json()["stacks"][0]["snapshot"] == f"pvelab-pre-{run2}"
    assert "snapshot_taken" not in r.json()["stacks"][0]  # apply's own, taken before its change
    assert snapshots(info, 100) == [f"pvelab-pre-{run1}", f"pvelab-pre-{run2}"]

    # rollback RUN: the guest's files and compose state as the snapshot has them
    r = pvelab("rollback", "--yes", str(run2))
    assert r.rc == 0, r
    assert guest_file(info, 100, "/opt/pvelab/stacks/app/.env") == "TAG=1.3\n"
    # the record went back too: the next plan deploys 1.4 again
    r = pvelab("-o", "json", "plan")
    assert [(s["name"], s["action"]) for s in r.json()["stacks"]] == [("app", "update")]
    assert r.json()["stacks"][0]["files"][0]["diff"] == "-TAG=1.3\n+TAG=1.4\n"

    # a standalone deploy is a run of its own kind, under the same retention
    r = pvelab("-o", "json", "deploy")
    assert r.rc == 0, r
    run3 = r.json()["run"]
    assert r.json()["deployed"][0]["snapshot"] == f"pvelab-pre-{run3}"
    assert snapshots(info, 100) == [f"pvelab-pre-{run2}", f"pvelab-pre-{run3}"]  # keep: 2
    r = pvelab("rollback")
    assert f"run {run3}" in r.out and "(deploy of stacks)" in r.out, r
    r = pvelab("rollback", "--yes", str(run3))
    assert r.rc == 0, r
    assert guest_file(info, 100, "/opt/pvelab/stacks/app/.env") == "TAG=1.3\n"
    assert pvelab("deploy", "--dry-run").rc == 2

    # a stack that fails inside an apply fails the apply and is left as it
    # is without --rollback-on-failure; rollback RUN takes it back
    (d / "compose.yaml").write_text(COMPOSE.replace("nginx:1.27", "nginx:broken"))
    r = pvelab("apply", "--yes")
    assert r.rc == 1, r
    assert "1 stack failed to deploy" in r.out and "stack app in docker1: FAILED" in r.out, r
    assert "manifest for nginx:broken not found" in r.out
    run4 = int(r.out.split("(run ")[1].split(")")[0])
    assert "nginx:broken" in guest_file(info, 100, "/opt/pvelab/stacks/app/compose.yaml")
    assert pvelab("rollback", "--yes", str(run4)).rc == 0
    assert "nginx:1.27" in guest_file(info, 100, "/opt/pvelab/stacks/app/compose.yaml")
    assert guest_file(info, 100, "/opt/pvelab/stacks/app/.env") == "TAG=1.3\n"


HEALTHY = """services:
  web:
    image: nginx:1.27
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1/"]
      interval: 1s
"""


def test_deploy_waits_for_healthchecks_and_fails_on_unhealthy(lab):
    d, pvelab, info = lab
    (d / "compose.yaml").write_text(HEALTHY)
    assert pvelab("apply", "--yes", "--no-stacks").rc == 0
    r = pvelab("deploy")
    assert r.rc == 0, r
    # compose's own lines, as they came, and the wait
    assert "    |  Container app-web-1  Started" in r.err
    assert "waiting for healthchecks: service web is still starting" in r.err
    assert [(s["Service"], s["Health"]) for s in compose_ps(info, 100)] == [("web", "healthy")]

    # a healthcheck that fails: unhealthy after its retries, the deploy fails
    # and --rollback-on-failure takes the guest back
    (d / "compose.yaml").write_text(HEALTHY.replace('["CMD", "wget", "-qO-", "http://127.0.0.1/"]',
                                                    '["CMD", "false"]') + "      retries: 2\n")
    r = pvelab("-o", "json", "deploy", "--rollback-on-failure")
    assert r.rc == 1, r
    rep = r.json()["deployed"][0]
    assert not rep["ok"] and rep["rolled_back"] is True
    assert "service web is running, unhealthy" in rep["error"]
    assert "false" not in guest_file(info, 100, "/opt/pvelab/stacks/app/compose.yaml")
    assert [(s["Service"], s["Health"]) for s in compose_ps(info, 100)] == [("web", "healthy")]

    # one that never passes within --health-timeout
    (d / "compose.yaml").write_text(HEALTHY.replace("interval: 1s", "interval: 1h"))
    r = pvelab("deploy", "--health-timeout", "2")
    assert r.rc == 1
    assert "service web is still starting" in r.err and "--health-timeout" in r.err


def test_agent_writes_large_files_in_parts(lab):
    d, pvelab, info = lab
    # 150 KiB with multi-byte characters across the 60 KiB boundaries
    big = "# header\n" + "".join(f"line {i:06d} \u00e9\u20ac\n" for i in range(12000))
    assert len(big.encode()) > 3 * 61440
    assert (big.encode()[61440] & 0xC0) == 0x80  # the first part cannot end at 60 KiB
    (d / "big.conf").write_text(big)
    (d / "pvelab.yaml").write_text(CONFIG + "        files: [{src: big.conf, dest: big.conf}]\n")
    assert pvelab("apply", "--yes").rc == 0
    assert guest_file(info, 100, "/opt/pvelab/stacks/app/big.conf") == big
    # the simulator refuses a single file-write over 60 KiB as PVE does
    st, body = api(info, "post", "nodes/pve/qemu/100/agent/file-write", file="/tmp/x",
                   content="x" * 61441)
    assert st == 400 and "content" in body.get("errors", {}), body
