{
  "targets": [
    {
      "target_name": "xpmem",
      "sources": ["native/xpmem.cc", "native/ring.cc", "native/files.cc"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-cast-function-type"]
    }
  ]
}
