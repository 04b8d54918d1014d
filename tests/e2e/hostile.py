"""Helpers for the hostile-input tests (test_900_hostile_*.py): a small TLS
server on 127.0.0.1:0 that answers the Proxmox API like a broken or malicious
node, and a runner that holds the binary to an address-space limit and a
deadline, so that a regression fails instead of swapping or hanging."""
import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time

from conftest import BIN

AS_LIMIT = 1 << 30  # bytes of address space the binary may use
# AddressSanitizer reserves terabytes of shadow address space: no --as for it
SANITIZED = b"__asan_init" in open(BIN, "rb").read()
DEADLINE = 60       # seconds before a run counts as hung


def make_cert(d, cn="127.0.0.1"):
    """A self-signed certificate and key in directory d; returns (cert, key)."""
    cert, key = os.path.join(d, "srv.pem"), os.path.join(d, "srv.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=IP:{cn}"],
                   check=True, capture_output=True)
    return cert, key


def fingerprint(cert):
    der = ssl.PEM_cert_to_DER_cert(open(cert).read())
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, 64, 2))


class Server:
    """Answers every request with handler(path, sock): the handler writes a
    whole HTTP response (or never finishes one). One thread per connection."""

    def __init__(self, d, handler):
        self.cert, self.key = make_cert(d)
        self.fp = fingerprint(self.cert)
        self.handler = handler
        self.paths = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.cert, self.key)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
            buf = b""
            while not self.stop:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                self.paths.append(path)
                if not self.handler(path, s):
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.ls.close()


def reply(s, body, status="200 OK", headers=()):
    """A whole response; True: the connection stays open."""
    h = [f"HTTP/1.1 {status}", "Content-Type: application/json",
         f"Content-Length: {len(body)}", *headers]
    s.sendall(("\r\n".join(h) + "\r\n\r\n").encode() + body)
    return True


def pve_basics(path, s):
    """The answers of a one-node cluster with no guests, for the requests
    around the one under test; None when path is not one of them."""
    if "type=node" in path:
        return reply(s, b'{"data":[{"type":"node","node":"n1","status":"online",'
                        b'"id":"node/n1"}]}')
    if path.startswith("/api2/json/cluster/resources"):
        return None
    return reply(s, b'{"data":[]}')


def run_limited(args, env, as_limit=AS_LIMIT, timeout=DEADLINE):
    """Run the binary under prlimit --as; returns (rc, stdout, stderr, seconds)."""
    e = dict(os.environ)
    e.update(env)
    t0 = time.monotonic()
    limit = [] if SANITIZED else ["prlimit", f"--as={as_limit}", "--"]
    p = subprocess.run([*limit, BIN, *args], capture_output=True, text=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]
