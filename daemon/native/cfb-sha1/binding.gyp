{
  "targets": [
    {
      "target_name": "cfb_sha1",
      "sources": ["cfb_sha1.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
