{
  "targets": [
    {
      "target_name": "bitcrush_native",
      "sources": ["bitcrush.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-lopenblas"]
    }
  ]
}
