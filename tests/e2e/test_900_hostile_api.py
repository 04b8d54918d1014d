"""A hostile or broken API endpoint: an endless guest list, a gzip bomb, one
endless string, a slow drip. Each sync must end with one clean error line,
within a deadline and an address-space limit (issue 17 item 2)."""
import time
import zlib

import pytest

from hostile import Server, one_line, pve_basics, run_limited

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\n")


def sync_env(srv, tmp_path, **kw):
    e = {"PVELAB_URL": srv.url, "PVELAB_TOKEN": "root@pam!t=s3cr3t",
         "PVELAB_FINGERPRINT": srv.fp, "PVELAB_STATE": str(tmp_path / "s.db")}
    e.update(kw)
    return e


@pytest.fixture
def serve(tmp_path):
    made = []

    def start(listing):
        def handler(path, s):
            r = pve_basics(path, s)
            if r is not None:
                return r
            listing(s)
            return False
        srv = Server(str(tmp_path), handler)
        made.append(srv)
        return srv
    yield start
    for s in made:
        s.close()


def endless(s, first, more):
    s.sendall(HEAD + b"\r\n" + first)
    chunk = more * ((1 << 20) // len(more))
    while True:
        s.sendall(chunk)


def test_endless_list_hits_the_body_cap(serve, tmp_path):
    srv = serve(lambda s: endless(s, b'{"data":[{"type":"storage","id":"storage/n1/a"}',
                                  b',{"type":"storage","id":"storage/n1/a"}'))
    rc, _, err, _ = run_limited(["sync"], sync_env(srv, tmp_path))
    assert rc == 1
    assert "/cluster/resources" in one_line(err)
    assert "is larger than 67108864 bytes" in err


def gzip_of(first, filler, total):
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(first)]
    block = filler * (1 << 20)
    for _ in range(total >> 20):
        out.append(z.compress(block))
    out.append(z.flush())
    return b"".join(out)


@pytest.fixture(scope="module")
def space_bomb():
    # 1 GiB of whitespace inside the list: about 1 MiB on the wire.
    return gzip_of(b'{"data":[', b" ", 1 << 30)


def send_gzip(s, body):
    s.sendall(HEAD + b"Content-Encoding: gzip\r\n\r\n" + body)


def test_gzip_bomb_counts_decompressed_bytes(serve, tmp_path, space_bomb):
    srv = serve(lambda s: send_gzip(s, space_bomb))
    rc, _, err, _ = run_limited(["sync"], sync_env(srv, tmp_path, PVELAB_TIMEOUT="20"))
    assert rc == 1
    assert "is larger than 67108864 bytes" in one_line(err)


def test_gzip_bomb_of_one_string_is_refused(serve, tmp_path):
    bomb = gzip_of(b'{"data":[{"type":"qemu","vmid":100,"node":"n1","name":"', b"a", 256 << 20)
    srv = serve(lambda s: send_gzip(s, bomb))
    rc, _, err, _ = run_limited(["sync"], sync_env(srv, tmp_path, PVELAB_TIMEOUT="20"))
    assert rc == 1
    line = one_line(err)
    assert "fatal" not in line and "/cluster/resources" in line


def test_endless_string_is_refused(serve, tmp_path):
    srv = serve(lambda s: endless(s, b'{"data":[{"type":"qemu","vmid":100,"name":"', b"a"))
    rc, _, err, _ = run_limited(["sync"], sync_env(srv, tmp_path))
    assert rc == 1
    line = one_line(err)
    # refused at the string cap, long before the 30 s request timeout
    assert "fatal" not in line and "timed out" not in line and "/cluster/resources" in line


def test_slow_drip_times_out(serve, tmp_path):
    def drip(s):
        s.sendall(HEAD + b"\r\n" + b'{"data":[')
        while True:
            s.sendall(b" ")
            time.sleep(0.2)
    srv = serve(drip)
    rc, _, err, _ = run_limited(["sync"], sync_env(srv, tmp_path, PVELAB_TIMEOUT="2"))
    assert rc == 1
    assert "timed out after 2000 ms" in one_line(err)


def test_no_core_dump_while_holding_a_token(serve, tmp_path):
    import os
    import subprocess
    from conftest import BIN

    def hang(s):
        time.sleep(60)
    srv = serve(hang)
    e = dict(os.environ, **sync_env(srv, tmp_path, PVELAB_TIMEOUT="30"))
    # started with a core limit, as a shell with `ulimit -c unlimited` would
    p = subprocess.Popen(["prlimit", "--core=unlimited", "--", BIN, "sync"], env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not any("type=vm" in x for x in srv.paths):  # the token has been sent
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.05)
        limits = open(f"/proc/{p.pid}/limits").read()
        row = next(l for l in limits.splitlines() if l.startswith("Max core file size"))
        assert row.split()[4:6] == ["0", "0"], row
    finally:
        p.kill()
        p.wait()
