#!/usr/bin/env bash
# Fuzzes ferry's decoders of untrusted input (fuzz/, issue 16) for a bounded time: installs
# cargo-fuzz when missing, builds every fuzz target once, runs each for FUZZ_SECONDS (10)
# seconds from its seed corpus (fuzz/corpus/<target>/, left as committed: what a run finds
# goes to a scratch corpus), and prints one summary line per target. Fails when a target
# crashes, panics, times out or runs out of memory; the input is kept under the artifacts
# directory and printed in base64.
#
#   scripts/fuzz.sh [target...]
#
# The API server's own decoders (protobuf bodies, query selectors, service-account JWTs) live in
# crates of their own (ferry-protobuf, ferry-api, ferry-tokens), so every target builds without
# the server itself.
#
# The build: nightly (FUZZ_TOOLCHAIN), optimized with debug assertions and overflow checks
# (cargo-fuzz's default), 16 codegen units, and no sanitizer: ferry forbids unsafe code, so
# AddressSanitizer would mostly slow the build and the runs for the C and unsafe code of
# dependencies. Target directory: CARGO_TARGET_DIR, else target/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=${FUZZ_TOOLCHAIN:-nightly}
seconds=${FUZZ_SECONDS:-10}
target_dir=${CARGO_TARGET_DIR:-$PWD/target/fuzz}
all=(object_json object_yaml strategic_merge json_patch label_selector field_paths
  managed_fields cel protobuf query_selectors jwt)

targets=()
for arg in "$@"; do
  case "$arg" in
    -*) echo "usage: $0 [target...]" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# cargo-fuzz wants a nightly compiler; where none is installed (it cannot be downloaded here),
# the default toolchain is told to accept nightly flags.
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "fuzz: no $toolchain toolchain, using the default one with RUSTC_BOOTSTRAP=1" >&2
  toolchain=$(rustup show active-toolchain | cut -d' ' -f1)
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

(cd fuzz && cargo "+$toolchain" fuzz build -s none --codegen-units 16 \
  --target-dir "$target_dir")

bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
artifacts="$target_dir/artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"
failed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  status=0
  # -timeout: one input taking longer is a finding (a request must not hang the server).
  "$bin_dir/$t" "$scratch/$t" "fuzz/corpus/$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=4096 -artifact_prefix="$artifacts/$t-" >"$log" 2>&1 \
    || status=$?
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  if [ "$status" -eq 0 ]; then
    summary+=("fuzz $t: ok, $runs runs in ${seconds}s, coverage $cov")
  else
    failed=$((failed + 1))
    artifact=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
    summary+=("fuzz $t: FAILED (exit $status), input ${artifact:-none}")
    echo "---- $t" >&2
    # The panic message (without the backtrace) or libFuzzer's report.
    sed -n '/panicked at/,/^stack backtrace:/p' "$log" | grep -v '^stack backtrace:' | head -30 >&2
    grep -E '^(==[0-9]+== ERROR|SUMMARY|panic escaped)|has overflowed its stack' "$log" >&2 || true
    [ -n "$artifact" ] && [ -f "$artifact" ] && echo "input (base64): $(base64 -w0 "$artifact")" >&2
  fi
done
printf '%s\n' "${summary[@]}"
echo "fuzz: ${#targets[@]} targets, $failed failed"
[ "$failed" -eq 0 ]
