#!/usr/bin/env bash
# bench/state_block.sh: how long the state store blocks `pvelab serve`'s event
# loop while it refreshes and syncs `pvelab sim --guests 10000`, with the
# store in SQLite and in a real PostgreSQL 15 (started here as nobody on a Unix
# socket), side by side. A probe asks /healthz back to back for SECS seconds:
# its worst answer times are the loop's longest stalls (of any cause). Then,
# for PostgreSQL, strace times libpq's waits for the server (poll() on the
# serve thread; the loop itself waits in epoll_wait), the part of a stall that
# is the database's. Prints both and the load average.
# Usage: bench/state_block.sh [BIN]  (SECS=40 GUESTS=10000 NODES=16)
set -euo pipefail
BIN=${1:-${PVELAB_BIN:-build/pvelab}}
SECS=${SECS:-40}
NODES=${NODES:-16}
GUESTS=${GUESTS:-10000}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

start_pg
srv_pid=
stop_all() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
	stop_pg
}
trap 'stop_all; cleanup' EXIT
psql_ -d postgres -c "CREATE DATABASE b"

start_sim "$BIN" --nodes "$NODES" --guests "$GUESTS"
printf 'serve:\n  status_interval: 1\n  sync_interval: 10\n' >"$tmp/pvelab.yaml"

# serve STATE: start it on a free port (its first line is its address)
serve() {
	rm -f "$tmp/serve.out"
	PVELAB_STATE=$1 "$BIN" serve -c "$tmp/pvelab.yaml" --listen 127.0.0.1:0 >"$tmp/serve.out" \
		2>"$tmp/serve.err" &
	srv_pid=$!
	for _ in $(seq 1 600); do
		[ -s "$tmp/serve.out" ] && break
		sleep 0.1
	done
	[ -s "$tmp/serve.out" ] || { echo "serve did not start:" >&2; cat "$tmp/serve.err" >&2; exit 1; }
	url=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["url"])' \
		<"$tmp/serve.out")
}
stop_serve() { kill "$srv_pid" && wait "$srv_pid" 2>/dev/null || true; srv_pid=; }

# probe URL SECS: /healthz back to back; its answer times' median, p99 and worst (ms)
probe() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import http.client, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); end = time.monotonic() + float(sys.argv[2])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60); t = []
while time.monotonic() < end:
    a = time.monotonic(); c.request("GET", "/healthz"); c.getresponse().read()
    t.append((time.monotonic() - a) * 1000)
t.sort()
print(f"{len(t)} answers, median {t[len(t)//2]:.2f} ms, p99 {t[int(len(t)*0.99)]:.1f} ms, "
      f"worst {t[-5]:.0f} {t[-4]:.0f} {t[-3]:.0f} {t[-2]:.0f} {t[-1]:.0f} ms")
PY
}

for engine in sqlite pg; do
	if [ $engine = sqlite ]; then st=$tmp/st.db; else st="postgresql:///b?host=$pg&user=pvelab"; fi
	PVELAB_STATE=$st "$BIN" sync >/dev/null
	serve "$st"
	echo "$engine: /healthz during refreshes and syncs: $(probe "$url" "$SECS")"
	if [ $engine = pg ]; then
		timeout "$SECS" strace -k -T -e trace=poll -p "$srv_pid" -o "$tmp/strace.txt" 2>/dev/null ||
			true
		echo "pg: libpq's waits on the loop over ${SECS}s (strace; poll() on the serve thread):"
		awk -F'<' '/^poll/ {sub(/>.*/, "", $NF); print $NF * 1000}' "$tmp/strace.txt" | sort -n |
			awk '{a[NR]=$1; s+=$1} END {if (!NR) {print "  none"; exit}
				printf "  %d waits, %.0f ms in all; median %.2f ms; over 10 ms: ", NR, s, a[int((NR+1)/2)];
				n=0; for (i=1;i<=NR;i++) if (a[i] > 10) n++; printf "%d; worst", n;
				for (i=NR-4;i<=NR;i++) if (i>0) printf " %.1f", a[i]; print " ms"}'
		echo "pg: who waited over 10 ms (the store's functions under each wait, count, worst ms):"
		awk -v bin="$(basename "$BIN")" '
			/^poll/ { if (d > 10) out(); d = $0; sub(/.*</, "", d); sub(/>.*/, "", d); d *= 1000; who = "" ; next }
			/^ > / && d > 10 && index($0, "/" bin "(") {
				f = $0; sub(/.*\(/, "", f); sub(/\+.*/, "", f)
				if (f ~ /^pl_state_|^pl_stmt_|^pl_runs_|^pl_serve_|^refresh|^sync/ && n_of[f]++ == 0 && split(who, x, " < ") < 4)
					who = who (who == "" ? "" : " < ") f
			}
			/^ > / { next }
			function out() { if (who != "") { c[who]++; if (d > w[who]) w[who] = d }; delete n_of; who = ""; d = 0 }
			END { out(); for (k in c) printf "  %s: %d, %.1f\n", k, c[k], w[k] }' "$tmp/strace.txt" | sort -t, -k2 -nr | head -8
	fi
	stop_serve
done
echo "load: $(cat /proc/loadavg)"
