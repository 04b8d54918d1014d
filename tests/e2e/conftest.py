"""Shared fixtures for pvelab's end-to-end tests: the built binary, a runner
that captures exit code and output, and a throwaway working directory.

Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/e2e
(ctest passes PVELAB_BIN; without it the default build is used)."""
import json
import os
import subprocess

import pytest

SRC = os.environ.get("PVELAB_SRC", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BIN = os.path.abspath(os.environ.get("PVELAB_BIN", os.path.join(SRC, "build", "pvelab")))
# test data copied from the reference library, with its sources (tests/data/SOURCE.md: origin, commit, licence)
TESTDATA = os.path.join(SRC, "tests", "data")


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"rc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


# PVELAB_TEST_PG=1: one real PostgreSQL for this pytest process (pgfix.py),
# and every command run() starts keeps its state there instead of the SQLite
# file its PVELAB_STATE names (one database per file).
PG = None


def pytest_sessionstart(session):
    global PG
    if os.environ.get("PVELAB_TEST_PG") == "1":
        import pgfix
        PG = pgfix.Server()


def pytest_sessionfinish(session, exitstatus):
    if PG:
        PG.stop()


def state_env(e):
    """e with its PVELAB_STATE file as a PostgreSQL database under PVELAB_TEST_PG."""
    v = e.get("PVELAB_STATE")
    if PG and v and "://" not in v and "=" not in v:
        e["PVELAB_STATE"] = PG.db_for(v)
    return e


def state_rows(path, sql, *args):
    """Rows of sql (SQLite's ? placeholders) from the store the file path
    stands for: the file, or its PostgreSQL database under PVELAB_TEST_PG."""
    if PG:
        import psycopg2
        con = psycopg2.connect(PG.db_for(path))
        try:
            cur = con.cursor()
            cur.execute(sql.replace("?", "%s"), args)
            return cur.fetchall()
        finally:
            con.close()
    import sqlite3
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def run(*args, env=None, cwd=None, input=None, timeout=120):
    """Run the pvelab binary; returns a Result (never raises on exit codes)."""
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    if env:
        e.update(env)
    state_env(e)
    proc = subprocess.run([BIN, *[str(a) for a in args]], capture_output=True, text=True,
                          env=e, cwd=cwd, input=input, timeout=timeout)
    return Result(proc)


@pytest.fixture
def pvelab():
    return run


@pytest.fixture
def testdata():
    return TESTDATA
