#!/usr/bin/env bash
# bench/metrics.sh: Prometheus scrapes of one 10,000-guest `pvelab sim`, through
# `pvelab serve` (/metrics and the exporter's /pve) and through
# prometheus-pve-exporter v3.10.0 (the reference library's unmodified copy and
# launcher, on Debian's python3-proxmoxer, -prometheus-client, -werkzeug, -wrapt
# and gunicorn: scripts/install-deps bench), with its config collector on (its
# default) and off. Each scrape as Prometheus makes it (bench/metrics_scrape.py):
# its Accept header, gzip, the whole answer read. pvelab refreshes its picture
# every 10 seconds (status_interval's default: PVE's own pvestatd moves the
# figures every 10 s) and is scraped every second, its CPU per scrape
# including its refresh's share; then again with status_interval: 1, where
# every scrape finds a new picture and pays a whole refresh. Prints median and p99 latency, CPU per scrape (the scraped
# process and its children; the simulator's own CPU, i.e. the load on the
# cluster, apart), the ratios, the uncompressed exposition's render time and
# the memory the answers cost pvelab, the CPU of a refresh alone (no scrape
# for IDLE seconds: per status read).
# With BASE=another pvelab binary (say main's before a change), that one is
# run the same way against the same simulator, after BIN, and its scrapes,
# ratios, exposition and refresh figures printed beside BIN's.
# Usage: bench/metrics.sh [BIN]  (SCRAPES=30 RENDERS=30 IDLE=20 GUESTS=10000
#   NODES=16 PEER=../shared/peers/prometheus-pve-exporter BASE=)
set -euo pipefail
BIN=$(realpath "${1:-${PVELAB_BIN:-build/pvelab}}")
BASE=${BASE:+$(realpath "$BASE")}
SCRAPES=${SCRAPES:-30}
RENDERS=${RENDERS:-30}
IDLE=${IDLE:-20}
GUESTS=${GUESTS:-10000}
NODES=${NODES:-16}
here=$(cd "$(dirname "$0")" && pwd)
PEER=${PEER:-$here/../../shared/peers/prometheus-pve-exporter}
. "$here/lib.sh"
[ -x "$PEER/run.sh" ] || { echo "no prometheus-pve-exporter launcher at $PEER" >&2; exit 1; }
PY=/usr/bin/python3

