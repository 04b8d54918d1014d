"""The coverage tables of examples/README.md: one per example file, each row a
seed item at a real line of its seed document, and every key path a row
gives found in the example, or in a compose file one of its stacks deploys
(with the value it names) -- so the table cannot claim what the example does
not say. Also the seed's own memory total for
homelab-gitops (the running containers add up to it)."""
import glob
import os
import re

import pytest
import yaml

from conftest import SRC

EXAMPLES = os.path.join(SRC, "examples")
README = os.path.join(EXAMPLES, "README.md")
SEEDS = os.path.join(SRC, "tests", "data", "seeds")
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.yaml")))
COVERAGE = re.compile(r"^(expressed|differs|cluster|built in|outside)$")


def tables():
    """{example: (seed number, [row dicts])} from the README's Coverage part."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    assert "\n## Coverage\n" in text
    out = {}
    part = text.split("\n## Coverage\n", 1)[1]
    for m in re.finditer(r"^### `([^`]+)` \(seed (\d{3})\)\n(.*?)(?=^### |\Z)", part, re.M | re.S):
        name, seed, body = m.group(1), m.group(2), m.group(3)
        rows = []
        for line in body.splitlines():
            if not line.startswith("| ") or line.startswith("| line ") or line.startswith("|---"):
                continue
            cells = [c.strip() for c in line.strip()[1:-1].split("|")]
            assert len(cells) == 5, line
            rows.append({"line": cells[0], "item": cells[1], "coverage": cells[2],
                         "paths": re.findall(r"`([^`]+)`", cells[3]), "raw": line})
        assert name not in out, f"two tables for {name}"
        out[name] = (seed, rows)
    return out


def seed_lines(number):
    (path,) = glob.glob(os.path.join(SEEDS, number + "_*.txt"))
    with open(path, encoding="utf-8") as f:
        return os.path.basename(path), f.read().split("\n")


def merged(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        doc = yaml.safe_load(f)
    defaults = doc.get("defaults") or {}
    doc["guests"] = [{**defaults, **g} for g in doc.get("guests") or []]
    return doc


def text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def steps(path):
    """'a.b[k=v][0]' -> [('key','a'), ('key','b'), ('sel','k=v'), ('sel','0')]"""
    out, i = [], 0
    while i < len(path):
        if path[i] == "[":
            j = path.index("]", i)
            out.append(("sel", path[i + 1:j]))
            i = j + 1
        elif path[i] == ".":
            i += 1
        else:
            j = i
            while j < len(path) and path[j] not in ".[":
                j += 1
            out.append(("key", path[i:j]))
            i = j
    return out


def resolve(doc, path):
    """Every node the path names; fails when a step finds nothing."""
    nodes = [doc]
    for kind, arg in steps(path):
        nxt = []
        for n in nodes:
            if kind == "key":
                assert isinstance(n, dict) and arg in n, f"no key {arg!r} in {path!r}"
                nxt.append(n[arg])
                continue
            assert isinstance(n, list), f"{arg!r} applied to a non-list in {path!r}"
            if arg == "*":
                nxt.extend(n)
            elif arg.isdigit():
                assert int(arg) < len(n), f"no item {arg} in {path!r}"
                nxt.append(n[int(arg)])
            else:
                k, v = arg.split("=", 1)
                nxt.extend(x for x in n if isinstance(x, dict) and text(x.get(k)) == v)
        assert nxt, f"nothing at {path!r}"
        nodes = nxt
    return nodes


def referenced(doc, rel):
    """Whether a guest's stack names the file rel (relative to examples/)."""
    return any(rel in (st.get("compose") or []) + [f.get("src") for f in st.get("files") or []]
               for g in doc["guests"] for st in g.get("stacks") or [])


def check_path(doc, spec):
    path, _, want = (p.strip() for p in spec.partition(" = "))
    m = re.match(r"^([\w./-]+\.ya?ml): (.+)$", path)
    if m:  # `FILE: PATH`, a path into a file one of the example's stacks deploys
        assert referenced(doc, m.group(1)), f"no stack of the example deploys {m.group(1)}"
        with open(os.path.join(EXAMPLES, m.group(1))) as f:
            doc, path = yaml.safe_load(f), m.group(2)
    for node in resolve(doc, path):
        if want:
            assert text(node) == want, f"{path!r} is {node!r}, the table says {want!r}"


def test_one_table_per_example():
    t = tables()
    assert sorted(t) == CONFIGS, "the coverage tables and examples/*.yaml differ"
    for name, (seed, rows) in t.items():
        with open(os.path.join(EXAMPLES, name)) as f:
            head = f.readline()
        assert f"seeds/{seed}_" in head, (name, seed, head)
        assert len(rows) >= 20, (name, len(rows))


@pytest.mark.parametrize("name", CONFIGS)
def test_rows_point_at_the_seed_and_the_example(name):
    seed, rows = tables()[name]
    seed_file, lines = seed_lines(seed)
    doc = merged(name)
    for r in rows:
        assert COVERAGE.match(r["coverage"]), r["raw"]
        assert r["line"].isdigit(), r["raw"]
        n = int(r["line"])
        assert 1 <= n <= len(lines) and lines[n - 1].strip(), (seed_file, r["raw"])
        if r["coverage"] in ("expressed", "differs"):
            assert r["paths"], "an expressed row needs its key path: " + r["raw"]
        for spec in r["paths"]:
            try:
                check_path(doc, spec)
            except AssertionError as e:
                raise AssertionError(f"{name}: {r['raw']}: {e}") from None


def test_resolver_refuses_what_is_not_there():
    doc = merged("minio-spark.yaml")
    check_path(doc, "guests[name=minio].mounts[path=/var/lib/minio].size = 100G")
    for bad in ("guests[name=minio].mounts[path=/data].size",
                "guests[name=minio].memory = 8G",
                "guests[*].ssh_keys[0]",          # the VM's keys are cloud-init's
                "cluster.fingerprint",
                "minio-spark/spark.yaml: volumes",    # devlab's stack, but a key it lacks
                "minio-spark/minio.yaml: services.minio.user",
                "timeshift/compose.yaml: volumes"):   # a file no stack of this example deploys
        with pytest.raises(AssertionError):
            check_path(doc, bad)
    check_path(doc, "minio-spark/minio.yaml: services")


def test_homelab_gitops_runs_the_seeds_memory_total():
    _, lines = seed_lines("002")
    m = re.search(r"Memory Distribution \(([\d.]+)GB total\)", "\n".join(lines))
    assert m, "the seed's total is gone"
    doc = merged("homelab-gitops.yaml")
    units = {"M": 1, "G": 1024}

    def mib(v):
        v = str(v)
        return float(v[:-1]) * units[v[-1]] if v[-1] in units else float(v)

    running = sum(mib(g["memory"]) for g in doc["guests"] if g.get("state", "running") == "running")
    assert running / 1024 == float(m.group(1))
