#!/usr/bin/env bash
# cluster.sh start|stop DIR — a local 3-node ShaleDB cluster on loopback:
# an etcd for the cluster's metadata and three nodes in regions r1..r3,
# each with its data directory, log and PID file under DIR. Ports are
# picked free on first start and kept in DIR/ports for restarts.
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=${2:?usage: cluster.sh start|stop DIR}
bin=${SHALEDB_BIN:-bin/shaledb}
nodes=3

stop_pid() { # name pidfile
	local pidfile=$2 pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			echo "$1 (pid $pid) did not stop in 30 s: killing it"
			kill -KILL "$pid"
		fi
		echo "stopped $1 (pid $pid)"
	fi
	rm -f "$pidfile"
}

case $cmd in
stop)
	for i in $(seq 1 $nodes); do stop_pid "node $i" "$dir/node$i.pid"; done
	stop_pid etcd "$dir/etcd.pid"
	exit 0 ;;
start) ;;
*) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac

mkdir -p "$dir"
for f in "$dir"/*.pid; do
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && { echo "the cluster in $dir is already running (make cluster-stop first)" >&2; exit 1; }
done
[ -f "$dir/ports" ] || echo $("$bin" free-ports $((2 + 2 * nodes))) > "$dir/ports"
read -r etcd_port etcd_peer_port rest < "$dir/ports"
[ -f "$dir/admin-password" ] || { head -c 18 /dev/urandom | base64 | tr '+/' '-_' > "$dir/admin-password"; chmod 600 "$dir/admin-password"; }
password=$(cat "$dir/admin-password")

etcd_url=http://127.0.0.1:$etcd_port
etcd --name shaledb --data-dir "$dir/etcd" \
	--listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
	--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
	--initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
	--initial-cluster "shaledb=http://127.0.0.1:$etcd_peer_port" \
	--heartbeat-interval 50 --election-timeout 500 > "$dir/etcd.log" 2>&1 &
echo $! > "$dir/etcd.pid"
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$etcd_port") 2>/dev/null && break; sleep 0.1; done

set -- $rest
for i in $(seq 1 $nodes); do
	pg=$1 peer=$2; shift 2
	SHALEDB_ADMIN_PASSWORD=$password "$bin" start --data-dir "$dir/node$i" \
		--listen "127.0.0.1:$pg" --peer-listen "127.0.0.1:$peer" \
		--etcd "$etcd_url" --region "r$i" > "$dir/node$i.log" 2>&1 &
	echo $! > "$dir/node$i.pid"
done
for i in $(seq 1 $nodes); do
	for _ in $(seq 1 600); do
		grep -q "Serving until" "$dir/node$i.log" && break
		kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null || { echo "node $i exited:"; tail -20 "$dir/node$i.log"; exit 1; }
		sleep 0.1
	done
	grep -q "Serving until" "$dir/node$i.log" || { echo "node $i did not come up in 60 s:"; tail -20 "$dir/node$i.log"; exit 1; }
done
echo "ShaleDB cluster of $nodes nodes running (etcd $etcd_url); logs and data in $dir"
echo "Connect to any node (the admin password is in $dir/admin-password):"
set -- $rest
for i in $(seq 1 $nodes); do
	echo "  node $i (region r$i): psql \"postgres://admin:$password@127.0.0.1:$1/system\""
	shift 2
done
echo "Stop it with: make cluster-stop"
