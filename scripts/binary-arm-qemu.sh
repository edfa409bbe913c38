#!/bin/sh
# Runs the arm64 NEON binary kernel on an x86 host: cross-compiles scripts/binary-arm-check.c with the
# native kernels for aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user-static) and runs it
# under qemu with every CPU feature (dot product included). Correctness only: qemu says nothing of speed.
set -e
cd "$(dirname "$0")/../native"
out=$(mktemp -d)
aarch64-linux-gnu-gcc -O2 -static -pthread -I. ../scripts/binary-arm-check.c binary.c binary-arm.c lowbit.c lowbit-arm.c lowbit-gemm.c pool.c -lm -o "$out/check"
qemu-aarch64-static -cpu max "$out/check"
rm -rf "$out"
