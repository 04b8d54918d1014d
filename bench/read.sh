#!/usr/bin/env bash
# bench/read.sh: how long the read commands take against the state of a large
# cluster (one sync of `pvelab sim --nodes 16 --guests 10000`), for one binary
# or, given a second, for both side by side on the same state.
# Usage: bench/read.sh [BIN] [OTHER_BIN]   (RUNS=9 GUESTS=10000)
set -euo pipefail
BIN=${1:-${PVELAB_BIN:-build/pvelab}}
OTHER=${2:-}
RUNS=${RUNS:-9}
GUESTS=${GUESTS:-10000}
tmp=$(mktemp -d)
sim_pid=
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$BIN" sim --listen 127.0.0.1:0 --nodes 16 --guests "$GUESTS" >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
for _ in $(seq 1 600); do
	[ -s "$tmp/sim.out" ] && break
	sleep 0.1
done
line=$(head -n1 "$tmp/sim.out")
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$line" "$1"; }
export PVELAB_URL=$(field url) PVELAB_FINGERPRINT=$(field fingerprint) PVELAB_TOKEN=$(field token)
export PVELAB_STATE=$tmp/state.db
"$BIN" sync >/dev/null
kill "$sim_pid" && wait "$sim_pid" 2>/dev/null || true
sim_pid=
unset PVELAB_URL PVELAB_FINGERPRINT PVELAB_TOKEN

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# Median wall seconds of RUNS runs of one command line.
timed() {
	local b=$1
	shift
	for _ in $(seq 1 "$RUNS"); do
		s=$(date +%s%N)
		"$b" "$@" >/dev/null
		e=$(date +%s%N)
		echo "($e - $s) / 1000000000" | bc -l
	done | median
}
echo "state: one sync of $GUESTS guests on 16 nodes; medians of $RUNS runs"
while read -r cmd; do
	# shellcheck disable=SC2086
	a=$(timed "$BIN" $cmd)
	if [ -n "$OTHER" ]; then
		# shellcheck disable=SC2086
		b=$(timed "$OTHER" $cmd)
		printf '%-34s %8.3f s   %8.3f s   %5.1fx\n' "$cmd" "$a" "$b" "$(echo "$b / $a" | bc -l)"
	else
		printf '%-34s %8.3f s\n' "$cmd" "$a"
	fi
done <<'EOF'
status
list
list --node pve3
list --status stopped --type lxc
-o json list
describe vm4242
describe 4242
history 4242
EOF
