#!/usr/bin/env bash
# bench/serve.sh: `pvelab serve` on a 10,000-guest simulated cluster beside
# nginx serving the same JSON bodies as static files (the floor of the HTTP
# layer), both loaded by wrk in one run: requests per second and p50/p99 of
# /healthz, /api/v1/cluster, /api/v1/guests/{name} and /api/v1/guests, the p99
# of the cluster and of one guest while full syncs run back to back, the
# server's RSS after a full sync and after the load, the time from start
# to its first answer, and the serve loop's longest turns (wall and its own CPU
# time, bench/loopturns.c) while the syncs run: less sensitive to the load.
# Usage: bench/serve.sh [BIN]   (GUESTS=10000 SECS=5 CONNS=64 PORT=18210)
# SIM_NICE=N runs the simulator at nice N: it stands in for a cluster that
# runs on its own hosts, and its CPU then no longer comes from the server's.
# Needs wrk and nginx (scripts/install-deps bench).
set -euo pipefail
BIN=$(realpath "${1:-${PVELAB_BIN:-build/pvelab}}")
GUESTS=${GUESTS:-10000}
SECS=${SECS:-5}
CONNS=${CONNS:-64}
PORT=${PORT:-18210}
NGINX_PORT=$((PORT + 1))
for t in wrk nginx curl; do
	command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin
	command -v "$t" >/dev/null || { echo "serve.sh: $t not found (scripts/install-deps bench)" >&2; exit 1; }
done
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
srv_pid=
ngx_pid=
stop_all() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
	[ -n "$ngx_pid" ] && kill "$ngx_pid" 2>/dev/null && wait "$ngx_pid" 2>/dev/null
	cleanup
}
trap stop_all EXIT

start_sim "$BIN" --nodes 16 --guests "$GUESTS" --task-ms 50 --auth-delay-ms 0
[ -z "${SIM_NICE:-}" ] || renice -n "$SIM_NICE" -p "$sim_pid" >/dev/null
export PVELAB_STATE=$tmp/state.db
"$BIN" sync >/dev/null
TOKEN=$("$BIN" token create bench --role operator)
AUTH="Authorization: Bearer $TOKEN"
cat >"$tmp/pvelab.yaml" <<EOF
serve:
  listen: [127.0.0.1:$PORT]
  max_connections: 1000
  max_connections_per_client: 1000
  sync_interval: 3600
EOF

# the loop's turns over 1 ms, as "epoch_s wall_ms cpu_ms" lines
cc -O2 -shared -fPIC -o "$tmp/loopturns.so" "$(dirname "$0")/loopturns.c" -ldl
export LOOPTURNS_OUT=$tmp/turns LOOPTURNS_MS=1

# start to first answer
t0=$(date +%s%N)
LD_PRELOAD=$tmp/loopturns.so "$BIN" -q -c "$tmp/pvelab.yaml" serve >"$tmp/serve.out" 2>"$tmp/serve.err" &
srv_pid=$!
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
	kill -0 "$srv_pid" || { cat "$tmp/serve.err" >&2; exit 1; }
	sleep 0.001
done
t1=$(date +%s%N)
start_ms=$(echo "($t1 - $t0) / 1000000" | bc -l)

# the server's own full sync of the cluster, then its memory
sync_state() { curl -sf -H "$AUTH" "http://127.0.0.1:$PORT/api/v1/sync"; }
field() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
until [ "$(sync_state | field 'd["sync"]["state"]')" = ok ]; do sleep 0.1; done
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status")
name=$(curl -sf -H "$AUTH" "http://127.0.0.1:$PORT/api/v1/guests?sort=vmid" | field 'd[len(d)//2]["name"]')

# nginx: the same bodies as static files, one worker (pvelab serves on one loop);
# its worker runs as nobody and must reach them
mkdir -p "$tmp/www/api/v1/guests"
chmod 0755 "$tmp"
for p in /healthz /api/v1/cluster "/api/v1/guests/$name" /api/v1/guests; do
	f="$tmp/www$p"
	[ "$p" = /api/v1/guests ] && f="$tmp/www/api/v1/guests.json"
	curl -sf -H "$AUTH" "http://127.0.0.1:$PORT$p" >"$f"
