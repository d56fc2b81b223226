#!/usr/bin/env bash
# Installs ferry on a Debian machine and starts a cluster — the one command a newcomer runs:
#   1. Debian's packages ferry needs (scripts/install-deps.sh: protoc, etcd) and those its node
#      runs pods with (scripts/install-runtime-deps.sh: containerd, runc, CNI plugins, nftables);
#   2. the images pods start from (scripts/build-test-images.sh: pause, busybox, httpd, built
#      locally and served by a registry of ours on 127.0.0.1:5000 — nothing is downloaded), and
#      <data-dir>/registries.yaml mirroring docker.io and registry.k8s.io to it, so
#      `kubectl run x --image=busybox` and `--image=nginx` work;
#   3. the `ferry` binary (`cargo install --locked --path crates/ferry`, into ~/.cargo/bin);
#   4. `ferry server` with the arguments given here (e.g. --data-dir DIR), in the foreground:
#      API server, controllers, scheduler and an agent for this machine's node. It prints the
#      `export KUBECONFIG=…` line to use with kubectl; Ctrl-C stops it.
# Run as root (containerd, CNI and nftables need it). Needs a Rust toolchain (rustup's).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: the node agent runs containerd, CNI and nftables" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
scripts/install-deps.sh
scripts/install-runtime-deps.sh
# The data dir `ferry server` will use (its --data-dir, as given here), for the registries file.
data_dir=/var/lib/ferry
args=("$@")
for i in "${!args[@]}"; do
  case ${args[$i]} in
    --data-dir=*) data_dir=${args[$i]#--data-dir=} ;;
    --data-dir) data_dir=${args[$((i + 1))]:-$data_dir} ;;
  esac
done
scripts/build-test-images.sh --registries-file "$data_dir/registries.yaml"
cargo install --locked --path crates/ferry
ferry=$(command -v ferry || echo "${CARGO_HOME:-$HOME/.cargo}/bin/ferry")
exec "$ferry" server "$@"
