#!/usr/bin/env bash
# Feasibility probe: can this machine run real containers the way ferry's agent will?
# Checks, each reported as PASS/FAIL/SKIP with the command that decided it:
#   cgroups      which cgroup layout (v1, hybrid, v2) runc will use
#   overlayfs    an overlay mount in a temp dir (else containerd's `native` snapshotter is used)
#   netns        ip netns + bridge + veth + addresses, host pings an address inside the netns
#   nftables     a table inet ferry_probe with a forward chain (kept until the end: it drops
#                anything the probe's subnet would forward off the subnet)
#   cni          Debian's bridge + host-local + portmap plugins (in /usr/lib/cni), called directly
#                as containerd's CRI plugin would, into a fresh netns
#   containerd   containerd started with a generated config (root, state, socket under the temp dir;
#                CRI plugin: sandbox image, CNI dirs, registry hosts.toml); CRI plugin loaded
#   pull         ctr pull --plain-http from the local test registry
#   run          ctr run of busybox:1 (echo), exit code and output
#   cgroup-limit a memory limit set by ctr run shows in the container's v1 memory cgroup
#   pod-http     httpd:1 run in the CNI netns; the host fetches / from the pod IP
# Then everything is cleaned up: tasks, containers, containerd (by pid), leftover shims (by pid,
# only those started for our socket), mounts under the temp dir, netns, links, nft tables, cgroups.
#
# Usage: sudo scripts/probe-containerd.sh
#   FERRY_PROBE_CRI_CLIENT="cmd"  runs a CRI client against the probe's containerd (see the end)
#   FERRY_PROBE_LOG=FILE          keeps a copy of containerd's log
#   FERRY_PROBE_LOG_LEVEL=debug   containerd log level (default info)
#   Uses the registry on 127.0.0.1:5000 if one answers; otherwise runs
#   scripts/build-test-images.sh with a registry dir under the temp dir and stops it at the end.
# Exit status: 0 if every check passed, 1 otherwise. CRI-level checks need a CRI client (crictl is
# not packaged in Debian bookworm): without FERRY_PROBE_CRI_CLIENT they are reported as SKIP.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
for bin in containerd ctr runc nft ip jq curl busybox; do
  command -v "$bin" >/dev/null || { echo "$bin not found: run scripts/install-runtime-deps.sh" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/ferry-probe.XXXXXX)
sock=$tmp/containerd.sock
ns=ferry-probe                 # containerd namespace
netns_manual=ferry-probe-a     # netns for the manual veth check
netns_cni=ferry-probe-cni      # netns the CNI plugins configure
bridge_manual=ferry-probeM
bridge=ferry-probe0
subnet=10.42.250.0/24
manual_net=10.42.251           # .1 on the bridge, .2 in the netns
cni_bin=/usr/lib/cni
registry=127.0.0.1:5000
containerd_pid=""
registry_dir=""
failures=0
ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
nft_tables_before=$(nft list tables 2>/dev/null)
# Host directories that tools create as a side effect: `ip netns add` bind-mounts /run/netns onto
# itself (shared propagation), shims put their sockets in the hard-coded /run/containerd/s,
# libmount keeps /run/mount/utab. Removed at the end only if we created them and they are empty.
# containerd's CRI plugin (libcni) also keeps a result cache in /var/lib/cni/results.
run_dirs_before=$(ls -d /run/netns /run/containerd /run/mount /var/lib/cni/results /var/lib/cni 2>/dev/null)
# Top-level v1/v2 cgroups present before: any new one (runc's per-namespace parent, a CRI
# client's kubepods tree) is removed at the end once empty.
cgroups_before=$(ls -d /sys/fs/cgroup/*/*/ 2>/dev/null)

result() { # STATUS NAME DETAIL
  printf '%-4s %-12s %s\n' "$1" "$2" "$3"
  [ "$1" = FAIL ] && failures=$((failures + 1))
  return 0
}
ctr_() { ctr --address "$sock" --namespace "$ns" "$@"; }

