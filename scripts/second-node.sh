#!/usr/bin/env bash
# A second node on this machine, for multi-node tests: a network namespace with a veth pair to
# the host, and a `ferry agent` inside it with its own data dir, containerd and bridge, joined
# to a server with the join token. Nothing of it reaches past this machine: the veth's /24 is
# private to the pair, and the namespace has no default route.
#
#   scripts/second-node.sh net
#       Creates the namespace and the veth pair: the host side holds 10.199.0.1/24, the node
#       10.199.0.2/24. Run it before the server's first start, so that its serving certificate
#       names 10.199.0.1 (`ferry server --https-listen 10.199.0.1:6443`).
#   scripts/second-node.sh up --server URL --token TOKEN [--name NODE] [--data-dir DIR]
#                             [--ferry BIN] [--image REF]...
#       Starts the agent in the namespace (pid in DIR.pid, log in DIR.log), waits for its
#       containerd and pulls the images into it from the host's registry on 127.0.0.1:5000,
#       which the namespace cannot reach (defaults: pause, busybox and httpd of the test images).
#   scripts/second-node.sh down [--data-dir DIR] [--ferry BIN]
#       Stops the agent by its pid, runs `ferry agent --cleanup` in the namespace and deletes the
#       namespace (the veth pair goes with it).
#
# Defaults: --name ferry-node2, --data-dir /tmp/ferry-node2, --ferry target/debug/ferry.
set -euo pipefail
ns=ferry-node2
host_if=ferry-n2h
node_if=ferry-n2
host_ip=10.199.0.1
node_ip=10.199.0.2
name=ferry-node2
data_dir=/tmp/ferry-node2
repo=$(cd "$(dirname "$0")/.." && pwd)
ferry=$repo/target/debug/ferry
server='' token=''
images=()
bridge=ferry-n2br
cgroup_root=/ferry-node2

command=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --server) server=$2; shift 2 ;;
    --token) token=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --ferry) ferry=$2; shift 2 ;;
    --image) images+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(127.0.0.1:5000/pause:3.10 127.0.0.1:5000/busybox:1 127.0.0.1:5000/httpd:1)
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
say() { echo "second-node: $*"; }
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
agent_flags=(--node-name "$name" --data-dir "$data_dir" --node-ip "$node_ip"
  --bridge "$bridge" --cgroup-root "$cgroup_root")

case $command in
  net)
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name "$node_if" netns "$ns"
    ip address add "$host_ip/24" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$ns" link set lo up
    ip -n "$ns" address add "$node_ip/24" dev "$node_if"
    ip -n "$ns" link set "$node_if" up
    say "namespace $ns: $host_if $host_ip <-> $node_if $node_ip"
    ;;
  up)
    [ -n "$server" ] && [ -n "$token" ] || { echo "up needs --server and --token" >&2; exit 2; }
    [ -e "/run/netns/$ns" ] || { echo "no namespace $ns: run '$0 net' first" >&2; exit 1; }
    mkdir -p "$data_dir"
    # nsenter (not `ip netns exec`) keeps the host's mount namespace: the agent's mounts stay
    # visible to its cleanup and to the tests' checks.
    setsid nsenter --net="/run/netns/$ns" "$ferry" agent --server "$server" --token "$token" \
      "${agent_flags[@]}" >"$data_dir.log" 2>&1 </dev/null &
    echo $! >"$data_dir.pid"
    socket=$data_dir/containerd/containerd.sock
    for _ in $(seq 1 600); do
      [ -S "$socket" ] && ctr --address "$socket" version >/dev/null 2>&1 && break
      kill -0 "$(cat "$data_dir.pid")" 2>/dev/null || { tail -20 "$data_dir.log" >&2; exit 1; }
      sleep 0.1
    done
    [ -S "$socket" ] || { echo "the agent's containerd never started" >&2; exit 1; }
    for image in "${images[@]}"; do
      ctr --address "$socket" -n k8s.io images pull --plain-http "$image" >/dev/null
      say "pulled $image"
    done
    say "agent $name runs in $ns (pid $(cat "$data_dir.pid"), log $data_dir.log)"
    ;;
  down)
    if [ -f "$data_dir.pid" ]; then
      pid=$(cat "$data_dir.pid")
      if kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f "$data_dir.pid"
    fi
    if [ -e "/run/netns/$ns" ]; then
      in_ns "$ferry" agent --cleanup "${agent_flags[@]}" || true
      ip netns delete "$ns"
      say "deleted namespace $ns"
    fi
    ip link show "$host_if" >/dev/null 2>&1 && ip link delete "$host_if"
    rm -rf "$data_dir"
    ;;
  *) echo "usage: $0 net|up|down [flags] (--help)" >&2; exit 2 ;;
esac
