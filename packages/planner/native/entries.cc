// A manifest's entry columns checked natively (see useEntryCheck in @hotweights/manifest): the
// same conditions as validateColumns' pass over a million entries, without a JIT warm-up. It only
// says yes or no; for no, the manifest package's own pass runs and says what is wrong.
#include <napi.h>

#include <cmath>
#include <cstdint>

#include "typed-data.h"

namespace {

constexpr double kMaxSafe = 9007199254740991.0;

// entriesValid(starts, nbytes, dtype, ndim, dims, kind, perFile, fileSizes, wholeFile, dtypeCount)
// Entries grouped by file in order (perFile[f] of them each, so file and file_offset are implied):
// non-empty names, sizes and dims non-negative safe integers, dtype -1..dtypeCount-1, ndim >= -1,
// a file's first entry its header ("h"), or "f" for a whole file (wholeFile[f] = 1), "t" after,
// each file's entries adding up to its size, dims used exactly, every file with an entry.
Napi::Value EntriesValid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t sl = 0, n = 0, dtl = 0, ndl = 0, diml = 0, kl = 0, fc = 0, fsl = 0, wl = 0;
  const uint32_t* starts = info.Length() >= 10 ? TypedData<const uint32_t>(info[0], napi_uint32_array, &sl) : nullptr;
  const double* nbytes = starts ? TypedData<const double>(info[1], napi_float64_array, &n) : nullptr;
  const int32_t* dtype = nbytes ? TypedData<const int32_t>(info[2], napi_int32_array, &dtl) : nullptr;
  const int32_t* ndim = dtype ? TypedData<const int32_t>(info[3], napi_int32_array, &ndl) : nullptr;
  const double* dims = ndim ? TypedData<const double>(info[4], napi_float64_array, &diml) : nullptr;
  const uint8_t* kind = dims ? TypedData<const uint8_t>(info[5], napi_uint8_array, &kl) : nullptr;
  const uint32_t* perFile = kind ? TypedData<const uint32_t>(info[6], napi_uint32_array, &fc) : nullptr;
  const double* fileSizes = perFile ? TypedData<const double>(info[7], napi_float64_array, &fsl) : nullptr;
  const uint8_t* wholeFile = fileSizes ? TypedData<const uint8_t>(info[8], napi_uint8_array, &wl) : nullptr;
  if (!wholeFile) {
    Napi::TypeError::New(env, "entriesValid: typed arrays of the expected types").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const double dtypeCount = info[9].ToNumber().DoubleValue();
  auto no = [&env]() { return Napi::Boolean::New(env, false); };
  if (sl != n + 1 || dtl != n || ndl != n || kl != n || fsl != fc || wl != fc) return no();
  int64_t curFile = -1;
  double cursor = 0;
  size_t dimsAt = 0;
  int64_t impliedFile = -1;
  uint64_t nextFileAt = 0;
  for (size_t i = 0; i < n; i++) {
    while (i == nextFileAt && static_cast<size_t>(impliedFile + 1) < fc) nextFileAt += perFile[++impliedFile];
    const int64_t fi = impliedFile;
    const double off = fi == curFile ? cursor : 0;
    const double nb = nbytes[i];
    const int32_t dt = dtype[i];
    const int32_t nd = ndim[i];
    bool ok = starts[i + 1] != starts[i] && fi >= 0 && static_cast<size_t>(fi) < fc && fi >= curFile && nb >= 0 &&
              nb <= kMaxSafe && std::floor(nb) == nb && dt >= -1 && dt < dtypeCount && nd >= -1;
    for (int32_t k = 0; ok && k < nd; k++) {
      const size_t at = dimsAt + static_cast<size_t>(k);
      ok = at < diml && dims[at] >= 0 && dims[at] <= kMaxSafe && std::floor(dims[at]) == dims[at];
    }
    if (ok && fi != curFile) {
      ok = cursor == (curFile < 0 ? 0 : fileSizes[curFile]);
      ok = ok && kind[i] == (wholeFile[fi] ? 'f' : 'h');
      if (ok) {
        curFile = fi;
        cursor = 0;
      }
    } else if (ok) {
      ok = kind[i] == 't';
    }
    ok = ok && off == cursor;
    if (!ok) return no();
    if (nd > 0) dimsAt += static_cast<size_t>(nd);
    cursor = off + nb;
  }
  if (curFile >= 0 && cursor != fileSizes[curFile]) return no();
  if (dimsAt != diml) return no();
  for (size_t f = 0; f < fc; f++)
    if (perFile[f] == 0) return no();
  return Napi::Boolean::New(env, true);
}

}  // namespace

void RegisterEntries(Napi::Env env, Napi::Object exports) {
  exports.Set("entriesValid", Napi::Function::New<EntriesValid>(env, "entriesValid"));
}
