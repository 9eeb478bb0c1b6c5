#!/usr/bin/env bash
# The admin page in a real browser (Debian's chromium, driven by Playwright from browser-tests/)
# through every host, each with fresh state:
#   spin      the Spin component on the wasmtime dev host (scim-edge-dev, SQLite in a temp dir);
#   spin-cli  the real Spin CLI: `spin build && spin up` of the project's spin.toml, as the
#             README says (SQLite in a temp state dir); the `spin` of SPIN_BIN, PATH or
#             ../shared/bin; skipped, and said so, where there is none;
#   envoy     the Envoy filter with etcd (envoy/run.sh on non-default ports, state in a temp dir).
# Screenshots of every step: target/browser-screenshots/<host>/NN-name.png.
#
# Needs node (>= 20) and npm, and /usr/bin/chromium (or CHROMIUM=/path): `apt-get install -y chromium`.
# playwright-core downloads no browser. BROWSER_TEST_HOSTS="spin envoy" (any of the three) runs
# those hosts only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SPIN_CLI="${SPIN_BIN:-$(command -v spin || true)}"
[[ -z "$SPIN_CLI" && -x "$ROOT/../shared/bin/spin" ]] && SPIN_CLI="$(cd "$ROOT/../shared/bin" && pwd)/spin"
if [[ -n "${BROWSER_TEST_HOSTS:-}" ]]; then
  HOSTS="$BROWSER_TEST_HOSTS"
elif [[ -n "$SPIN_CLI" ]]; then
  HOSTS="spin spin-cli envoy"
elif [[ "${CI:-}" == true ]]; then
  printf 'browser-test.sh: no Spin CLI under CI (SPIN_BIN, spin on PATH, ../shared/bin/spin)\n' >&2
  exit 1
else
  HOSTS="spin envoy"
  printf 'browser-test.sh: no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin): the real-Spin run is SKIPPED\n' >&2
fi
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export CHROMIUM
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SHOTS="$TARGET_DIR/browser-screenshots"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'browser-test.sh: %s\n' "$*" >&2; exit 1; }

# --- prerequisites -------------------------------------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null ||
  die "node (>= 20) and npm are needed: apt-get install -y nodejs npm"
[[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]] ||
  die "node >= 20 is needed (playwright-core), found $(node --version)"
