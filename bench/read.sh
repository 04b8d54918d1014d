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
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
start_sim "$BIN" --nodes 16 --guests "$GUESTS"
export PVELAB_STATE=$tmp/state.db
"$BIN" sync >/dev/null
stop_sim
unset PVELAB_URL PVELAB_FINGERPRINT PVELAB_TOKEN

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
