#!/usr/bin/python3
"""bench/checks_scrape.py: drives Prometheus blackbox_exporter as Prometheus
would for bench/checks.sh — every target's /probe once per interval, spread
evenly over it, on keep-alive connections — and prints JSON: probes done,
failed, and the p50/p99 of probe_duration_seconds blackbox reports.
Usage: checks_scrape.py EXPORTER_URL MODULE TARGETS_FILE INTERVAL SECONDS"""
import http.client
import json
import queue
import sys
import threading
import time
import urllib.parse

url, module, targets_file, interval, seconds = sys.argv[1:6]
interval, seconds = float(interval), float(seconds)
targets = [t.strip() for t in open(targets_file) if t.strip()]
u = urllib.parse.urlparse(url)
work = queue.Queue()
lock = threading.Lock()
done, failed, durations = 0, 0, []


def worker():
    global done, failed
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    while True:
        t = work.get()
        if t is None:
            return
        q = urllib.parse.urlencode({"module": module, "target": t})
        try:
            c.request("GET", "/probe?" + q)
            body = c.getresponse().read().decode()
        except Exception:
            c.close()
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            with lock:
                failed += 1
            continue
        ok = "\nprobe_success 1" in "\n" + body
        dur = None
        for line in body.splitlines():
            if line.startswith("probe_duration_seconds "):
                dur = float(line.split()[1])
        with lock:
            done += 1
            failed += 0 if ok else 1
            if dur is not None:
                durations.append(dur)


threads = [threading.Thread(target=worker, daemon=True) for _ in range(32)]
for t in threads:
    t.start()
start = time.monotonic()
step = interval / len(targets)
i = 0
while True:
    due = start + i * step
    if due - start >= seconds:
        break
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    work.put(targets[i % len(targets)])
    i += 1
for _ in threads:
    work.put(None)
for t in threads:
    t.join()
durations.sort()
pick = (lambda p: durations[min(len(durations) - 1, int(p * len(durations)))] * 1e3
        if durations else 0)
print(json.dumps({"probes": done, "failed": failed, "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                  "wall": time.monotonic() - start}))