done
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
	default_type application/json;
	client_body_temp_path $tmp/ngx; proxy_temp_path $tmp/ngx; fastcgi_temp_path $tmp/ngx;
	uwsgi_temp_path $tmp/ngx; scgi_temp_path $tmp/ngx;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $tmp/www;
		location = /api/v1/guests { try_files /api/v1/guests.json =404; }
	}
}
EOF
nginx -c "$tmp/nginx.conf" -p "$tmp" &
ngx_pid=$!
until curl -sf "http://127.0.0.1:$NGINX_PORT/healthz" >/dev/null 2>&1; do
	kill -0 "$ngx_pid" || { cat "$tmp/nginx.err" >&2; exit 1; }
	sleep 0.01
done

# wrk: "rps p50_ms p99_ms"
load() {
	wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 30s --latency -H "$AUTH" "$1" | awk '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
				 if (v ~ /s$/) return v * 1000; return v }
		/^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
		/Non-2xx/ { bad = $NF } /Socket errors/ { errs = $0 }
		END { printf "%s %s %s %s\n", rps, p50, p99, bad + 0 }'
}
echo "pvelab serve vs nginx (1 worker, static files of the same bodies); wrk -t2 -c$CONNS -d${SECS}s"
echo "$GUESTS guests on 16 nodes (pvelab sim${SIM_NICE:+ at nice $SIM_NICE}); load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
printf '%-28s %10s %8s %8s %10s %8s %8s %7s\n' path "serve r/s" p50_ms p99_ms "nginx r/s" p50_ms p99_ms ratio
for p in /healthz /api/v1/cluster "/api/v1/guests/$name" /api/v1/guests; do
	read -r a a50 a99 abad <<<"$(load "http://127.0.0.1:$PORT$p")"
	read -r b b50 b99 _ <<<"$(load "http://127.0.0.1:$NGINX_PORT$p")"
	[ "$abad" = 0 ] || echo "serve: $abad answers to $p were not 2xx" >&2
	echo "  kept answers after $p: $(sync_state | field 'd["answers"]')" >&2
	printf '%-28s %10.0f %8.2f %8.2f %10.0f %8.2f %8.2f %6.2fx\n' "$p" "$a" "$a50" "$a99" \
		"$b" "$b50" "$b99" "$(echo "$a / $b" | bc -l)"
done

# p99 of the two answers while full syncs run back to back (each sync's
# commit drops the kept answers: the first request after it renders anew)
during_syncs() {
	(
		end=$(($(date +%s) + SECS))
		while [ "$(date +%s)" -lt "$end" ]; do
			seq=$(curl -sf -X POST -H "$AUTH" "http://127.0.0.1:$PORT/api/v1/sync" | field 'd["seq"]')
			until [ "$(sync_state | field 'd["sync"]["seq"] >= '"$seq"' and d["sync"]["state"] != "running"')" = True ]; do
				sleep 0.05
			done
		done
	) &
	syncer=$!
	from=$(date +%s.%N)
	read -r q q50 q99 _ <<<"$(load "http://127.0.0.1:$PORT$1")"
	wait "$syncer"
	printf 'during full syncs (%s done by now): %-24s %.0f r/s, p50 %.2f ms, p99 %.2f ms\n' \
		"$(sync_state | field 'd["sync"]["seq"]')" "$1" "$q" "$q50" "$q99"
	awk -v from="$from" -v to="$(date +%s.%N)" '$1 >= from && $1 <= to {
			if ($2 > w) w = $2; if ($3 > c) c = $3; n += $2 > 20 }
		END { printf "  serve loop meanwhile: longest turn %.1f ms wall, %.1f ms CPU; %d turns over 20 ms\n", w, c, n }' \
		"$tmp/turns"
}
during_syncs /api/v1/cluster
during_syncs "/api/v1/guests/$name"
rss_after_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status")
printf 'RSS after a full sync of %s guests: %.1f MB; after all the load above: %.1f MB\n' "$GUESTS" \
	"$(echo "$rss_kb / 1024" | bc -l)" "$(echo "$rss_after_kb / 1024" | bc -l)"
printf 'start to first answer: %.1f ms\n' "$start_ms"
