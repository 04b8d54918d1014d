#!/usr/bin/env bash
# bench/state.sh: `pvelab sync` of one `pvelab sim --nodes 16 --guests 10000`
# into a SQLite file and into a real PostgreSQL 15 (started here as nobody on
# a Unix socket in a temporary directory), side by side, interleaved: fresh
# syncs (empty store) and unchanged resyncs. Prints medians, the ratios
# (targets: fresh <= 1.5x, unchanged <= 1.2x SQLite's wall time), the rows an
# unchanged resync wrote, and the load average.
# Usage: bench/state.sh [BIN]  (RUNS=5 GUESTS=10000 NODES=16)
set -euo pipefail
BIN=${1:-${PVELAB_BIN:-build/pvelab}}
RUNS=${RUNS:-5}
NODES=${NODES:-16}
GUESTS=${GUESTS:-10000}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

start_pg
trap 'stop_pg; cleanup' EXIT

start_sim "$BIN" --nodes "$NODES" --guests "$GUESTS"
echo "sim: $NODES nodes, $GUESTS guests; PostgreSQL $(psql_ -d postgres -c 'SHOW server_version')"

wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"; }
sync_into() { # STATE OUT: one sync, its wall time appended to OUT
	PVELAB_STATE=$1 /usr/bin/time -v "$BIN" -o json sync >"$tmp/sync.json" 2>"$tmp/time.txt" ||
		{ cat "$tmp/time.txt" >&2; exit 1; }
	wall "$tmp/time.txt" >>"$2"
}
pg_url() { echo "postgresql:///$1?host=$pg&user=pvelab"; }
pg_rows() { psql_ -d "$1" -c "SELECT (SELECT count(*) FROM history) || ' ' || (SELECT n_tup_upd + n_tup_ins FROM pg_stat_user_tables WHERE relname = 'guests')"; }

: >"$tmp/lite.fresh"; : >"$tmp/lite.same"; : >"$tmp/pg.fresh"; : >"$tmp/pg.same"
# one untimed sync first: the simulator builds its config answers on first use
sync_into "$tmp/warm.db" /dev/null
for i in $(seq 1 "$RUNS"); do
	rm -f "$tmp/st.db" "$tmp/st.db-wal" "$tmp/st.db-shm"
	sync_into "$tmp/st.db" "$tmp/lite.fresh"
	sync_into "$tmp/st.db" "$tmp/lite.same"
	psql_ -d postgres -c "DROP DATABASE IF EXISTS b" -c "CREATE DATABASE b"
	sync_into "$(pg_url b)" "$tmp/pg.fresh"
	before=$(pg_rows b)
	sync_into "$(pg_url b)" "$tmp/pg.same"
	after=$(pg_rows b)
done
lf=$(median <"$tmp/lite.fresh"); ls_=$(median <"$tmp/lite.same")
pf=$(median <"$tmp/pg.fresh"); ps=$(median <"$tmp/pg.same")
echo "SQLite fresh (s):     $(tr '\n' ' ' <"$tmp/lite.fresh")"
echo "PostgreSQL fresh (s): $(tr '\n' ' ' <"$tmp/pg.fresh")"
echo "SQLite unchanged (s):     $(tr '\n' ' ' <"$tmp/lite.same")"
echo "PostgreSQL unchanged (s): $(tr '\n' ' ' <"$tmp/pg.same")"
printf 'fresh sync of %d guests:  SQLite %.3f s, PostgreSQL %.3f s: ratio %.2fx (target <= 1.5x)\n' \
	"$GUESTS" "$lf" "$pf" "$(echo "$pf / $lf" | bc -l)"
printf 'unchanged resync:         SQLite %.3f s, PostgreSQL %.3f s: ratio %.2fx (target <= 1.2x)\n' \
	"$ls_" "$ps" "$(echo "$ps / $ls_" | bc -l)"
echo "PostgreSQL history rows, guests rows written (ins+upd), before -> after the unchanged resync: $before -> $after"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
