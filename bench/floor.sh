#!/usr/bin/env bash
# bench/floor.sh: how far `pvelab sync` is from its transport floor: bench/floor.c
# making the same 10,000 config GETs (same libcurl, libevent, simulator and
# concurrency; no parsing, hashing nor recording) against one `pvelab sim
# --nodes 16 --guests 10000`, runs interleaved; then PEER_RUNS runs of
# sync.sh's proxmoxer script, for the ratio no libcurl client could beat here
# (proxmoxer/floor). pvelab/floor moves far less with this shared VM's speed
# than the proxmoxer ratio of sync.sh.
# Usage: bench/floor.sh [BIN]  (RUNS=9 PEER_RUNS=2 GUESTS=10000 CONC=16)
set -euo pipefail
BIN=${1:-${PVELAB_BIN:-build/pvelab}}
RUNS=${RUNS:-9}
PEER_RUNS=${PEER_RUNS:-2}
GUESTS=${GUESTS:-10000}
CONC=${CONC:-16}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cc -O2 -o "$tmp/floor" "$here/floor.c" -lcurl -levent
start_sim "$BIN" --nodes 16 --guests "$GUESTS"
# The config paths of every guest, in the order of the resource list.
/usr/bin/python3 - "$PVELAB_URL" "$PVELAB_TOKEN" >"$tmp/paths" <<'EOF'
import json, ssl, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + "/api2/json/cluster/resources?type=vm",
                             headers={"Authorization": "PVEAPIToken=" + token})
for g in json.load(urllib.request.urlopen(req, context=ssl._create_unverified_context()))["data"]:
    print(f"/nodes/{g['node']}/{g['type']}/{g['vmid']}/config")
EOF
echo "sim: 16 nodes, $GUESTS guests; floor: $(wc -l <"$tmp/paths") GETs on $CONC connections"
: >"$tmp/pv"
: >"$tmp/fl"
timed() { /usr/bin/time -f '%e %U %S' -o "$tmp/t" "$@" >/dev/null && cat "$tmp/t"; }
pv_sync() { rm -rf "$tmp/st"; PVELAB_STATE="$tmp/st/state.db" PVELAB_CONCURRENCY=$CONC timed "$BIN" sync; }
floor() { timed "$tmp/floor" "$PVELAB_URL" "$PVELAB_TOKEN" "$CONC" <"$tmp/paths"; }
pv_sync >/dev/null # the simulator builds its config answers on first use
for _ in $(seq 1 "$RUNS"); do
	floor >>"$tmp/fl"
	pv_sync >>"$tmp/pv"
done
col() { awk -v c="$2" '{print c == 1 ? $1 : $2 + $3}' "$1" | median; }
echo "floor runs (s):  $(awk '{printf "%s ", $1}' "$tmp/fl")"
echo "pvelab runs (s): $(awk '{printf "%s ", $1}' "$tmp/pv")"
fw=$(col "$tmp/fl" 1) fc=$(col "$tmp/fl" 2) pw=$(col "$tmp/pv" 1) pc=$(col "$tmp/pv" 2)
echo "floor:       median $fw s (CPU $fc s)"
echo "pvelab sync: median $pw s (CPU $pc s)"
echo "pvelab/floor: $(echo "scale=2; $pw / $fw" | bc -l)x the wall time, $(echo "scale=2; $pc / $fc" | bc -l)x the CPU"
[ "$PEER_RUNS" -gt 0 ] || exit 0
: >"$tmp/px"
for _ in $(seq 1 "$PEER_RUNS"); do
	floor >>"$tmp/fl2"
	timed /usr/bin/python3 "$here/sync_proxmoxer.py" "$PVELAB_URL" "$PVELAB_TOKEN" >>"$tmp/px"
	floor >>"$tmp/fl2"
done
xw=$(col "$tmp/px" 1) fw2=$(col "$tmp/fl2" 1)
echo "proxmoxer runs (s): $(awk '{printf "%s ", $1}' "$tmp/px")(floor around them: $(awk '{printf "%s ", $1}' "$tmp/fl2"))"
echo "proxmoxer/floor: $(echo "scale=1; $xw / $fw2" | bc -l)x: the most any client on this transport could show"
