"""examples/gitops as a CI runs it, on this machine: ci/pvelab-steps validates,
plans against `pvelab sim` seeded from the repository (exit 2 with a change,
0 without, the plan in the job summary), applies against a cluster named by
the environment and posts a notification; the pre-commit hook of
.pre-commit-hooks.yaml runs `pvelab validate`; the GitHub and GitLab files call
those steps on the events the issue names."""
import http.server
import os
import shutil
import subprocess
import threading

import yaml

from conftest import BIN, SRC
from simfix import start_sim, stop_sim

GITOPS = os.path.join(SRC, "examples", "gitops")


def repo(tmp_path):
    """A copy of the example repository, as a user's clone would be."""
    d = tmp_path / "homelab"
    shutil.copytree(GITOPS, d)
    return d


def steps(d, *args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PVELAB_", "GITHUB_"))}
    e.update({"PVELAB": BIN, "NO_COLOR": "1"})
    e.update(env or {})
    return subprocess.run([str(d / "ci" / "pvelab-steps"), *[str(a) for a in args]],
                          capture_output=True, text=True, env=e, timeout=120)


def test_validate(tmp_path):
    d = repo(tmp_path)
    r = steps(d, "validate")
    assert r.returncode == 0, r
    assert "valid (2 guests, project 'homelab'" in r.stdout + r.stderr
    (d / "pvelab.yaml").write_text((d / "pvelab.yaml").read_text().replace("cores: 2", "cores: two"))
    r = steps(d, "validate")
    assert r.returncode == 1, r
    assert "pvelab.yaml:" in r.stderr


def test_plan_no_change_is_0_and_a_change_is_2(tmp_path):
    d = repo(tmp_path)
    base = tmp_path / "main.yaml"
    shutil.copy(d / "pvelab.yaml", base)
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    # the pull request changes nothing: the main branch's config applied to the
    # seeded simulator, then the same config planned
    r = steps(d, "plan", base, env=env)
    assert r.returncode == 0, r
    assert "No changes." in r.stdout
    assert summary.read_text().startswith("### pvelab plan: no changes\n")
    # the pull request gives dns more memory
    (d / "pvelab.yaml").write_text((d / "pvelab.yaml").read_text().replace(
        "memory: 512M", "memory: 1G"))
    r = steps(d, "plan", base, env=env)
    assert r.returncode == 2, r
    assert "dns" in r.stdout and "memory" in r.stdout and "proxy" not in r.stdout
    text = summary.read_text()
    assert "### pvelab plan: changes\n\n```\n" in text and "memory" in text
    # no base (a first pull request): everything is to create, the summary in plan.md
    r = steps(d, "plan")
    assert r.returncode == 2, r
    assert "2 to create" in r.stdout
    assert (d / "plan.md").read_text().startswith("### pvelab plan: changes")


def test_plan_error_is_1(tmp_path):
    d = repo(tmp_path)
    cfg = (d / "pvelab.yaml").read_text()
    (d / "pvelab.yaml").write_text(cfg.replace("cores: 2", "cores: two"))
    r = steps(d, "plan")
    assert r.returncode == 1, r
    assert "failed (exit 1)" in (d / "plan.md").read_text()
    (d / "pvelab.yaml").write_text(cfg)
    (d / "sim-seed.yaml").write_text("nodes: 3\n")
    r = steps(d, "plan")
    assert r.returncode == 1 and "the simulator did not start" in r.stderr, r


class _Hook(http.server.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.got.append((self.headers["Title"], body.decode()))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def test_apply_against_the_cluster_then_notify(tmp_path):
    d = repo(tmp_path)
    sim = start_sim("--seed", d / "sim-seed.yaml")
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    _Hook.got = []
    try:
        env = {"PVELAB_URL": sim["url"], "PVELAB_TOKEN": sim["token"],
               "PVELAB_FINGERPRINT": sim["fingerprint"],
               "PVELAB_STATE": str(tmp_path / "state.db"),
               "PVELAB_NOTIFY_URL": f"http://127.0.0.1:{hook.server_address[1]}/homelab"}
        r = steps(d, "apply", env=env)
        assert r.returncode == 0, r
        assert "2 changes done" in r.stdout
        assert len(_Hook.got) == 1
        title, body = _Hook.got[0]
        assert title == "pvelab apply succeeded" and "2 changes done" in body
        # the cluster now matches: a plan of the same config has nothing to do
        r = steps(d, "plan", d / "pvelab.yaml")
        assert r.returncode == 0, r
        # without the secrets it refuses at once, naming them
        r = steps(d, "apply")
        assert r.returncode == 1 and "set PVELAB_URL" in r.stderr
    finally:
        hook.shutdown()
        hook.server_close()
        stop_sim(sim)


def test_pre_commit_hook_runs_validate(tmp_path):
    (hook,) = yaml.safe_load(open(os.path.join(SRC, ".pre-commit-hooks.yaml")))
    assert hook["id"] == "pvelab-validate" and hook["language"] == "system"
    import re
    assert re.search(hook["files"], "pvelab.yaml") and re.search(hook["files"], "lab/pvelab.yml")
    assert not re.search(hook["files"], "docs/pvelab.md")
    good = tmp_path / "pvelab.yaml"
    shutil.copy(os.path.join(GITOPS, "pvelab.yaml"), good)
    bad = tmp_path / "bad" / "pvelab.yaml"
    bad.parent.mkdir()
    bad.write_text("guests:\n  - name: x\n    memory: lots\n")
    env = dict(os.environ, PATH=os.path.dirname(BIN) + ":/usr/bin:/bin")
    # pre-commit runs `entry` with the changed files after it, as here
    run = lambda *files: subprocess.run(hook["entry"] + " " + " ".join(map(str, files)),  # noqa: E731
                                        shell=True, capture_output=True, text=True, env=env)
    r = run(good)
    assert r.returncode == 0, r
    r = run(good, bad)
    assert r.returncode != 0
    assert "memory" in r.stderr


def test_workflows_call_the_steps_on_the_right_events():
    gh = yaml.safe_load(open(os.path.join(GITOPS, ".github", "workflows", "pvelab.yml")))
    on = gh[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    plan, apply = gh["jobs"]["plan"], gh["jobs"]["apply"]
    assert "pull_request" in plan["if"]
    runs = "\n".join(s.get("run", "") for s in plan["steps"])
    assert "ci/pvelab-steps validate" in runs and "ci/pvelab-steps plan" in runs
    assert "refs/heads/main" in apply["if"]
    step = [s for s in apply["steps"] if "apply" in s.get("run", "")][0]
    assert step["env"]["PVELAB_TOKEN"] == "${{ secrets.PVELAB_TOKEN }}"
    assert "PVELAB_NOTIFY_URL" in step["env"]
    gl = yaml.safe_load(open(os.path.join(GITOPS, ".gitlab-ci.yml")))
    assert any("ci/pvelab-steps plan" in s for s in gl["plan"]["script"])
    assert gl["plan"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert gl["plan"]["artifacts"]["paths"] == ["plan.md"]
    assert any("ci/pvelab-steps apply" in s for s in gl["apply"]["script"])
    assert gl["apply"]["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    subprocess.run(["bash", "-n", os.path.join(GITOPS, "ci", "pvelab-steps")], check=True)
