"""The docs and the command table agree (issue 18): docs/commands.md is
generated from the table; every command, option and environment variable that
README.md, docs/*.md and `pvelab help` name exists, with the command it is
shown with; every option of the table appears in its command's usage line."""
import glob
import os
import re

import pytest

from conftest import SRC, run

TABLE = {c["name"]: c for c in run("-o", "json", "help").json()}
GLOBAL = {"config": "c", "output": "o", "verbose": "v", "quiet": "q", "no-color": None,
          "cluster": None,
          "help": "h"}
TOP_ONLY = {"version": "V"}  # before the command
DOCS = [os.path.join(SRC, "README.md")] + sorted(glob.glob(os.path.join(SRC, "docs", "*.md")))


def env_vars():
    out = run("help").out
    block = out.split("\nenvironment", 1)[1]
    return set(re.findall(r"^  ([A-Z][A-Z0-9_]+) ", block, re.M))


def code_segments(text):
    """Code as a reader would type it: fenced blocks (continuation lines that
    start with blanks joined to the line before) and `inline` spans."""
    segs = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        line = ""
        for raw in block.split("\n"):
            if raw.startswith((" ", "\t")) and line:
                line += " " + raw.strip()
            else:
                if line:
                    segs.append(line)
                line = raw.rstrip("\\").strip()
        if line:
            segs.append(line)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    segs += re.findall(r"`([^`\n]+)`", prose)
    return segs


def invocations(seg, long_only=False):
    """(command, [options]) for each `pvelab COMMAND ...` in a code segment."""
    found = []
    for m in re.finditer(r"(?<![\w@.!/-])pvelab((?:\s+-[\w-]+(?:[ =](?:json|text|\S+\.ya?ml))?)*)"
                         r"\s+([a-z][a-z-]*)([^;|&#(),]*)", seg):
        cmd = m.group(2)
        rest = m.group(3)
        opts = re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)" if long_only else
                          r"(?<![\w-])(--?[a-zA-Z][\w-]*)", m.group(1) + " " + rest)
        found.append((cmd, opts))
    return found


def known(cmd, opt):
    c = TABLE[cmd]
    names = {o["name"]: o.get("short") for o in c["options"]}
    names.update(GLOBAL)
    if opt.startswith("--"):
        return opt[2:].split("=")[0] in names
    return opt[1:2] in {s for s in names.values() if s}


def test_commands_md_is_generated_from_the_table():
    r = run("help", "--markdown")
    assert r.rc == 0
    with open(os.path.join(SRC, "docs", "commands.md")) as f:
        assert f.read() == r.out, "docs/commands.md is stale: pvelab help --markdown > docs/commands.md"


@pytest.mark.parametrize("path", DOCS, ids=os.path.basename)
def test_every_command_and_option_in_the_docs_exists(path):
    with open(path) as f:
        text = f.read()
    bad = []
    for seg in code_segments(text):
        for cmd, opts in invocations(seg):
            if cmd not in TABLE:
                # prose such as `pvelab.yaml` is excluded by the pattern; a
                # word after pvelab in code must be a command
                bad.append(f"{seg!r}: no command '{cmd}'")
                continue
            for o in opts:
                if not known(cmd, o):
                    bad.append(f"{seg!r}: '{cmd}' has no option '{o}'")
    # any --option in prose belongs to some command
    every = {o["name"] for c in TABLE.values() for o in c["options"]} | set(GLOBAL) | set(TOP_ONLY)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    for m in re.finditer(r"`[^`\n]*`", prose):
        if re.search(r"\b(pveum|pvenode|pvesh|qm|pct|curl|certutil|openssl|ssh|apt|git|make|docker|"
                     r"python3|pytest|cmake|bash|sudo|security)\b", m.group(0)):
            continue
        for o in re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", m.group(0)):
            if o not in every:
                bad.append(f"{m.group(0)!r}: no command has '--{o}'")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", DOCS, ids=os.path.basename)
def test_every_environment_variable_in_the_docs_exists(path):
    with open(path) as f:
        named = set(re.findall(r"\b(PVELAB_[A-Z_]+|NO_COLOR)\b", f.read()))
    assert named <= env_vars(), named - env_vars()


def test_help_and_command_help_name_only_what_exists():
    for name in TABLE:
        text = run("help", name).out
        # sentences may wrap; table columns are two spaces apart
        for seg in re.split(r"\s{2,}|\n\n", text.replace(" \n", " ")):
            for cmd, opts in invocations(seg.replace("\n", " "), long_only=True):
                if cmd in TABLE:
                    for o in opts:
                        assert known(cmd, o), (name, cmd, o, seg)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_usage_line_shows_every_option(name):
    c = TABLE[name]
    if "[options]" in c["usage"]:
        return
    for o in c["options"]:
        assert f"--{o['name']}" in c["usage"] or (o.get("short") and f"-{o['short']} " in c["usage"]), \
            (name, o["name"], c["usage"])


def test_every_table_option_is_documented():
    with open(os.path.join(SRC, "docs", "commands.md")) as f:
        ref = f.read()
    for name, c in TABLE.items():
        section = ref.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        for o in c["options"]:
            assert f"--{o['name']}" in section, (name, o["name"])
    for var in env_vars():
        assert f"`{var}`" in ref
