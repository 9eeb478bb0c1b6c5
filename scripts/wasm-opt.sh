#!/usr/bin/env bash
# Shrinks a release .wasm in place with binaryen's wasm-opt (-Oz), when wasm-opt is installed
# (Debian: `apt-get install -y binaryen`); without it, says so and leaves the file as it is, so
# nothing depends on it. Optional post-build step of envoy/run.sh, host-tests (build.rs and the
# Envoy harness) and bench/run.sh.
#
#   scripts/wasm-opt.sh target/wasm32-wasip1/release/scim_edge_envoy.wasm
#   scripts/wasm-opt.sh target/wasm32-wasip2/release/scim_edge_spin.wasm
#
# - A core module (the Envoy filter) is optimised as a whole.
# - A component (the Spin component, wasm32-wasip2): wasm-opt reads core modules only, so the
#   component's main core module (its largest top-level one: the Rust code) is taken out,
#   optimised and put back; the component's types, imports, exports and the small adapter
#   modules wasm-component-ld generated are kept byte for byte. wasm-opt keeps every import
#   and export of the module, which is all the component refers to.
# - The features are those rustc enables for the wasm32-wasip1/-wasip2 targets (the module's
#   own `target_features`, which `strip = true` removes), so wasm-opt emits nothing the module
#   does not already rely on. No -tnh / -iit: traps (panic = "abort") stay where they are.
# - Idempotent: a `<file>.wasm-opt` stamp holds the SHA-256 of the optimised output; a file that
#   still matches it (cargo found nothing to rebuild) is not optimised twice.
#
# Env: WASM_OPT (the binary; default `wasm-opt` on PATH), WASM_OPT_LEVEL (default -Oz),
# SCIM_EDGE_WASM_OPT=0 skips the step.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 <file.wasm>" >&2; exit 2; }
in="$1"
[[ -f "$in" ]] || { echo "wasm-opt.sh: no such file: $in" >&2; exit 1; }
if [[ "${SCIM_EDGE_WASM_OPT:-1}" == 0 ]]; then
  exit 0
fi
WASM_OPT="${WASM_OPT:-wasm-opt}"
if ! command -v "$WASM_OPT" >/dev/null; then
  echo "wasm-opt.sh: $WASM_OPT not found (apt-get install -y binaryen); $in left unoptimised" >&2
  exit 0
fi
command -v python3 >/dev/null || { echo "wasm-opt.sh: python3 is needed" >&2; exit 1; }

stamp="$in.wasm-opt"
sha() { sha256sum "$1" | cut -d' ' -f1; }
if [[ -f "$stamp" && "$(cat "$stamp")" == "$(sha "$in")" ]]; then
  exit 0 # already optimised
fi

FEATURES=(--enable-bulk-memory --enable-sign-ext --enable-mutable-globals
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types
  --enable-extended-const)
LEVEL="${WASM_OPT_LEVEL:--Oz}"

work="$(mktemp -d "${TMPDIR:-/tmp}/wasm-opt.XXXXXX")"
trap 'rm -rf "$work"' EXIT

before=$(wc -c <"$in")
# The optimised file is written beside the input and renamed over it: a new inode, so cargo's
# hard link in deps/ keeps the linker's output.
python3 - "$in" "$work" "$WASM_OPT" "$LEVEL" "${FEATURES[@]}" <<'PY'
import os, subprocess, sys

src, work, wasm_opt, level, *features = sys.argv[1:]
data = open(src, "rb").read()

def opt(module: bytes) -> bytes:
    a, b = os.path.join(work, "in.wasm"), os.path.join(work, "out.wasm")
    open(a, "wb").write(module)
    subprocess.run([wasm_opt, level, *features, a, "-o", b], check=True)
    return open(b, "rb").read()

def leb(buf, i):
    value = shift = 0
    while True:
        byte = buf[i]; i += 1
        value |= (byte & 0x7F) << shift; shift += 7
        if byte < 0x80:
            return value, i

def uleb(n):
    out = bytearray()
    while True:
        byte = n & 0x7F; n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)

MAGIC = b"\0asm"
if data[:4] != MAGIC:
    sys.exit(f"wasm-opt.sh: {src} is not a wasm file")
if data[4:8] == b"\x01\0\0\0":  # core module
    out = opt(data)
elif data[6:8] == b"\x01\0":  # component (layer 1)
    sections, i = [], 8
    while i < len(data):
        sid = data[i]
        size, body = leb(data, i + 1)
        sections.append([sid, data[body:body + size]])
        i = body + size
    modules = [s for s in sections if s[0] == 1]  # top-level core modules
    if not modules:
        sys.exit(f"wasm-opt.sh: {src}: a component without a core module")
    main = max(modules, key=lambda s: len(s[1]))
    main[1] = opt(main[1])
    out = data[:8] + b"".join(bytes([sid]) + uleb(len(body)) + body for sid, body in sections)
else:
    sys.exit(f"wasm-opt.sh: {src}: unknown wasm version/layer {data[4:8].hex()}")
open(os.path.join(work, "result.wasm"), "wb").write(out)
PY
mv "$work/result.wasm" "$in.tmp" && mv "$in.tmp" "$in"
sha "$in" >"$stamp"
after=$(wc -c <"$in")
echo "wasm-opt.sh: $in: $before -> $after bytes ($LEVEL)" >&2
