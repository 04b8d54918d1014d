"""Storages, backup jobs and pools declared in pvelab.yaml go through plan and
apply like guests: created, replanned to zero, updated key by key, removed
only when this project's (jobs and pools carry [pvelab:<project>] in their
comment; a storage goes only with state: absent, and never while a guest
uses it — PVE's own DELETE /storage does not check, pve-storage's
API2/Storage/Config.pm delete). import adopts hand-made ones so that the next
plan is zero; destroy removes only what the config declares and the project
manages; secrets come from files and appear nowhere."""
import json
import os

import pytest

from conftest import run
from plancheck import assert_summary_matches_lines
from simfix import DEMO_SEED, start_sim, stop_sim
from test_200_sync import api, env_for, full_token


@pytest.fixture
def sim():
    info = start_sim("--seed", DEMO_SEED)
    yield info
    rc, err = stop_sim(info)
    assert rc == 0, err


@pytest.fixture
def env(sim, tmp_path):
    return env_for(sim, tmp_path / "state.db")


def post(sim, where, **params):
    """POST straight to the simulator, with parameters that may be named
    "path" (a storage's, which test_200_sync.api takes for its own)."""
    import urllib3
    from proxmoxer import ProxmoxAPI
    urllib3.disable_warnings()
    h, port = sim["url"].split("://", 1)[1].rstrip("/").rsplit(":", 1)
    user, _, rest = full_token(sim).partition("!")
    name, _, secret = rest.partition("=")
    px = ProxmoxAPI(h, port=int(port), user=user, token_name=name, token_value=secret,
                    verify_ssl=False)
    return px(where).post(**params)


def plan_json(cfg, env, *extra):
    r = run("-c", cfg, "-o", "json", "plan", *extra, env=env)
    assert r.rc == 0, r
    return r.json()


