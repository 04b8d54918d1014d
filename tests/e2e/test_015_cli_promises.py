"""The command line's promises, for every command of the table (read from
`pvelab help -o json`, so a new command is covered the day it is added): no
crash on a typo, exit 64 and one line for a usage error, --help everywhere,
global options on either side of the command. Run it against the ASan build
too: PVELAB_BIN=build-san/pvelab."""
import os
import re
import subprocess

import pytest

from conftest import BIN, Result, run

TABLE = run("-o", "json", "help").json()
NAMES = [c["name"] for c in TABLE]
# these serve until killed when they are given nothing to refuse
SERVES = {"sim", "proxy", "serve"}


@pytest.fixture
def bare(tmp_path):
    """A directory with no config and no state, and an environment that
    names no cluster: nothing may reach a network."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("PVELAB_")}
    e.update({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")})

    def go(*args):
        p = subprocess.run([BIN, *args], capture_output=True, text=True, env=e,
                           cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)
        return Result(p)
    return go


def no_crash(r):
    # a signal shows as a negative code (or 128+N through a shell); ASan exits 1
    # with its report on stderr
    assert 0 <= r.rc < 128, r
    assert "AddressSanitizer" not in r.err and "runtime error" not in r.err, r


def one_line_usage_error(r):
    no_crash(r)
    assert r.rc == 64, r
    lines = r.err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("pvelab: "), r


def one_line_error(r):
    # "pvelab: ..." or, from validate, "FILE: error: ..."
    no_crash(r)
    lines = r.err.strip("\n").split("\n")
    assert len(lines) == 1 and re.match(r"^(pvelab|[^ ]+: error): ", lines[0]), r


def test_the_table_is_exposed():
    assert len(TABLE) >= 20
    for c in TABLE:
        assert c["usage"] is not None and c["summary"]
        assert c["max_args"] == -1 or c["max_args"] >= c["min_args"]


@pytest.mark.parametrize("name", NAMES)
def test_no_arguments(bare, name):
    if name in SERVES:
        pytest.skip("serves until killed")
    r = bare(name)
    cmd = next(c for c in TABLE if c["name"] == name)
    if cmd["min_args"] > 0:
        one_line_usage_error(r)
        assert "missing " in r.err and "missing arguments" not in r.err, r  # names them
    elif r.rc != 0:
        one_line_error(r)
    else:
        no_crash(r)


@pytest.mark.parametrize("name", NAMES)
def test_help_option(bare, name):
    for flag in ("--help", "-h"):
        r = bare(name, flag)
        assert r.rc == 0, r
        assert r.out.startswith(f"usage: pvelab {name}"), r
        assert r.out == run("help", name).out


@pytest.mark.parametrize("name", NAMES)
def test_garbage_positional(bare, name):
    cmd = next(c for c in TABLE if c["name"] == name)
    for junk in ("zz%garbage", "0", "-5", "1abc", "../..", "x" * 300):
        args = [name, "--", junk] if junk.startswith("-") else [name, junk]
        if cmd["min_args"] > 1:  # snapshot GUEST NAME, propstr FORMAT VALUE
            args += [junk] * (cmd["min_args"] - 1)
        if name in ("help",) and junk == "0":
            continue
        r = bare(*args)
        if cmd["max_args"] == 0:
            one_line_usage_error(r)
            assert "unexpected argument" in r.err
        elif r.rc != 0:
            one_line_error(r)
            assert r.rc in (1, 64), r
        else:
            no_crash(r)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option(bare, name):
    for bad in ("--no-such-option", "-%", "--seed-typo=x"):
        r = bare(name, bad)
        one_line_usage_error(r)
        assert "unknown option" in r.err


@pytest.mark.parametrize("name", NAMES)
def test_each_option_missing_its_value(bare, name):
    cmd = next(c for c in TABLE if c["name"] == name)
    opts = [o for o in cmd["options"] if o["arg"]]
    opts += [{"name": "config", "arg": "FILE", "short": "c"},
             {"name": "output", "arg": "FORMAT", "short": "o"}]
    for o in opts:
        r = bare(name, "--" + o["name"])
        one_line_usage_error(r)
        assert f"option '--{o['name']}' needs a value" in r.err
        if o.get("short"):
            r = bare(name, "-" + o["short"])
            one_line_usage_error(r)
            assert f"option '-{o['short']}' needs a value" in r.err


@pytest.mark.parametrize("name", [c["name"] for c in TABLE if any(o["arg"] for o in c["options"])])
def test_bad_number_is_a_usage_error(bare, name):
    cmd = next(c for c in TABLE if c["name"] == name)
    extra = ["x"] * cmd["min_args"]
    for o in cmd["options"]:
        if o["arg"] in ("N", "MS", "SECS", "M"):
            r = bare(name, "--" + o["name"], "abc", *extra)
            one_line_usage_error(r)
            assert "is not a number" in r.err


def test_top_level_help_version_and_bare():
    r = run("--help")
    assert r.rc == 0 and r.out == run("help").out
    assert run("-h").out == r.out
    v = run("version").out
    for flag in ("--version", "-V"):
        r = run(flag)
        assert r.rc == 0 and r.out == v, r
    r = run()
    assert r.rc == 64 and r.out == "" and "\n  sync " in r.err, r
    assert run("-h", "sync").out == run("help", "sync").out
    r = run("--bogus")
    one_line_usage_error(r)
    assert "unknown option '--bogus'" in r.err and "help:" not in r.err


def test_the_crashes_new_users_met():
    for args in (["sim", "examples/sim/demo.yaml"], ["rollback", "abc"], ["rollback", "0"],
                 ["rollback", "1abc"], ["rollback", "--", "-5"]):
        r = run(*args)
        one_line_usage_error(r)


def test_global_options_anywhere(tmp_path):
    # -v after the command sets the log level as before it does: the session
    # logs which config it read at info level
    cfg = tmp_path / "none.yaml"
    before = run("-v", "-c", cfg, "status", env={"PVELAB_STATE": str(tmp_path / "s.db")})
    after = run("status", "-c", cfg, "-v", env={"PVELAB_STATE": str(tmp_path / "s.db")})
    assert before.rc == after.rc
    assert before.err == after.err
    assert run("version", "-q", "-v").rc == 0
    assert run("version", "--no-color", "-o", "json").json()["version"]


def test_help_names_every_environment_variable():
    out = run("help").out
    for var in ("PVELAB_URL", "PVELAB_TOKEN", "PVELAB_USER", "PVELAB_PASSWORD",
                "PVELAB_FINGERPRINT", "PVELAB_CA_FILE", "PVELAB_TIMEOUT",
                "PVELAB_CONCURRENCY", "PVELAB_STATE", "PVELAB_LOG", "NO_COLOR"):
        assert re.search(rf"^  {var} ", out, re.M), var
