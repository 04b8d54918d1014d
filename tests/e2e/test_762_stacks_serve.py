"""Stacks through pvelab serve and MCP (issue 29), against the simulator's
guest agent: POST /api/v1/plans shows the stacks exactly as `pvelab plan -o
json` does, POST /api/v1/runs creates the guest and deploys them inside the
apply's run with compose's output going out on the event stream (read by an
SSE client, at most 200 lines a command as the CLI shows), the replan shows
no change; a changed stack is updated with the run's pvelab-pre-RUN snapshot
and rolled back through the API, files and records together; MCP's plan and
apply tools (the official SDK over stdio) carry the same stacks; a config
sent with the request may not bring stacks (their files are the server's)."""
import json
import os
import shutil
import subprocess

import pytest
import requests
import urllib3

from conftest import BIN, SRC, run
from simfix import start_sim, stop_sim
from test_700_serve import Events, Server, sim_env, until
from test_761_stacks_plan import COMPOSE, CONFIG as BASE

urllib3.disable_warnings()

# test_761's guest and stack, and one with more services than the 200
# lines of output shown
MANY = "services:\n" + "".join(f"  s{i:03d}:\n    image: busybox:1.36\n" for i in range(205))
CONFIG = "\nserve:\n  status_interval: 1" + BASE + """      - name: many
        compose: [many.yaml]
"""


