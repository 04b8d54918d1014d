#!/usr/bin/env bash
# bench/plan.sh: (1) `pvelab plan` for 1,000 declared guests against a
# 10,000-guest simulated cluster (the refresh included), median of RUNS;
# (2) `pvelab apply -j 8` of 100 new VMs against the ideal: the simulator's task
# time x the critical path (each VM is a create task then a start task, and
# -j 8 runs ceil(100/8) such chains one after another). Prints both ratios.
# Usage: bench/plan.sh [BIN]   (RUNS=5 TASK_MS=300 DECLARED=1000 GUESTS=10000 NEW=100 JOBS=8)
set -euo pipefail
BIN=$(realpath "${1:-${PVELAB_BIN:-build/pvelab}}")
RUNS=${RUNS:-5}
TASK_MS=${TASK_MS:-300}
DECLARED=${DECLARED:-1000}
GUESTS=${GUESTS:-10000}
NEW=${NEW:-100}
JOBS=${JOBS:-8}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

start_sim() { # name args...
	local name=$1
	shift
	"$BIN" sim --listen 127.0.0.1:0 --auth-delay-ms 0 "$@" >"$tmp/$name.json" 2>"$tmp/$name.err" &
	pids+=($!)
	for _ in $(seq 1 600); do [ -s "$tmp/$name.json" ] && break; sleep 0.05; done
}
use_sim() {
	local line
	line=$(head -n1 "$tmp/$1.json")
	f() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$line" "$1"; }
	export PVELAB_URL=$(f url) PVELAB_FINGERPRINT=$(f fingerprint) PVELAB_TOKEN=$(f token)
	export PVELAB_STATE=$tmp/$1.db
}
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# --- plan: 1,000 declared against 10,000 live -----------------------------
start_sim big --nodes 16 --guests "$GUESTS"
use_sim big
/usr/bin/python3 - "$DECLARED" >"$tmp/big.yaml" <<'PY'
import sys
n = int(sys.argv[1])
print("conventions:\n  categories:\n    lab: {vmids: 20000-29999}\nguests:")
for i in range(n):
    print(f"  - name: bench{i}\n    category: lab\n    memory: 1G\n    cores: 1\n"
          f"    networks: [{{bridge: vmbr0, ip: 10.{i // 250}.{i % 250}.10/16}}]\n"
          f"    disks: [{{storage: local-lvm, size: 8G}}]")
PY
"$BIN" -c "$tmp/big.yaml" sync >/dev/null   # a warm store, as a user has
: >"$tmp/plan.times"
for _ in $(seq 1 "$RUNS"); do
	t0=$(now)
	"$BIN" -c "$tmp/big.yaml" -o json plan >"$tmp/plan.json"
	t1=$(now)
	echo "$t1 - $t0" | bc -l >>"$tmp/plan.times"
done
creates=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["create"])' "$tmp/plan.json")
plan_med=$(median <"$tmp/plan.times")
echo "plan: $DECLARED declared guests vs $GUESTS live on 16 nodes: median ${plan_med}s over $RUNS runs ($creates creates planned; target < 1 s)"

# --- apply: 100 new VMs with -j 8 vs the ideal ------------------------------
start_sim small --nodes 3 --task-ms "$TASK_MS"
use_sim small
/usr/bin/python3 - "$NEW" >"$tmp/small.yaml" <<'PY'
import sys
print("guests:")
for i in range(int(sys.argv[1])):
    print(f"  - name: new{i}\n    memory: 512\n    networks: [{{bridge: vmbr0}}]\n"
          f"    disks: [{{storage: local-lvm, size: 4G}}]")
PY
t0=$(now)
"$BIN" -c "$tmp/small.yaml" apply --yes -j "$JOBS" >"$tmp/apply.out"
t1=$(now)
apply_s=$(echo "$t1 - $t0" | bc -l)
rounds=$(( (NEW + JOBS - 1) / JOBS ))
ideal=$(echo "$rounds * 2 * $TASK_MS / 1000" | bc -l)
ratio=$(echo "$apply_s / $ideal" | bc -l)
"$BIN" -c "$tmp/small.yaml" plan --detailed-exitcode >/dev/null && conv=yes || conv=no
printf 'apply: %d VMs, -j %d, task %d ms: %.2fs vs ideal %.2fs (%d chains x 2 tasks) = %.2fx (target <= 1.5x); converged: %s\n' \
	"$NEW" "$JOBS" "$TASK_MS" "$apply_s" "$ideal" "$rounds" "$ratio" "$conv"
