#!/usr/bin/env bash
# bench/checks.sh: N health checks every INTERVAL seconds against one local
# nginx (Debian), run by `pvelab serve` and by Prometheus blackbox_exporter
# (Debian; driven by bench/checks_scrape.py as Prometheus would scrape it:
# each target's /probe once per interval, spread evenly) one after the other
# in the same run. Prints each one's CPU per probe (the process's own
# utime+stime over ROUNDS intervals after one warm-up round), the p50/p99 probe
# latency each reports, pvelab's p99 start lag and skipped (overlapping)
# probes, and the ratio of CPU per probe. pvelab's API and its /metrics are
# read once per interval (its CPU includes both, as blackbox_exporter's
# includes its exposition).
# Usage: bench/checks.sh [path/to/pvelab]   (env: N=1000 INTERVAL=10 ROUNDS=6 MODES="http tcp")
set -euo pipefail
BIN=$(readlink -f "${1:-build/pvelab}")
N=${N:-1000}
INTERVAL=${INTERVAL:-10}
ROUNDS=${ROUNDS:-6}
MODES=${MODES:-http tcp}
BB=$(command -v prometheus-blackbox-exporter || true)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -n "$BB" ] && [ -x "$NGINX" ] ||
	{ echo "bench/checks.sh: needs prometheus-blackbox-exporter and nginx (scripts/install-deps bench)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
ulimit -n 65536 2>/dev/null || true
D=$(mktemp -d /tmp/pvelab-bench-checks.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
# CPU seconds (user+system) a process has used.
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }
window=$((INTERVAL * ROUNDS))

# the service probed: nginx, one worker, answering 200 "ok" to any path
WEB=$(port)
mkdir -p "$D/nginx"
cat >"$D/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $D/nginx/pid;
error_log $D/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $D/nginx; proxy_temp_path $D/nginx; fastcgi_temp_path $D/nginx;
	uwsgi_temp_path $D/nginx; scgi_temp_path $D/nginx;
	server { listen 127.0.0.1:$WEB; location / { return 200 "ok\n"; } }
}
EOF
"$NGINX" -p "$D/nginx" -c "$D/nginx/nginx.conf" &
pids+=($!)
waitport "$WEB"

echo "bench/checks.sh: $N checks every ${INTERVAL}s against nginx on 127.0.0.1:$WEB, $ROUNDS rounds measured after 1 warm-up; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-20s %10s %12s %9s %9s %s\n' MODE RUNNER PROBES "CPU/PROBE" P50 P99 NOTES
for mode in $MODES; do
	# pvelab serve
	cfg="$D/pvelab-$mode.yaml"
	{
		printf 'checks:\n  interval: %s\n  timeout: 5\n  concurrency: 64\n  targets:\n' "$INTERVAL"
		for i in $(seq 1 "$N"); do
			if [ "$mode" = http ]; then
				printf '    - {name: t%d, check: http, host: 127.0.0.1, port: %s, path: /t%d}\n' "$i" "$WEB" "$i"
			else
				printf '    - {name: t%d, check: tcp, host: 127.0.0.1, port: %s}\n' "$i" "$WEB"
			fi
		done
	} >"$cfg"
	export PVELAB_STATE="$D/state-$mode.db" PVELAB_URL=
	tok=$("$BIN" token create "bench-$mode" --role viewer 2>/dev/null)
	"$BIN" serve -q -c "$cfg" --listen 127.0.0.1:0 >"$D/serve.out" 2>"$D/serve.err" &
	sp=$!
	pids+=($sp)
	for _ in $(seq 100); do [ -s "$D/serve.out" ] && break; sleep 0.1; done
	url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$D/serve.out")
	snap() { curl -sf -H "Authorization: Bearer $tok" "$url/api/v1/checks"; }
	# warm-up: every check probed once
	for _ in $(seq $((INTERVAL * 30))); do
		[ "$(snap | python3 -c 'import json,sys; print(sum(c.get("probes",0)>0 for c in json.load(sys.stdin)["checks"]))')" = "$N" ] && break
		sleep 0.2
	done
	c0=$(cpu "$sp")
	snap >"$D/snap-0.json"
	for r in $(seq 1 "$ROUNDS"); do
		sleep "$INTERVAL"
		snap >"$D/snap-$r.json"
		# and /metrics, as Prometheus scrapes it once per interval
		curl -sf -H "Authorization: Bearer $tok" "$url/metrics" >"$D/metrics-$r.txt"
	done
	c1=$(cpu "$sp")
	python3 - "$D" "$ROUNDS" "$c0" "$c1" "$mode" >"$D/pvelab-$mode.res" <<'EOF'
