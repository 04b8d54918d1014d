"""The metrics of `pvelab serve` from a hostile node: answers with label
values full of quotes, backslashes and newlines, keys no label can be named
after, numbers as strings or nulls, wrong types everywhere, and calls that
fail. Every answer is still a valid exposition (promtool parses it), the
server stays up, and a failing read keeps the last answer that worked."""
import json

import pytest
import requests

from hostile import Server as Hostile
from hostile import reply
from test_700_serve import Server, until
from test_720_metrics import promtool_metrics

NASTY = 'a"b\\c\nd\u00e9\u2603'

STATUS = [
    {"type": "cluster", "id": "cluster", "name": NASTY, "nodes": 2, "quorate": 1, "version": 3,
     "a b": 1, "__reserved": 2, "0digit": 3, "ok_key": [1, 2], "nested": {"x": 1}},
    {"type": "node", "id": "node/n1", "name": "n1", "ip": "10.0.0.1", "online": 1, "local": 1,
     "nodeid": 1, "level": "c"},
    {"type": "node", "id": "node/n2", "name": "n2", "online": "1", "local": 0, "nodeid": None},
    {"type": "weird", "id": "x"},
    "not an object", 17, None,
]
RESOURCES = [
    {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n1", "name": NASTY,
     "status": "running", "cpu": "0.5", "maxmem": "not a number", "mem": None, "maxcpu": True,
     "uptime": 1e308, "netin": -5, "netout": "nan", "template": "0", "tags": "x\ny",
     "hastate": "started", "lock": ["backup"], "diskread": {"x": 1}},
    {"id": NASTY, "type": "lxc", "vmid": "101", "node": None, "status": 7},
    {"id": "storage/n1/s", "type": "storage", "storage": "s", "node": "n1", "content": ",,b,a,",
     "plugintype": NASTY, "status": "available", "shared": "yes", "maxdisk": 10, "disk": 11},
    {"id": "node/n1", "type": "node", "node": "n1", "status": "online", "hastate": 5},
    {"type": "qemu"},
    [], "string", 3.5, None,
]


def handler_for(state):
    def handle(path, s):
        p = path.split("?", 1)[0][len("/api2/json"):]
        state["asked"].append(p)
        if state["fail"] and p != "/cluster/resources":
            return reply(s, b'{"data":null}', status="500 Internal Server Error")
        answers = {
            "/cluster/status": STATUS,
            "/cluster/resources": RESOURCES,
            "/version": {"version": [1], "release": None, "repoid": NASTY},
            "/cluster/backup-info/not-backed-up": [{"vmid": "x", "type": None}, 5, {}],
            "/cluster/config/qdevice": {"State": NASTY, "Model": 5},
            "/nodes/n1/subscription": {"status": 5, "level": NASTY, "nextduedate": "2026-13-45"},
            "/nodes/n1/replication": [{"id": NASTY, "guest": None, "duration": "x",
                                       "fail_count": 2}, 1],
            "/nodes/n1/certificates/info": [{"filename": NASTY, "notafter": "soon"}],
            "/nodes/n1/qemu/100/config": {"onboot": "yes", "parent": 5},
        }
        if p in answers:
            return reply(s, json.dumps({"data": answers[p]}).encode())
        return reply(s, b'{"data":[]}')
    return handle


@pytest.fixture
def hostile(tmp_path):
    state = {"fail": False, "asked": []}
    h = Hostile(str(tmp_path), handler_for(state))
    (tmp_path / "pvelab.yaml").write_text(
        "serve:\n  status_interval: 1\n  sync_interval: 10\n  metrics:\n    auth: none\n")
    env = {"PVELAB_URL": h.url, "PVELAB_TOKEN": "root@pam!t=secret", "PVELAB_FINGERPRINT": h.fp,
           "PVELAB_STATE": str(tmp_path / "state.db")}
    srv = Server("--listen", "127.0.0.1:0", "-c", tmp_path / "pvelab.yaml", env=env)
    yield srv, state
    assert srv.stop() == 0, srv.err
    h.close()


def test_hostile_answers_make_a_valid_exposition(hostile):
    srv, state = hostile
    url = srv.url + "/metrics"
    until(lambda: "/nodes/n1/subscription" in state["asked"], "the node reads", deadline=30)
    until(lambda: all(f in requests.get(url, timeout=20).text for f in
                      ('pve_subscription_info{', 'pve_guest_info{')),
          "the subscription series and the resource list")
    text = requests.get(url, timeout=20).text
    rc, out = promtool_metrics(text)
    # the exposition parses; lints only (promtool prints parse errors as "error while linting")
    assert not [line for line in out if "error" in line.lower()], out
    # escaped as the format wants
    assert 'pve_guest_info{id="qemu/100",node="n1",name="a\\"b\\\\c\\nd\u00e9\u2603"' in text
    assert 'content="a,b"' not in text and 'content=",,,a,b"' in text  # sorted, empties kept
    assert "a b=" not in text and "__reserved" not in text and "0digit" not in text
    # numbers the exporter's float() reads; the rest left out
    assert 'pve_cpu_usage_ratio{id="qemu/100"} 0.5\n' in text
    assert 'pve_memory_size_bytes{id="qemu/100"}' not in text
    assert 'pve_cpu_usage_limit{id="qemu/100"} 1\n' in text
    assert 'pve_network_transmit_bytes_total{id="qemu/100"} NaN\n' in text
    for fmt in ("application/openmetrics-text;version=1.0.0", "text/plain"):
        r = requests.get(url, headers={"Accept": fmt}, timeout=20)
        assert r.status_code == 200
    # the exporter's path with a hostile target
    r = requests.get(srv.url + "/pve", params={"target": NASTY + "[::1]:x", "cluster": "0"},
                     timeout=20)
    assert r.status_code == 200 and "pve_up" not in r.text


def test_failing_reads_keep_the_last_answer(hostile):
    srv, state = hostile
    url = srv.url + "/metrics"
    until(lambda: 'pve_subscription_info{id="node/n1"' in requests.get(url, timeout=20).text,
          "the subscription series", deadline=30)
    state["fail"] = True
    until(lambda: 'pvelab_refresh_failures{kind="cluster_reads"} 0\n' not in
          requests.get(url, timeout=20).text, "a failed round", deadline=30)
    text = requests.get(url, timeout=20).text
    assert 'pve_subscription_info{id="node/n1"' in text
    assert 'pve_node_info{id="node/n1"' in text
    state["fail"] = False
    until(lambda: 'pvelab_refresh_failures{kind="cluster_reads"} 0\n' in
          requests.get(url, timeout=20).text, "a round that worked", deadline=30)
