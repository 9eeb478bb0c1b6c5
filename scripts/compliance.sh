#!/usr/bin/env bash
# RFC 7643/7644 compliance check with the public checker scim2-tester (PyPI `scim2-cli`'s
# `scim2 test`), run against the Spin component on the wasmtime dev host (scim-edge-dev) with a
# fresh store. Every failure must be listed, with its reason, in scripts/compliance-known.txt
# (and in the README); an unlisted failure, or a listed one that now passes, fails this script,
# and so does any change in the number of passing checks (its expected value is the
# `successes:` line of that file) or a check reported as skipped, deviating or critical. The
# checker and the libraries it is made of are pinned, so the count means the same checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCIM2_CLI_VERSION=0.6.0
# scim2-cli's own dependencies float: pin the checker and what it is made of.
PINS=("scim2-cli==$SCIM2_CLI_VERSION" scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3)
OUT="$ROOT/target/compliance"
mkdir -p "$OUT"

bash envoy/setup.sh >/dev/null   # the repo's .venv
installed="$(.venv/bin/python -m pip freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-')"
for pin in "${PINS[@]}"; do
  if ! grep -qx "$pin" <<<"$installed"; then
    echo "compliance: installing ${PINS[*]} into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
    break
  fi
done
# `cargo test --workspace` builds the dev host too; building it the same way (same feature
# unification) reuses those artefacts instead of recompiling wasmtime.
cargo test --quiet --workspace --no-run
DEV="$ROOT/target/debug/scim-edge-dev"

WORK="$(mktemp -d)"
PORT="$(python3 scripts/free-ports.py 1)"
(cd "$WORK" && exec "$DEV" --listen "127.0.0.1:$PORT" --config '{"rateLimit":null}') >"$OUT/dev-host.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  grep -q "Secret Token" "$OUT/dev-host.log" 2>/dev/null && break
  kill -0 $PID 2>/dev/null || { cat "$OUT/dev-host.log" >&2; exit 1; }
  sleep 0.2
done
URL="$(awk '/SCIM Tenant URL:/ {print $4}' "$OUT/dev-host.log")"
TOKEN="$(awk '/Secret Token:/ {print $3}' "$OUT/dev-host.log")"
[[ -n "$URL" && -n "$TOKEN" ]] || { echo "compliance: the dev host printed no SCIM URL" >&2; exit 1; }

SCIM_CLI_HEADERS="Authorization: Bearer $TOKEN" .venv/bin/scim2 --url "$URL" test >"$OUT/report.txt" 2>&1 || true
ok=$(grep -c '^SUCCESS ' "$OUT/report.txt" || true)
# Every check not reported SUCCESS — ERROR, CRITICAL, but also SKIPPED, DEVIATION, COMPLIANT,
# ACCEPTABLE — as one line "check_name: reason" (the reason is the indented line after it).
awk '/^[A-Z]+ [a-z_]+/ && $1 != "SUCCESS" {name=$2; getline; sub(/^ +/, ""); print name ": " $0}' \
  "$OUT/report.txt" | sort -u >"$OUT/failures.txt"
grep -v '^#' scripts/compliance-known.txt | grep -v '^successes:' | grep . | sed 's/ *# .*$//' | sort -u >"$OUT/known.txt"
expected="$(sed -n 's/^successes: *\([0-9]*\).*/\1/p' scripts/compliance-known.txt)"
[[ -n "$expected" ]] || { echo "compliance: scripts/compliance-known.txt has no 'successes: N' line" >&2; exit 1; }
problems=0
if [[ "$ok" -ne "$expected" ]]; then
  echo "compliance: $ok checks succeeded, scripts/compliance-known.txt expects exactly $expected" >&2
  problems=$((problems + 1))
fi
if ! diff -u "$OUT/known.txt" "$OUT/failures.txt" >"$OUT/diff.txt"; then
  echo "compliance: the checks not reported SUCCESS differ from scripts/compliance-known.txt (- fixed, + new):" >&2
  cat "$OUT/diff.txt" >&2
  problems=$((problems + $(grep -c '^[-+][^-+]' "$OUT/diff.txt")))
fi
echo "compliance (scim2-tester 0.5.2 via scim2-cli $SCIM2_CLI_VERSION): $ok checks succeeded, $(wc -l <"$OUT/failures.txt") known deviation(s); report in $OUT/report.txt"
# The plain count for make test's summary: the passing checks, and every difference from what
# is expected.
echo "compliance: $ok passed, $problems failed"
((problems == 0))