cleanup() {
  set +e
  if [ -n "$containerd_pid" ] && [ -d "/proc/$containerd_pid" ]; then
    for c in $(ctr_ tasks ls -q 2>/dev/null); do
      ctr_ tasks kill -s KILL "$c" >/dev/null 2>&1
      sleep 0.2
      ctr_ tasks delete -f "$c" >/dev/null 2>&1
    done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1; done
    kill -TERM "$containerd_pid"
    for _ in $(seq 50); do [ -d "/proc/$containerd_pid" ] || break; sleep 0.1; done
    [ -d "/proc/$containerd_pid" ] && kill -KILL "$containerd_pid"
    wait "$containerd_pid" 2>/dev/null
  fi
  # Shims outlive containerd by design; ours are the ones given our socket as -address.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null
  done
  # CNI DEL releases the pod IP and the veth; the netns and bridges are ours to delete.
  if [ -e "/run/netns/$netns_cni" ]; then
    cni_chain DEL >/dev/null 2>&1
  fi
  for n in "$netns_manual" "$netns_cni"; do
    [ -e "/run/netns/$n" ] && ip netns delete "$n"
  done
  for l in "$bridge_manual" "$bridge" ferry-probe-v0; do
    ip link show "$l" >/dev/null 2>&1 && ip link delete "$l"
  done
  # nft tables that did not exist before the probe: ours, and the `ip nat` table portmap creates
  # through iptables-nft when none was there.
  nft list tables 2>/dev/null | while read -r _ family name; do
    grep -qx "table $family $name" <<<"$nft_tables_before" || nft delete table "$family" "$name"
  done
  echo "$ip_forward_before" >/proc/sys/net/ipv4/ip_forward
  # Mounts under the temp dir (overlay test, container rootfs, shm), deepest first.
  findmnt -rn -o TARGET | grep "^$tmp" | sort -r | while read -r m; do umount -l "$m"; done
  # cgroups runc made for parents (/ferry-probe for ctr, /kubepods/... for a CRI client) in every
  # hierarchy, the hybrid /sys/fs/cgroup/unified included; containers' own go with the container.
  for d in /sys/fs/cgroup/*/*/; do
    grep -qxF "$d" <<<"$cgroups_before" && continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  for d in /run/netns /run/containerd/s /run/containerd /run/mount /var/lib/cni/results /var/lib/cni; do
    grep -qx "$d" <<<"$run_dirs_before" && continue
    [ "$d" = /run/containerd/s ] && grep -qx /run/containerd <<<"$run_dirs_before" && continue
    [ "$d" = /var/lib/cni/results ] && grep -qx /var/lib/cni <<<"$run_dirs_before" && continue
    [ -d "$d" ] && [ -z "$(ls -A "$d")" ] || continue
    mountpoint -q "$d" && umount "$d"
    rmdir "$d"
  done
  if [ -n "$registry_dir" ]; then
    "$repo/scripts/stop-test-registry.sh" --registry-dir "$registry_dir" >/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- cgroups ---------------------------------------------------------------------------------
fstype=$(stat -fc %T /sys/fs/cgroup)
if [ "$fstype" = cgroup2fs ]; then
  layout="v2 (unified)"
elif [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup/unified)" = cgroup2fs ]; then
  layout="hybrid: v1 controllers, v2 mounted at /sys/fs/cgroup/unified (runc uses v1)"
else
  layout="v1"
fi
result INFO cgroups "stat -fc %T /sys/fs/cgroup = $fstype -> $layout; controllers: $(ls /sys/fs/cgroup | tr '\n' ' ')"

# --- CAP_SYS_RESOURCE / oom_score_adj ---------------------------------------------------------
# containerd's CRI plugin gives every sandbox oom_score_adj -998 (and kubelet-style Guaranteed
# containers -997); lowering it needs CAP_SYS_RESOURCE. Without it runc init dies with
# "can't get final child's PID from pipe: EOF" and the CRI plugin needs restrict_oom_score_adj.
capbnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
if (((16#$capbnd >> 24) & 1)) && sh -c 'echo -998 >/proc/self/oom_score_adj' 2>/dev/null; then
  result INFO oom-adj "CapBnd $capbnd has CAP_SYS_RESOURCE; echo -998 >/proc/self/oom_score_adj works"
else
  result INFO oom-adj "CapBnd $capbnd lacks CAP_SYS_RESOURCE (bit 24): echo -998 >/proc/self/oom_score_adj fails, so the CRI config sets restrict_oom_score_adj = true"
fi

# --- overlayfs -------------------------------------------------------------------------------
snapshotter=overlayfs
o=$tmp/ovl
mkdir -p "$o"/{lower,upper,work,merged}
echo lower >"$o/lower/f"
if mount -t overlay overlay -o "lowerdir=$o/lower,upperdir=$o/upper,workdir=$o/work" "$o/merged" 2>"$o/err" &&
  echo upper >"$o/merged/g" && [ "$(cat "$o/merged/f")" = lower ] && [ -f "$o/upper/g" ]; then
  result PASS overlayfs "mount -t overlay on $(findmnt -n -o FSTYPE -T "$tmp") ($tmp): read lower, write to upper"
  umount "$o/merged"
else
  result FAIL overlayfs "mount -t overlay: $(cat "$o/err"); falling back to the native snapshotter"
  snapshotter=native
fi

# --- netns + bridge + veth -------------------------------------------------------------------
if ip netns add "$netns_manual" &&
  ip link add "$bridge_manual" type bridge &&
  ip addr add "$manual_net.1/24" dev "$bridge_manual" && ip link set "$bridge_manual" up &&
  ip link add ferry-probe-v0 type veth peer name eth0 netns "$netns_manual" &&
  ip link set ferry-probe-v0 master "$bridge_manual" up &&
  ip -n "$netns_manual" addr add "$manual_net.2/24" dev eth0 &&
  ip -n "$netns_manual" link set eth0 up && ip -n "$netns_manual" link set lo up &&
  busybox ping -c 1 -W 2 "$manual_net.2" >/dev/null; then
  result PASS netns "ip netns add; ip link add type bridge / veth peer netns; busybox ping $manual_net.2 from the host"
else
  result FAIL netns "see the ip commands above"
fi
ip netns delete "$netns_manual" 2>/dev/null   # takes eth0 and with it ferry-probe-v0
ip link delete "$bridge_manual" 2>/dev/null

# --- nftables --------------------------------------------------------------------------------
# Also a guard while the probe runs: nothing from the probe subnet is forwarded off it.
if nft add table inet ferry_probe &&
  nft add chain inet ferry_probe forward '{ type filter hook forward priority -10; }' &&
  nft add rule inet ferry_probe forward ip saddr "$subnet" ip daddr != "$subnet" drop &&
  nft list table inet ferry_probe >/dev/null; then
  result PASS nftables "nft add table inet ferry_probe; add chain (hook forward); add rule; list"
else
  result FAIL nftables "nft add table inet ferry_probe failed"
fi

# --- CNI, called directly --------------------------------------------------------------------
mkdir -p "$tmp/cni/net.d" "$tmp/cni/ipam"
# The conflist the agent will write (no default route: the probe's pod talks to the host only).
cat >"$tmp/cni/net.d/10-ferry-probe.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "ferry-probe",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$subnet" }]],
        "dataDir": "$tmp/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
# cni_chain ADD|DEL: runs the conflist's plugins like libcni does (ADD in order, passing
# prevResult; DEL in reverse), with a portMappings runtime config for portmap.
cni_chain() {
  local cmd=$1 list=$tmp/cni/net.d/10-ferry-probe.conflist prev=null n i conf out
  n=$(jq '.plugins | length' "$list")
  local order
  if [ "$cmd" = ADD ]; then order=$(seq 0 $((n - 1))); else order=$(seq $((n - 1)) -1 0); fi
  for i in $order; do
    conf=$(jq -c --argjson i "$i" --argjson prev "$prev" '
      .plugins[$i] + {cniVersion, name}
      + (if $prev != null then {prevResult: $prev} else {} end)
      + (if .plugins[$i].type == "portmap" then {runtimeConfig: {portMappings:
          [{hostPort: 18080, containerPort: 8080, protocol: "tcp", hostIP: "127.0.0.1"}]}} else {} end)' "$list")
    out=$(CNI_COMMAND=$cmd CNI_CONTAINERID=ferry-probe-pod CNI_NETNS="/run/netns/$netns_cni" \
      CNI_IFNAME=eth0 CNI_PATH=$cni_bin "$cni_bin/$(jq -r '.type' <<<"$conf")" <<<"$conf") ||
      { echo "$out"; return 1; }
    [ "$cmd" = ADD ] && prev=$out
  done
  [ "$cmd" = ADD ] && echo "$prev"
  return 0
}
# containerd's CRI plugin also runs `loopback` itself (go-cni's WithLoNetwork): check it exists.
pod_ip=""
if ip netns add "$netns_cni" && add_out=$(cni_chain ADD); then
  pod_ip=$(jq -r '.ips[0].address' <<<"$add_out" | cut -d/ -f1)
  result PASS cni "bridge+host-local+portmap ADD into netns $netns_cni: pod IP $pod_ip, bridge $bridge $(ip -br addr show "$bridge" | awk '{print $3}'); loopback plugin present: $([ -x $cni_bin/loopback ] && echo yes || echo NO)"
else
  result FAIL cni "ADD failed: ${add_out:-}"
fi

# --- containerd ------------------------------------------------------------------------------
mkdir -p "$tmp/certs.d/$registry"
# containerd 1.6: registry hosts in config_path (hosts.toml per host dir). The older
# `registry.mirrors` table is deprecated and may not be combined with config_path.
cat >"$tmp/certs.d/$registry/hosts.toml" <<TOML
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
TOML
cat >"$tmp/config.toml" <<TOML
version = 2
root = "$tmp/root"
state = "$tmp/state"
plugin_dir = ""
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
  level = "${FERRY_PROBE_LOG_LEVEL:-info}"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$tmp/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Clamp sandbox/container oom_score_adj to containerd's own (0 here) instead of -998: this
  # machine's root has no CAP_SYS_RESOURCE, and RunPodSandbox fails without it (see oom-adj).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$tmp/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$tmp/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$tmp/certs.d"
TOML

if ! curl -fsS --max-time 2 "http://$registry/v2/" >/dev/null 2>&1; then
  registry_dir=$tmp/registry
  "$repo/scripts/build-test-images.sh" --registry-dir "$registry_dir" >/dev/null ||
    result FAIL registry "scripts/build-test-images.sh failed"
fi

containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do
  ctr --address "$sock" version >/dev/null 2>&1 && break
  [ -d "/proc/$containerd_pid" ] || break
  sleep 0.1
done
if ctr --address "$sock" version >/dev/null 2>&1; then
  plugins=$(ctr --address "$sock" plugins ls)
  cri=$(awk '$2 == "cri" {print $NF}' <<<"$plugins")
  snap=$(awk -v s="$snapshotter" '$1 == "io.containerd.snapshotter.v1" && $2 == s {print $NF}' <<<"$plugins")
  result PASS containerd "containerd --config $tmp/config.toml (pid $containerd_pid): ctr version ok; plugin cri: $cri; snapshotter $snapshotter: $snap"
  [ "$cri" = ok ] || result FAIL cri-plugin "$(grep -i 'cri' "$tmp/containerd.log" | grep -iE 'error|fail' | head -3)"
  [ "$snap" = ok ] || result FAIL snapshotter "$snapshotter: $snap"
  listening=$(ss -ltnpH 2>/dev/null | grep "pid=$containerd_pid," | awk '{print $4}' | tr '\n' ' ')
  result INFO containerd "TCP listeners of containerd: ${listening:-none} (CRI streaming server, loopback only)"
else
  result FAIL containerd "did not start; log: $(tail -5 "$tmp/containerd.log")"
fi

# --- pull and run ----------------------------------------------------------------------------
run_opts=(--snapshotter "$snapshotter" --runc-root "$tmp/runc" --fifo-dir "$tmp/fifo")
if ctr_ images pull --plain-http "$registry/busybox:1" >"$tmp/pull.log" 2>&1 &&
  ctr_ images pull --plain-http "$registry/httpd:1" >>"$tmp/pull.log" 2>&1; then
  result PASS pull "ctr images pull --plain-http $registry/busybox:1 and httpd:1"
else
  result FAIL pull "$(tail -3 "$tmp/pull.log")"
fi

# The same hosts.toml the CRI plugin reads (config_path), through ctr's --hosts-dir: the same
# resolver code (remotes/docker/config), so this checks the file without a CRI client.
if ctr_ images pull --hosts-dir "$tmp/certs.d" "$registry/pause:3.10" >"$tmp/pull-hosts.log" 2>&1; then
  result PASS hosts.toml "ctr images pull --hosts-dir $tmp/certs.d $registry/pause:3.10 (no --plain-http: http from hosts.toml)"
else
  result FAIL hosts.toml "$(tail -3 "$tmp/pull-hosts.log")"
fi

# The pause image: runs as 65535 and PID 1, exits 0 promptly on SIGTERM.
if ctr_ run -d "${run_opts[@]}" "$registry/pause:3.10" probe-pause >/dev/null 2>&1; then
  sleep 0.3
  pause_pid=$(ctr_ tasks ls | awk '$1 == "probe-pause" {print $2}')
  pause_uid=$(awk '/^Uid:/ {print $2}' "/proc/$pause_pid/status" 2>/dev/null)
  ctr_ tasks kill -s TERM probe-pause >/dev/null 2>&1
  pause_status=""
  for _ in $(seq 30); do
    pause_status=$(ctr_ tasks ls | awk '$1 == "probe-pause" {print $3}')
    [ "$pause_status" = STOPPED ] && break
    sleep 0.1
  done
  # ctr tasks delete exits with the task's exit code.
  ctr_ tasks delete probe-pause >/dev/null 2>&1
  pause_exit=$?
  ctr_ containers delete probe-pause >/dev/null 2>&1
  if [ "$pause_uid" = 65535 ] && [ "$pause_status" = STOPPED ] && [ "$pause_exit" = 0 ]; then
    result PASS pause "ctr run pause:3.10: uid $pause_uid; SIGTERM -> $pause_status within 3 s, exit status $pause_exit"
  else
    result FAIL pause "uid '$pause_uid', status after SIGTERM '$pause_status', exit status '$pause_exit'"
  fi
else
  result FAIL pause "ctr run -d pause:3.10 failed"
fi

out=$(timeout 60 ctr --address "$sock" --namespace "$ns" run --rm "${run_opts[@]}" "$registry/busybox:1" probe-echo \
  sh -c 'echo hello-from-ferry-probe; id -u; exit 3' 2>&1)
rc=$?
if [ "$rc" = 3 ] && grep -q hello-from-ferry-probe <<<"$out"; then
  result PASS run "ctr run --rm busybox:1 sh -c 'echo ...; exit 3': output '$(tr '\n' ' ' <<<"$out")', exit 3 propagated"
else
  result FAIL run "rc=$rc output: $out"
fi

limit=$((64 * 1024 * 1024))
if ctr_ run -d "${run_opts[@]}" --memory-limit "$limit" "$registry/busybox:1" probe-cg sleep 300 >/dev/null 2>&1; then
  sleep 0.5
  task_pid=$(ctr_ tasks ls | awk '$1 == "probe-cg" {print $2}')
  cg=$(awk -F: '$2 == "memory" {print $3}' "/proc/$task_pid/cgroup")
  got=$(cat "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes" 2>/dev/null)
  pids_cg=$(awk -F: '$2 == "pids" {print $3}' "/proc/$task_pid/cgroup")
  if [ "$got" = "$limit" ]; then
    result PASS cgroup-limit "ctr run --memory-limit $limit: /sys/fs/cgroup/memory$cg/memory.limit_in_bytes = $got; pids cgroup $pids_cg"
  else
    result FAIL cgroup-limit "memory cgroup '$cg' limit '$got' (wanted $limit); /proc/$task_pid/cgroup: $(tr '\n' ' ' <"/proc/$task_pid/cgroup" 2>/dev/null)"
  fi
  ctr_ tasks kill -s KILL probe-cg >/dev/null 2>&1; sleep 0.3
  ctr_ tasks delete probe-cg >/dev/null 2>&1; ctr_ containers delete probe-cg >/dev/null 2>&1
else
  result FAIL cgroup-limit "ctr run -d --memory-limit failed"
fi

# --- a pod's HTTP server in the CNI netns, reached from the host -----------------------------
if [ -n "$pod_ip" ]; then
  if ctr_ run -d "${run_opts[@]}" --with-ns "network:/run/netns/$netns_cni" \
    "$registry/httpd:1" probe-httpd >/dev/null 2>&1; then
    body=""
    for _ in $(seq 30); do
      body=$(curl -fsS --max-time 2 "http://$pod_ip:8080/" 2>/dev/null) && break
      sleep 0.2
    done
    if grep -q 'hello from ferry httpd' <<<"$body"; then
      result PASS pod-http "ctr run --with-ns network:/run/netns/$netns_cni httpd:1; curl http://$pod_ip:8080/ from the host"
    else
      result FAIL pod-http "curl http://$pod_ip:8080/ got '$body'"
    fi
    # portmap: hostIP 127.0.0.1:18080 -> pod:8080 (DNAT from OUTPUT for local traffic)
    if body=$(curl -fsS --max-time 3 "http://127.0.0.1:18080/" 2>&1) && grep -q 'ferry httpd' <<<"$body"; then
      result PASS portmap "curl http://127.0.0.1:18080/ reached the pod through portmap's DNAT"
    else
      result FAIL portmap "curl http://127.0.0.1:18080/: $body"
    fi
    new_tables=$(nft list tables | grep -vxF "$nft_tables_before" | grep -v 'inet ferry_probe' | tr '\n' ';')
    result INFO nft-by-cni "tables created by the CNI plugins (portmap via iptables-nft): ${new_tables:-none}"
    ctr_ tasks kill -s KILL probe-httpd >/dev/null 2>&1; sleep 0.3
    ctr_ tasks delete probe-httpd >/dev/null 2>&1; ctr_ containers delete probe-httpd >/dev/null 2>&1
  else
    result FAIL pod-http "ctr run -d httpd:1 failed"
  fi
else
  result SKIP pod-http "no pod IP (CNI ADD failed)"
fi

# CRI-level checks need a CRI client; crictl is not packaged in Debian bookworm. A client of our
# own (e.g. ferry's, once it exists) can be run here with FERRY_PROBE_CRI_CLIENT="command ...": it
# gets CONTAINERD_ADDRESS and PROBE_TMP in its environment and must clean up what it creates.
if [ -n "${FERRY_PROBE_CRI_CLIENT:-}" ]; then
  if CONTAINERD_ADDRESS=$sock PROBE_TMP=$tmp bash -c "$FERRY_PROBE_CRI_CLIENT" >"$tmp/cri.log" 2>&1; then
    result PASS cri "$FERRY_PROBE_CRI_CLIENT:"
  else
    result FAIL cri "$FERRY_PROBE_CRI_CLIENT:"
  fi
  sed 's/^/       /' "$tmp/cri.log"
elif command -v crictl >/dev/null; then
  result SKIP cri "crictl present but not used by this probe (set FERRY_PROBE_CRI_CLIENT)"
else
  result SKIP cri "no CRI client (crictl is not packaged in Debian bookworm; FERRY_PROBE_CRI_CLIENT unset)"
fi

[ -n "${FERRY_PROBE_LOG:-}" ] && cp "$tmp/containerd.log" "$FERRY_PROBE_LOG"
echo "containerd log warnings/errors:"
# containerd 1.6 logs "cleaning up after shim disconnected" (and the shim's own info lines as
# "cleanup warnings") at warning level after every normal task delete: not shown unless the
# shim's lines themselves hold a warning or an error.
grep -E 'level=(warning|error|fatal)' "$tmp/containerd.log" |
  grep -v 'cleaning up after shim disconnected' |
  awk '!/cleanup warnings/ || /level=(warning|error) msg=\\"/' |
  sed 's/^/  /' | head -20
if [ "$failures" -eq 0 ]; then echo "probe: all checks passed"; else echo "probe: $failures check(s) failed"; fi
[ "$failures" -eq 0 ]
