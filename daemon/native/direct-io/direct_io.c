// The one fact O_DIRECT writes need that Node does not expose: where a buffer lies in memory.
//
// A write to a file opened with O_DIRECT goes from the caller's memory to the device, past the
// page cache, and Linux refuses it (EINVAL) unless the memory address, the length and the file
// offset are multiples of the device's logical block size. Node allocates ArrayBuffer memory
// with malloc, at no particular alignment, and gives JavaScript no address; this addon tells
// how far a view's first byte lies past the last multiple of an alignment, so the daemon can
// start its buffers at an aligned offset inside a slightly larger ArrayBuffer (V8 never moves
// an ArrayBuffer's memory once allocated).
#include <node_api.h>
#include <stdint.h>

// misalignment(view, alignment) -> number: address of view's first byte modulo alignment.
// view: an ArrayBuffer or any ArrayBufferView; alignment: a power of two from 1 to 2^20.
static napi_value Misalignment(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "misalignment(view, alignment) takes two arguments");
    return NULL;
  }
  uint32_t alignment = 0;
  if (napi_get_value_uint32(env, argv[1], &alignment) != napi_ok || alignment == 0 || alignment > (1u << 20) || (alignment & (alignment - 1)) != 0) {
    napi_throw_range_error(env, NULL, "alignment must be a power of two up to 1 MiB");
    return NULL;
  }
  void* data = NULL;
  bool is = false;
  napi_is_arraybuffer(env, argv[0], &is);
  if (is) {
    napi_get_arraybuffer_info(env, argv[0], &data, NULL);
  } else {
    napi_is_typedarray(env, argv[0], &is);
    if (is) {
      napi_get_typedarray_info(env, argv[0], NULL, NULL, &data, NULL, NULL);
    } else {
      napi_is_dataview(env, argv[0], &is);
      if (!is) {
        napi_throw_type_error(env, NULL, "view must be an ArrayBuffer, a typed array or a DataView");
        return NULL;
      }
      napi_get_dataview_info(env, argv[0], NULL, &data, NULL, NULL);
    }
  }
  napi_value out;
  napi_create_uint32(env, (uint32_t)((uintptr_t)data & (uintptr_t)(alignment - 1)), &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "misalignment", NAPI_AUTO_LENGTH, Misalignment, NULL, &fn);
  napi_set_named_property(env, exports, "misalignment", fn);
  return exports;
}
