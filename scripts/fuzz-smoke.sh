#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for FUZZ_SECONDS (default 20) from the
# committed seeds (fuzz/seeds/<target>/), with the SCIM dictionary. Exits non-zero on the first
# finding (crash, panic, timeout, OOM) and names the artifact to reproduce it with:
#   cargo +nightly-2026-05-20 fuzz run <target> fuzz/artifacts/<target>/<file>
#
#   scripts/fuzz-smoke.sh                 # CI: every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh filter_parse   # one target, longer
#
# Needs the nightly toolchain pinned in fuzz/rust-toolchain.toml (libFuzzer's sanitizer flags;
# installed with rustup when missing) and cargo-fuzz (installed from crates.io when missing,
# about a minute). Ends with the plain line `fuzz: N passed, M failed` (one per target). Works from a clean clone: the corpus grows in
# fuzz/corpus/<target>/ (git-ignored), findings land in fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${FUZZ_SECONDS:-20}"

tc="${FUZZ_TOOLCHAIN:-$(sed -n 's/^channel *= *"\(.*\)"/\1/p' fuzz/rust-toolchain.toml)}"
if ! cargo "+$tc" --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing the fuzz crate's toolchain $tc" >&2
    rustup toolchain install "$tc" --profile minimal
fi
if ! cargo "+$tc" fuzz --help >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$tc" fuzz list)
fi

echo "fuzz-smoke: building ${targets[*]}"
cargo "+$tc" fuzz build

max_len() {
    case "$1" in
        handle_request) echo 16384 ;;
        patch_apply) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

failed=0
passed=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log="fuzz/corpus/$t.smoke.log"
    echo "fuzz-smoke: $t for ${seconds}s"
    if cargo "+$tc" fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -dict=fuzz/dicts/scim.dict -max_len="$(max_len "$t")" \
        -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
        cov=$(grep -E 'cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
        echo "fuzz-smoke: $t ok: ${runs:-?} runs, ${cov:-no coverage line}"
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "fuzz-smoke: $t FOUND A PROBLEM; last lines of $log:" >&2
        tail -n 40 "$log" >&2
        ls -1 "fuzz/artifacts/$t/" 2>/dev/null | sed "s|^|  fuzz/artifacts/$t/|" >&2 || true
        if [ "${FUZZ_KEEP_GOING:-0}" != "1" ]; then
            break
        fi
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
