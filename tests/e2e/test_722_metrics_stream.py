"""The metrics answer sent in parts as its client reads (chunked transfer
coding): of a 3,000-guest cluster, the same samples plain, gzipped, over
HTTP/1.0 and over keep-alive; clients that stop reading mid-answer hold the
server's memory to a part each, not to a whole answer, while other scrapes
go on, and are closed after request_timeout."""
import gzip
import os
import socket

import pytest
import requests

from simfix import start_sim, stop_sim
from test_700_serve import Server, sim_env, until

STALLED = 8


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def samples(text):
    """The pve_* samples (pvelab's own series move between two answers)."""
    return sorted(line for line in text.splitlines() if line.startswith("pve_"))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    sim = start_sim("--nodes", "4", "--guests", "3000")
    (d / "pvelab.yaml").write_text("serve:\n  status_interval: 60\n  sync_interval: 600\n"
                                   "  request_timeout: 3\n  metrics:\n    auth: none\n")
    env = sim_env(sim, d / "state.db")
    # under ASan, memory freed is held in quarantine and counts as resident:
    # none here, so that the resident size is the memory in use
    env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                  "quarantine_size_mb=0"]))
    srv = Server("--listen", "127.0.0.1:0", "-c", d / "pvelab.yaml", env=env)
    url = srv.url + "/metrics"
    until(lambda: requests.get(url, timeout=60).text.count("\npve_guest_info{") == 3000,
          "the first resource list", deadline=240)
    yield srv, url
    assert srv.stop() == 0, srv.err
    rc, err = stop_sim(sim)
    assert rc == 0, err


def established_peers(port):
    """The peer ports of the ESTABLISHED IPv4 connections whose local port is port."""
    peers = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, remote, state = line.split()[1:4]
            if state == "01" and int(local.split(":")[1], 16) == port:
                peers.add(int(remote.split(":")[1], 16))
    return peers


def raw_get(srv, path, version="1.1", rcvbuf=None):
    host, port = srv.url.split("//")[1].split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(60)
    if rcvbuf:  # a fixed receive buffer: no autotuning (tcp_rmem's max can hold a whole answer)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, int(port)))
    s.sendall(f"GET {path} HTTP/{version}\r\nHost: {host}\r\n\r\n".encode())
    return s


def test_same_samples_every_way(big):
    srv, url = big
    plain = requests.get(url, timeout=60)
    assert plain.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in plain.headers
    text = plain.text
    assert len(text) > 4_000_000  # many parts, pve_ha_state split
    assert text.count("\npve_guest_info{") == 3000
    want = samples(text)
    z = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60)
    assert z.headers["Content-Encoding"] == "gzip"
    assert samples(gzip.decompress(z.raw.read()).decode()) == want
    om = requests.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                      timeout=60).text
    assert om.endswith("# EOF\n")
    # HTTP/1.0 has no chunks: the answer ends with the connection
    s = raw_get(srv, "/metrics", "1.0")
    got = b""
    while chunk := s.recv(1 << 20):
        got += chunk
    s.close()
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert b"chunked" not in head.lower()
    assert samples(body.decode()) == want
    # two answers one after the other on one connection
    with requests.Session() as sess:
        for _ in range(2):
            assert samples(sess.get(url, timeout=60).text) == want


def test_stalled_clients_hold_a_part_each(big):
    srv, url = big
    size = len(requests.get(url, timeout=60).content)
    before = rss(srv.proc.pid)
    fds_before = fds(srv.proc.pid)
    socks = []
    for _ in range(STALLED):
        s = raw_get(srv, "/metrics", rcvbuf=64 << 10)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        socks.append(s)  # and read no more
    # the others are served meanwhile, whole
    for _ in range(3):
        r = requests.get(url, timeout=60)
        assert r.status_code == 200 and r.text.count("\npve_guest_info{") == 3000
    grown = rss(srv.proc.pid) - before
    # a whole answer each would be STALLED * size (main before the parts:
    # 34 MB here); a part each is ~1 MB (7.5 MB, 11.5 MB under ASan)
    print(f"{STALLED} stalled clients, {size} bytes an answer: {grown} bytes more resident")
    assert grown < STALLED * size / 2, (grown, size)
    # closed after request_timeout (3 s without a byte taken): the server's
    # side of each stalled connection leaves ESTABLISHED (a count of its fds
    # would also see other connections close), and reading on finds the
    # answer cut
    server_port = int(srv.url.rsplit(":", 1)[1])
    stalled = {s.getsockname()[1] for s in socks}
    until(lambda: not stalled & established_peers(server_port), "the stalled clients closed",
          deadline=60)
    until(lambda: fds(srv.proc.pid) <= fds_before, "the server's sockets closed", deadline=60)
    for s in socks:
        got = 0
        try:
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
        s.close()
        assert got < size
    assert requests.get(srv.url + "/healthz", timeout=30).status_code == 200
