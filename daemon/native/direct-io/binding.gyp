{
  "targets": [
    {
      "target_name": "direct_io",
      "sources": ["direct_io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
