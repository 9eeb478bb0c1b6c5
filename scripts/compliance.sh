#!/usr/bin/env bash
# RFC 7643/7644 compliance check with the public checker scim2-tester (PyPI `scim2-cli`'s
# `scim2 test`), run against the Spin component on the wasmtime dev host (scim-edge-dev) with a
# fresh store. Every failure must be listed, with its reason, in scripts/compliance-known.txt
# (and in the README); an unlisted failure, or a listed one that now passes, fails this script.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCIM2_CLI_VERSION=0.6.0
OUT="$ROOT/target/compliance"
mkdir -p "$OUT"

bash envoy/setup.sh >/dev/null   # the repo's .venv
if ! .venv/bin/python -c 'import scim2_cli' 2>/dev/null; then
  echo "compliance: installing scim2-cli==$SCIM2_CLI_VERSION into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "scim2-cli==$SCIM2_CLI_VERSION"
fi
# `cargo test --workspace` builds the dev host too; building it the same way (same feature
# unification) reuses those artefacts instead of recompiling wasmtime.
cargo test --quiet --workspace --no-run
DEV="$ROOT/target/debug/scim-edge-dev"

WORK="$(mktemp -d)"
PORT="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
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
# "ERROR check_name" followed by an indented reason: one line "check_name: reason" each.
awk '/^(ERROR|CRITICAL) / {name=$2; getline; sub(/^ +/, ""); print name ": " $0}' "$OUT/report.txt" | sort -u >"$OUT/failures.txt"
grep -v '^#' scripts/compliance-known.txt | grep . | sed 's/ *# .*$//' | sort -u >"$OUT/known.txt"
if [[ "$ok" -eq 0 ]]; then
  echo "compliance: scim2-tester ran no check; see $OUT/report.txt" >&2
  exit 1
fi
status=0
if ! diff -u "$OUT/known.txt" "$OUT/failures.txt" >"$OUT/diff.txt"; then
  echo "compliance: the failures differ from scripts/compliance-known.txt (- fixed, + new):" >&2
  cat "$OUT/diff.txt" >&2
  status=1
fi
echo "compliance (scim2-tester via scim2-cli $SCIM2_CLI_VERSION): $ok checks succeeded, $(wc -l <"$OUT/failures.txt") known deviation(s); report in $OUT/report.txt"
exit $status
