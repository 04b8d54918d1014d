"""Hostile clients of `pvelab sim` (issue 17 item 7): a header flood from an
unauthenticated client is cut off at 64 KiB; secrets are given by file or
environment, never on the command line."""
import os
import socket
import ssl

import pytest

from simfix import start_sim, stop_sim


@pytest.fixture
def sim():
    info = start_sim()
    yield info
    stop_sim(info)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_header_flood_is_cut_off(sim):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    before = rss_kib(sim["proc"].pid)
    with socket.create_connection((sim["host"], sim["port"]), timeout=30) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(b"GET /api2/json/version HTTP/1.1\r\nHost: x\r\n")
            line = b"X-Flood: " + b"a" * 1000 + b"\r\n"
            sent, cut = 0, False
            try:
                while sent < (64 << 20):  # 64 MiB of headers, if nobody stops us
                    s.sendall(line * 64)
                    sent += len(line) * 64
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                cut = True
            assert cut, "the simulator read 64 MiB of headers"
    assert sent < (8 << 20), sent
    assert rss_kib(sim["proc"].pid) - before < 32 << 10


def test_secrets_from_file_and_environment(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("11111111-2222-3333-4444-555555555555\n")
    tok.chmod(0o600)
    info = start_sim("--token-file", tok)
    try:
        assert info["token"] == "root@pam!pvelab=11111111-2222-3333-4444-555555555555"
        cmdline = open(f"/proc/{info['proc'].pid}/cmdline", "rb").read()
        assert b"11111111-2222" not in cmdline
    finally:
        stop_sim(info)
    os.environ["PVELAB_SIM_PASSWORD"] = "envpass-9876"
    try:
        info = start_sim()
    finally:
        del os.environ["PVELAB_SIM_PASSWORD"]
    try:
        assert info["password"] == "envpass-9876"
    finally:
        stop_sim(info)
    tok.chmod(0o644)
    with pytest.raises(RuntimeError, match="accessible by group or others"):
        start_sim("--token-file", tok)
