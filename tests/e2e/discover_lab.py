"""A loopback lab for `pvelab discover` tests: real services from Debian's
packages where they exist (sshd, Xtigervnc) and small protocol responders
written for the tests (X.224/RDP, Redfish over TLS
serving the real captures from tests/data/redfish/, IPMI RMCP pong, a silent
port), and `pvelab sim` for Proxmox VE. Every service binds its own address in
NET.0/24, a /24 of the loopback range 127.0.0.0/8 that this test process has to
itself (claim_net), so that two test runs on one machine never meet; nothing
leaves loopback."""
import fcntl
import http.server
import json
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import warnings


def _bound_addresses():
    """Every IPv4 address a TCP or UDP socket on this machine is bound to."""
    seen = set()
    for table in ("/proc/net/tcp", "/proc/net/udp"):
        try:
            with open(table) as f:
                next(f)
                for ln in f:
                    hexaddr = ln.split()[1].split(":")[0]
                    seen.add(socket.inet_ntoa(struct.pack("<I", int(hexaddr, 16))))
        except OSError:
            pass
    return seen


def claim_net():
    """A /24 inside 127.0.0.0/8 (not 127.0.0.x) for this process alone: the
    first of a sequence derived from the pid whose lock file nobody holds and
    on which no socket is bound. The lock (an flock on /tmp/pvelab-lab-NET.lock,
    held until the process ends) keeps two concurrent runs off one /24; the
    check keeps the lab off addresses something else uses. Returns the prefix
    "127.a.b" and the open lock file."""
    pid = os.getpid()
    for k in range(512):
        n = (pid * 31 + k * 7919) % (200 * 250)
        net = f"127.{20 + n // 250}.{1 + n % 250}"
        fd = os.open(f"/tmp/pvelab-lab-{net}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if not any(a.startswith(net + ".") for a in _bound_addresses()):
            return net, fd
        os.close(fd)
    raise RuntimeError("no free /24 in 127.0.0.0/8 for the discovery lab")


NET, _NET_LOCK = claim_net()


def _wait_port(addr, port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((addr, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def make_cert(tmp, name, subject, expired=False):
    """Self-signed certificate (RSA 2048); expired=True backdates it with faketime."""
    key = os.path.join(tmp, name + ".key")
    crt = os.path.join(tmp, name + ".crt")
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
           "-out", crt, "-days", "30" if expired else "365", "-subj", subject]
    if expired:
        if not shutil.which("faketime"):
            return None
        cmd = ["faketime", "2020-01-01 00:00:00"] + cmd
    subprocess.run(cmd, check=True, capture_output=True)
    return crt, key


class _Thread:
    """A listening socket served by a thread; stop() closes it."""

    def __init__(self, sock, target):
        self.sock = sock
        self.stopped = False
        self.t = threading.Thread(target=target, daemon=True)
        self.t.start()

    def stop(self):
        self.stopped = True
        try:
            # shutdown() wakes a thread blocked in accept() and stops listening
            # at once; close() alone leaves the socket alive until accept returns
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _listen(addr, port, kind=socket.SOCK_STREAM, backlog=16):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if kind == socket.SOCK_STREAM:
        s.listen(backlog)
    return s


def _accept_loop(srv, handle):
    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=_guard, args=(handle, c), daemon=True).start()
    return loop


def _guard(handle, c):
    try:
        c.settimeout(5)
        handle(c)
    except OSError:
        pass
    finally:
        try:
            c.close()
        except OSError:
            pass


def _recv_exact(c, n):
    b = b""
    while len(b) < n:
        k = c.recv(n - len(b))
        if not k:
            break
        b += k
    return b


def _until_closed(c, timeout=5.0):
    """Keep a connection open until the client closes it (or timeout)."""
    c.settimeout(timeout)
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass


def rdp_responder(addr, port=3389):
    """Answers an X.224 Connection Request like a Windows host: a Connection
    Confirm with an RDP Negotiation Response selecting CredSSP (hybrid) when
    asked for, else TLS, else standard RDP security."""
    def handle(c):
        head = _recv_exact(c, 4)
        if len(head) < 4 or head[0] != 3:
            return
        rest = _recv_exact(c, struct.unpack(">H", head[2:4])[0] - 4)
        req = 0
        i = rest.find(b"\x01\x00\x08\x00")
        if i >= 0 and len(rest) >= i + 8:
            req = struct.unpack("<I", rest[i + 4:i + 8])[0]
        sel = 2 if req & 2 else 1 if req & 1 else 0
        cc = bytes([0x0e, 0xd0, 0, 0, 0x12, 0x34, 0]) + struct.pack("<BBHI", 2, 0x1f, 8, sel)
        c.sendall(struct.pack(">BBH", 3, 0, 4 + len(cc)) + cc)
        _until_closed(c)
    srv = _listen(addr, port)
    return _Thread(srv, _accept_loop(srv, handle))


def rfb_responder(addr, port=5900):
    """A minimal RFB 3.8 server offering VNC Authentication (used when
    Xtigervnc cannot run)."""
    def handle(c):
        c.sendall(b"RFB 003.008\n")
        v = _recv_exact(c, 12)
        if v.startswith(b"RFB "):
            c.sendall(bytes([1, 2]))
            c.recv(1)
    srv = _listen(addr, port)
    return _Thread(srv, _accept_loop(srv, handle))


def banner_server(addr, port, banner):
    """Sends a banner line on connect (an SSH-like server for --save tests)."""
    def handle(c):
        c.sendall(banner)
        _until_closed(c)
    srv = _listen(addr, port)
    return _Thread(srv, _accept_loop(srv, handle))


def mute_server(addr, port):
    """Accepts and never says anything: an open port that does not answer."""
    def handle(c):
        c.settimeout(10)
        try:
            c.recv(1)
        except OSError:
            pass
    srv = _listen(addr, port)
    return _Thread(srv, _accept_loop(srv, handle))


class SilentPort:
    """A listening socket whose accept queue is full and never drained: Linux
    then drops new SYNs, so a connect() there gets no answer at all, as from
    a firewalled port."""

    def __init__(self, addr, port):
        self.srv = _listen(addr, port, backlog=0)
        self.fillers = []
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect((addr, port))
            except BlockingIOError:
                pass
            self.fillers.append(f)
        # full once the queue holds a connection (the others stay unanswered)
        _, done, _ = select.select([], self.fillers, [], 10)
        assert done, f"the accept queue of {addr}:{port} never filled"

    def stop(self):
        for f in self.fillers:
            f.close()
        self.srv.close()


def ipmi_responder(addr, port=623):
    """Answers an RMCP/ASF Presence Ping with a Presence Pong (IPMI supported)."""
    srv = _listen(addr, port, kind=socket.SOCK_DGRAM)

    def loop():
        while True:
            try:
                data, peer = srv.recvfrom(512)
            except OSError:
                return
            if len(data) >= 12 and data[8] == 0x80:
                pong = bytes([6, 0, 0xff, 6, 0, 0, 0x11, 0xbe, 0x40, data[9], 0, 0x10])
                pong += struct.pack(">II", 4542, 0) + bytes([0x81, 0]) + bytes(6)
                srv.sendto(pong, peer)
    return _Thread(srv, loop)


class _HTTPS(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx):
        super().__init__(addr, handler)
        self.ctx = ctx

    def handle_error(self, request, client_address):
        pass  # a prober that hangs up before the (delayed) answer is expected

    def get_request(self):
        sock, peer = self.socket.accept()
        # the handshake runs in the handler's thread, never in accept()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), peer


def _serve(addr, port, handler, ctx):
    srv = _HTTPS((addr, port), handler, ctx)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()

    class Stopper:
        def stop(self):
            srv.shutdown()
            srv.server_close()
    return Stopper()


def _ctx(cert, legacy=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    if legacy:
        # an old BMC: TLS 1.0 only, which needs security level 0 in OpenSSL 3
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
    return ctx


def redfish_server(addr, capture_dir, cert, legacy=False, root=None, port=443):
    """Serves a captured Redfish service root over TLS, open to anyone as the
    standard says, and 401 for every other path, as a BMC answers without
    credentials."""
    if root is None:
        with open(os.path.join(capture_dir, "redfish_v1.json"), "rb") as f:
            root = f.read()
    index = None
    if capture_dir and os.path.exists(os.path.join(capture_dir, "redfish.json")):
        with open(os.path.join(capture_dir, "redfish.json"), "rb") as f:
            index = f.read()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self):
            return "Appweb/4.5"

        def log_message(self, *a):
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            if path in ("/redfish/v1", "/redfish/v1/"):
                body, code = root, 200
            elif path in ("/redfish", "/redfish/") and index:
                body, code = index, 200
            else:
                body = json.dumps({"error": {"code": "Base.1.0.GeneralError",
                                             "message": "Unauthorized"}}).encode()
                code = 401
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="RedfishService"')
            self.send_header("Content-Type", "application/json;odata.metadata=minimal")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
    return _serve(addr, port, H, _ctx(cert, legacy))


def start_sim(addr, port=8006):
    """`pvelab sim` on addr:port: the project's Proxmox VE simulator, which
    answers like pveproxy (Server: pve-api-daemon/3.0, 401 "No ticket" after
    PVE's 3 s delay for unauthenticated calls)."""
    from conftest import BIN
    p = subprocess.Popen([BIN, "sim", "--listen", f"{addr}:{port}"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, preexec_fn=_die_with_parent)
    line = p.stdout.readline()
    if not line.startswith("{"):
        p.kill()
        p.wait()
        raise RuntimeError(f"pvelab sim did not start on {addr}:{port}")
    return p


def pbs_server(addr, cert, port=8007, delay=3.0):
    """Answers like Proxmox Backup Server's proxy without credentials: the API
    delays its 401 by 3 s (proxmox-rest-server's delay_unauth_time) with a
    {"data": null, ...} body; the index page at / is served at once, titled
    "<node> - Proxmox Backup Server" (www/index.hbs). No Server header."""
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send_response(self, code, message=None):
            self.send_response_only(code, message)
            self.send_header("Date", self.date_time_string())

        def do_GET(self):
            if self.path.startswith("/api2/"):
                time.sleep(delay)
                self.send_response(401, "Unauthorized")
                body = b'{"data":null,"message":"authentication failed"}'
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            else:
                self.send_response(200)
                body = (b"<!DOCTYPE html><html><head><title>pbs - Proxmox Backup Server"
                        b"</title></head><body></body></html>")
                self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
    return _serve(addr, port, H, _ctx(cert))


def _die_with_parent():
    """preexec_fn: the service gets SIGTERM when the test process dies, so an
    interrupted test run leaves no sshd or Xtigervnc behind."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except OSError:
        pass


def start_sshd(addr, tmp):
    """Debian's OpenSSH server on addr:22 with a throwaway host key; None when
    it cannot run here (not root, or not installed)."""
    sshd = "/usr/sbin/sshd"
    if os.geteuid() != 0 or not os.path.exists(sshd) or not shutil.which("ssh-keygen"):
        return None
    key = os.path.join(tmp, "ssh_host_ed25519_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    cfg = os.path.join(tmp, "sshd_config")
    with open(cfg, "w") as f:
        f.write(f"Port 22\nListenAddress {addr}\nHostKey {key}\n"
                f"PidFile {tmp}/sshd.pid\nUsePAM no\nPasswordAuthentication no\n")
    os.makedirs("/run/sshd", exist_ok=True)
    p = subprocess.Popen([sshd, "-D", "-e", "-f", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    if not _wait_port(addr, 22, 5):
        p.kill()
        p.wait()
        return None
    return p


def start_xvnc(addr, tmp, port=5900):
    """TigerVNC's Xtigervnc bound to addr:port; None when it cannot run here."""
    xvnc = shutil.which("Xtigervnc")
    if not xvnc:
        return None
    # displays from one derived from this run's NET: concurrent labs try apart
    first = 100 + int(NET.split(".")[2])
    for disp in range(first, first + 20):
        if os.path.exists(f"/tmp/.X11-unix/X{disp}") or os.path.exists(f"/tmp/.X{disp}-lock"):
            continue
        p = subprocess.Popen([xvnc, f":{disp}", "-interface", addr, "-rfbport", str(port),
                              "-SecurityTypes", "None", "-nolisten", "tcp",
                              # every probe hangs up after reading the security
                              # types, which TigerVNC counts as a failure and
                              # blacklists the client after 5 of them
                              "-BlacklistThreshold", "100000",
                              "-desktop", "pvelab-test"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
                             preexec_fn=_die_with_parent)
        if _wait_port(addr, port, 5):
            return p
        p.kill()
        p.wait()
    return None


class Lab:
    """NET.2 sshd, .3 VNC, .4 RDP, .5 Proxmox VE, .6 iDRAC9 (fw 6.00),
    .7 legacy iDRAC (Redfish 1.0.2, TLS 1.0, expired certificate), .8
    Supermicro X13, .9 iDRAC9 (fw 3.34), .12 Proxmox Backup Server, .13 IPMI
    on 623/udp."""

    def __init__(self, testdata):
        self.tmp = tempfile.mkdtemp(prefix="pvelab-discover-")
        self.stops = []
        self.procs = []
        self.notes = {}
        rf = os.path.join(testdata, "redfish")
        try:
            p = start_sshd(f"{NET}.2", self.tmp)
            if p:
                self.procs.append(p)
            self.notes["sshd"] = p is not None
            p = start_xvnc(f"{NET}.3", self.tmp)
            if p:
                self.procs.append(p)
                self.notes["vnc"] = "Xtigervnc"
            else:
                self.stops.append(rfb_responder(f"{NET}.3"))
                self.notes["vnc"] = "python"
            self.stops.append(rdp_responder(f"{NET}.4"))
            self.procs.append(start_sim(f"{NET}.5"))
            dell = make_cert(self.tmp, "idrac", "/C=US/O=Dell Inc./CN=idrac-F54P1G3")
            self.stops.append(redfish_server(
                f"{NET}.6", os.path.join(rf, "idrac9_fw6.00.30.00_R750_libredfish-mockup"), dell))
            old = make_cert(self.tmp, "old", "/O=Dell Inc./CN=idrac-legacy", expired=True)
            self.notes["expired_cert"] = old is not None
            try:
                self.stops.append(redfish_server(
                    f"{NET}.7", os.path.join(rf, "idrac_legacy_redfish1.0.2_dora-comment"),
                    old or dell, legacy=True))
                self.notes["tls10"] = True
            except ssl.SSLError:
                self.stops.append(redfish_server(
                    f"{NET}.7", os.path.join(rf, "idrac_legacy_redfish1.0.2_dora-comment"),
                    old or dell))
                self.notes["tls10"] = False
            smc = make_cert(self.tmp, "smc", "/O=Super Micro Computer/CN=IPMI")
            self.stops.append(redfish_server(
                f"{NET}.8", os.path.join(rf, "X13_SYS-821GE-TNHR_bmc11.01.01_libredfish-mockup"),
                smc))
            self.stops.append(redfish_server(
                f"{NET}.9", os.path.join(rf, "idrac9_fw3.34.34.34_14G_R640_sushy-oem-idrac"), dell))
            pbs = make_cert(self.tmp, "pbs", "/O=Proxmox Backup Server/OU=pbs/CN=pbs")
            self.stops.append(pbs_server(f"{NET}.12", pbs))
            self.stops.append(ipmi_responder(f"{NET}.13"))
            for a, port in ((f"{NET}.4", 3389), (f"{NET}.5", 8006), (f"{NET}.6", 443),
                            (f"{NET}.7", 443), (f"{NET}.8", 443), (f"{NET}.9", 443), (f"{NET}.12", 8007)):
                assert _wait_port(a, port), f"{a}:{port} did not start"
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for s in self.stops:
            s.stop()
        for p in self.procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
