"""`pvelab validate`: every error at once, located file:line:col with its key,
over a corpus of bad configs (tests/configs/bad) that must never crash."""
import glob
import os
import re

import pytest

from conftest import SRC, run

BAD = sorted(glob.glob(os.path.join(SRC, "tests", "configs", "bad", "*.yaml")))

EXPECT = {
    "unknown-key.yaml": r":3:5: error: guests\[0\]\.memroy: unknown key \(did you mean 'memory'\?\)",
    "vmid-range.yaml": r":3:5: error: guests\[0\]\.vmid: 42 is out of range",
    "duplicate-name.yaml": r":3:5: error: guests\[1\]\.name: duplicate guest name 'a' \(first used at line 2\)",
    "duplicate-ip.yaml": r":5:17: error: guests\[1\]\.networks\[0\]\.ip: duplicate IP address '10\.0\.0\.1'",
    "bad-size.yaml": r":4:9: error: guests\[0\]\.disks\[0\]\.size: expected a size",
    "syntax.yaml": r"syntax\.yaml:\d+:\d+: error: ",
    "bad-ip.yaml": r"guests\[0\]\.networks\[0\]: ip: invalid format",
    "vm-only.yaml": r":5:5: error: guests\[0\]\.hostpci: only for VMs",
    "disk-option.yaml": r"guests\[0\]\.disks\[0\]: cache: value 'fastest' does not have a value in the enumeration",
    "not-a-list.yaml": r":1:1: error: guests: expected a list",
    "bad-alias.yaml": r"error: ",
    "bad-range.yaml": r"vmids: expected a range",
    "profile-member.yaml": r"profiles\.full\[0\]: 'nosuch' is neither a category nor a guest name",
    "duplicate-mac.yaml": r"duplicate MAC address 'BC:24:11:00:00:01'",
    "binary.yaml": r"binary\.yaml.*error: ",
}


@pytest.mark.parametrize("path", BAD, ids=os.path.basename)
def test_bad_config_is_located(path):
    r = run("validate", path)
    assert r.rc == 1, r
    assert r.rc != -11 and "AddressSanitizer" not in r.err
    pattern = EXPECT[os.path.basename(path)]
    assert re.search(pattern, r.err), (pattern, r.err)
    j = run("-o", "json", "validate", path).json()
    assert j["valid"] is False and j["errors"] >= 1


def test_corpus_is_complete():
    assert set(EXPECT) == {os.path.basename(p) for p in BAD}


def test_every_error_at_once(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("guests:\n  - name: a\n    cors: 2\n    memory: lots\n  - name: a\n")
    r = run("-c", str(cfg), "validate")
    assert r.rc == 1
    lines = [l for l in r.err.splitlines() if ": error: " in l]
    assert len(lines) == 3, r.err
    assert "3 errors" in r.err


def test_valid_config(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("defaults: &d\n  memory: 1G\nguests:\n  - name: a\n    <<: *d\n")
    r = run("validate", str(cfg))
    assert r.rc == 0, r
    assert "valid (1 guest," in r.out


def test_missing_file():
    r = run("validate", "/nonexistent/pvelab.yaml")
    assert r.rc == 1 and "cannot open '/nonexistent/pvelab.yaml'" in r.err


def test_docs_config_md_is_generated_from_schema():
    r = run("config-schema")
    assert r.rc == 0
    with open(os.path.join(SRC, "docs", "config.md")) as f:
        assert f.read() == r.out, "docs/config.md is stale: run pvelab config-schema > docs/config.md"