import json, sys
d, rounds, c0, c1, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
snaps = [json.load(open(f"{d}/snap-{r}.json"))["checks"] for r in range(rounds + 1)]
probes = sum(c.get("probes", 0) for c in snaps[-1]) - sum(c.get("probes", 0) for c in snaps[0])
lat = sorted(c["last"]["latency_ms"] for s in snaps[1:] for c in s if "latency_ms" in c.get("last", {}))
lag = sorted(c.get("lag_ms", 0) for s in snaps[1:] for c in s)
down = sum(c["status"] != "up" for c in snaps[-1])
over = sum(c.get("overlaps", 0) for c in snaps[-1])
pick = lambda a, p: a[min(len(a) - 1, int(p * len(a)))] if a else 0
print(json.dumps({"probes": probes, "cpu": c1 - c0, "p50": pick(lat, .5), "p99": pick(lat, .99),
                  "lag99": pick(lag, .99), "lagmax": lag[-1] if lag else 0, "overlaps": over, "down": down}))
EOF
	kill "$sp"
	wait "$sp" 2>/dev/null || true
	pv=$(cat "$D/pvelab-$mode.res")
	python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%-5s %-20s %10d %10.1fus %7.2fms %7.2fms start lag p99 %.1f ms (max %.1f), %d overlaps, %d not up" % (sys.argv[2], "pvelab serve", r["probes"], r["cpu"]/max(r["probes"],1)*1e6, r["p50"], r["p99"], r["lag99"], r["lagmax"], r["overlaps"], r["down"]))' "$pv" "$mode"
	# the last /metrics answer: its size, its check series, how long the one before took
	awk -v m="$mode" '/^pvelab_check_/ {n++} /^pvelab_metrics_render_seconds/ {t=$2} END {printf "%-5s pvelab /metrics: %d check samples, %d bytes, rendered in %.1f ms\n", m, n, bytes, t*1000}' bytes="$(wc -c <"$D/metrics-$ROUNDS.txt")" "$D/metrics-$ROUNDS.txt"

	# blackbox_exporter, driven as Prometheus would
	BBP=$(port)
	cat >"$D/bb.yml" <<EOF
modules:
  http_2xx: {prober: http, timeout: 5s, http: {preferred_ip_protocol: ip4}}
  tcp_connect: {prober: tcp, timeout: 5s, tcp: {preferred_ip_protocol: ip4}}
EOF
	"$BB" --config.file="$D/bb.yml" --web.listen-address="127.0.0.1:$BBP" --log.level=warn 2>"$D/bb.err" &
	bp=$!
	pids+=($bp)
	waitport "$BBP"
	: >"$D/targets"
	for i in $(seq 1 "$N"); do
		if [ "$mode" = http ]; then echo "http://127.0.0.1:$WEB/t$i"; else echo "127.0.0.1:$WEB"; fi >>"$D/targets"
	done
	module=$([ "$mode" = http ] && echo http_2xx || echo tcp_connect)
	python3 "$HERE/checks_scrape.py" "http://127.0.0.1:$BBP" "$module" "$D/targets" "$INTERVAL" "$INTERVAL" >/dev/null
	b0=$(cpu "$bp")
	bb=$(python3 "$HERE/checks_scrape.py" "http://127.0.0.1:$BBP" "$module" "$D/targets" "$INTERVAL" "$window")
	b1=$(cpu "$bp")
	kill "$bp"
	wait "$bp" 2>/dev/null || true
	python3 -c 'import json,sys; r=json.loads(sys.argv[1]); c=float(sys.argv[3])-float(sys.argv[2]); print("%-5s %-20s %10d %10.1fus %7.2fms %7.2fms %d failed, scrapes took %.0f s for %s s" % (sys.argv[4], "blackbox_exporter", r["probes"], c/max(r["probes"],1)*1e6, r["p50_ms"], r["p99_ms"], r["failed"], r["wall"], sys.argv[5]))' "$bb" "$b0" "$b1" "$mode" "$window"
	python3 -c 'import json,sys; p=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); c=float(sys.argv[4])-float(sys.argv[3]); pc=p["cpu"]/max(p["probes"],1); bc=c/max(b["probes"],1); print("%-5s ratio: blackbox_exporter uses %.1fx the CPU per probe of pvelab" % (sys.argv[5], bc/pc if pc else float("inf")))' "$pv" "$bb" "$b0" "$b1" "$mode"
done
