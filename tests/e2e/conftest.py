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


def run(*args, env=None, cwd=None, input=None, timeout=120):
    """Run the pvelab binary; returns a Result (never raises on exit codes)."""
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    if env:
        e.update(env)
    proc = subprocess.run([BIN, *[str(a) for a in args]], capture_output=True, text=True,
                          env=e, cwd=cwd, input=input, timeout=timeout)
    return Result(proc)


@pytest.fixture
def pvelab():
    return run


@pytest.fixture
def testdata():
    return TESTDATA
