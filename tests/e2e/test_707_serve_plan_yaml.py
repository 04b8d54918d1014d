"""`POST /api/v1/plans` with a pvelab.yaml as its body (issue 21): the plan is
the CLI's plan of the same file, its id applies it with that config, a config
validate rejects is a 400 naming the key and line, and a config that would make
the server read its own files, environment, cluster or store is refused."""
import json

import pytest
import requests

from conftest import run
from simfix import stop_sim
from test_705_serve_runs import Lab, TEMPLATE

BODY = f"""
project: sent
guests:
  - name: yweb
    memory: 1G
    cores: 1
    networks: [{{bridge: vmbr0, ip: dhcp}}]
    disks: [{{storage: local-lvm, size: 4G}}]
  - name: yct
    type: lxc
    ostemplate: {TEMPLATE}
    memory: 256
    networks: [{{bridge: vmbr0, ip: dhcp}}]
"""
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("planyaml"))
    lab.serve("serve:\n  status_interval: 1\n")  # the server's own config plans nothing
    yield lab
    try:
        lab.stop()
    finally:
        stop_sim(lab.sim)


def yaml_req(lab, text, role="admin", status=None, params=None):
    h = {"Authorization": "Bearer " + lab.tokens[role], **YAML}
    r = requests.post(lab.url + "/api/v1/plans", headers=h, data=text.encode(), params=params,
                      timeout=60)
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text)
    return r


def test_a_yaml_body_plans_that_config_as_the_cli_does_and_applies(lab):
    r = yaml_req(lab, BODY, status=201)
    kept = lab.checked("POST", "/api/v1/plans", r)
    assert {c["guest"]: c["action"] for c in kept["plan"]["changes"]} == {"yweb": "create",
                                                                          "yct": "create"}
    f = lab.dir / "sent.yaml"
    f.write_text(BODY)
    cli = run("-c", str(f), "-o", "json", "plan", env=lab.env, cwd=str(lab.dir))
    assert cli.rc == 0, cli
    # the same plan; its config is named for where it came from
    assert kept["plan"]["config"] == "body"
    assert dict(kept["plan"], config=None) == dict(json.loads(cli.out), config=None)
    # the server's own config (no guests) is not what the id applies
    r = lab.post("/api/v1/runs", json={"plan_id": kept["id"]}, status=202)
    rec = lab.wait_run(r.json()["run"])
    assert rec["status"] == "ok", rec
    assert lab.guest("yweb") and lab.guest("yct")
    assert lab.config("yweb")["memory"] in (1024, "1024")
    # the same config again: nothing to do
    again = yaml_req(lab, BODY, status=201).json()
    assert again["plan"]["changes"] == [] or all(
        c["action"] == "none" for c in again["plan"]["changes"])


def test_options_come_from_the_query_with_a_yaml_body(lab):
    body = BODY.replace("memory: 1G", "memory: 2G")
    kept = yaml_req(lab, body, status=201, params={"reboot": "true"}).json()
    assert kept["plan"]["options"]["reboot"] is True
    r = yaml_req(lab, body, status=400, params={"reboot": "maybe"})
    assert r.json()["error"]["field"] == "reboot"
    r = yaml_req(lab, body, status=400, params={"bogus": "1"})
    assert r.json()["error"]["code"] == "unknown_parameter"
    r = lab.post("/api/v1/plans", json={}, params={"reboot": "true"}, status=400)
    assert r.json()["error"]["code"] == "bad_query"


def test_an_invalid_config_is_a_400_naming_the_key_and_line(lab):
    r = yaml_req(lab, "guests:\n  - name: a\n    memroy: 1G\n", status=400)
    e = r.json()["error"]
    assert e["code"] == "invalid_config"
    assert "memroy" in e["message"] and "body:3:" in e["message"], e
    assert "memroy" in e["field"]
    r = yaml_req(lab, "guests: [\n", status=400)
    assert r.json()["error"]["code"] == "invalid_config"
    r = yaml_req(lab, "\xff\xfe", status=400)
    assert r.json()["error"]["code"] == "invalid_config"


@pytest.mark.parametrize("text,field", [
    ("cluster:\n  endpoints: [https://198.51.100.7:8006]\n  token_id: a@pam!b\n", "cluster"),
    ("state: /tmp/elsewhere.db\n", "state"),
    ("serve:\n  listen: [0.0.0.0:1]\n", "serve"),
    ("storages:\n  - {name: s, type: pbs, server: h, datastore: d, "
     "password_file: /etc/shadow}\n", "storages[0].password_file"),
    ("guests:\n  - name: c\n    cloudinit: {user: u, password_env: PVELAB_TOKEN}\n",
     "guests[0].cloudinit.password_env"),
])
def test_a_config_naming_what_the_server_reads_is_refused(lab, text, field):
    r = yaml_req(lab, text, status=400)
    e = r.json()["error"]
    assert e["code"] == "invalid_config" and e["field"] == field, e
    assert "server's own config" in e["message"] and e["message"].startswith("body:"), e


def test_only_admins_plan_a_yaml_body_and_its_size_is_bounded(lab):
    for role in ("viewer", "operator"):
        assert yaml_req(lab, BODY, role=role, status=403).json()["error"]["code"] == "forbidden"
    r = yaml_req(lab, "# " + "x" * (4 << 20) + "\n")
    assert r.status_code == 413, r.status_code
    assert lab.get("/healthz").status_code == 200
