#!/usr/bin/env bash
# Stops the test registry that scripts/build-test-images.sh started, by the pid in its pidfile.
# Usage: scripts/stop-test-registry.sh [--registry-dir DIR] [--purge]
#   DIR     as given to build-test-images.sh ($FERRY_TEST_REGISTRY_DIR or /tmp/ferry-test-registry)
#   --purge also removes DIR (registry storage and the built OCI layout)
# Idempotent: nothing running is not an error.
set -euo pipefail
dir=${FERRY_TEST_REGISTRY_DIR:-/tmp/ferry-test-registry}
purge=false
while [ $# -gt 0 ]; do
  case $1 in
    --registry-dir) dir=$2; shift 2 ;;
    --purge) purge=true; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
pidfile=$dir/registry.pid
pid=$(cat "$pidfile" 2>/dev/null || true)
# Only a pid that still names a docker-registry process: a stale pidfile may name a reused pid.
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ]; then
  kill -TERM "$pid"
  # Gone, or a zombie (exited, waiting for a parent that started it in the same shell to reap it).
  alive() { [ -d "/proc/$pid" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null; }
  for _ in $(seq 50); do
    alive || break
    sleep 0.1
  done
  if alive; then kill -KILL "$pid" 2>/dev/null || true; fi
  echo "stopped test registry (pid $pid)"
fi
rm -f "$pidfile"
if $purge; then
  rm -rf "$dir"
fi
