#!/usr/bin/env bash
# Builds wasm/kernels.wasm from every csrc/*.c with clang + wasm-ld (no libc, no emscripten).
# Usage: scripts/build-wasm.sh [output.wasm]   (default: wasm/kernels.wasm)
# The output is deterministic for a given clang/lld: fixed file order, no debug info, no
# names or producers section, and objects built in a temp dir so no path leaks into them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/wasm/kernels.wasm}"
CLANG="${CLANG:-clang}"
WASM_LD="${WASM_LD:-wasm-ld}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# atomics + bulk-memory are required by --shared-memory; simd128 for the kernels.
cflags=(--target=wasm32 -msimd128 -matomics -mbulk-memory -O3 -ffreestanding -nostdlib
  -fno-ident -Wall -Wextra -Werror)
objs=()
# every csrc/*.c, in C-locale name order so the bytes do not depend on the shell's locale
for path in $(cd "$root/csrc" && LC_ALL=C ls -- *.c); do
  src="${path%.c}"
  (cd "$root/csrc" && "$CLANG" "${cflags[@]}" -c "$src.c" -o "$tmp/$src.o")
  objs+=("$tmp/$src.o")
done
# Max memory 4 GiB (the wasm32 limit); the shared memory is created and grown by JavaScript.
"$WASM_LD" --no-entry --import-memory --shared-memory --max-memory=4294967296 \
  --strip-all --export=__heap_base -o "$tmp/kernels.wasm" "${objs[@]}"
mkdir -p "$(dirname "$out")"
mv "$tmp/kernels.wasm" "$out"
# Record the toolchain next to the module: other clang/lld versions emit different bytes.
{ "$CLANG" --version | head -n1; "$WASM_LD" --version | head -n1; } >"$out.toolchain"
echo "built $out ($(wc -c <"$out") bytes)"
