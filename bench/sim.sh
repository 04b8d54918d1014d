#!/usr/bin/env bash
# Benchmark of `pvelab sim`: requests/s of GET /api2/json/cluster/resources on a
# 16-node cluster with 10,000 guests (a 2.8 MB answer) over HTTPS, with wrk.
# Peer: Python's http.server (ThreadingHTTPServer + TLS) serving the same body
# as a static file, i.e. the ceiling of a Python mock that does no work at
# all. Also measures start-up time and GET /version. Prints the ratio.
# Usage: bench/sim.sh [path/to/pvelab] [seconds per run]   (needs wrk: scripts/install-deps --bench)
set -euo pipefail
BIN=${1:-build/pvelab}
DUR=${2:-10}
PY=/usr/bin/python3
command -v wrk >/dev/null || { echo "sim.sh: wrk is missing (scripts/install-deps --bench)" >&2; exit 1; }
tmp=$(mktemp -d)
cleanup() {
	[ -n "${simpid:-}" ] && kill "$simpid" 2>/dev/null && wait "$simpid" 2>/dev/null || true
	[ -n "${pypid:-}" ] && kill "$pypid" 2>/dev/null && wait "$pypid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

t0=$(date +%s.%N)
"$BIN" sim --listen 127.0.0.1:0 --nodes 16 --guests 10000 >"$tmp/line" 2>"$tmp/err" &
simpid=$!
while [ ! -s "$tmp/line" ]; do sleep 0.005; kill -0 $simpid 2>/dev/null || { cat "$tmp/err"; exit 1; }; done
t1=$(date +%s.%N)
url=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$tmp/line")
tok=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$tmp/line")
hdr="Authorization: PVEAPIToken=$tok"
curl -sk -H "$hdr" "$url/api2/json/cluster/resources" -o "$tmp/resources.json"
size=$(stat -c %s "$tmp/resources.json")
startup=$($PY -c "print(round(($t1-$t0)*1000))")

rps() { awk '/Requests\/sec/ {print $2}'; }
sim_res=$(wrk -t2 -c16 -d"${DUR}s" -H "$hdr" "$url/api2/json/cluster/resources" | rps)
sim_gz=$(wrk -t2 -c16 -d"${DUR}s" -H "$hdr" -H "Accept-Encoding: gzip" "$url/api2/json/cluster/resources" | rps)
sim_ver=$(wrk -t2 -c16 -d"${DUR}s" -H "$hdr" "$url/api2/json/version" | rps)

# the peer: a static copy of the same answer behind Python's threaded HTTPS server
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=peer \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat >"$tmp/peer.py" <<'PYEOF'
import http.server, ssl, sys
body = open(sys.argv[1], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PYEOF
$PY "$tmp/peer.py" "$tmp/resources.json" "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/pyport" 2>/dev/null &
pypid=$!
while [ ! -s "$tmp/pyport" ]; do sleep 0.05; done
py_res=$(wrk -t2 -c16 -d"${DUR}s" "https://127.0.0.1:$(cat "$tmp/pyport")/api2/json/cluster/resources" | rps)

ratio=$($PY -c "print(round($sim_res/$py_res, 1) if $py_res else 'inf')")
echo "pvelab sim --nodes 16 --guests 10000: start-up ${startup} ms; /cluster/resources ${size} bytes"
echo "GET /cluster/resources  pvelab sim: ${sim_res} req/s   python static file: ${py_res} req/s   ratio: ${ratio}x"
echo "GET /cluster/resources  pvelab sim with Accept-Encoding: gzip (as PVE, ~0.5 MB): ${sim_gz} req/s"
echo "GET /version            pvelab sim: ${sim_ver} req/s"
