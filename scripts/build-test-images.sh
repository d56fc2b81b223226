#!/usr/bin/env bash
# Builds ferry's test images locally and publishes them to a registry of our own on 127.0.0.1, so
# the kubelet's e2e tests use the real pull path without downloading anything:
#   127.0.0.1:PORT/busybox:1    Debian's busybox-static as /bin/busybox, every applet symlinked
#                               (/bin/sh, sleep, wget, nc, ...); default command /bin/sh
#   127.0.0.1:PORT/httpd:1      busybox:1 plus a /www layer; default command
#                               `/bin/busybox httpd -f -p 8080 -h /www` (serves /www/index.html)
#   127.0.0.1:PORT/pause:3.10   images/pause/pause.c built with `gcc -static -Os`; entrypoint /pause
# and under the names pods use by habit, so that with the registries file below `busybox`,
# `nginx` and `registry.k8s.io/pause:3.10` pull from here:
#   library/busybox:latest      busybox:1
#   library/nginx:latest        httpd:1 serving /www on port 80 (as nginx's image listens)
#
# Usage: scripts/build-test-images.sh [--registry-dir DIR] [--port PORT] [--registries-file FILE]
#   FILE, when given, is written in k3s's registries.yaml format: docker.io and registry.k8s.io
#        mirrored to this registry (`ferry server` reads <data-dir>/registries.yaml).
#   DIR  defaults to $FERRY_TEST_REGISTRY_DIR or /tmp/ferry-test-registry; it holds
#          config.yml  registry.pid  registry.log  storage/   the registry (Debian's docker-registry)
#          oci/        the OCI image layout built with umoci      build/  scratch space
#   PORT defaults to 5000.
# The registry is started only if the one recorded in DIR/registry.pid is not already serving on
# 127.0.0.1:PORT; it keeps running afterwards (scripts/stop-test-registry.sh stops it).
# Idempotent and quick on re-runs: images are rebuilt only when their inputs change (busybox
# binary, pause.c, this script), and skopeo skips blobs the registry already has.
# Needs scripts/install-runtime-deps.sh first. Root (umoci unpacks with real ownership), or
# non-root with umoci's --rootless mode.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${FERRY_TEST_REGISTRY_DIR:-/tmp/ferry-test-registry}
port=5000
registries_file=""
while [ $# -gt 0 ]; do
  case $1 in
    --registry-dir) dir=$2; shift 2 ;;
    --registries-file) registries_file=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
layout=$dir/oci
build=$dir/build
registry=127.0.0.1:$port

for bin in umoci skopeo docker-registry busybox gcc curl; do
  command -v "$bin" >/dev/null || { echo "$bin not found: run scripts/install-runtime-deps.sh" >&2; exit 1; }
done
busybox_bin=$(readlink -f "$(command -v busybox)")
file "$busybox_bin" 2>/dev/null | grep -q 'statically linked' ||
  ldd "$busybox_bin" 2>&1 | grep -q 'not a dynamic executable' ||
  { echo "$busybox_bin is not static: install busybox-static" >&2; exit 1; }

rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)

# Fixed timestamps make the layers and configs byte-identical from one build to the next, so a
# rebuild pushes nothing new and image digests stay stable across machines with the same packages.
epoch=1704067200 # 2024-01-01T00:00:00Z
created=2024-01-01T00:00:00Z
history=(--history.author ferry --history.created "$created")

# Sets every mtime under a rootfs to $epoch (symlinks themselves too).
flatten_times() { find "$1" -exec touch -h -d "@$epoch" {} +; }

# unpack TAG BUNDLE; (caller fills BUNDLE/rootfs); repack TAG BUNDLE COMMENT
unpack() { rm -rf "$2"; umoci unpack "${rootless[@]}" --image "$layout:$1" "$2" >/dev/null; }
repack() {
  flatten_times "$2/rootfs"
  umoci repack "${history[@]}" --history.created_by "ferry build-test-images.sh: $3" \
    --image "$layout:$1" "$2"
  rm -rf "$2"
}

build_images() {
  rm -rf "$layout" "$build"
  mkdir -p "$build"
  umoci init --layout "$layout"

  # The pause binary: static, stripped, no libc needed in the image.
  gcc -static -Os -Wall -Wextra -Werror -o "$build/pause" "$repo/images/pause/pause.c"
  strip "$build/pause"

  # busybox:1 — one layer: busybox, its applets as symlinks, a minimal /etc.
  umoci new --image "$layout:busybox-1"
  unpack busybox-1 "$build/bundle"
  local rootfs=$build/bundle/rootfs
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var/tmp}
  chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
  chmod 700 "$rootfs/root"
  install -m 0755 "$busybox_bin" "$rootfs/bin/busybox"
  # `busybox --list-full` names each applet's conventional path (bin/sh, usr/bin/wget, ...);
  # symlinking them is what `busybox --install -s` would do inside the rootfs, without chroot.
  local applet
  while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -sf /bin/busybox "$rootfs/$applet"
  done < <("$busybox_bin" --list-full)
  cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
  cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
  repack busybox-1 "$build/bundle" "busybox-static $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"
  umoci config "${history[@]}" --created "$created" --author ferry --image "$layout:busybox-1" \
    --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.cmd /bin/sh

  # httpd:1 — busybox:1's layer plus /www, so the two images share their base blob.
  umoci config --no-history --image "$layout:busybox-1" --tag httpd-1
  unpack httpd-1 "$build/bundle"
  mkdir -p "$rootfs/www"
  cat >"$rootfs/www/index.html" <<'HTML'
