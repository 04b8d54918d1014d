"""`pvelab serve`'s cluster-wide checks and notices (issue 25): the
newest-backup check runs in the server after each full sync, against the
simulator, and alerts as the other checks do (a warning, then resolved once
a backup is made)."""
import json

import pytest
import requests

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for
from test_700_serve import Server, until
from test_711_checks_serve import Receiver


@pytest.fixture(scope="module")
def sim():
    info = start_sim("--guests", "3")
    yield info
    stop_sim(info)


def get(url, tok, path, **params):
    r = requests.get(url + path, params=params, headers={"Authorization": "Bearer " + tok},
                     timeout=20)
    return r.json() if r.status_code == 200 else None


def test_backup_age_checked_by_the_server_and_alerted(tmp_path, sim):
    env = env_for(sim, tmp_path / "state.db")
    gs = sorted([g for g in api(sim, "GET", "cluster/resources", type="vm")
                 if not g.get("template")], key=lambda x: x["vmid"])
    a, b = gs[0], gs[1]
    hook = Receiver()
    tok = run("token", "create", "op", "--role", "operator", env=env).out.strip()
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"""
serve: {{status_interval: 1}}
checks:
  cluster: {{backup_days: 1, storage_percent: 100, cert_days: 0}}
guests:
  - {{name: {a['name']}, state: {a['status']}}}
  - {{name: {b['name']}, state: {b['status']}}}
alerts:
  notifiers:
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/"}}
  routes:
    - {{notifiers: [hook], checks: ["backup:*"]}}
""")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    name = f"backup:{b['name']}"
    try:
        c = until(lambda: get(srv.url, tok, "/api/v1/checks/" + name), "the backup check", 30)
        assert c["status"] == "warning" and c["type"] == "backup", c
        assert c["last"]["error"] == "no backup"
        until(lambda: [x for x in hook.got
                       if json.loads(x["body"])["check"] == name], "the warning's notice")
        d = [json.loads(x["body"]) for x in hook.got if json.loads(x["body"])["check"] == name]
        assert [(x["event"], x["status"]) for x in d] == [("firing", "warning")]
        # a backup, then a sync: the check resolves, one notice says so
        assert run("backup", b["name"], env=env).rc == 0
        r = requests.post(srv.url + "/api/v1/sync", json={},
                          headers={"Authorization": "Bearer " + tok}, timeout=20)
        assert r.status_code == 202, r.text
        c = until(lambda: (lambda c: c["status"] == "up" and c)(
            get(srv.url, tok, "/api/v1/checks/" + name)), "the backup check up", 30)
        assert f"vzdump-{b['type']}-{b['vmid']}-" in c["last"]["target"]
        until(lambda: len([x for x in hook.got
                           if json.loads(x["body"])["check"] == name]) == 2, "resolved")
        d = [json.loads(x["body"]) for x in hook.got if json.loads(x["body"])["check"] == name]
        assert d[1]["event"] == "resolved"
        # the other guest still has none: still a warning, never notified twice
        assert get(srv.url, tok, f"/api/v1/checks/backup:{a['name']}")["status"] == "warning"
        # the change is in the store, with the result that made it
        changes = get(srv.url, tok, "/api/v1/checks/" + name)["changes"]
        assert [x["to"] for x in changes][:2] == ["up", "warning"]
    finally:
        rc = srv.stop()
        hook.close()
    assert rc == 0, srv.err
