#!/usr/bin/env bash
# Builds the two kernel modules from every csrc/*.c with clang + wasm-ld (no libc, no emscripten):
#   wasm/kernels.wasm          SIMD128, what every engine runs ($CLANG, default clang);
#   wasm/kernels-relaxed.wasm  the same module except the sources that use relaxed SIMD (those
#                              that include lowbit-int8.h or test __wasm_relaxed_simd__: the int8
#                              dot products), compiled with -mrelaxed-simd by $CLANG_RELAXED (default
#                              the first of clang, clang-19 … clang-16 whose wasm32 target has the
#                              relaxed builtins); chosen at run time where the engine validates it.
#                              The other objects are the SIMD128 module's: clang-16 measured 1.25x
#                              the CPU time of clang 14 on sgemm, and the float kernels stay the same.
# Usage: scripts/build-wasm.sh [kernels.wasm [kernels-relaxed.wasm]]   (default: wasm/…)
# Without a relaxed-capable clang the second module is not built (a message says so; exit 0).
# The output is deterministic for a given clang/lld: fixed file order, no debug info, no
# names or producers section, and objects built in a temp dir so no path leaks into them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/wasm/kernels.wasm}"
out_relaxed="${2:-$root/wasm/kernels-relaxed.wasm}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# atomics + bulk-memory are required by --shared-memory; simd128 for the kernels.
cflags=(--target=wasm32 -msimd128 -matomics -mbulk-memory -O3 -ffreestanding -nostdlib
  -fno-ident -Wall -Wextra -Werror)

cc="${CLANG:-clang}"
ld="${WASM_LD:-wasm-ld}"
# every csrc/*.c, in C-locale name order so the bytes do not depend on the shell's locale
sources=$(cd "$root/csrc" && LC_ALL=C ls -- *.c)

# compile OBJDIR CLANG FILE [extra cflags...]
compile() {
  local objdir="$1" c="$2" path="$3"
  shift 3
  (cd "$root/csrc" && "$c" "${cflags[@]}" "$@" -c "$path" -o "$objdir/${path%.c}.o")
}
# link DEST LD OBJDIR TOOLCHAIN-LINES...
link() {
  local dest="$1" l="$2" objdir="$3" objs=()
  shift 3
  for path in $sources; do objs+=("$objdir/${path%.c}.o"); done
  # Max memory 4 GiB (the wasm32 limit); the shared memory is created and grown by JavaScript.
  "$l" --no-entry --import-memory --shared-memory --max-memory=4294967296 \
    --strip-all --export=__heap_base -o "$objdir/kernels.wasm" "${objs[@]}"
  mkdir -p "$(dirname "$dest")"
  mv "$objdir/kernels.wasm" "$dest"
  # Record the toolchain next to the module: other clang/lld versions emit different bytes.
  { for c in "$@"; do "$c" --version | head -n1; done; "$l" --version | head -n1; } >"$dest.toolchain"
  echo "built $dest ($(wc -c <"$dest") bytes)"
}

plain="$tmp/plain"
mkdir -p "$plain"
for path in $sources; do compile "$plain" "$cc" "$path"; done
link "$out" "$ld" "$plain" "$cc"

# A clang whose wasm32 target compiles the relaxed dot product builtin.
relaxed_ok() {
  command -v "$1" >/dev/null 2>&1 || return 1
  printf '%s\n' 'typedef signed char v8 __attribute__((vector_size(16))); typedef short v16 __attribute__((vector_size(16)));' \
    'v16 f(v8 a, v8 b) { return __builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8(a, b); }' >"$tmp/probe.c"
  "$1" --target=wasm32 -msimd128 -mrelaxed-simd -O1 -c "$tmp/probe.c" -o "$tmp/probe.o" 2>/dev/null
}
cc_relaxed="${CLANG_RELAXED:-}"
if [ -z "$cc_relaxed" ]; then
  for c in clang clang-19 clang-18 clang-17 clang-16; do
    if relaxed_ok "$c"; then cc_relaxed="$c"; break; fi
  done
fi
if [ -z "$cc_relaxed" ] || ! relaxed_ok "$cc_relaxed"; then
  echo "not built: $out_relaxed (no clang with the wasm relaxed SIMD builtins: apt-get install clang-16 lld-16)"
  exit 0
fi
# the wasm-ld of the same release (clang-16 → wasm-ld-16), else wasm-ld
ld_relaxed="${WASM_LD_RELAXED:-wasm-ld${cc_relaxed#clang}}"
command -v "$ld_relaxed" >/dev/null 2>&1 || ld_relaxed=wasm-ld
relaxed="$tmp/relaxed"
mkdir -p "$relaxed"
for path in $sources; do
  if grep -q -e '__wasm_relaxed_simd__' -e '#include "lowbit-int8.h"' "$root/csrc/$path"; then
    compile "$relaxed" "$cc_relaxed" "$path" -mrelaxed-simd
  else
    cp "$plain/${path%.c}.o" "$relaxed/"
  fi
done
link "$out_relaxed" "$ld_relaxed" "$relaxed" "$cc" "$cc_relaxed"
