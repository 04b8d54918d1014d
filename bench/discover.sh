#!/usr/bin/env bash
# bench/discover.sh: time to sweep 127.0.1.0/24 on discovery's TCP ports,
# pvelab discover versus nmap -sT (connect scan, --open, -T4), in the same run.
# A few loopback services (SSH and HTTP banners) give both something to find.
# Usage: bench/discover.sh [path/to/pvelab]   (RUNS=N, default 7; needs nmap:
# scripts/install-deps --bench). Prints the median of each and the ratio.
set -euo pipefail
BIN=${1:-build/pvelab}
RUNS=${RUNS:-7}
PORTS=22,80,443,3389,5900,5901,8006,8007
NET=127.0.1.0/24
command -v nmap >/dev/null || { echo "discover.sh: nmap is missing (scripts/install-deps --bench)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "discover.sh: no pvelab binary at '$BIN' (run make)" >&2; exit 1; }

/usr/bin/python3 - <<'PY' &
import socket, threading, time
def serve(addr, port, banner):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(64)
    def loop():
        while True:
            c, _ = s.accept()
            try:
                c.sendall(banner)
                c.settimeout(1)
                c.recv(1024)
            except OSError:
                pass
            c.close()
    threading.Thread(target=loop, daemon=True).start()
for i in (10, 20, 30, 40):
    serve(f"127.0.1.{i}", 22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
serve("127.0.1.50", 80, b"HTTP/1.0 200 OK\r\nServer: bench\r\n\r\n<title>bench</title>")
time.sleep(3600)
PY
svc=$!
trap 'kill $svc 2>/dev/null || true' EXIT
sleep 0.5

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# pvelab twice: with its polite defaults (2000 new connections/s, 512 in
# flight: 2048 probes cannot take less than ~1 s), and unthrottled, which is
# what nmap -T4 is (it has no rate limit)
UNTHROTTLED=(--rate 1000000 --concurrency 2048)
p_times=() u_times=() n_times=()
for _ in $(seq "$RUNS"); do
	t0=$(now); "$BIN" -q discover "$NET" --ports "$PORTS" -o json > /tmp/bench-discover.json; t1=$(now)
	p_times+=("$(awk "BEGIN{print $t1 - $t0}")")
	t0=$(now); "$BIN" -q discover "$NET" --ports "$PORTS" "${UNTHROTTLED[@]}" -o json > /tmp/bench-discover-u.json; t1=$(now)
	u_times+=("$(awk "BEGIN{print $t1 - $t0}")")
	t0=$(now); nmap -n -sT -p "$PORTS" --open -T4 "$NET" -oG /tmp/bench-discover.nmap > /dev/null; t1=$(now)
	n_times+=("$(awk "BEGIN{print $t1 - $t0}")")
done
p=$(printf '%s\n' "${p_times[@]}" | median)
u=$(printf '%s\n' "${u_times[@]}" | median)
n=$(printf '%s\n' "${n_times[@]}" | median)
count() { /usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$1"; }
hosts_n=$(grep -c 'Ports:' /tmp/bench-discover.nmap || true)
printf 'sweep %s, %d TCP ports, median of %d runs\n' "$NET" "$(echo "$PORTS" | tr , '\n' | wc -l)" "$RUNS"
printf '  pvelab discover (defaults)     : %.3f s (%s hosts, each identified by protocol)\n' "$p" "$(count /tmp/bench-discover.json)"
printf '  pvelab discover (%s): %.3f s (%s hosts)\n' "${UNTHROTTLED[*]}" "$u" "$(count /tmp/bench-discover-u.json)"
printf '  nmap -n -sT --open -T4         : %.3f s (%s hosts with open ports)\n' "$n" "$hosts_n"
printf '  ratio nmap/pvelab: defaults %.2fx, unthrottled %.2fx\n' "$(awk "BEGIN{print $n / $p}")" "$(awk "BEGIN{print $n / $u}")"
