#!/usr/bin/python3
"""Bytes written to disk per unchanged refresh of a 10,000-guest simulated
cluster: the CLI's sync (which rewrites every guest's counters, as every sync
did before pvelab serve) against pvelab serve's refresh (counters in memory).
Reads write_bytes of /proc/PID/io (the server) and ru_oublock of wait4 (the
CLI). Usage: bench/serve_writes.py [GUESTS] (PVELAB_BIN: the binary)."""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ.get("PVELAB_BIN", os.path.join(os.path.dirname(__file__), "..", "build",
                                                "pvelab"))
GUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def write_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def cli(args, env):
    p = subprocess.Popen([BIN, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    out = p.stdout.read().decode()
    p.stdout.close()
    p.stderr.close()
    assert os.waitstatus_to_exitcode(status) == 0, out
    return ru.ru_oublock * 512, out


def main():
    work = tempfile.mkdtemp(prefix="pvelab-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    sim = subprocess.Popen([BIN, "sim", "--listen", "127.0.0.1:0", "--nodes", "10", "--guests",
                            str(GUESTS), "--auth-delay-ms", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    info = json.loads(sim.stdout.readline())
    tok = info["token"] if "!" in info["token"] else "root@pam!pvelab=" + info["token"]
    env = dict(os.environ, PVELAB_URL=info["url"], PVELAB_TOKEN=tok,
               PVELAB_FINGERPRINT=info["fingerprint"], PVELAB_STATE=work + "/state.db")
    srv = None
    try:
        first, _ = cli(["sync"], env)
        resync = [cli(["sync"], env)[0] for _ in range(3)]
        secret = subprocess.run([BIN, "token", "create", "bench", "--role", "operator"], env=env,
                                capture_output=True, text=True, check=True).stdout.strip()
        cfg = work + "/pvelab.yaml"
        with open(cfg, "w") as f:
            f.write("serve:\n  listen: [127.0.0.1:0]\n  status_interval: 1\n"
                    "  sync_interval: 86400\n")
        srv = subprocess.Popen([BIN, "serve", "-c", cfg], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
        url = json.loads(srv.stdout.readline())["url"]

        def sync_info():
            req = urllib.request.Request(url + "/api/v1/sync",
                                         headers={"Authorization": "Bearer " + secret})
            return json.load(urllib.request.urlopen(req, timeout=60))

        def wait_sync(seq):
            while True:
                i = sync_info()
                if i["sync"]["seq"] >= seq and i["sync"]["state"] in ("ok", "failed"):
                    return i
                time.sleep(0.1)

        wait_sync(1)  # the start-up sync
        per_sync = []
        for _ in range(3):
            seq = sync_info()["sync"]["seq"]
            before = write_bytes(srv.pid)
            req = urllib.request.Request(url + "/api/v1/sync", method="POST", data=b"",
                                         headers={"Authorization": "Bearer " + secret})
            urllib.request.urlopen(req, timeout=60)
            i = wait_sync(seq + 1)
            assert i["sync"]["counts"]["changed"] == 0, i
            per_sync.append(write_bytes(srv.pid) - before)
        # status refreshes (every second): memory only
        n0 = sync_info()
        before = write_bytes(srv.pid)
        time.sleep(5)
        status_bytes = write_bytes(srv.pid) - before
        print(f"guests: {GUESTS}")
        print(f"CLI first sync: {first} bytes")
        print(f"CLI unchanged resync (counters rewritten): {resync} bytes")
        print(f"serve unchanged full sync (counters in memory): {per_sync} bytes")
        print(f"serve status refreshes over 5 s at 1 s interval: {status_bytes} bytes "
              f"(status age {n0['status']['age']:.1f} s)")
    finally:
        for p in (srv, sim):
            if p:
                p.terminate()
                p.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
