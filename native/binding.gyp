{
  "targets": [
    {
      "target_name": "bitcrush_native",
      "sources": ["bitcrush.c", "pool.c", "probe.c", "lowbit.c", "lowbit-gemm.c", "lowbit-x86.c", "lowbit-vnni.c", "lowbit-arm.c", "lowbit-napi.c", "codebook.c", "codebook-napi.c", "binary.c", "binary-napi.c", "decode-ops.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-pthread"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}
