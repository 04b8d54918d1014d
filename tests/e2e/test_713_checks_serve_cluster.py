"""`pvelab serve`'s cluster-wide checks and notices (issue 25): the
newest-backup check runs in the server after each full sync, against the
simulator, and alerts as the other checks do (a warning, then resolved once
a backup is made). Many checks changing at once reach ntfy and a webhook as
one grouped notice per notifier within alerts.group_wait, going down and
coming back, while a real Alertmanager still gets each alert on its own."""
import json

import pytest
import requests

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import api, env_for
from test_700_serve import Server, until
from test_711_checks_serve import Receiver, WebServer, alertmanager, free_port  # noqa: F401


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
  group_wait: 0
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
        # on /metrics too, labelled with its guest
        m = requests.get(srv.url + "/metrics", headers={"Authorization": "Bearer " + tok},
                         timeout=20).text
        assert (f'pvelab_check_warning{{check="{name}",type="backup",guest="{b["name"]}",'
                f'target=""}} 1') in m.splitlines(), m
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


def test_many_checks_changing_at_once_make_one_grouped_notice(tmp_path, alertmanager):
    web = WebServer(free_port())
    web.start()
    ntfy, hook = Receiver(), Receiver()
    names = [f"svc{i}" for i in range(8)]
    targets = "\n".join(f"    - {{name: {n}, check: {'http' if i % 2 else 'tcp'}, "
                        f"host: 127.0.0.1, port: {web.port}}}" for i, n in enumerate(names))
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"""
checks:
  interval: 1
  targets:
{targets}
alerts:
  group_wait: 3
  notifiers:
    - {{name: phone, type: ntfy, url: "http://127.0.0.1:{ntfy.port}/lab"}}
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/hook"}}
    - {{name: am, type: alertmanager, url: "{alertmanager}"}}
  routes:
    - {{notifiers: [phone, hook, am], checks: ["svc*"]}}
""")
    env = {"PVELAB_STATE": str(tmp_path / "state.db"), "PVELAB_URL": ""}
    tok = run("token", "create", "v", "--role", "viewer", env=env).out.strip()
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)

    def states():
        c = get(srv.url, tok, "/api/v1/checks")
        return {x["name"]: x["status"] for x in c["checks"]} if c else {}

    def am_firing():
        al = requests.get(alertmanager + "/api/v2/alerts", timeout=5).json()
        return sorted(a["labels"]["check"] for a in al
                      if a["labels"].get("check", "").startswith("svc")
                      and a["status"]["state"] == "active")
    try:
        until(lambda: all(states().get(n) == "up" for n in names), "all up", 30)
        web.stop()
        until(lambda: all(states().get(n) == "down" for n in names), "all down", 30)
        # Alertmanager: each alert on its own, at once
        until(lambda: am_firing() == names, "each alert in Alertmanager", 30)
        until(lambda: hook.got and ntfy.got, "the grouped notices", 30)
        c = get(srv.url, tok, "/api/v1/checks")
        assert all(n["grouping"] == 0 for n in c["alerts"]["notifiers"]), c["alerts"]
        assert len(hook.got) == 1 and len(ntfy.got) == 1, (hook.got, ntfy.got)
        h = hook.got[0]
        assert h["headers"]["X-Pvelab-Event"] == "group"
        d = json.loads(h["body"])
        assert (d["event"], d["count"]) == ("group", 8), d
        assert sorted(x["check"] for x in d["notices"]) == names
        assert all(x["event"] == "firing" and x["status"] == "down" for x in d["notices"])
        assert d["title"] == "pvelab: 8 DOWN"
        assert len(d["message"].splitlines()) == 8
        assert all(line.startswith("DOWN: svc") for line in d["message"].splitlines())
        n = ntfy.got[0]
        assert n["headers"]["Title"] == "pvelab: 8 DOWN"
        assert n["headers"]["Priority"] == "4" and "rotating_light" in n["headers"]["Tags"]
        assert n["body"].decode().count("\n") == 7
        # back up together: one grouped resolved notice each
        web.start()
        until(lambda: all(states().get(n) == "up" for n in names), "all up again", 30)
        until(lambda: len(hook.got) == 2 and len(ntfy.got) == 2, "the grouped recovery", 30)
        d = json.loads(hook.got[1]["body"])
        assert d["title"] == "pvelab: 8 RESOLVED"
        assert sorted(x["check"] for x in d["notices"]) == names
        assert all(x["event"] == "resolved" for x in d["notices"])
        assert ntfy.got[1]["headers"]["Priority"] == "3"
        until(lambda: am_firing() == [], "Alertmanager resolved", 30)
    finally:
        rc = srv.stop()
        ntfy.close()
        hook.close()
    assert rc == 0, srv.err
    # the log names the group, the events each check
    assert "alerts: group of 8 checks sent to hook" in srv.err
