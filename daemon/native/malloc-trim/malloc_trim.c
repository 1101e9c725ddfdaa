// Gives memory that glibc's malloc holds but no longer uses back to the kernel.
//
// Node allocates Buffer and ArrayBuffer memory with malloc. A transfer allocates and frees
// many such buffers, and after it glibc keeps most of the freed memory: free() returns
// memory only from the top of the heap, and one live chunk near the top pins everything
// below it. malloc_trim(0) releases the free pages anywhere in the heap (madvise). Node
// has no API for it, hence this addon. Without glibc (musl) the functions report that
// nothing is available and the daemon runs without trimming.
#include <node_api.h>
#include <stdbool.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

// trim() -> boolean: whether any memory was released.
static napi_value Trim(napi_env env, napi_callback_info info) {
  bool released = false;
#ifdef __GLIBC__
  released = malloc_trim(0) != 0;
#endif
  napi_value out;
  napi_get_boolean(env, released, &out);
  return out;
}

static void SetNumber(napi_env env, napi_value obj, const char* name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}

// stats() -> { heapBytes, inUseBytes, mmappedBytes } or null without glibc.
// heapBytes: obtained from the system by sbrk/arenas; inUseBytes: allocated in them;
// mmappedBytes: large allocations served by their own mmap.
static napi_value Stats(napi_env env, napi_callback_info info) {
  napi_value out;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 m = mallinfo2();
  napi_create_object(env, &out);
  SetNumber(env, out, "heapBytes", (double)m.arena);
  SetNumber(env, out, "inUseBytes", (double)m.uordblks);
  SetNumber(env, out, "mmappedBytes", (double)m.hblkhd);
#else
  napi_get_null(env, &out);
#endif
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  napi_create_function(env, "stats", NAPI_AUTO_LENGTH, Stats, NULL, &fn);
  napi_set_named_property(env, exports, "stats", fn);
  return exports;
}
