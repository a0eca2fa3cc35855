{
  "targets": [
    {
      "target_name": "xpmem",
      "sources": ["native/xpmem.cc", "native/ring.cc"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-cast-function-type"]
    }
  ]
}
