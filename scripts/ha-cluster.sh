#!/usr/bin/env bash
# Three `ferry server`s on a three-member etcd cluster, all on this machine's loopback
# (docs/HA.md). Member i (1..3) uses the address 127.0.0.(i+1): its etcd listens there on the
# client and peer ports, its server on the API port, so every server has the same port (one
# port per Service: the `kubernetes` endpoints list the servers' addresses).
#
#   scripts/ha-cluster.sh start [--dir DIR] [--api-port P] [--etcd-client-port P]
#                               [--etcd-peer-port P] [--ferry BIN] [-- SERVER FLAGS...]
#       Starts the etcd members, then server 1, copies its CA, front-proxy CA,
#       service-account key and join token to the others' data dirs (kept if already there),
#       starts servers 2 and 3, and writes DIR/kubeconfig.yaml with a context per server
#       (ferry-1, the current one, ferry-2, ferry-3). Pids in DIR/<name>.pid, logs in
#       DIR/<name>.log, data in DIR/<name>/ for etcd-1..3 and server-1..3. Flags after `--`
#       go to every server.
#   scripts/ha-cluster.sh stop [--dir DIR]
#       Stops the servers (SIGTERM, so each takes its address out of the `kubernetes`
#       endpoints), then the etcd members, by their recorded pids. The data stays.
#
# Defaults: --dir /tmp/ferry-ha, --api-port 6443, --etcd-client-port 2379,
# --etcd-peer-port 2380, --ferry $FERRY or target/debug/ferry.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=/tmp/ferry-ha
api_port=6443
client_port=2379
peer_port=2380
ferry=${FERRY:-$repo/target/debug/ferry}
server_flags=()

command=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --api-port) api_port=$2; shift 2 ;;
    --etcd-client-port) client_port=$2; shift 2 ;;
    --etcd-peer-port) peer_port=$2; shift 2 ;;
    --ferry) ferry=$2; shift 2 ;;
    --) shift; server_flags=("$@"); break ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
members=(1 2 3)
address() { echo "127.0.0.$(($1 + 1))"; }
say() { echo "ha-cluster: $*"; }

# The pid in DIR/NAME.pid if that process is still ours (its command line names DIR).
live_pid() {
  local file=$dir/$1.pid pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/$1" &&
    echo "$pid"
}

# SIGTERM, then SIGKILL after `grace` seconds.
stop_one() {
  local name=$1 grace=$2 pid
  if pid=$(live_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((grace * 10))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    say "stopped $name (pid $pid)"
  fi
  rm -f "$dir/$name.pid"
}

# Waits until `check` succeeds, for at most `seconds`.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  echo "ha-cluster: $what not ready after ${seconds}s (see $dir/*.log)" >&2
  return 1
}

etcd_healthy() { curl -fsS --max-time 1 "http://$(address "$1"):$client_port/health" 2>/dev/null | grep -q '"health":"true"'; }
server_ready() { live_pid "server-$1" >/dev/null && grep -q '^export KUBECONFIG=' "$dir/server-$1.log"; }

start_etcd() {
  local i=$1 ip cluster=""
  ip=$(address "$i")
  for m in "${members[@]}"; do
    cluster+="${cluster:+,}etcd-$m=http://$(address "$m"):$peer_port"
  done
  if live_pid "etcd-$i" >/dev/null; then return; fi
  setsid etcd --name "etcd-$i" --data-dir "$dir/etcd-$i" \
    --listen-client-urls "http://$ip:$client_port" --advertise-client-urls "http://$ip:$client_port" \
    --listen-peer-urls "http://$ip:$peer_port" --initial-advertise-peer-urls "http://$ip:$peer_port" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token ferry-ha \
    >"$dir/etcd-$i.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd-$i.pid"
}

start_server() {
  local i=$1 endpoints=""
  for m in "${members[@]}"; do
    endpoints+="${endpoints:+,}http://$(address "$m"):$client_port"
  done
  if live_pid "server-$i" >/dev/null; then return; fi
  # A fresh log each start: readiness is its `export KUBECONFIG=` line.
  setsid "$ferry" server --data-dir "$dir/server-$i" --store etcd --etcd-endpoints "$endpoints" \
    --https-listen "$(address "$i"):$api_port" --disable-agent --cluster-dns-port 0 \
    ${server_flags[@]+"${server_flags[@]}"} >"$dir/server-$i.log" 2>&1 </dev/null &
  echo $! >"$dir/server-$i.pid"
}

# The files every server must share: the cluster CA (client certificates signed by one are
# trusted by all), the front proxy's CA, the service-account signing key (tokens from one
# verify at all) and the join token.
share_secrets() {
  local to=$dir/server-$1
  mkdir -p "$to/tls"
  for f in tls/ca.crt tls/ca.key tls/front-proxy-ca.crt tls/front-proxy-ca.key \
    tls/service-account.key join-token; do
    [ -e "$to/$f" ] || cp -p "$dir/server-1/$f" "$to/$f"
  done
}

write_kubeconfig() {
  local tls=$dir/server-1/tls b64
  b64() { base64 -w0 <"$1"; }
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    for i in "${members[@]}"; do
      echo "- name: ferry-$i"
      echo "  cluster:"
      echo "    server: https://$(address "$i"):$api_port"
      echo "    certificate-authority-data: $(b64 "$tls/ca.crt")"
    done
    echo "users:"
    echo "- name: ferry-admin"
    echo "  user:"
    echo "    client-certificate-data: $(b64 "$tls/admin.crt")"
    echo "    client-key-data: $(b64 "$tls/admin.key")"
    echo "contexts:"
    for i in "${members[@]}"; do
      echo "- name: ferry-$i"
      echo "  context: {cluster: ferry-$i, user: ferry-admin}"
    done
    echo "current-context: ferry-1"
  } >"$dir/kubeconfig.yaml.tmp"
  chmod 600 "$dir/kubeconfig.yaml.tmp"
  mv "$dir/kubeconfig.yaml.tmp" "$dir/kubeconfig.yaml"
}

case $command in
  start)
    command -v etcd >/dev/null || { echo "etcd not found (Debian: apt-get install etcd-server)" >&2; exit 1; }
    [ -x "$ferry" ] || { echo "$ferry not found (cargo build -p ferry, or --ferry BIN)" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for i in "${members[@]}"; do start_etcd "$i"; done
    for i in "${members[@]}"; do wait_for 30 "etcd-$i" etcd_healthy "$i"; done
    say "etcd members on $(address 1)..$(address 3), client port $client_port, peer port $peer_port"
    start_server 1
    wait_for 60 server-1 server_ready 1
    for i in 2 3; do share_secrets "$i"; start_server "$i"; done
    for i in 2 3; do wait_for 60 "server-$i" server_ready "$i"; done
    write_kubeconfig
    for i in "${members[@]}"; do say "server-$i: https://$(address "$i"):$api_port (pid $(cat "$dir/server-$i.pid"))"; done
    echo "export KUBECONFIG=$dir/kubeconfig.yaml"
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd)
    for i in "${members[@]}"; do stop_one "server-$i" 10 & done
    wait
    for i in "${members[@]}"; do stop_one "etcd-$i" 10 & done
    wait
    ;;
  *) sed -n '2,23p' "$0" >&2; exit 2 ;;
esac
