#!/usr/bin/env bash
# bench/mcp.sh: MCP round trips per second for `tools/call status` against
# one sync of `pvelab sim --nodes 16 --guests 10000`, over stdio (pvelab mcp)
# and Streamable HTTP (/mcp on pvelab serve), and the time from initialize to
# the tools/list answer; side by side with the official SDK's own example
# server answering a trivial tool (tests/mcp/example-server.mjs), the floor of
# the protocol in node; and beside the same SDK server answering a `status`
# tool with pvelab's own status answer read from a file (PEER_ANSWER: the
# same bytes for the client to parse and check against an outputSchema,
# with no work behind them). The client is the SDK's (tests/mcp/bench.mjs),
# one call after another. Prints medians of RUNS runs, pvelab/SDK ratios and
# the load average.
# Usage: bench/mcp.sh [BIN]  (RUNS=3 N=500 GUESTS=10000 SERVE_PORT=19530
# PEER_PORT=19531; needs scripts/install-deps npm)
set -euo pipefail
BIN=$(realpath "${1:-${PVELAB_BIN:-build/pvelab}}")
RUNS=${RUNS:-3}
N=${N:-500}
GUESTS=${GUESTS:-10000}
here=$(cd "$(dirname "$0")" && pwd)
mcp=$here/../tests/mcp
. "$here/lib.sh"
[ -d "$mcp/node_modules" ] || { echo "bench/mcp.sh: run scripts/install-deps npm first" >&2; exit 1; }
start_sim "$BIN" --nodes 16 --guests "$GUESTS"
export PVELAB_STATE=$tmp/state.db
"$BIN" sync -q
secret=$("$BIN" token create bench --role viewer -o json |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
# the server's background refresh of 10,000 guests is left out of the
# measure (it runs on the same loop: GET /api/v1/sync shows its cost)
printf 'serve:\n  status_interval: 3600\n  sync_interval: 86400\n' >"$tmp/pvelab.yaml"
"$BIN" -c "$tmp/pvelab.yaml" serve --listen "127.0.0.1:${SERVE_PORT:-19530}" -q >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
port=${PEER_PORT:-19531}
export PEER_ANSWER=$tmp/status.json
"$BIN" -o json status >"$PEER_ANSWER"
node "$mcp/example-server.mjs" http "$port" >"$tmp/ex.out" 2>&1 &
ex_pid=$!
trap 'kill $serve_pid $ex_pid 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 100); do [ -s "$tmp/serve.out" ] && [ -s "$tmp/ex.out" ] && break; sleep 0.1; done
url=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$tmp/serve.out")
status_bytes=$(wc -c <"$PEER_ANSWER")
echo "sim: 16 nodes, $GUESTS guests; $N calls per run, $RUNS runs; status -o json: $status_bytes bytes"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
bench() { (cd "$mcp" && node bench.mjs "$1"); }
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
declare -A rps init
cases="pv_stdio sdk_stdio eq_stdio pv_http sdk_http eq_http"
for case in $cases; do
	: >"$tmp/$case.rps"
	: >"$tmp/$case.init"
done
for _ in $(seq 1 "$RUNS"); do
	for case in $cases; do
		case $case in
		pv_stdio) spec="{\"stdio\":[\"$BIN\",\"mcp\"],\"tool\":\"status\",\"args\":{},\"n\":$N}" ;;
		sdk_stdio) spec="{\"stdio\":[\"node\",\"example-server.mjs\"],\"tool\":\"echo\",\"args\":{},\"n\":$N}" ;;
		pv_http) spec="{\"url\":\"$url/mcp\",\"token\":\"$secret\",\"tool\":\"status\",\"args\":{},\"n\":$N}" ;;
		sdk_http) spec="{\"url\":\"http://127.0.0.1:$port/mcp\",\"tool\":\"echo\",\"args\":{},\"n\":$N}" ;;
		eq_stdio) spec="{\"stdio\":[\"node\",\"example-server.mjs\"],\"tool\":\"status\",\"args\":{},\"n\":$N}" ;;
		eq_http) spec="{\"url\":\"http://127.0.0.1:$port/mcp\",\"tool\":\"status\",\"args\":{},\"n\":$N}" ;;
		esac
		out=$(bench "$spec")
		field "$out" per_second >>"$tmp/$case.rps"
		field "$out" init_to_list_ms >>"$tmp/$case.init"
		field "$out" answer_bytes >"$tmp/$case.bytes"
	done
done
for case in $cases; do
	rps[$case]=$(median <"$tmp/$case.rps")
	init[$case]=$(median <"$tmp/$case.init")
done
printf '%-38s %10s %12s %8s\n' "" "pvelab" "SDK example" "ratio"
for t in stdio http; do
	printf '%-38s %10.0f %12.0f %7.2fx\n' "tools/call per second, $t, trivial" "${rps[pv_$t]}" \
		"${rps[sdk_$t]}" "$(echo "${rps[pv_$t]} / ${rps[sdk_$t]}" | bc -l)"
	printf '%-38s %10.0f %12.0f %7.2fx\n' "tools/call per second, $t, same answer" "${rps[pv_$t]}" \
		"${rps[eq_$t]}" "$(echo "${rps[pv_$t]} / ${rps[eq_$t]}" | bc -l)"
	printf '%-38s %10.1f %12.1f %7.2fx\n' "initialize -> tools/list ms, $t" "${init[pv_$t]}" \
		"${init[sdk_$t]}" "$(echo "${init[sdk_$t]} / ${init[pv_$t]}" | bc -l)"
done
echo "answer text per call: pvelab $(cat "$tmp/pv_stdio.bytes") bytes, same-answer peer $(cat "$tmp/eq_stdio.bytes") bytes"
echo "(ratios: above 1 means pvelab is faster; load average at end: $(cut -d' ' -f1-3 /proc/loadavg))"
# pvelab's own side of a round trip: the same call from a bare line client
# (no SDK parsing nor outputSchema validation of the answer in the client)
/usr/bin/python3 - "$BIN" "$N" <<'PY'
import json, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def ask(i, m, params):
    p.stdin.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": params}) + "\n").encode())
    p.stdin.flush()
    return p.stdout.readline()
ask(0, "initialize", {"protocolVersion": "2025-11-25"})
n = int(sys.argv[2]) * 4
t0 = time.perf_counter()
for i in range(n):
    ask(i + 1, "tools/call", {"name": "status"})
dt = time.perf_counter() - t0
print(f"bare line client, stdio: {n / dt:.0f} tools/call status per second ({dt / n * 1000:.3f} ms each)")
p.stdin.close()
p.wait()
PY