def write(tmp_path, text, name="lab.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


LAB = """
project: lab
storages:
  - name: backups
    type: dir
    path: /mnt/backups
    content: [backup]
    nodes: [pve1, pve2]
    keep: {{last: 2, daily: 7}}
  - name: pbs
    type: pbs
    server: 192.168.10.50
    datastore: homelab
    username: backup@pbs
    password_file: {pw}
    fingerprint_file: {fp}
    content: [backup]
pools:
  - name: day2
    comment: made by pvelab
backups:
  - id: nightly
    schedule: "02:30"
    storage: backups
    mode: snapshot
    compress: zstd
    guests: [proxy, 301]
    keep: {{daily: 7, weekly: 4}}
    notes_template: "{{{{guestname}}}}"
    notification_mode: auto
  - id: infra
    schedule: "sat 03:00"
    storage: backups
    pool: infra
    exclude: [monitoring]
    enabled: false
"""

PW = "s3cret-pbs-Pass"
FP = "AB:CD:" + ":".join(["12"] * 30)


def lab(tmp_path):
    pw, fp = tmp_path / "pw", tmp_path / "fp"
    pw.write_text(PW + "\n")
    fp.write_text(FP + "\n")
    os.chmod(pw, 0o600)
    os.chmod(fp, 0o600)
    return write(tmp_path, LAB.format(pw=pw, fp=fp))


def test_apply_creates_then_replans_to_zero(sim, env, tmp_path):
    cfg = lab(tmp_path)
    r = run("-c", cfg, "validate", env=env)
    assert r.rc == 0, r
    plan = plan_json(cfg, env)
    got = sorted((c["action"], c["guest"], c["class"]) for c in plan["changes"])
    assert got == [("backup_job", "infra", "create"), ("backup_job", "nightly", "create"),
                   ("pool", "day2", "create"), ("storage", "backups", "create"),
                   ("storage", "pbs", "create")]
    assert all(c["steps"] == ["call"] for c in plan["changes"])
    text = json.dumps(plan)
    assert PW not in text and FP not in text
    r = run("-c", cfg, "plan", "--detailed-exitcode", env=env)
    assert r.rc == 2, r
    assert "+   storage backups (dir storage)" in r.out
    assert "+   job     nightly (backup job)" in r.out
    assert_summary_matches_lines(r.out)
    assert PW not in r.out and FP not in r.out
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    assert PW not in r.out + r.err and FP not in r.out + r.err

    st = {s["storage"]: s for s in api(sim, "GET", "storage")}
    assert st["backups"]["type"] == "dir" and st["backups"]["path"] == "/mnt/backups"
    assert sorted(st["backups"]["nodes"].split(",")) == ["pve1", "pve2"]
    assert st["pbs"]["fingerprint"] == FP and "password" not in st["pbs"]
    jobs = {j["id"]: j for j in api(sim, "GET", "cluster/backup")}
    assert jobs["nightly"]["vmid"] == "300,301" and jobs["nightly"]["comment"] == "[pvelab:lab]"
    assert jobs["nightly"]["prune-backups"] in ("keep-daily=7,keep-weekly=4",)
    assert jobs["infra"]["pool"] == "infra" and jobs["infra"]["exclude"] == "301"
    assert int(jobs["infra"]["enabled"]) == 0
    pools = {p["poolid"]: p for p in api(sim, "GET", "pools")}
    assert pools["day2"]["comment"] == "made by pvelab [pvelab:lab]"

    r = run("-c", cfg, "plan", "--detailed-exitcode", env=env)
    assert r.rc == 0, r
    assert "No changes." in r.out

    # the state database holds no secret either
    db = open(env["PVELAB_STATE"], "rb").read()
    assert PW.encode() not in db and FP.encode() not in db

    # a change behind pvelab's back is planned back, key by key
    api(sim, "PUT", "cluster/backup/nightly", schedule="04:00", storage="local")
    api(sim, "PUT", "storage/backups", content="backup,iso")
    assert run("sync", env=env).rc == 0  # the history sees the change
    plan = plan_json(cfg, env)
    by = {c["guest"]: c for c in plan["changes"]}
    assert set(by) == {"nightly", "backups"}
    assert sorted(d["key"] for d in by["nightly"]["diffs"]) == ["schedule", "storage"]
    assert by["nightly"]["params"] == {"schedule": "02:30", "storage": "backups"}
    assert by["backups"]["params"] == {"content": "backup"}
    assert all(c["class"] == "update" for c in by.values())
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    assert plan_json(cfg, env)["changes"] == []

    # every change has its history row, by the runs that made it
    r = run("-o", "json", "history", "backup-job:nightly", env=env)
    assert r.rc == 0, r
    kinds = [h["kind"] for h in r.json()]
    assert kinds == ["discovered", "updated", "updated"], kinds
    assert r.json()[-1]["state"]["schedule"] == "02:30"
    r = run("-o", "json", "history", "storage:pbs", env=env)
    assert r.rc == 0, r
    assert r.json()[0]["state"]["fingerprint"] == "**********"
    # as text: the keys it appeared with, no guest summary line
    r = run("history", "storage:pbs", env=env)
    assert r.rc == 0, r
    assert "+ type: pbs" in r.out and " on ?" not in r.out and "null" not in r.out, r

    # a job and a pool leave the config: this project's are removed
    cfg.write_text(cfg.read_text().split("pools:")[0] + "backups:\n" +
                   cfg.read_text().split("backups:\n")[1].split("  - id: infra")[0])
    plan = plan_json(cfg, env)
    got = sorted((c["action"], c["guest"], c["class"]) for c in plan["changes"])
    assert got == [("backup_job", "infra", "delete"), ("pool", "day2", "delete")]
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    assert "infra" not in {j["id"] for j in api(sim, "GET", "cluster/backup")}
    assert "day2" not in {p["poolid"] for p in api(sim, "GET", "pools")}
    assert plan_json(cfg, env)["changes"] == []
    r = run("-o", "json", "history", "pool:day2", env=env)
    assert [h["kind"] for h in r.json()] == ["discovered", "deleted"], r


def test_storage_in_use_is_blocked_naming_the_guests(sim, env, tmp_path):
    # nas holds monitoring's disk (301) and more; PVE itself would remove it
    cfg = write(tmp_path, "project: lab\nstorages:\n  - {name: nas, type: nfs, state: absent}\n")
    r = run("-c", cfg, "-o", "json", "plan", "--detailed-exitcode", env=env)
    assert r.rc == 2, r
    plan = r.json()
    assert plan["changes"] == []
    (b,) = plan["blocked"]
    assert b["guest"] == "storage nas"
    assert "monitoring (301)" in b["reason"] and "in use" in b["reason"]
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc != 0
    assert "nas" in {s["storage"] for s in api(sim, "GET", "storage")}
    # an unused one goes
    post(sim, "storage", storage="scratch", type="dir", path="/srv/scratch", content="iso")
    cfg.write_text("project: lab\nstorages:\n  - {name: scratch, type: dir, state: absent}\n")
    plan = plan_json(cfg, env)
    assert [(c["guest"], c["class"]) for c in plan["changes"]] == [("scratch", "delete")]
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    assert "scratch" not in {s["storage"] for s in api(sim, "GET", "storage")}


def test_hand_made_objects_are_blocked_then_imported_to_zero(sim, env, tmp_path):
    api(sim, "POST", "cluster/backup", id="handmade", schedule="sun 01:00", storage="nas",
        vmid="300,302", mode="stop", compress="lzo", **{"prune-backups": "keep-last=3"},
        comment="weekly by hand")
    post(sim, "storage", storage="media", type="nfs", server="10.0.0.9",
        export="/srv/media", path="/mnt/pve/media", content="iso,vztmpl", nodes="pve1")
    api(sim, "POST", "pools", poolid="handpool", comment="by hand")
    cfg = write(tmp_path, "project: lab\npools:\n  - name: handpool\n    comment: by hand\n")
    plan = plan_json(cfg, env)
    (b,) = plan["blocked"]
    assert b["guest"] == "pool handpool"
    assert "pvelab import pool:handpool" in b["reason"]

    out = tmp_path / "imported.yaml"
    r = run("-c", cfg, "import", "backup-job:handmade", "storage:media", "pool:handpool",
            "--out", out, env=env)
    assert r.rc == 0, r
    text = out.read_text()
    assert "backups:" in text and "storages:" in text and "pools:" in text
    # the marker now names the file's project
    jobs = {j["id"]: j for j in api(sim, "GET", "cluster/backup")}
    assert jobs["handmade"]["comment"] == "weekly by hand [pvelab:imported]"
    assert storage_owners(env) == {"media": "imported"}  # storage.cfg has no comment
    plan = plan_json(out, env)
    assert plan["changes"] == [] and plan["blocked"] == [], plan

    # destroy removes what the config declares and the project manages
    r = run("-c", out, "destroy", "--yes", env=env)
    assert r.rc == 0, r
    assert "handmade" not in {j["id"] for j in api(sim, "GET", "cluster/backup")}
    assert "handpool" not in {p["poolid"] for p in api(sim, "GET", "pools")}
    assert "media" not in {s["storage"] for s in api(sim, "GET", "storage")}
    assert storage_owners(env) == {}
    # another project's job is never touched
    api(sim, "POST", "cluster/backup", id="theirs", schedule="daily", storage="nas", all=1,
        comment="[pvelab:other]")
    cfg.write_text("project: lab\nbackups:\n  - {id: theirs, schedule: daily, storage: nas, all: true}\n")
    plan = plan_json(cfg, env)
    assert plan["changes"] == []
    assert "managed by project 'other'" in plan["blocked"][0]["reason"]


def storage_owners(env):
    """The store's record of which project owns which storage."""
    import sqlite3
    con = sqlite3.connect(env["PVELAB_STATE"])
    try:
        return dict(con.execute("SELECT storage, project FROM storage_owners"))
    finally:
        con.close()


SCRATCH = "  - {name: scratch, type: dir, path: /srv/scratch, content: [iso]}\n"


def test_destroy_keeps_a_declared_storage_nobody_imported(sim, env, tmp_path):
    post(sim, "storage", storage="scratch", type="dir", path="/srv/scratch", content="iso")
    cfg = write(tmp_path, "project: lab\nstorages:\n" + SCRATCH)
    assert plan_json(cfg, env)["changes"] == []
    r = run("-c", cfg, "destroy", "--yes", env=env)
    assert r.rc == 0, r
    assert ("keeping storage scratch: not created or imported by project 'lab' "
            "(state: absent removes it)") in r.err, r
    assert "Nothing to destroy." in r.out
    assert "scratch" in {s["storage"] for s in api(sim, "GET", "storage")}
    # an import that does not adopt leaves it no one's
    r = run("-c", cfg, "import", "storage:scratch", "--no-adopt", env=env)
    assert r.rc == 0, r
    assert storage_owners(env) == {}
    r = run("-c", cfg, "destroy", "--yes", env=env)
    assert r.rc == 0 and "keeping storage scratch" in r.err, r
    assert "scratch" in {s["storage"] for s in api(sim, "GET", "storage")}
    # state: absent stays the explicit way to remove it
    cfg.write_text("project: lab\nstorages:\n  - {name: scratch, type: dir, state: absent}\n")
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    assert "scratch" not in {s["storage"] for s in api(sim, "GET", "storage")}


def test_destroy_removes_the_storage_its_apply_created(sim, env, tmp_path):
    cfg = write(tmp_path, "project: lab\nstorages:\n" + SCRATCH)
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    assert storage_owners(env) == {"scratch": "lab"}
    # another project declaring it neither removes nor adopts it
    other = write(tmp_path, "project: other\nstorages:\n" + SCRATCH, name="other.yaml")
    r = run("-c", other, "destroy", "--yes", env=env)
    assert r.rc == 0 and "keeping storage scratch: not created or imported by project " \
        "'other'" in r.err, r
    r = run("-c", other, "import", "storage:scratch", env=env)
    assert r.rc != 0 and "refusing to import 'storage:scratch': it is managed by project " \
        "'lab'" in r.err, r
    assert storage_owners(env) == {"scratch": "lab"}

    r = run("-c", cfg, "destroy", "--yes", env=env)
    assert r.rc == 0, r
    assert "destroy scratch (storage)" in r.out
    assert "scratch" not in {s["storage"] for s in api(sim, "GET", "storage")}
    assert storage_owners(env) == {}

    # state: absent drops the record as well
    assert run("-c", cfg, "apply", "--yes", env=env).rc == 0
    assert storage_owners(env) == {"scratch": "lab"}
    cfg.write_text("project: lab\nstorages:\n  - {name: scratch, type: dir, state: absent}\n")
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    assert "scratch" not in {s["storage"] for s in api(sim, "GET", "storage")}
    assert storage_owners(env) == {}


def test_validate_checks_schedules_and_references(env, tmp_path):
    cfg = write(tmp_path, """
project: lab
backups:
  - {id: bad, schedule: "mon..fry 02:00", storage: nas, all: true}
  - {id: none, schedule: daily, storage: nas}
  - {id: both, schedule: daily, storage: nas, all: true, guests: [web]}
  - {id: bad, schedule: daily, storage: nas, all: true}
storages:
  - {name: x, type: pbs, server: h, datastore: d, password_file: /nonexistent/pw}
  - {name: yy, type: nfs}
pools:
  - {name: "bad pool!"}
""")
    r = run("-c", cfg, "validate", env=env)
    assert r.rc == 1, r
    assert "backups[0].schedule: not a calendar event 'mon..fry 02:00'" in r.err
    assert "backup job 'none' selects no guest" in r.err
    assert "all: true together with guests" in r.err
    assert "duplicate backup job id 'bad'" in r.err
    assert "storages[0].password_file: cannot read secret file '/nonexistent/pw'" in r.err
    assert "nfs storage 'yy' needs server" in r.err
    assert "pools[0].name: pool name: invalid pool ID 'bad pool!'" in r.err
    assert "storages[0].name: storage name: storage ID 'x' contains illegal characters" in r.err


def test_saved_plan_is_refused_when_a_job_changed(sim, env, tmp_path):
    cfg = write(tmp_path, "project: lab\nbackups:\n"
                "  - {id: nightly, schedule: daily, storage: nas, all: true}\n")
    assert run("-c", cfg, "apply", "--yes", env=env).rc == 0
    cfg.write_text(cfg.read_text().replace("daily, storage", "'03:00', storage"))
    saved = tmp_path / "p.json"
    r = run("-c", cfg, "plan", "--out", saved, env=env)
    assert r.rc == 0, r
    api(sim, "PUT", "cluster/backup/nightly", storage="local")
    r = run("-c", cfg, "apply", saved, "--yes", env=env)
    assert r.rc != 0, r
    assert "backup job nightly changed" in r.err, r
    assert api(sim, "GET", "cluster/backup/nightly")["schedule"] == "daily"


def test_guests_join_their_declared_pool(sim, env, tmp_path):
    # a new guest gets its pool when created; an existing one of this
    # project moves to the pool its YAML names (PUT /pools/ID vms, allow-move)
    text = ("project: lab\npools:\n  - {name: red}\n  - {name: blue}\nguests:\n"
            "  - {name: p1, node: pve1, memory: 256, pool: red, disks: [{storage: local-lvm, size: 2G}]}\n"
            "  - {name: p2, node: pve1, memory: 256, pool: red, disks: [{storage: local-lvm, size: 2G}]}\n")
    cfg = write(tmp_path, text)
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    pools = {p["poolid"]: p for p in api(sim, "GET", "pools")}
    assert pools["red"]["comment"] == "[pvelab:lab]"
    live = {g["name"]: g for g in api(sim, "GET", "cluster/resources", type="vm")}
    assert live["p1"]["pool"] == "red" and live["p2"]["pool"] == "red"
    assert plan_json(cfg, env)["changes"] == []

    cfg.write_text(text.replace("pool: red", "pool: blue"))
    plan = plan_json(cfg, env)
    (c,) = plan["changes"]
    assert (c["action"], c["guest"], c["class"], c["what"]) == ("pool", "blue", "update", "pool members")
    vms = sorted(str(live[n]["vmid"]) for n in ("p1", "p2"))
    assert c["params"] == {"vms": ",".join(vms), "allow-move": True}
    r = run("-c", cfg, "apply", "--yes", env=env)
    assert r.rc == 0, r
    live = {g["name"]: g for g in api(sim, "GET", "cluster/resources", type="vm")}
    assert live["p1"]["pool"] == "blue" and live["p2"]["pool"] == "blue"
    assert plan_json(cfg, env)["changes"] == []

    # a pool nobody declared and the cluster lacks blocks the plan
    cfg.write_text(text.replace("pool: red", "pool: green"))
    plan = plan_json(cfg, env)
    assert any(b["guest"] == "pool green" and "does not exist" in b["reason"]
               for b in plan["blocked"]), plan["blocked"]


def test_a_profile_plans_the_storages_and_pools_its_guests_need(sim, env, tmp_path):
    cfg = write(tmp_path, """
project: lab
storages:
  - {name: fast, type: dir, path: /mnt/fast, content: [images, rootdir]}
  - {name: other, type: dir, path: /mnt/other, content: [images]}
pools:
  - {name: media}
  - {name: unused}
backups:
  - {id: nightly, schedule: "02:30", storage: local, all: true}
guests:
  - {name: jelly, vmid: 140, memory: 512, pool: media, disks: [{size: 4G, storage: fast}]}
  - {name: other, vmid: 141, memory: 512, disks: [{size: 4G, storage: other}]}
profiles:
  media: [jelly]
""")
    plan = plan_json(cfg, env, "--profile", "media")
    got = sorted((c["action"], c["guest"]) for c in plan["changes"])
    # jelly, the storage its disk is on and the pool it joins; nothing else
    assert got == [("create", "jelly"), ("pool", "media"), ("storage", "fast")], got
    r = run("-c", cfg, "apply", "--profile", "media", "--yes", env=env)
    assert r.rc == 0, r
    assert [p["poolid"] for p in api(sim, "GET", "pools") if p["poolid"] == "media"] == ["media"]
    assert next(g for g in api(sim, "GET", "cluster/resources", type="vm")
                if g["vmid"] == 140).get("pool") == "media"
    assert run("-c", cfg, "plan", "--profile", "media", "--detailed-exitcode", env=env).rc == 0
    rest = sorted((c["action"], c["guest"]) for c in plan_json(cfg, env)["changes"])
    assert ("backup_job", "nightly") in rest and ("storage", "other") in rest
    assert ("pool", "unused") in rest and ("create", "other") in rest


def test_import_merge_adds_storages_jobs_and_pools_to_their_lists(sim, env, tmp_path):
    api(sim, "POST", "cluster/backup", id="handmade", schedule="sun 01:00", storage="nas",
        vmid="300", mode="stop", comment="weekly by hand")
    post(sim, "storage", storage="media", type="nfs", server="10.0.0.9",
         export="/srv/media", path="/mnt/pve/media", content="iso,vztmpl", nodes="pve1")
    api(sim, "POST", "pools", poolid="handpool", comment="by hand")
    cfg = write(tmp_path, """\
# my lab, by hand
project: lab
storages:
  # the NAS share
  - {name: backups, type: dir, path: /mnt/backups, content: [backup]}
pools: []
guests: []
""")
    assert run("-c", cfg, "apply", "--yes", env=env).rc == 0
    before = cfg.read_text()
    r = run("-c", cfg, "import", "storage:media", "pool:handpool", "backup-job:handmade",
            "--out", cfg, "--merge", env=env)
    assert r.rc == 0, r
    text = cfg.read_text()
    # everything written by hand is kept, comments included; each entry went
    # into its own list
    assert text.startswith(before.split("pools: []")[0])
    assert "# the NAS share" in text and "# my lab, by hand" in text
    import yaml
    doc = yaml.safe_load(text)
    assert [s["name"] for s in doc["storages"]] == ["backups", "media"]
    assert [p["name"] for p in doc["pools"]] == ["handpool"]
    assert [b["id"] for b in doc["backups"]] == ["handmade"]
    plan = plan_json(cfg, env)
    assert plan["changes"] == [] and plan["blocked"] == [], plan
    assert {j["id"]: j for j in api(sim, "GET", "cluster/backup")}["handmade"]["comment"] == \
        "weekly by hand [pvelab:lab]"
    # a second time: the file declares them already; nothing is written
    r = run("-c", cfg, "import", "storage:media", "--out", cfg, "--merge", env=env)
    assert r.rc != 0 and "already declares storages 'media'" in r.err, r
    assert cfg.read_text() == text