class Lab:
    """A simulator, a config with stacks, an admin token and a server."""

    def __init__(self, d):
        self.dir = d
        self.sim = start_sim("--nodes", "1", "--task-ms", "20")
        self.env = sim_env(self.sim, d / "state.db")
        (d / "compose.yaml").write_text(COMPOSE)
        (d / "many.yaml").write_text(MANY)
        secret = d / "secret.env"
        secret.write_text("DB_PASSWORD=very-secret-value\n")
        secret.chmod(0o600)
        self.cfg = d / "pvelab.yaml"
        self.cfg.write_text(CONFIG)
        assert self.pvelab("sync", "-q").rc == 0
        self.tokens = {}
        for role in ("viewer", "admin"):
            r = self.pvelab("token", "create", role + "1", "--role", role)
            assert r.rc == 0, r
            self.tokens[role] = r.out.strip()
        self.srv = None

    def pvelab(self, *args):
        return run("-c", str(self.cfg), *args, env=self.env, cwd=str(self.dir))

    def start(self):
        """(Re)start the server: it reads its config at start."""
        self.stop()
        self.srv = Server("--listen", "127.0.0.1:0", "-c", self.cfg, env=self.env,
                          cwd=str(self.dir))
        self.url = self.srv.url

    def stop(self):
        srv, self.srv = self.srv, None
        if srv:
            rc = srv.stop()
            assert rc == 0, srv.err
            assert "Sanitizer" not in srv.err, srv.err

    def __getitem__(self, k):  # what test_700's Events reads
        return {"url": self.url, "tokens": self.tokens}[k]

    def post(self, path, status, **kw):
        r = requests.post(self.url + path, headers={"Authorization": "Bearer " + self.tokens["admin"]},
                          timeout=30, **kw)
        assert r.status_code == status, (path, r.status_code, r.text)
        return r.json()

    def get(self, path):
        r = requests.get(self.url + path, headers={"Authorization": "Bearer " + self.tokens["viewer"]},
                         timeout=30)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def wait_run(self, run_id):
        return until(lambda: (lambda r: r if r["status"] != "running" else None)(
            self.get(f"/api/v1/runs/{run_id}")), f"run {run_id} to end", 120)

    def agent(self, vmid, method, what, **params):
        r = requests.request(method, f"{self.sim['url']}/api2/json/nodes/pve/qemu/{vmid}/{what}",
                             headers={"Authorization": "PVEAPIToken=" + self.env["PVELAB_TOKEN"]},
                             data=params if method == "POST" else None,
                             params=params if method == "GET" else None, verify=False, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def guest_file(self, vmid, path):
        return self.agent(vmid, "GET", "agent/file-read", file=path)["content"]

    def close(self):
        try:
            self.stop()
        finally:
            stop_sim(self.sim)


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


def stacks_of(plan):
    return [(s["guest"], s["name"], s["action"]) for s in plan.get("stacks", [])]


def test_serve_plans_applies_streams_and_rolls_back_stacks(lab):
    kept = lab.post("/api/v1/plans", 201, json={})
    plan = kept["plan"]
    assert stacks_of(plan) == [("docker1", "app", "create"), ("docker1", "many", "create")]
    assert plan["summary"]["stacks"] == 2
    assert "very-secret-value" not in json.dumps(kept)
    # the same plan as the CLI's
    cli = lab.pvelab("-o", "json", "plan")
    assert cli.rc == 0, cli
    assert plan == cli.json()

    ev = Events(lab)
    started = lab.post("/api/v1/runs", 202, json={"plan_id": kept["id"]})
    run_id = started["run"]
    _, seen = ev.until(lambda e: e["event"] == "run" and e["data"].get("state") == "finished",
                       "run finished", 120)
    ev.close()
    mine = [e["data"] for e in seen if e["event"] == "run" and e["data"]["run"] == run_id]
    assert all(e["kind"] == "apply" for e in mine)
    lines = [e for e in mine if e.get("step") == "deploy"]
    app = [e["line"] for e in lines if e["stack"] == "app"]
    assert app == [" Container app-web-1  Started", " Container app-grafana-1  Started"], app
    assert all(e["guest"] == "docker1" and e["vmid"] == 100 for e in lines)
    # bounded as the CLI's view: 200 lines, then one saying the rest is not shown
    many = [e["line"] for e in lines if e["stack"] == "many"]
    assert len(many) == 201, len(many)
    assert many[:2] == [" Container many-s000-1  Started", " Container many-s001-1  Started"]
    assert many[-1] == "... (more output not shown)"
    ends = [(e["stack"], e["done"]) for e in mine if e.get("step") == "deployed"]
    assert ends == [("app", True), ("many", True)]
    # the deploy comes after the guest's changes, inside the same run
    order = [e.get("state") or e.get("step") for e in mine]
    assert order.index("deploying") > max(i for i, e in enumerate(mine)
                                           if e.get("action") == "create")
    assert mine[-1]["status"] == "ok"

    done = lab.wait_run(run_id)
    assert done["status"] == "ok", done
    res = done["result"]
    assert [(s["name"], s["action"], s["ok"]) for s in res["stacks"]] == [
        ("app", "create", True), ("many", "create", True)]
    assert res["via"] == "API token admin1"
    assert lab.guest_file(100, "/opt/pvelab/stacks/app/.env") == "TAG=1.2\n"
    # replan: nothing left, here and in the CLI
    again = lab.post("/api/v1/plans", 201, json={})["plan"]
    assert again["changes"] == [] and again["summary"]["stacks"] == 0
    assert {s["action"] for s in again["stacks"]} == {"unchanged"}
    r = lab.pvelab("plan", "--detailed-exitcode")
    assert r.rc == 0 and "No changes." in r.out, r
    # a plan with nothing to do is refused as ever
    lab.post("/api/v1/runs", 400, json={"plan_id": lab.post("/api/v1/plans", 201, json={})["id"]})

    # one env value changed: exactly that stack updates, with the run's snapshot
    lab.cfg.write_text(CONFIG.replace('TAG: "1.2"', 'TAG: "1.3"'))
    lab.start()
    kept = lab.post("/api/v1/plans", 201, json={})
    assert kept["plan"]["changes"] == []
    assert [(s["name"], s["action"]) for s in kept["plan"]["stacks"]] == [
        ("app", "update"), ("many", "unchanged")]
    run2 = lab.post("/api/v1/runs", 202, json={"plan_id": kept["id"]})["run"]
    done = lab.wait_run(run2)
    assert done["status"] == "ok", done
    (st,) = done["result"]["stacks"]
    assert (st["name"], st["action"], st["snapshot"]) == ("app", "update", f"pvelab-pre-{run2}")
    assert lab.guest_file(100, "/opt/pvelab/stacks/app/.env") == "TAG=1.3\n"
    snaps = {s["name"] for s in lab.agent(100, "GET", "snapshot")}
    assert f"pvelab-pre-{run2}" in snaps
    assert lab.post("/api/v1/plans", 201, json={})["plan"]["summary"]["stacks"] == 0

    # the way back through the API: the guest's files and the stack's record
    rb = lab.post(f"/api/v1/runs/{run2}/rollback", 202, json={})["run"]
    assert lab.wait_run(rb)["status"] == "ok"
    assert lab.guest_file(100, "/opt/pvelab/stacks/app/.env") == "TAG=1.2\n"
    back = lab.post("/api/v1/plans", 201, json={})["plan"]
    assert [(s["name"], s["action"]) for s in back["stacks"]] == [
        ("app", "update"), ("many", "unchanged")]


def test_no_stacks_leaves_them_for_the_next_plan(lab):
    kept = lab.post("/api/v1/plans", 201, json={})
    run_id = lab.post("/api/v1/runs", 202, json={"plan_id": kept["id"], "no_stacks": True})["run"]
    done = lab.wait_run(run_id)
    assert done["status"] == "ok" and "stacks" not in done["result"], done
    plan = lab.post("/api/v1/plans", 201, json={})["plan"]
    assert plan["changes"] == [] and plan["summary"]["stacks"] == 2


def test_a_config_sent_with_the_plan_may_not_bring_stacks(lab):
    body = CONFIG.replace("serve:\n  status_interval: 1\n", "")
    r = requests.post(lab.url + "/api/v1/plans", data=body.encode(),
                      headers={"Authorization": "Bearer " + lab.tokens["admin"],
                               "Content-Type": "application/yaml"}, timeout=30)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == "invalid_config" and body["error"]["field"] == "guests[0].stacks"


NODE = shutil.which("node")
CLIENT = os.path.join(SRC, "tests", "mcp", "client.mjs")


def test_mcp_plan_and_apply_carry_stacks(tmp_path):
    assert NODE and os.path.isdir(os.path.join(SRC, "tests", "mcp", "node_modules")), \
        "node and tests/mcp/node_modules (scripts/install-deps npm)"
    lab = Lab(tmp_path)
    try:
        mcp_plan_and_apply(lab)
    finally:
        lab.close()


def mcp_plan_and_apply(lab):
    spec = {"scenario": "stacks", "stdio": [BIN,
                                            "-c", str(lab.cfg), "mcp", "--allow-write"]}
    e = dict(os.environ, **lab.env)
    p = subprocess.run([NODE, CLIENT, json.dumps(spec)], capture_output=True, text=True, env=e,
                       timeout=240, cwd=str(lab.dir))
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout.strip().splitlines()[-1])
    assert rep["ok"], rep.get("error")
    assert "Sanitizer" not in rep.get("stderr", ""), rep["stderr"]
    steps = {s["step"]: s for s in rep["steps"]}
    plan = steps["plan"]["structured"]
    assert stacks_of(plan) == [("docker1", "app", "create"), ("docker1", "many", "create")]
    applied = steps["apply"]
    assert not applied["isError"], applied
    assert [(s["name"], s["ok"]) for s in applied["structured"]["stacks"]] == [
        ("app", True), ("many", True)]
    assert "docker1/app |  Container app-web-1  Started" in applied["progress"], applied["progress"]
    replan = steps["replan"]["structured"]
    assert replan["changes"] == [] and replan["summary"]["stacks"] == 0
    assert lab.guest_file(100, "/opt/pvelab/stacks/app/.env") == "TAG=1.2\n"