cpu_of() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
rss_of() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
hwm_of() { awk '/^VmHWM:/ {print $2 * 1024}' "/proc/$1/status"; }
# the simulator on 127.0.0.1:SIM_PORT, every server started here on a free
# port above it (PORTS: 19200-19299 by default, the bench's range here)
PORTS=${PORTS:-19200}
export SIM_PORT=${SIM_PORT:-$PORTS}
port() { $PY -c 'import socket, sys
for p in range(int(sys.argv[1]) + 1, int(sys.argv[1]) + 100):
    try:
        s = socket.socket(); s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass' "$PORTS"; }
p99() { sort -n | awk '{a[NR]=$1} END {i = int(0.99 * NR); if (i < 0.99 * NR) i++; print a[i]}'; }
wait_http() { for _ in $(seq 1 600); do curl -fso /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
# scrape NAME URL INTERVAL PID: SCRAPES scrapes; the result line goes to $tmp/NAME.json
scrape() {
	local s0 s1
	s0=$(cpu_of "$sim_pid")
	$PY "$here/metrics_scrape.py" "$2" "$SCRAPES" "$3" "$4" >"$tmp/$1.json"
	s1=$(cpu_of "$sim_pid")
	$PY - "$tmp/$1.json" "$s0" "$s1" <<-'PYEOF'
	import json, sys
	p = sys.argv[1]; d = json.load(open(p)); d["sim_cpu"] = float(sys.argv[3]) - float(sys.argv[2])
	json.dump(d, open(p, "w"))
	PYEOF
}

start_sim "$BIN" --nodes "$NODES" --guests "$GUESTS" --auth-delay-ms 0
host=${PVELAB_URL#https://}
echo "sim: $NODES nodes, $GUESTS guests at $PVELAB_URL; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# pvelab serve, refreshing every STATUS seconds: NAME-metrics.json, NAME-pve.json, NAME.extra
serve_run() {
	local name=$1 status=$2 bin=${3:-$BIN} pp
	echo "$name: $bin, status_interval $status; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'serve:\n  status_interval: %s\n  metrics:\n    auth: none\n' "$status" >"$tmp/pvelab.yaml"
	pp=$(port)
	rm -f "$tmp"/state.db*
	PVELAB_STATE="$tmp/state.db" "$bin" -q -c "$tmp/pvelab.yaml" serve --listen "127.0.0.1:$pp" \
		>"$tmp/serve.out" 2>"$tmp/serve.err" &
	serve_pid=$!
	wait_http "http://127.0.0.1:$pp/healthz"
	for _ in $(seq 1 600); do # the first full sync, and the reads after it
		case $(curl -fs "http://127.0.0.1:$pp/metrics" || true) in
		*'pvelab_refresh_age_seconds{kind="guest_reads"}'*) break ;;
		esac
		sleep 0.2
	done
	rss0=$(rss_of $serve_pid)
	hwm0=$(hwm_of $serve_pid)
	# the refresh alone: CPU over IDLE seconds with no scrape (per status read)
	c0=$(cpu_of $serve_pid)
	sleep "$IDLE"
	c1=$(cpu_of $serve_pid)
	idle=$(awk -v a="$c0" -v b="$c1" -v t="$IDLE" -v s="$status" 'BEGIN {print (b - a) / t * s}')
	scrape "$name-metrics" "http://127.0.0.1:$pp/metrics" 1 $serve_pid
	scrape "$name-pve" "http://127.0.0.1:$pp/pve?target=$host&cluster=1&node=1" 1 $serve_pid
	rss1=$(rss_of $serve_pid)
	# the exposition made from scratch: an uncompressed answer keeps nothing
	# (no compressed family to splice in); each answer says how long the one
	# before took (pvelab_metrics_render_seconds: before streamed answers,
	# the writing alone; since, until all but the last part is sent), and
	# curl how long the whole answer took to arrive; the CPU is the server's
	# over the RENDERS answers (sending them and its refresh's share included)
	: >"$tmp/render"
	: >"$tmp/wall"
	curl -fso /dev/null "http://127.0.0.1:$pp/metrics"
	c0=$(cpu_of $serve_pid)
	for _ in $(seq 1 "$RENDERS"); do
		curl -fs -o "$tmp/answer" -w '%{time_total}\n' "http://127.0.0.1:$pp/metrics" >>"$tmp/wall"
		awk '/^pvelab_metrics_render_seconds /{print $2}' "$tmp/answer" >>"$tmp/render"
	done
	c1=$(cpu_of $serve_pid)
	render_cpu=$(awk -v a="$c0" -v b="$c1" -v n="$RENDERS" 'BEGIN {print (b - a) / n}')
	echo "$(median <"$tmp/render") $(p99 <"$tmp/render") $render_cpu $idle $rss0 $rss1" \
		"$(median <"$tmp/wall") $(p99 <"$tmp/wall") $hwm0 $(hwm_of $serve_pid) $(rss_of $serve_pid)" \
		>"$tmp/$name.extra"
	kill $serve_pid
	wait $serve_pid 2>/dev/null || true
	serve_pid=
}
serve_pid=
trap '[ -z "$serve_pid" ] || kill $serve_pid 2>/dev/null || true; [ -z "${exp_pid:-}" ] || kill $exp_pid 2>/dev/null || true; cleanup' EXIT
serve_run pvelab10 10
serve_run pvelab1 1
if [ -n "$BASE" ]; then
	serve_run base10 10 "$BASE"
	serve_run base1 1 "$BASE"
fi

# prometheus-pve-exporter, config collector on (default) and off
for mode in on off; do
	ep=$(port)
	flags=()
	[ $mode = off ] && flags=(--no-collector.config)
	"$PEER/run.sh" "$host" "${PVELAB_TOKEN%%=*}" "${PVELAB_TOKEN#*=}" "$ep" "${flags[@]}" \
		>"$tmp/exporter-$mode.log" 2>&1 &
	exp_pid=$!
	wait_http "http://127.0.0.1:$ep/metrics"
	scrape "exporter-config-$mode" "http://127.0.0.1:$ep/pve?target=${host%:*}&cluster=1&node=1" 1 $exp_pid
	kill $exp_pid
	wait $exp_pid 2>/dev/null || true
	exp_pid=
done

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY - "$tmp" "$SCRAPES" <<'EOF'
import json, math, statistics, sys
tmp, n = sys.argv[1], int(sys.argv[2])
rows = {}
import os
for name in ("pvelab10-metrics", "pvelab10-pve", "pvelab1-metrics", "pvelab1-pve",
             "base10-metrics", "base10-pve", "base1-metrics", "base1-pve",
             "exporter-config-on", "exporter-config-off"):
    if not os.path.exists(f"{tmp}/{name}.json"):
        continue  # BASE's, when none was given
    d = json.load(open(f"{tmp}/{name}.json"))
    w = sorted(d["walls"])
    rows[name] = {"median": statistics.median(w), "p99": w[math.ceil(0.99 * len(w)) - 1],
                  "cpu": d["cpu"] / n, "sim": d["sim_cpu"] / n, "samples": d["samples"],
                  "inflate": statistics.median(d["inflates"])}
# inflate: the scraper's own decompression of the answer (median), part of
# the wall time and the floor of any server sending these bytes gzipped
print(f"{'':22} {'median':>10} {'p99':>10} {'CPU/scrape':>11} {'sim CPU/scrape':>15} {'samples':>8}"
      f" {'inflate':>9}")
for k, r in rows.items():
    print(f"{k:22} {r['median']*1000:8.1f}ms {r['p99']*1000:8.1f}ms {r['cpu']*1000:9.1f}ms "
          f"{r['sim']*1000:13.1f}ms {r['samples']:8d} {r['inflate']*1000:7.1f}ms")
for name, status in [(b, s) for b in ("pvelab", "base") for s in ("10", "1")]:
    if f"{name}{status}-pve" not in rows:
        continue
    pv = rows[f"{name}{status}-pve"]
    for mode in ("on", "off"):
        e = rows[f"exporter-config-{mode}"]
        print(f"exporter (config {mode}) / {name} /pve (status_interval {status}): "
              f"{e['median'] / pv['median']:.0f}x the median, {e['p99'] / pv['p99']:.0f}x the p99, "
              f"{e['cpu'] / pv['cpu']:.1f}x the CPU, "
              f"{e['sim'] / max(pv['sim'], 1e-9):.1f}x the simulator's CPU")
e = rows["exporter-config-on"]
for name, status in [(b, s) for b in ("pvelab", "base") for s in ("10", "1")]:
    if not os.path.exists(f"{tmp}/{name}{status}.extra"):
        continue
    render, r99, rcpu, idle, rss0, rss1, wall, w99, hwm0, hwm1, rss2 = \
        open(f"{tmp}/{name}{status}.extra").read().split()
    render, r99, rcpu, wall, w99 = float(render), float(r99), float(rcpu), float(wall), float(w99)
    print(f"{name} (status_interval {status}): exposition from scratch (uncompressed, nothing "
          f"kept, {rows[f'pvelab{status}-metrics']['samples']} samples of pvelab's) median "
          f"{render*1000:.1f} ms, p99 {r99*1000:.1f} ms, CPU {rcpu*1000:.1f} ms per answer; "
          f"the exporter's (every scrape from scratch, config on) median {e['median']*1000:.0f} ms, "
          f"p99 {e['p99']*1000:.0f} ms, CPU {e['cpu']*1000:.0f} ms: "
          f"{e['median']/render:.0f}x, {e['p99']/r99:.0f}x, {e['cpu']/rcpu:.0f}x")
    print(f"{name} (status_interval {status}): the same uncompressed answers as the client "
          f"sees them (curl, the whole answer read): median {wall*1000:.1f} ms, p99 "
          f"{w99*1000:.1f} ms")
    print(f"{name} (status_interval {status}): refresh CPU, no scrapes: {float(idle)*1000:.1f} ms "
          f"per status read (resource list and the metrics' cluster reads)")
    print(f"{name} (status_interval {status}): resident {int(rss0)/2**20:.1f} MiB before the "
          f"first scrape, {int(rss1)/2**20:.1f} MiB after {2*n} "
          f"({(int(rss1)-int(rss0))/2**20:+.1f} MiB), {int(rss2)/2**20:.1f} MiB after "
          f"{n} more uncompressed ({(int(rss2)-int(rss0))/2**20:+.1f} MiB); peak (VmHWM) "
          f"{int(hwm0)/2**20:.1f} MiB before the first scrape, {int(hwm1)/2**20:.1f} MiB at "
          f"the end ({(int(hwm1)-int(hwm0))/2**20:+.1f} MiB)")
EOF