# Debian's chromium, installed here when we may (root with apt-get), as bench/run.sh does for wrk.
if [[ ! -x "$CHROMIUM" && "$CHROMIUM" == /usr/bin/chromium && $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
  say "installing Debian's chromium (apt-get)"
  apt-get update -qq && apt-get install -y -qq chromium
fi
[[ -x "$CHROMIUM" ]] ||
  die "no chromium at $CHROMIUM: run \`apt-get install -y chromium\` (Debian), or set CHROMIUM=/path/to/chromium"
if [[ ! -d browser-tests/node_modules/playwright-core ]]; then
  say "installing the browser tests' node packages (npm ci: playwright-core only, no browser download)"
  (cd browser-tests && npm ci --no-audit --no-fund)
fi
say "browser: $("$CHROMIUM" --version 2>/dev/null | head -n1)"

# --- process bookkeeping: every host runs in its own process group, killed on exit ----------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scim-edge-browser.XXXXXX")"
PGIDS=()
cleanup() {
  local pg
  for pg in "${PGIDS[@]}"; do
    kill -TERM -- "-$pg" 2>/dev/null || true
  done
  for pg in "${PGIDS[@]}"; do
    for _ in $(seq 50); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pg" 2>/dev/null || true
  done
  PGIDS=()
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_group() { # pgid
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}

# Ports: `count` consecutive ones, free now and never given twice in this run (free-ports.py).
export SCIM_EDGE_PORTS_FILE="${SCIM_EDGE_PORTS_FILE:-$(mktemp)}"
free_ports() { python3 "$ROOT/scripts/free-ports.py" "$1"; }

wait_for() { # url pid seconds log
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    kill -0 "$2" 2>/dev/null || { tail -n 40 "$4" >&2; die "the host exited before it was ready (log above: $4)"; }
    # --compressed: the page is served gzip-only; without gzip in Accept-Encoding it is a 406.
    curl -fsS --compressed -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  tail -n 40 "$4" >&2
  die "no answer from $1 after $3 s (log above: $4)"
}

run_tests() { # host url admin-token
  say "browser test through $1 ($2); screenshots: $SHOTS/$1/"
  (cd browser-tests &&
    SCIM_EDGE_HOST="$1" SCIM_EDGE_URL="$2" SCIM_EDGE_ADMIN_TOKEN="$3" SCIM_EDGE_SCREENSHOTS="$SHOTS/$1" \
      node --test --test-concurrency=1 --test-reporter=spec tests/)
}

# --- 1. Spin component on the wasmtime dev host ---------------------------------------------------
run_spin() {
  say "building the dev host (cargo build -p scim-edge-host-tests --bin scim-edge-dev; builds the Spin component)"
  cargo build -q -p scim-edge-host-tests --bin scim-edge-dev
  local bin="$TARGET_DIR/debug/scim-edge-dev" dir="$WORK/spin" port log pid
  [[ -x "$bin" ]] || die "the build did not produce $bin"
  mkdir -p "$dir"
  port="$(free_ports 1)"
  log="$WORK/spin.log"
  # State goes to ./.scim-edge/ of its working directory: a fresh temp dir per run.
  (cd "$dir" && exec setsid "$bin" --listen "127.0.0.1:$port" --no-demo) >"$log" 2>&1 &
  pid=$!
  PGIDS+=("$pid")
  wait_for "http://127.0.0.1:$port/admin/" "$pid" 120 "$log"
  local token
  token="$(tr -d '\n' <"$dir/.scim-edge/admin-token")"
  local rc=0
  run_tests spin "http://127.0.0.1:$port" "$token" || rc=$?
  stop_group "$pid"
  if ((rc != 0)); then
    say "the dev host's log ($log):"
    tail -n 60 "$log" >&2
  fi
  return "$rc"
}

# --- 2. the real Spin CLI: spin build && spin up --------------------------------------------------
run_spin_cli() {
  [[ -n "$SPIN_CLI" ]] || die "host spin-cli: no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin)"
  local log="$WORK/spin-cli.log" port pid token sha
  say "spin build ($SPIN_CLI; builds the component for wasm32-wasip2, release)"
  # Host flags (e.g. -C target-cpu=native) must not reach the wasm build.
  env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS "$SPIN_CLI" build >"$WORK/spin-build.log" 2>&1 ||
    { tail -n 40 "$WORK/spin-build.log" >&2; die "spin build failed (log above)"; }
  token="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
  sha="$(printf %s "$token" | sha256sum | cut -d' ' -f1)"
  port="$(free_ports 1)"
  SPIN_VARIABLE_ADMIN_TOKEN_SHA256="$sha" setsid "$SPIN_CLI" up --listen "127.0.0.1:$port" \
    --state-dir "$WORK/spin-cli-state" >"$log" 2>&1 &
  pid=$!
  PGIDS+=("$pid")
  wait_for "http://127.0.0.1:$port/admin/" "$pid" 120 "$log"
  local rc=0
  run_tests spin-cli "http://127.0.0.1:$port" "$token" || rc=$?
  stop_group "$pid"
  if ((rc != 0)); then
    say "spin up's log ($log):"
    tail -n 60 "$log" >&2
  fi
  return "$rc"
}

# --- 3. Envoy filter with etcd (envoy/run.sh) -----------------------------------------------------
run_envoy() {
  local base admin etcd state="$WORK/envoy-state" log="$WORK/envoy.log" pid i
  # One free range: listener, demo upstream, sink (run.sh's +1, +2), Envoy admin, etcd client, peer.
  base="$(free_ports 6)"
  admin=$((base + 3))
  etcd=$((base + 4))
  : >"$log"
  say "starting envoy/run.sh (listener $base, Envoy admin $admin, etcd $etcd; state $state)"
  SCIM_EDGE_PORT="$base" SCIM_EDGE_ADMIN_PORT="$admin" SCIM_EDGE_ETCD_PORT="$etcd" SCIM_EDGE_STATE="$state" \
    setsid bash envoy/run.sh >"$log" 2>&1 &
  pid=$!
  PGIDS+=("$pid")
  # run.sh installs Envoy/etcd if needed and builds the filter: allow for a release build.
  for ((i = 0; i < 900 * 5; i++)); do
    grep -q "scim-edge is running in Envoy" "$log" && break
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$log" >&2; die "envoy/run.sh exited before it was ready (log above)"; }
    sleep 0.2
  done
  grep -q "scim-edge is running in Envoy" "$log" || { tail -n 40 "$log" >&2; die "envoy/run.sh was not ready after 15 min"; }
  wait_for "http://127.0.0.1:$base/admin/" "$pid" 30 "$log"
  local token rc=0
  token="$(tr -d '\n' <"$state/admin-token")"
  run_tests envoy "http://127.0.0.1:$base" "$token" || rc=$?
  stop_group "$pid"
  if ((rc != 0)); then
    say "envoy/run.sh's output ($log) and Envoy's log:"
    tail -n 40 "$log" >&2
    tail -n 40 "$state/envoy.log" >&2 || true
  fi
  return "$rc"
}

failed=()
for host in $HOSTS; do
  case "$host" in
    spin) run_spin || failed+=(spin) ;;
    spin-cli) run_spin_cli || failed+=(spin-cli) ;;
    envoy) run_envoy || failed+=(envoy) ;;
    *) die "unknown host $host (spin, spin-cli, envoy)" ;;
  esac
done

say "screenshots:"
for host in $HOSTS; do
  n="$(find "$SHOTS/$host" -name '*.png' 2>/dev/null | wc -l)"
  printf '    %s/%s/  (%s files)\n' "$SHOTS" "$host" "$n" >&2
done
((${#failed[@]} == 0)) || die "the browser test failed through: ${failed[*]}"
say "browser tests passed through: $HOSTS"
