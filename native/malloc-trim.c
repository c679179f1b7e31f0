// A Node-API addon with one function, trim(): glibc's malloc_trim(0), which returns to the system
// the free pages anywhere in malloc's heaps. free() only ever shrinks a heap's top, so after a
// reconcile's peak the agent kept ~7 MiB of free malloc memory resident under a few live chunks
// (docs/scale.md, "The agent"). Node cannot call malloc_trim itself.
//
// Built without node-gyp: one C file against Node's own headers (node_api.h), linked as a shared
// object whose Node-API symbols resolve against the node binary that loads it
// (hack/tools/malloc-trim.sh for the tests and benchmarks, the Dockerfile for the image).
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stdlib.h>  // defines __GLIBC__ on glibc
#ifdef __GLIBC__
#include <malloc.h>
#endif

// trim(): true when memory was returned to the system, false when there was none to return (or
// the C library has no malloc_trim).
static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
  bool released = false;
#ifdef __GLIBC__
  released = malloc_trim(0) != 0;
#endif
  napi_value result;
  if (napi_get_boolean(env, released, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  return exports;
}
