#!/usr/bin/env bash
# The test command: every crate's unit tests and the black-box tests (the store's conformance
# suite runs against the embedded store and a real etcd it starts itself on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --workspace --locked -- --test-threads=4
