// The common case of a plan's delta (createPlan's markUnchanged), natively: one pass over a
// million entries without the JIT warm-up a one-shot process would pay for the same loop in JS.
#include <napi.h>

#include "typed-data.h"

#include <cstdint>
#include <cstring>

namespace {


// markUnchanged(match, prevNbytes, nextNbytes, prevHash, nextHash, hashBytes, prevMatched, unchanged)
// For each entry i of next with a match j = match[i] >= 0 in prev: prevMatched[j] = 1, and
// unchanged[i] = 1 when both have the same size and the same digest (hashBytes bytes each).
Napi::Value MarkUnchanged(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0, pn = 0, nn = 0, ph = 0, nh = 0, pm = 0, un = 0;
  const int32_t* match = info.Length() >= 8 ? TypedData<const int32_t>(info[0], napi_int32_array, &n) : nullptr;
  const double* prevNbytes = match ? TypedData<const double>(info[1], napi_float64_array, &pn) : nullptr;
  const double* nextNbytes = prevNbytes ? TypedData<const double>(info[2], napi_float64_array, &nn) : nullptr;
  const uint8_t* prevHash = nextNbytes ? TypedData<const uint8_t>(info[3], napi_uint8_array, &ph) : nullptr;
  const uint8_t* nextHash = prevHash ? TypedData<const uint8_t>(info[4], napi_uint8_array, &nh) : nullptr;
  uint8_t* prevMatched = nextHash ? TypedData<uint8_t>(info[6], napi_uint8_array, &pm) : nullptr;
  uint8_t* unchanged = prevMatched ? TypedData<uint8_t>(info[7], napi_uint8_array, &un) : nullptr;
  if (!unchanged) {
    Napi::TypeError::New(env, "markUnchanged(match, prevNbytes, nextNbytes, prevHash, nextHash, hashBytes, "
                              "prevMatched, unchanged): typed arrays of the expected types")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const double hb = info[5].ToNumber().DoubleValue();
  if (!(hb >= 1 && hb <= 1024) || nn < n || un < n || nh < n * static_cast<size_t>(hb) ||
      ph < pn * static_cast<size_t>(hb) || pm < pn) {
    Napi::RangeError::New(env, "markUnchanged: columns of different lengths").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t hashBytes = static_cast<size_t>(hb);
  for (size_t i = 0; i < n; i++) {
    const int32_t j = match[i];
    if (j < 0) continue;
    if (static_cast<size_t>(j) >= pn) {
      Napi::RangeError::New(env, "markUnchanged: a match outside prev").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    prevMatched[j] = 1;
    if (prevNbytes[j] == nextNbytes[i] &&
        std::memcmp(prevHash + static_cast<size_t>(j) * hashBytes, nextHash + i * hashBytes, hashBytes) == 0)
      unchanged[i] = 1;
  }
  return env.Undefined();
}

}  // namespace

void RegisterDelta(Napi::Env env, Napi::Object exports) {
  exports.Set("markUnchanged", Napi::Function::New<MarkUnchanged>(env, "markUnchanged"));
}
