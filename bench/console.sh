#!/usr/bin/env bash
# bench/console.sh: what one session buys `pvelab console`: N commands piped
# into one console (the reads share its API connection and open store) side
# by side with the same N commands as separate `pvelab` processes (what the
# console did before, one connection and one store opening each), against
# `pvelab sim --nodes 4 --guests GUESTS` synced once. Three lines: `snapshots
# GUEST` (one API round trip on top of the lookup), `describe GUEST` (the
# store only) and `sync` (the whole cluster read and recorded; inside the
# console since it runs there too). Prints the medians of RUNS runs, wall time and CPU time (user +
# system of every process, the simulator's excluded: on a loaded machine the
# wall time mostly measures the wait for a core), and the ratios.
# Usage: bench/console.sh [BIN]  (RUNS=5 N=50 GUESTS=1000)
set -euo pipefail
BIN=$(realpath "${1:-${PVELAB_BIN:-build/pvelab}}")
RUNS=${RUNS:-5}
N=${N:-50}
GUESTS=${GUESTS:-1000}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_sim "$BIN" --nodes 4 --guests "$GUESTS"
export PVELAB_STATE=$tmp/state.db
"$BIN" sync -q
guest=$("$BIN" -o json list | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
# "wall cpu" in ms of the command line given
measure() {
	/usr/bin/time -f '%e %U %S' -o "$tmp/t" "$@" >/dev/null
	awk '{printf "%.0f %.0f\n", $1 * 1000, ($2 + $3) * 1000}' "$tmp/t"
}
echo "sim: 4 nodes, $GUESTS guests; $N commands per run, $RUNS runs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-20s %11s %11s %6s %11s %11s %6s\n' command "wall 1 (ms)" "wall N (ms)" ratio \
	"CPU 1 (ms)" "CPU N (ms)" ratio
for cmd in "snapshots $guest" "describe $guest" sync; do
	for _ in $(seq 1 "$N"); do echo "$cmd"; done >"$tmp/lines"
	: >"$tmp/one"
	: >"$tmp/many"
	for _ in $(seq 1 "$RUNS"); do
		measure sh -c '"$0" console <"$1"' "$BIN" "$tmp/lines" >>"$tmp/one"
		# shellcheck disable=SC2086 # a line is the command's words
		measure sh -c 'while read -r l; do "$0" $l; done <"$1"' "$BIN" "$tmp/lines" \
			>>"$tmp/many"
	done
	w1=$(cut -d' ' -f1 "$tmp/one" | median)
	c1=$(cut -d' ' -f2 "$tmp/one" | median)
	wn=$(cut -d' ' -f1 "$tmp/many" | median)
	cn=$(cut -d' ' -f2 "$tmp/many" | median)
	printf '%-20s %11.0f %11.0f %5.1fx %11.0f %11.0f %5.1fx\n' "${cmd/$guest/GUEST} x$N" "$w1" "$wn" \
		"$(echo "$wn / $w1" | bc -l)" "$c1" "$cn" "$(echo "$cn / $c1" | bc -l)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
