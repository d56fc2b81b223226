#!/usr/bin/env bash
# The test command: every crate's unit tests and the black-box tests (the store's conformance
# suite against the embedded store and a real etcd it starts on loopback; kubectl against a
# real `ferry server`). Ends with one summary line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked -- --test-threads=4 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit $status
