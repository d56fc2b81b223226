#!/usr/bin/env bash
# Installs what the kubelet (ferry agent) and its e2e tests need to run real containers on a
# Debian machine, from Debian's packages only (no image or binary is downloaded from anywhere else):
#   containerd                   the container runtime the agent starts and supervises (CRI v1 plugin; ships ctr)
#   runc                         the OCI runtime containerd's runc shim calls
#   containernetworking-plugins  CNI plugins bridge, host-local, loopback, portmap (in /usr/lib/cni)
#   nftables                     nft, for kube-proxy's backend and blackholing the pod/service CIDRs
#   iproute2                     ip netns / ip link, used by the probe and the cleanup script
#   busybox-static               the one static binary the test images are built from
#   umoci                        builds OCI image layouts from a rootfs directory
#   skopeo                       pushes those layouts to the local registry
#   docker-registry              Debian's distribution registry, run by us on 127.0.0.1:5000
#   gcc, libc6-dev               builds images/pause/pause.c statically (libc.a is in libc6-dev)
#   curl                         health checks of the local registry (GET /v2/)
#   jq                           JSON handling in scripts/probe-containerd.sh (CNI results)
# Idempotent: packages already present are not fetched again. Root or sudo.
set -euo pipefail
packages=(containerd runc containernetworking-plugins nftables iproute2 busybox-static umoci skopeo
  docker-registry gcc libc6-dev curl jq)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  # One `apt-get update` per run of the test command: skipped when the lists are fresh
  # (scripts/install-deps.sh and scripts/install-runtime-deps.sh both install).
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null ||
    [ -z "$(find /var/lib/apt/lists -maxdepth 0 -mmin -60 2>/dev/null)" ]; then
    $sudo apt-get update -q
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's containerd and docker-registry packages ship services (containerd on
# /run/containerd/containerd.sock; the registry on :5000 with storage in /var/lib/docker-registry).
# On machines with systemd or a permissive policy-rc.d, installing them starts those services.
# ferry starts its own containerd (state under its data dir) and scripts/build-test-images.sh its
# own registry on 127.0.0.1, so system instances are stopped and disabled: a system registry would
# hold port 5000 and a system containerd would race ours for the same CNI bridge names.
stop_service() {
  local svc=$1
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    $sudo "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
}
stop_service docker-registry
stop_service containerd
# Without an init system a service may still have been started directly by a maintainer script;
# stop only the daemons started from the system config, never ferry's own (those run with
# --config under a ferry directory).
for pid in $(pgrep -x docker-registry || true); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '/etc/docker/registry/config.yml'; then
    $sudo kill "$pid" || true
  fi
done
for pid in $(pgrep -x containerd || true); do
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- '--config'; then
    $sudo kill "$pid" || true
  fi
done

for bin in containerd ctr runc nft ip busybox umoci skopeo docker-registry gcc curl jq; do
  command -v "$bin" >/dev/null || { echo "missing after install: $bin" >&2; exit 1; }
done
for plugin in bridge host-local loopback portmap; do
  [ -x "/usr/lib/cni/$plugin" ] || { echo "missing CNI plugin /usr/lib/cni/$plugin" >&2; exit 1; }
done
echo "runtime dependencies installed: ${packages[*]}"
