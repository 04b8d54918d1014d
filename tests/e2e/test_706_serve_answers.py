"""`pvelab serve` keeps its read answers in memory between changes: they are
served again without the store (hits counted), yet never stale. A change made
behind pvelab's back (the simulator's API), one pvelab makes (a power action),
and one another pvelab process commits (a CLI sync beside the server) each show
in the next answer, equal to the CLI's -o json; gzip when the client takes it.
Under e2e-pg the store is PostgreSQL, where a commit's NOTIFY is the signal."""
import gzip
import json

import pytest
import requests

from conftest import run, state_rows
from simfix import start_sim, stop_sim
from test_700_serve import Server, full_token, same_but_counters, sim_env, until


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    sim = start_sim("--nodes", "2", "--guests", "12")
    d = tmp_path_factory.mktemp("answers")
    state = d / "state.db"
    env = sim_env(sim, state)
    assert run("sync", env=env).rc == 0
    r = run("token", "create", "op", "--role", "operator", env=env)
    assert r.rc == 0, r
    cfg = d / "pvelab.yaml"
    cfg.write_text("serve:\n  status_interval: 1\n  sync_interval: 3600\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    pve = requests.Session()
    pve.headers["Authorization"] = "PVEAPIToken=" + full_token(sim)
    yield {"env": env, "state": state, "token": r.out.strip(), "url": srv.url, "srv": srv,
           "pve": pve, "sim": sim}
    assert srv.stop() == 0, srv.err
    stop_sim(sim)


def get(lab, path, **kw):
    h = {"Authorization": "Bearer " + lab["token"], **kw.pop("headers", {})}
    r = requests.get(lab["url"] + path, headers=h, timeout=20, **kw)
    assert r.status_code in (200, 202, 404), (path, r.status_code, r.text)
    return r


def cli(lab, *args):
    r = run(*args, "-o", "json", env={"PVELAB_STATE": str(lab["state"]), "PVELAB_URL": ""})
    assert r.rc == 0, r
    return json.loads(r.out)


def answers(lab):
    return get(lab, "/api/v1/sync").json()["answers"]


def synced(lab):
    s = get(lab, "/api/v1/sync").json()["sync"]
    return s["state"] == "ok" and s["seq"]


def pve(lab, method, path, **data):
    r = lab["pve"].request(method, lab["sim"]["url"] + "/api2/json" + path, data=data,
                           timeout=20, verify=False)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()["data"]


def same_as_cli(lab, guest):
    """Every cached read answer equals what the CLI prints from the same store."""
    assert get(lab, "/api/v1/cluster").json() == cli(lab, "status")
    assert get(lab, "/api/v1/nodes").json() == cli(lab, "status")["nodes"]
    same_but_counters(get(lab, "/api/v1/guests").json(), cli(lab, "list"))
    same_but_counters(get(lab, "/api/v1/guests", params={"sort": "name"}).json(),
                      cli(lab, "list", "--sort", "name"))
    same_but_counters(get(lab, f"/api/v1/guests/{guest}").json(), cli(lab, "describe", guest))
    assert get(lab, f"/api/v1/guests/{guest}/history").json() == cli(lab, "history", guest)
    # the runs have no CLI command: the newest is the store's newest
    newest = state_rows(lab["state"], "SELECT max(id) FROM runs")[0][0]
    assert get(lab, "/api/v1/runs").json()[0]["id"] == newest


def test_answers_are_kept_and_served_again(lab):
    until(lambda: synced(lab), "the server's first sync")
    g = cli(lab, "list")[0]
    first = get(lab, f"/api/v1/guests/{g['name']}").content
    before = answers(lab)
    for _ in range(5):
        assert get(lab, "/api/v1/cluster").status_code == 200
    after = answers(lab)
    # the cluster rendered at most once, then served from memory
    assert after["hits"] - before["hits"] >= 4
    assert after["bytes"] > 0
    assert json.loads(first)["vmid"] == g["vmid"]


def test_a_change_behind_pvelabs_back_shows_in_the_next_answer(lab):
    g = next(x for x in cli(lab, "list") if x["type"] == "qemu" and x["status"] == "running")
    name, node, vmid = g["name"], g["node"], g["vmid"]
    same_as_cli(lab, name)  # kept now
    seq = until(lambda: synced(lab), "a finished sync")
    pve(lab, "PUT", f"/nodes/{node}/qemu/{vmid}/config", description="changed behind its back")
    pve(lab, "POST", f"/nodes/{node}/qemu/{vmid}/status/stop")
    # the status refresh sees the stop, syncs, and the sync brings the config
    until(lambda: (get(lab, f"/api/v1/guests/{name}").json()["config"].get("description") ==
                   "changed behind its back"), "the new description in the API's answer", 60)
    until(lambda: (synced(lab) or 0) > seq, "the sync the stop started")
    assert get(lab, f"/api/v1/guests/{name}").json()["status"] == "stopped"
    same_as_cli(lab, name)


def test_a_change_pvelab_makes_shows_in_the_next_answer(lab):
    g = next(x for x in cli(lab, "list") if x["status"] == "stopped")
    same_as_cli(lab, g["name"])
    r = requests.post(f"{lab['url']}/api/v1/guests/{g['vmid']}/start", timeout=20,
                      headers={"Authorization": "Bearer " + lab["token"]})
    assert r.status_code == 202, r.text
    aid = r.json()["id"]
    until(lambda: get(lab, f"/api/v1/actions/{aid}").json()["state"] == "ok", "the start", 60)
    until(lambda: get(lab, f"/api/v1/guests/{g['name']}").json()["status"] == "running",
          "the started guest in the API's answer", 60)
    until(lambda: not get(lab, "/api/v1/sync").json()["sync"]["state"] == "running",
          "the sync after the start")
    same_as_cli(lab, g["name"])


def test_a_commit_of_another_process_shows_at_once(lab):
    """No event, no refresh: the CLI's own sync beside the server commits to
    the store, and the very next answer is the new one."""
    g = cli(lab, "list")[-1]
    name, node, vmid, kind = g["name"], g["node"], g["vmid"], g["type"]
    same_as_cli(lab, name)
    pve(lab, "PUT", f"/nodes/{node}/{kind}/{vmid}/config", description="from the cli's sync")
    assert run("sync", env=lab["env"]).rc == 0
    assert (get(lab, f"/api/v1/guests/{name}").json()["config"]["description"] ==
            "from the cli's sync")
    same_as_cli(lab, name)


def test_large_answers_are_gzipped_for_clients_that_take_them(lab):
    def answer(accept):
        r = requests.get(lab["url"] + "/api/v1/guests", timeout=20, stream=True,
                         headers={"Authorization": "Bearer " + lab["token"],
                                  "Accept-Encoding": accept})
        return r.headers, r.raw.read()

    def three():
        """The same answer three ways, unless a status refresh (every second
        here: the counters move) fell between them: then None, and again."""
        got = [answer(a) for a in ("identity", "br, gzip;q=0.8", "gzip;q=0")]
        if got[1][0].get("Content-Encoding") == "gzip":
            same = gzip.decompress(got[1][1]) == got[0][1] == got[2][1]
            return got if same else None
        return got
    (plain, body), (zipped, raw), (refused, again) = until(three, "three answers between "
                                                         "two status refreshes")
    assert "Content-Encoding" not in plain
    assert plain["Vary"] == "Accept-Encoding"
    assert zipped["Content-Encoding"] == "gzip"
    assert len(raw) < len(body)
    assert gzip.decompress(raw) == body
    assert "Content-Encoding" not in refused
    assert again == body
