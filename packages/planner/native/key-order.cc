// The stored key order of a binary manifest, checked natively (see useKeyOrderCheck in
// @hotweights/manifest): a million name comparisons without a JIT warm-up. It only says yes or
// no; for no, the manifest package's own check runs and says what is wrong.
#include <napi.h>

#include <cstring>
#include <vector>

#include "typed-data.h"

namespace {

// keyOrderAscends(names, starts, ranks, order) -> true when order is a permutation of the entries
// along which (name bytes, then rank) strictly ascend; false for anything else.
Napi::Value KeyOrderAscends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t nl = 0, sl = 0, n = 0, ol = 0;
  const uint8_t* names = info.Length() >= 4 ? TypedData<const uint8_t>(info[0], napi_uint8_array, &nl) : nullptr;
  const uint32_t* starts = names ? TypedData<const uint32_t>(info[1], napi_uint32_array, &sl) : nullptr;
  const uint32_t* ranks = starts ? TypedData<const uint32_t>(info[2], napi_uint32_array, &n) : nullptr;
  const uint32_t* order = ranks ? TypedData<const uint32_t>(info[3], napi_uint32_array, &ol) : nullptr;
  if (!order) {
    Napi::TypeError::New(env, "keyOrderAscends(names: Uint8Array, starts, ranks, order: Uint32Array)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (sl != n + 1 || ol != n) return Napi::Boolean::New(env, false);
  for (size_t i = 0; i < n; i++)
    if (starts[i] > starts[i + 1] || starts[i + 1] > nl) return Napi::Boolean::New(env, false);
  std::vector<uint8_t> seen(n);
  for (size_t k = 0; k < n; k++) {
    const uint32_t e = order[k];
    if (e >= n || seen[e]) return Napi::Boolean::New(env, false);
    seen[e] = 1;
    if (k == 0) continue;
    const uint32_t p = order[k - 1];
    const size_t la = starts[p + 1] - starts[p];
    const size_t lb = starts[e + 1] - starts[e];
    int c = std::memcmp(names + starts[p], names + starts[e], la < lb ? la : lb);
    if (c == 0) c = la < lb ? -1 : la > lb ? 1 : 0;
    if (c == 0) c = ranks[p] < ranks[e] ? -1 : ranks[p] > ranks[e] ? 1 : 0;
    if (c >= 0) return Napi::Boolean::New(env, false);
  }
  return Napi::Boolean::New(env, true);
}

}  // namespace

void RegisterKeyOrder(Napi::Env env, Napi::Object exports) {
  exports.Set("keyOrderAscends", Napi::Function::New<KeyOrderAscends>(env, "keyOrderAscends"));
}
