#!/usr/bin/python3
"""Scrapes a metrics endpoint as Prometheus does (its Accept header, gzip,
one keep-alive connection, one scrape every INTERVAL seconds) and prints one
JSON line: every scrape's wall time (the answer received, then inflated: the
inflating alone is the scraper's floor, the same for any server of these
bytes), the samples of the last answer, and the CPU the listed processes
(and their children) used meanwhile.
usage: metrics_scrape.py URL SCRAPES INTERVAL PID [PID...]"""
import json
import os
import sys
import time
import zlib

import requests

ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
          "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
TICK = os.sysconf("SC_CLK_TCK")


def tree(pids):
    """The processes given and all their descendants."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError:
                pass
    out, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo += kids.get(p, [])
    return out


def cpu(pids):
    """user + system seconds of these processes (and their reaped children)."""
    total = 0
    for p in tree(pids):
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
        except OSError:
            pass
    return total / TICK


def rss(pids):
    total = 0
    for p in tree(pids):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def main():
    url, n, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    pids = [int(p) for p in sys.argv[4:]]
    s = requests.Session()
    s.headers.update({"Accept": ACCEPT, "Accept-Encoding": "gzip"})
    r = s.get(url, timeout=600)  # a first scrape, not counted: connections made
    r.raise_for_status()
    rss0, c0, walls, inflates = rss(pids), cpu(pids), [], []
    start = time.monotonic()
    for i in range(n):
        t = time.monotonic()
        r = s.get(url, timeout=600, stream=True)
        raw = r.raw.read(decode_content=False)
        t1 = time.monotonic()
        # read whole and decompressed, as Prometheus does
        gz = r.headers.get("Content-Encoding") == "gzip"
        body = zlib.decompressobj(31).decompress(raw) if gz else raw
        walls.append(time.monotonic() - t)
        inflates.append(time.monotonic() - t1)
        r.raise_for_status()
        nxt = start + (i + 1) * interval
        if nxt > time.monotonic():
            time.sleep(nxt - time.monotonic())
    c1 = cpu(pids)
    text = body.decode()
    samples = sum(1 for line in text.splitlines() if line and line[0] != "#")
    print(json.dumps({"walls": walls, "inflates": inflates, "cpu": c1 - c0, "samples": samples,
                      "bytes_gzip": len(raw) if gz else None,
                      "bytes": len(body), "rss_before": rss0, "rss_after": rss(pids),
                      "seconds": time.monotonic() - start}))


if __name__ == "__main__":
    main()
