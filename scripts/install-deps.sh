#!/usr/bin/env bash
# Installs what ferry and its tests need on a Debian machine, from Debian's packages:
#   protobuf-compiler  protoc, for the etcd and CRI gRPC clients' generated code
#   libprotobuf-dev    the well-known .proto files (google/protobuf/*.proto) protoc imports
#   etcd-server        a real etcd: the `--store etcd` backend's tests and benchmark reference
#   python3-venv       a Python for the official Python client's tests (when there is none)
#   chromium           a headless browser for the web view's test (crates/ferry/tests/ui.rs)
#   chromium-driver    chromedriver, which that test drives it through (WebDriver)
# Idempotent: packages already present are not fetched again.
set -euo pipefail
packages=(protobuf-compiler libprotobuf-dev etcd-server chromium chromium-driver)
# A machine whose python3 cannot make a venv (Debian's without python3-venv) gets Debian's.
python3 -m venv --help >/dev/null 2>&1 || packages+=(python3 python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # One `apt-get update` per run of the test command: skipped when the lists are fresh
  # (scripts/install-deps.sh and scripts/install-runtime-deps.sh both install).
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null ||
    [ -z "$(find /var/lib/apt/lists -maxdepth 0 -mmin -60 2>/dev/null)" ]; then
    $sudo apt-get update -q
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian's etcd-server package may start a system etcd on 127.0.0.1:2379; ferry's tests start
# their own on free ports, so a system one is left as it is.
command -v protoc >/dev/null
command -v etcd >/dev/null
command -v chromedriver >/dev/null
echo "dependencies installed: ${packages[*]}"
