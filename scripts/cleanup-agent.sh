#!/usr/bin/env bash
# Removes from this machine everything a `ferry agent` made — the same steps as
# `ferry agent --cleanup` (crates/kubelet/src/cleanup.rs), for when the binary is not at hand:
# containers (runc state), the agent's containerd and its shims, pod network namespaces with no
# process left, the pod bridge, the pod-network guard (nft table `inet ferry`, the cluster CIDR's
# blackhole route, the service CIDR's route into the port-less bridge `ferry-svc`),
# the service proxy's nft table `ip ferry-proxy`, the NetworkPolicy table `inet ferry-policy`, the pod network's routes to other nodes (proto 77)
# and its VXLAN device `ferry.1`,
# CNI's cached results, mounts under the data dir, the pods' cgroups, the runtime state.
# Run it with the agent stopped.
#
# Usage: scripts/cleanup-agent.sh [--data-dir DIR] [--bridge NAME] [--cgroup-root PATH]
#                                 [--cluster-cidr CIDR] [--service-cidr CIDR]
# Defaults are the agent's: /var/lib/ferry/agent, ferry0, /kubepods, 10.42.0.0/16, 10.43.0.0/16.
# (`ferry server` runs its local agent with --data-dir <server data dir>/agent.)
set -uo pipefail
data_dir=/var/lib/ferry/agent
bridge=ferry0
cgroup_root=/kubepods
cluster_cidr=10.42.0.0/16
service_cidr=10.43.0.0/16
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) data_dir=$2; shift 2 ;;
    --bridge) bridge=$2; shift 2 ;;
    --cgroup-root) cgroup_root=$2; shift 2 ;;
    --cluster-cidr) cluster_cidr=$2; shift 2 ;;
    --service-cidr) service_cidr=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
[ -d "$data_dir" ] && data_dir=$(cd "$data_dir" && pwd)
say() { echo "cleanup-agent: $*"; }

# 1. Containers, by runc's state (their processes outlive a killed shim).
runc_root=$data_dir/containerd/runc/k8s.io
if [ -d "$runc_root" ]; then
  for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
    runc --root "$runc_root" delete --force "$id" && say "deleted container $id"
  done
fi

# 2. Our containerd (by its config path), then shims of its socket.
config=$data_dir/containerd/config.toml
socket=$data_dir/containerd/containerd.sock
for pid in $(pgrep -f -- "--config $config" 2>/dev/null); do
  kill -KILL "$pid" && say "killed containerd $pid"
done
for pid in $(pgrep -f -- "containerd-shim.*-address $socket" 2>/dev/null); do
  kill -KILL "$pid" && say "killed shim $pid"
done
sleep 0.5
if [ -d /run/containerd/s ]; then
  for s in /run/containerd/s/*; do
    [ -e "$s" ] || continue
    grep -qF "$s" /proc/net/unix || { rm -f "$s"; say "removed stale shim socket $s"; }
  done
fi

# 3. Pod netns without processes, the bridge, the guard, CNI's cached results.
for ns in $(ls /run/netns 2>/dev/null | grep '^cni-'); do
  [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && ip netns delete "$ns" && say "deleted netns $ns"
done
ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge" && say "deleted bridge $bridge"
for cidr in "$cluster_cidr" "$service_cidr"; do
  ip route del "$cidr" 2>/dev/null && say "removed route $cidr"
done
ip link show ferry-svc >/dev/null 2>&1 && ip link delete ferry-svc && say "deleted service device ferry-svc"
nft delete table inet ferry 2>/dev/null && say "removed nft table inet ferry"
nft delete table ip ferry-proxy 2>/dev/null && say "removed nft table ip ferry-proxy"
nft delete table inet ferry-policy 2>/dev/null && say "removed nft table inet ferry-policy"
for route in $(ip -4 route show proto 77 | cut -d' ' -f1); do
  ip route del "$route" proto 77 && say "removed the pod route to $route"
done
ip link show ferry.1 >/dev/null 2>&1 && ip link delete ferry.1 && say "deleted the VXLAN device ferry.1"
rm -f /var/lib/cni/results/ferry-* /var/lib/cni/results/cni-loopback-* 2>/dev/null

# 4. Mounts under the data dir, deepest first.
if [ -d "$data_dir" ]; then
  awk -v d="$data_dir/" 'index($5, d) == 1 { print length($5), $5 }' /proc/self/mountinfo |
    sort -rn | cut -d' ' -f2- | while read -r m; do
      umount -l "$m" && say "unmounted $m"
    done
fi

# 5. The pods' cgroups in every hierarchy, depth-first.
root=${cgroup_root#/}
if [ -n "$root" ]; then
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$h/$root" ] || continue
    find "$h/$root" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$h/$root" ] || say "removed cgroup $h/$root"
  done
fi

# 6. Runtime state, never through a mount that would not go.
for sub in containerd pods pod-logs cni; do
  d=$data_dir/$sub
  [ -e "$d" ] || continue
  if awk -v d="$d/" 'index($5 "/", d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    echo "cleanup-agent: not removing $d: still mounted" >&2
    continue
  fi
  rm -rf "$d" && say "removed $d"
done

# 7. Host directories the runtime created, if now empty.
for d in /run/netns /run/containerd/s /run/containerd /var/lib/cni/results /var/lib/cni; do
  if [ -d "$d" ] && [ -z "$(ls -A "$d")" ]; then
    umount "$d" 2>/dev/null
    rmdir "$d" && say "removed $d"
  fi
done
