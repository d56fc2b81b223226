#!/usr/bin/env bash
# The test command: every crate's unit tests and the black-box tests (the store's conformance
# suite against the embedded store and a real etcd it starts on loopback; kubectl against a
# real `ferry server`; the official Python client from PyPI, installed into target/python,
# against a real `ferry server`), then — as root — the e2e tests on a real containerd: the runtime
# packages and the local test images (registry on 127.0.0.1:5000) are installed first, and the
# registry this script started is stopped at the end; then the decoders' fuzz targets for a
# bounded time (scripts/fuzz.sh, cargo-fuzz on nightly). Ends with one summary line:
# "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
log=$(mktemp)
registry_dir=""
cleanup() {
  [ -z "$registry_dir" ] || scripts/stop-test-registry.sh --registry-dir "$registry_dir" >/dev/null 2>&1 || true
  rm -f "$log"
}
trap cleanup EXIT
status=0
cargo test --workspace --locked -- --test-threads=4 2>&1 | tee "$log" || status=$?

# The official Python client (pinned to the Kubernetes minor ferry serves) and pytest.
[ -x target/python/bin/python ] || python3 -m venv target/python
target/python/bin/pip install -q --disable-pip-version-check 'kubernetes==33.1.0' 'pytest==8.3.5'
cargo test --locked -p ferry --test python -- --ignored 2>&1 | tee -a "$log" || status=$?
# The web view (/ui/) in a headless Chromium through chromedriver (scripts/install-deps.sh
# installs both); its screenshots go to target/test-artifacts/ui/.
cargo test --locked -p ferry --test ui -- --ignored 2>&1 | tee -a "$log" || status=$?
# Three servers on a three-member etcd on 127.0.0.2-4 (scripts/ha-cluster.sh), alone: its
# timings are the Leases'.
cargo test --locked -p ferry --test ha -- --ignored 2>&1 | tee -a "$log" || status=$?

if [ "$(id -u)" -eq 0 ]; then
  scripts/install-runtime-deps.sh
  if ! curl -fsS --max-time 2 http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then
    registry_dir=$(mktemp -d /tmp/ferry-test-registry.XXXXXX)
  fi
  scripts/build-test-images.sh ${registry_dir:+--registry-dir "$registry_dir"}
  # The proxy's nft transactions and conntrack flushes, in network namespaces of their own.
  cargo test --locked -p ferry-proxy -- --ignored 2>&1 | tee -a "$log" || status=$?
  # The pod network's routes, VXLAN device and entries, likewise.
  cargo test --locked -p ferry-podnet -- --ignored 2>&1 | tee -a "$log" || status=$?
  # One test at a time: they share the machine's netns directory, nft ruleset and cgroups.
  FERRY_CONTAINERD_TESTS=1 cargo test --locked -p ferry-kubelet --test containerd -- --ignored 2>&1 |
    tee -a "$log" || status=$?
  cargo test --locked -p ferry --test agent -- --ignored --test-threads=1 2>&1 | tee -a "$log" || status=$?
else
  echo "e2e tests on real containerd need root: not run"
fi
# The decoders of untrusted input — the API server's protobuf bodies, selectors and JWTs among
# them — each fuzzed for a bounded time (issue 16).
scripts/fuzz.sh 2>&1 | tee -a "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit $status
