#!/usr/bin/env bash
# bench/ab_sync.sh: two pvelab binaries' `sync` alternated on one simulator
# (A, B, A, B, ...), so that a shared machine's drift hits both alike: the
# before/after check of a change. Prints each one's wall times and medians.
# Usage: bench/ab_sync.sh BIN_A BIN_B   (RUNS=10 NODES=16 GUESTS=10000)
set -euo pipefail
A=$(realpath "$1")
B=$(realpath "$2")
RUNS=${RUNS:-10}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_sim "$A" --nodes "${NODES:-16}" --guests "${GUESTS:-10000}"
# one untimed sync each: the simulator builds its config answers on first use
for bin in "$A" "$B"; do
	PVELAB_STATE="$tmp/w/state.db" "$bin" -o json sync >/dev/null
	rm -rf "$tmp/w"
done
for _ in $(seq 1 "$RUNS"); do
	for k in a b; do
		bin=$A
		[ $k = b ] && bin=$B
		rm -rf "$tmp/st"
		PVELAB_STATE="$tmp/st/state.db" /usr/bin/time -f "%e %U %S" -o "$tmp/t" "$bin" -o json sync >/dev/null
		read -r e u s <"$tmp/t"
		echo "$e" >>"$tmp/$k.wall"
		echo "$u + $s" | bc -l >>"$tmp/$k.cpu"
	done
done
for k in a b; do
	echo "$k: wall (s) $(tr '\n' ' ' <"$tmp/$k.wall")"
	echo "$k: median wall $(median <"$tmp/$k.wall") s, median CPU $(median <"$tmp/$k.cpu") s"
done
echo "b/a wall: $(echo "$(median <"$tmp/b.wall") / $(median <"$tmp/a.wall")" | bc -l | cut -c1-5)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
