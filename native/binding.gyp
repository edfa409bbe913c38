{
  "targets": [
    {
      "target_name": "bitcrush_native",
      "sources": ["bitcrush.c", "pool.c", "probe.c", "lowbit.c", "lowbit-gemm.c", "lowbit-gemm-x86.c", "lowbit-x86.c", "lowbit-vnni.c", "lowbit-arm.c", "lowbit-napi.c", "codebook.c", "codebook-lut8.c", "codebook-x86.c", "codebook-arm.c", "codebook-napi.c", "binary.c", "binary-x86.c", "binary-arm.c", "binary-napi.c", "decode-ops.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-pthread"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}