<!doctype html>
<html><head><title>ferry httpd</title></head><body><p>hello from ferry httpd</p></body></html>
HTML
  repack httpd-1 "$build/bundle" "/www/index.html"
  umoci config "${history[@]}" --created "$created" --author ferry --image "$layout:httpd-1" \
    --config.cmd /bin/busybox --config.cmd httpd --config.cmd -f --config.cmd -p \
    --config.cmd 8080 --config.cmd -h --config.cmd /www --config.exposedports 8080/tcp

  # nginx-latest — httpd:1 listening on port 80, as the nginx image does; no layer of its own.
  umoci config --no-history --image "$layout:httpd-1" --tag nginx-latest
  umoci config "${history[@]}" --created "$created" --author ferry --image "$layout:nginx-latest" \
    --clear=config.cmd --clear=config.exposedports \
    --config.cmd /bin/busybox --config.cmd httpd --config.cmd -f --config.cmd -p \
    --config.cmd 80 --config.cmd -h --config.cmd /www --config.exposedports 80/tcp

  # pause:3.10 — just /pause, run as 65535:65535 like upstream's pause image.
  umoci new --image "$layout:pause-3.10"
  unpack pause-3.10 "$build/bundle"
  install -m 0755 "$build/pause" "$rootfs/pause"
  repack pause-3.10 "$build/bundle" "images/pause/pause.c"
  umoci config "${history[@]}" --created "$created" --author ferry --image "$layout:pause-3.10" \
    --config.entrypoint /pause --config.user 65535:65535

  umoci gc --layout "$layout"
  rm -rf "$build"
}

# Rebuild only when an input changed.
inputs=$(cat "$busybox_bin" "$repo/images/pause/pause.c" "$0" | sha256sum | cut -d' ' -f1)
stamp=$layout/.ferry-inputs
if [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
  echo "building images in $layout"
  build_images
  echo "$inputs" >"$stamp"
else
  echo "images in $layout are up to date"
fi

# --- the registry -----------------------------------------------------------------------------
pidfile=$dir/registry.pid
healthy() { curl -fsS --max-time 2 "http://$registry/v2/" >/dev/null 2>&1; }
ours_running() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ]
}

if ours_running && healthy; then
  echo "registry already serving on $registry (pid $(cat "$pidfile"))"
else
  if ours_running; then
    # Ours but not answering on this port (e.g. started with another --port): restart it.
    "$repo/scripts/stop-test-registry.sh" --registry-dir "$dir"
  fi
  if healthy || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is already in use by a process not recorded in $pidfile" >&2
    exit 1
  fi
  mkdir -p "$dir/storage"
  # Loopback only; no auth, no debug listener (it would open a second port).
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  fields:
    service: ferry-test-registry
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
YAML
  # setsid: the registry outlives this script and is not in its process group; $! is its pid
  # (setsid execs the registry directly, since a background job is not a group leader).
  setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 100); do
    healthy && break
    ours_running || { echo "registry exited; log:" >&2; cat "$dir/registry.log" >&2; exit 1; }
    sleep 0.1
  done
  healthy || { echo "registry did not answer on $registry within 10 s" >&2; exit 1; }
  echo "registry started on $registry (pid $(cat "$pidfile"), storage $dir/storage)"
fi

# --- push -------------------------------------------------------------------------------------
# --insecure-policy: these images are ours, built above; no signature policy applies to them.
push() {
  skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$layout:$1" "docker://$registry/$2"
  echo "pushed $registry/$2"
}
push busybox-1 busybox:1
push httpd-1 httpd:1
push pause-3.10 pause:3.10
push busybox-1 library/busybox:latest
push nginx-latest library/nginx:latest

if [ -n "$registries_file" ]; then
  mkdir -p "$(dirname "$registries_file")"
  cat >"$registries_file" <<YAML
# Written by scripts/build-test-images.sh: images by their usual names (busybox, nginx,
# registry.k8s.io/pause:3.10) come from the local test registry; nothing is downloaded.
mirrors:
  docker.io:
    endpoint: ["http://$registry"]
  registry.k8s.io:
    endpoint: ["http://$registry"]
YAML
  echo "wrote $registries_file"
fi
