#!/usr/bin/env bash
# bench/proxy.sh: the time-shift TLS proxy against haproxy (Debian) doing the
# same job in the same run — TLS termination, then re-encryption to a TLS
# upstream that it verifies — driven by wrk. Prints throughput, new
# handshakes per second, their ratios, and memory per idle connection.
# Usage: bench/proxy.sh [path/to/pvelab]   (env: DURATION=10 CONNS=16 IDLE=1000 ROUNDS=3)
# Each figure is the best of ROUNDS runs, pvelab and haproxy alternating, so
# that load from other processes on a shared machine hits both alike.
set -euo pipefail
BIN=${1:-build/pvelab}
BIN=$(readlink -f "$BIN")
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
IDLE=${IDLE:-1000}
ROUNDS=${ROUNDS:-3}
for t in haproxy wrk openssl python3; do
	command -v $t >/dev/null || { echo "bench/proxy.sh: needs $t (scripts/install-deps --bench)" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || true
D=$(mktemp -d /tmp/pvelab-bench-proxy.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# upstream PKI (the "controller") and a front certificate for haproxy
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/ca.key" \
	-out "$D/ca.pem" -days 30 -subj "/CN=bench upstream CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/up.key" \
	-out "$D/up.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$D/ext"
openssl x509 -req -in "$D/up.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial \
	-days 30 -extfile "$D/ext" -out "$D/up.pem" 2>/dev/null
cat "$D/up.pem" "$D/up.key" >"$D/up-bundle.pem"
cat "$D/up.pem" "$D/up.key" >"$D/front-bundle.pem"
openssl rand -hex 32768 | tr -d "\n" >"$D/body64k"

PB=$(port); PH=$(port); PP=$(port)
# the upstream: haproxy answering from memory (2 threads so it is not the bottleneck)
cat >"$D/backend.cfg" <<CFG
global
	maxconn 8000
	nbthread 2
	tune.bufsize 131072
defaults
	mode http
	timeout client 60s
	timeout server 60s
	timeout connect 5s
frontend be
	bind 127.0.0.1:$PB ssl crt $D/up-bundle.pem
	http-request return status 200 content-type text/plain string ok if { path /small }
	http-request return status 200 content-type application/octet-stream file $D/body64k
CFG
# the peer: haproxy as a TLS-terminating, re-encrypting TCP relay, one thread
# like pvelab's single event loop. no-ssl-reuse: pvelab verifies the upstream
# certificate on every connection (and logs what it saw), so haproxy must not
# skip that by resuming its last upstream TLS session.
cat >"$D/front.cfg" <<CFG
global
	maxconn 8000
	nbthread 1
defaults
	mode tcp
	timeout client 60s
	timeout server 60s
	timeout connect 5s
frontend fe
	bind 127.0.0.1:$PH ssl crt $D/front-bundle.pem
	default_backend up
backend up
	server s1 127.0.0.1:$PB ssl verify required ca-file $D/ca.pem no-ssl-reuse
CFG
haproxy -f "$D/backend.cfg" & pids+=($!)
haproxy -f "$D/front.cfg" & pids+=($!)
PVELAB_STATE="$D/state/state.db" "$BIN" -q proxy --listen 127.0.0.1:$PP \
	--upstream https://127.0.0.1:$PB --ca-file "$D/ca.pem" & pids+=($!)
PVELAB_PID=$!
HAPROXY_FRONT_PID=${pids[1]}
waitport $PB; waitport $PH; waitport $PP

# wrk prints "Requests/sec: N" and "Transfer/sec: NMB"
wrk_run() { # port path extra-header
	wrk -t1 -c"$CONNS" -d"${DURATION}s" ${3:+-H "$3"} "https://127.0.0.1:$1$2" 2>&1
}
num() { awk -v k="$1" '$1==k {print $2}'; }
tobytes() { awk '{v=$1; u=$1; gsub(/[0-9.]/,"",u); sub(/[A-Za-z]+$/,"",v); m=1; if(u=="KB")m=1024; if(u=="MB")m=1048576; if(u=="GB")m=1073741824; printf "%.0f\n", v*m}'; }

echo "# bench/proxy.sh: wrk -t1 -c$CONNS -d${DURATION}s, best of $ROUNDS, $(nproc) cores, $(haproxy -v | head -1 | cut -d' ' -f1-3)"
wrk_run $PP /x >/dev/null # warm up the leaf cache
cpu() { awk '{ print $14 + $15 }' /proc/$1/stat; } # utime+stime in clock ticks
# CPU seconds each proxy spends per GiB relayed: robust against other load
cpu_per_gib() { # port pid
	local c0 c1 b
	c0=$(cpu $2)
	b=$(wrk_run $1 /x | awk '/Transfer\/sec/ {print $2}' | tobytes)
	c1=$(cpu $2)
	echo "($c1 - $c0) / $(getconf CLK_TCK) / ($b * $DURATION / 1073741824)" | bc -l
}
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }
tp_p=0 tp_h=0 hs_p=0 hs_h=0
for _ in $(seq "$ROUNDS"); do
	tp_p=$(max "$tp_p" "$(wrk_run $PP /x | num Transfer/sec: | tobytes)")
	tp_h=$(max "$tp_h" "$(wrk_run $PH /x | num Transfer/sec: | tobytes)")
	hs_p=$(max "$hs_p" "$(wrk_run $PP /small "Connection: close" | num Requests/sec:)")
	hs_h=$(max "$hs_h" "$(wrk_run $PH /small "Connection: close" | num Requests/sec:)")
done
cg_p=$(cpu_per_gib $PP $PVELAB_PID)
cg_h=$(cpu_per_gib $PH $HAPROXY_FRONT_PID)
printf 'throughput (64 KiB responses, keep-alive):  pvelab %7.1f MiB/s  haproxy %7.1f MiB/s  ratio %.2f\n' \
	"$(echo "$tp_p/1048576" | bc -l)" "$(echo "$tp_h/1048576" | bc -l)" "$(echo "$tp_p/$tp_h" | bc -l)"
printf 'CPU seconds per GiB relayed:               pvelab %7.2f s       haproxy %7.2f s       ratio %.2f\n' \
	"$cg_p" "$cg_h" "$(echo "$cg_h/$cg_p" | bc -l)"
printf 'new TLS handshakes/s (Connection: close):  pvelab %7.0f        haproxy %7.0f        ratio %.2f\n' \
	"$hs_p" "$hs_h" "$(echo "$hs_p/$hs_h" | bc -l)"

# memory per idle connection: RSS before and after IDLE open, idle TLS
# connections (handshake done, upstream connected) through each
idle_rss() { # port pid
	python3 - "$1" "$2" "$IDLE" <<'PY'
import socket, ssl, sys, time
port, pid, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
# one round first so lazily allocated, shared state is not charged to connections
warm = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) for _ in range(20)]
time.sleep(1)
for s in warm: s.close()
time.sleep(1)
before = rss()
socks = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) for _ in range(n)]
time.sleep(2)
after = rss()
print((after - before) * 1024 / n)
for s in socks: s.close()
PY
}
mem_p=$(idle_rss $PP $PVELAB_PID)
mem_h=$(idle_rss $PH $HAPROXY_FRONT_PID)
printf 'memory per idle connection (%d conns):     pvelab %7.1f KiB      haproxy %7.1f KiB\n' \
	"$IDLE" "$(echo "$mem_p/1024" | bc -l)" "$(echo "$mem_h/1024" | bc -l)"