def test_cancel_or_stop_while_deploying(lab):
    # a healthcheck whose first probe is 10 minutes away: the deploy waits
    (lab.dir / "compose.yaml").write_text(COMPOSE.replace(
        "image: nginx:1.27\n", "image: nginx:1.27\n    healthcheck: {test: [CMD, 'true'], interval: 600s}\n"))

    def deploying():
        ev = Events(lab)
        kept = lab.post("/api/v1/plans", 201, json={})
        run_id = lab.post("/api/v1/runs", 202, json={"plan_id": kept["id"]})["run"]
        ev.until(lambda e: e["event"] == "run" and e["data"]["run"] == run_id
                 and e["data"].get("step") == "deploy", "compose's output", 120)
        ev.close()
        return run_id

    run_id = deploying()
    # the server answers while the deploy waits in the guest
    assert lab.get(f"/api/v1/runs/{run_id}")["status"] == "running"
    assert lab.post(f"/api/v1/runs/{run_id}/cancel", 202, json={})["state"] == "stopping"
    done = lab.wait_run(run_id)  # well before the healthcheck's 600 s
    assert done["status"] == "interrupted", done
    app = done["result"]["stacks"][0]
    assert app["name"] == "app" and app["ok"] is False and "interrupted" in app["error"], app

    # a server stopped during a deploy stops it and records the run
    run_id = deploying()
    lab.stop()
    r = lab.pvelab("-o", "json", "rollback")
    assert r.rc == 0, r
    (rec,) = [x for x in r.json() if x["id"] == run_id]
    assert rec["status"] == "interrupted", rec


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def test_dashboard_plans_and_applies_stacks(lab):
    browser = os.path.join(SRC, "tests", "browser")
    assert NODE and CHROMIUM and os.path.isdir(os.path.join(browser, "node_modules", "playwright-core")), \
        "node, Debian's chromium and tests/browser/node_modules (scripts/install-deps)"
    # the guest first: the page's plan has only the stacks left to do
    kept = lab.post("/api/v1/plans", 201, json={})
    run_id = lab.post("/api/v1/runs", 202, json={"plan_id": kept["id"], "no_stacks": True})["run"]
    assert lab.wait_run(run_id)["status"] == "ok"
    cfg = {"url": lab.url, "token": lab.tokens["admin"], "chromium": CHROMIUM}
    p = subprocess.run([NODE, os.path.join(browser, "stacks.mjs")], capture_output=True, text=True,
                       timeout=300, cwd=browser, env=dict(os.environ, DASH_TEST=json.dumps(cfg)))
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    assert seen["errors"] == [], seen
    assert seen["changes"] == "No guest changes."
    assert [s.split(" · ")[0] for s in seen["stacks"]] == ["+ docker1/app create", "+ docker1/many create"]
    assert "secret.env (secret)" in seen["stacks"][0]
    assert seen["summary"].endswith("Stacks: 2 to deploy after the changes.")
    assert "docker1/app |  Container app-web-1  Started" in seen["log"], seen["log"]
    assert seen["log"][-1].startswith("finished: ok"), seen["log"]
    assert lab.guest_file(100, "/opt/pvelab/stacks/app/.env") == "TAG=1.2\n"
