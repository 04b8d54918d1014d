"""`pvelab serve`'s drain and requests still coming in: a request only partly
received when SIGTERM comes is waited for and answered before the process
exits (its headers or its body split by the signal), one whose client never
finishes it is cut at its request timeout, and idle connections are closed
at once."""
import json
import signal
import socket

import pytest
import requests

from test_701_serve_life import Server, read_response, token, until


def server_read_all(port, client):
    """Whether the server's end of the connection from client has nothing
    left unread in the kernel (/proc/net/tcp's rx_queue): what was sent is in
    the server's buffers."""
    local = f"0100007F:{port:04X}"
    remote = f"0100007F:{client.getsockname()[1]:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            col = line.split()
            if col[1] == local and col[2] == remote:
                return int(col[4].split(":")[1], 16) == 0
    return False


def half_sent(srv, first):
    """A connection that has sent first (part of a request), read by the server."""
    s = socket.create_connection((srv.host, srv.port), timeout=30)
    s.sendall(first)
    until(lambda: server_read_all(srv.port, s), "the server to read the first part")
    return s


def serve(tmp_path, yaml=""):
    state = tmp_path / "s.db"
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("serve:\n  drain_timeout: 60\n" + yaml)
    tokens = {"viewer": token(state), "operator": token(state, "operator")}
    return Server("--listen", "127.0.0.1:0", "-c", cfg, env={"PVELAB_STATE": str(state)}), tokens


def test_a_request_half_sent_when_the_drain_starts_is_answered(tmp_path):
    srv, tok = serve(tmp_path)
    try:
        auth = b"Authorization: Bearer " + tok["viewer"].encode() + b"\r\n"
        # one stopped inside its headers, one inside its body, one idle
        heads = half_sent(srv, b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n")
        body = b"{ }"
        bodied = half_sent(srv, b"POST /api/v1/sync HTTP/1.1\r\nHost: x\r\n"
                           b"Authorization: Bearer " + tok["operator"].encode() + b"\r\n"
                           b"Content-Type: application/json\r\n"
                           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:1])
        idle = socket.create_connection((srv.host, srv.port), timeout=30)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle)[0] == 200
        srv.signal(signal.SIGTERM)
        srv.logged("draining")
        assert srv.err().count("its request is coming in: answered before the stop") == 2
        # the idle keep-alive connection is closed, no new one is taken
        assert idle.recv(1) == b""
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(srv.url + "/healthz", timeout=5)
        assert srv.proc.poll() is None  # it waits for the two
        heads.sendall(auth + b"\r\n")
        status, answer = read_response(heads)
        assert status == 200 and isinstance(json.loads(answer), list)
        assert heads.recv(1) == b""  # Connection: close, then closed
        assert srv.proc.poll() is None  # still the body to come
        bodied.sendall(body[1:])
        status, answer = read_response(bodied)
        # the whole body reached the route, which has no cluster to sync
        assert status == 503 and json.loads(answer)["error"]["code"] == "no_cluster", answer
        assert srv.wait() == 0, srv.err()
        assert "drained, stopping" in srv.err()
        assert "drain deadline reached" not in srv.err()
        for s in (heads, bodied, idle):
            s.close()
    finally:
        srv.stop()


def test_a_request_never_finished_is_cut_at_its_timeout_and_the_drain_ends(tmp_path):
    srv, _ = serve(tmp_path, "  request_timeout: 2\n")
    try:
        s = half_sent(srv, b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n")
        srv.signal(signal.SIGTERM)
        srv.logged("its request is coming in")
        # cut by the request timeout, long before the 60 s drain_timeout
        assert srv.wait(timeout=40) == 0, srv.err()
        assert "closed before its request was all in" in srv.err()
        assert "drained, stopping" in srv.err()
        assert "drain deadline reached" not in srv.err()
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
    finally:
        srv.stop()
