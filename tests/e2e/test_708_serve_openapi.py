"""The OpenAPI document of `pvelab serve` checked by a real validator
(@apidevtools/swagger-parser, tests/openapi/), and every operation it lists
called for real: each answer's status, media type and body must be what the
document says (python3-jsonschema). Reads are called with real guests, nodes
and runs; writes with names that do not exist, so nothing changes."""
import json
import os
import subprocess

import jsonschema  # python3-jsonschema (scripts/install-deps)
import pytest
import requests

from conftest import SRC, run
from simfix import start_sim, stop_sim
from test_700_serve import Server, sim_env, until

OPENAPI = os.path.join(SRC, "tests", "openapi")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    sim = start_sim("--nodes", "2", "--guests", "6")
    d = tmp_path_factory.mktemp("openapi")
    env = sim_env(sim, d / "state.db")
    assert run("sync", env=env).rc == 0
    r = run("token", "create", "adm", "--role", "admin", env=env)
    assert r.rc == 0, r
    cfg = d / "pvelab.yaml"
    cfg.write_text("serve:\n  status_interval: 1\n  sync_interval: 3600\n"
                   "snapshot_policies:\n  - {label: daily, keep: 2, guests: [100000]}\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", cfg, env=env)
    h = {"Authorization": "Bearer " + r.out.strip()}
    until(lambda: requests.get(srv.url + "/api/v1/sync", headers=h, timeout=20)
          .json()["sync"]["state"] == "ok", "the first sync")
    doc = requests.get(srv.url + "/api/v1/openapi.json", headers=h, timeout=20).json()
    yield {"url": srv.url, "h": h, "doc": doc, "dir": d}
    assert srv.stop() == 0, srv.err
    stop_sim(sim)


def test_the_document_passes_a_real_validator(lab):
    assert os.path.isdir(os.path.join(OPENAPI, "node_modules")), \
        "tests/openapi/node_modules is missing (scripts/install-deps npm runs npm ci there)"
    f = lab["dir"] / "openapi.json"
    f.write_text(json.dumps(lab["doc"]))
    p = subprocess.run(["node", os.path.join(OPENAPI, "validate.mjs"), str(f)], cwd=OPENAPI,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.stdout, p.stderr)


def documented(doc, path, method, status, ctype, body):
    """The answer against what the document says of path/method for status."""
    responses = doc["paths"][path][method]["responses"]
    resp = responses.get(str(status), responses.get("default"))
    assert resp is not None, (method, path, status, "status not in the document")
    content = resp.get("content")
    if not body:
        return  # no body: nothing to hold against a schema
    assert content, (method, path, status, "a body the document does not announce")
    media = (ctype or "").split(";")[0].strip()
    declared = {k.split(";")[0].strip(): v for k, v in content.items()}
    assert (media in declared or media.split("/")[0] + "/*" in declared or "*/*" in declared), \
        (method, path, status, media, list(declared))
    if media == "application/json" and body != b"-":
        schema = dict(declared[media]["schema"], components=doc["components"])
        jsonschema.Draft202012Validator(schema).validate(json.loads(body))


def test_every_operation_answers_as_the_document_says(lab):
    url, h, doc = lab["url"], lab["h"], lab["doc"]
    guests = requests.get(url + "/api/v1/guests", headers=h, timeout=20).json()
    runs = requests.get(url + "/api/v1/runs", headers=h, timeout=20).json()
    real = {"guest": guests[0]["name"], "node": guests[0]["node"], "id": str(runs[0]["id"]),
            "label": "daily", "name": "nope", "file": "app.js", "service": "nope"}
    seen = []
    for path, ops in doc["paths"].items():
        for method in ops:
            # reads with real names; writes with ones that do not exist
            values = real if method == "get" else {k: "nope" for k in real}
            if path == "/api/v1/actions/{id}" or method != "get":
                values = dict(values, id="999999")
            concrete = path
            for k, v in values.items():
                concrete = concrete.replace("{" + k + "}", v)
            assert "{" not in concrete, (path, "a path parameter this test cannot fill")
            stream = path in ("/api/v1/events", "/mcp") and method == "get"
            r = requests.request(method.upper(), url + concrete, headers=h, timeout=30,
                                 stream=stream)
            body = b"" if stream else r.content
            r.close()
            assert r.status_code < 500, (method, concrete, r.status_code, r.text)
            documented(doc, path, method, r.status_code, r.headers.get("Content-Type"), body)
            if stream and r.status_code == 200:  # a stream: its media type, unread
                documented(doc, path, method, 200, r.headers["Content-Type"], b"-")
            seen.append((method, path, r.status_code))
    print("\n" + "\n".join(f"{m.upper()} {p} -> {s}" for m, p, s in seen))
    # the reads of the REST API answered with real data
    ok = {(m, p) for m, p, s in seen if s == 200}
    for p in ("/api/v1/cluster", "/api/v1/nodes", "/api/v1/guests", "/api/v1/guests/{guest}",
              "/api/v1/guests/{guest}/history", "/api/v1/runs", "/api/v1/runs/{id}", "/api/v1/sync",
              "/api/v1/guests/{guest}/snapshots", "/api/v1/snapshot-policies", "/healthz",
              "/api/v1/openapi.json", "/api/v1/events"):
        assert ("get", p) in ok, p
