# bench/lib.sh: sourced by bench scripts that run one `pvelab sim`: a temporary
# directory removed at exit (with the simulator), start_sim/stop_sim, median.
tmp=$(mktemp -d)
sim_pid=
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# start_sim BIN [sim options...]: start the simulator and export PVELAB_URL,
# PVELAB_FINGERPRINT and PVELAB_TOKEN (USER@REALM!TOKENID=SECRET) for it.
start_sim() {
	local bin=$1 line
	shift
	"$bin" sim --listen "127.0.0.1:${SIM_PORT:-0}" "$@" >"$tmp/sim.out" 2>"$tmp/sim.err" &
	sim_pid=$!
	for _ in $(seq 1 600); do
		[ -s "$tmp/sim.out" ] && break
		sleep 0.1
	done
	line=$(head -n1 "$tmp/sim.out")
	field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$line" "$1"; }
	PVELAB_URL=$(field url)
	PVELAB_FINGERPRINT=$(field fingerprint)
	PVELAB_TOKEN=$(field token)
	case $PVELAB_TOKEN in *!*=*) ;; *) PVELAB_TOKEN="root@pam!pvelab=$PVELAB_TOKEN" ;; esac
	export PVELAB_URL PVELAB_FINGERPRINT PVELAB_TOKEN
}

stop_sim() {
	kill "$sim_pid" && wait "$sim_pid" 2>/dev/null || true
	sim_pid=
}

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# start_pg: a PostgreSQL 15 of its own in $tmp/pg (run as nobody when we are
# root), listening only on a Unix socket there, stopped by stop_pg (the
# caller's EXIT trap); psql_ runs psql as its role pvelab.
PGBIN=/usr/lib/postgresql/15/bin
pg=$tmp/pg
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
start_pg() {
	mkdir -p "$pg"
	chmod 755 "$tmp"
	[ "$(id -u)" = 0 ] && chown nobody "$pg"
	as_pg "$PGBIN/initdb" -D "$pg/data" -U pvelab -A trust --no-sync -E UTF8 --locale=C >/dev/null
	printf "listen_addresses = ''\nunix_socket_directories = '%s'\n" "$pg" >>"$pg/data/postgresql.conf"
	as_pg "$PGBIN/pg_ctl" -D "$pg/data" -l "$pg/log" -w start >/dev/null
}
stop_pg() { as_pg "$PGBIN/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null || true; }
psql_() { psql -X -q -A -t -h "$pg" -U pvelab "$@"; }
