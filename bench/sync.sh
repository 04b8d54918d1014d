#!/usr/bin/env bash
# bench/sync.sh: `pvelab sync` against a proxmoxer script that reads the same
# data the way the Ansible inventory plugin does (cluster resources, then each
# guest's config), both against one `pvelab sim --nodes 16 --guests 10000`.
# Prints medians, the ratio, CPU times, peak RSS and whether an unchanged
# resync wrote history rows. Usage: bench/sync.sh [BIN]  (RUNS=5 PEER_RUNS=3 GUESTS=10000 REST=30)
set -euo pipefail
BIN=${1:-${PVELAB_BIN:-build/pvelab}}
RUNS=${RUNS:-5}
PEER_RUNS=${PEER_RUNS:-3}
NODES=${NODES:-16}
GUESTS=${GUESTS:-10000}
REST=${REST:-30}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_sim "$BIN" --nodes "$NODES" --guests "$GUESTS"
url=$PVELAB_URL
token=$PVELAB_TOKEN


# CPU time the hypervisor gave to other guests (steal), in /proc/stat ticks.
cpu_ticks() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $9}' /proc/stat; }
read -r total0 steal0 < <(cpu_ticks)
echo "sim: $NODES nodes, $GUESTS guests at $url"
: >"$tmp/pv.times"
: >"$tmp/pv.cpu"
: >"$tmp/pv.rss"
: >"$tmp/px.times"
: >"$tmp/px.cpu"
pv_sync() {
	rm -rf "$tmp/st"
	PVELAB_STATE="$tmp/st/state.db" /usr/bin/time -v "$BIN" -o json sync >"$tmp/sync.json" 2>"$tmp/time.txt"
	awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$tmp/time.txt" >>"$tmp/pv.times"
	awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt" >>"$tmp/pv.rss"
	awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$tmp/time.txt" >>"$tmp/pv.cpu"
}
px_sync() {
	s=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$tmp/pxtime.txt" /usr/bin/python3 "$here/sync_proxmoxer.py" "$url" "$token" >/dev/null
	e=$(date +%s.%N)
	echo "$e - $s" | bc -l >>"$tmp/px.times"
	awk '{print $1 + $2}' "$tmp/pxtime.txt" >>"$tmp/px.cpu"
}
# One untimed sync first: the simulator builds its config answers on first use.
pv_sync
: >"$tmp/pv.times"
: >"$tmp/pv.cpu"
: >"$tmp/pv.rss"
# Interleaved, so that a shared machine's drift in speed hits both alike:
# RUNS pvelab syncs in PEER_RUNS groups, each group followed by one peer run.
# Each group and each peer run starts after REST seconds idle: right after
# the peer's 15 s flat out, syncs on this VM ran a quarter slower for 10-20 s.
for g in $(seq 1 "$PEER_RUNS"); do
	sleep "$REST"
	for i in $(seq 1 $(((RUNS + PEER_RUNS - g) / PEER_RUNS))); do
		pv_sync
	done
	sleep "$REST"
	px_sync
done
# An unchanged second sync (of the last fresh state) must not write history.
h1=$(sqlite3 "$tmp/st/state.db" 'select count(*) from history')
PVELAB_STATE="$tmp/st/state.db" /usr/bin/time -v "$BIN" -o json sync >"$tmp/sync2.json" 2>"$tmp/time2.txt"
h2=$(sqlite3 "$tmp/st/state.db" 'select count(*) from history')
resync=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$tmp/time2.txt")
echo "pvelab runs (s): $(tr '\n' ' ' <"$tmp/pv.times")"
echo "proxmoxer runs (s): $(xargs printf '%.2f ' <"$tmp/px.times")(CPU: $(xargs printf '%.1f ' <"$tmp/px.cpu"))"

pv=$(median <"$tmp/pv.times")
rss=$(sort -n "$tmp/pv.rss" | tail -n1)
cpu=$(median <"$tmp/pv.cpu")
px=$(median <"$tmp/px.times")
requests=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$tmp/sync.json")
printf 'pvelab sync (fresh state): median %.3f s over %d runs (CPU %.2f s), %s requests, peak RSS %d MB\n' \
	"$pv" "$RUNS" "$cpu" "$requests" $((rss / 1024))
printf 'pvelab sync (unchanged):   %.3f s, history rows %s -> %s\n' "$resync" "$h1" "$h2"
printf 'proxmoxer (sequential):    median %.3f s over %d runs (CPU %.1f s: the rest is waiting)\n' \
	"$px" "$PEER_RUNS" "$(median <"$tmp/px.cpu")"
printf 'ratio: pvelab is %.1fx faster\n' "$(echo "$px / $pv" | bc -l)"
read -r total1 steal1 < <(cpu_ticks)
printf 'load average during the run: %s; CPU stolen by the hypervisor: %.0f%%\n' \
	"$(cut -d' ' -f1-3 /proc/loadavg)" "$(echo "100 * ($steal1 - $steal0) / ($total1 - $total0)" | bc -l)"
