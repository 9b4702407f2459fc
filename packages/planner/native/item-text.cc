// Writes a plan bucket's item text (canonical JSON, one item per line) from the manifest's typed
// columns and the bucket's item columns, in one call per bucket: the same bytes as ItemWriter.write
// in src/planned-items.ts, at memcpy-like speed instead of ~12 ns per byte in JS.
//
// Anything this writer does not handle exactly as JSON.stringify would (a name that needs escaping
// or is not printable ASCII, a number that is not a non-negative safe integer, an index outside its
// column) stops the run at that item: the caller writes that one item in JS and calls again.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

constexpr double kMaxSafe = 9007199254740991.0;

// A typed array's bytes, held for the life of the encoder.
struct Column {
  Napi::Reference<Napi::Value> ref;
  const uint8_t* data = nullptr;
  size_t length = 0;  // elements
};

bool ReadColumn(Napi::Env env, Napi::Object from, const char* name, napi_typedarray_type type, Column* out) {
  Napi::Value v = from.Get(name);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    Napi::TypeError::New(env, std::string("ItemEncoder: ") + name + " must be a typed array of the expected type")
        .ThrowAsJavaScriptException();
    return false;
  }
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  out->ref = Napi::Persistent(v);
  out->data = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  out->length = a.ElementLength();
  return true;
}

template <typename T>
const T* As(const Column& c) {
  return reinterpret_cast<const T*>(c.data);
}

// Output cursor over a caller's buffer (capacity checked by the caller, per item).
struct Out {
  uint8_t* p;
  void put(const char* s, size_t n) {
    std::memcpy(p, s, n);
    p += n;
  }
  template <size_t N>
  void lit(const char (&s)[N]) {
    put(s, N - 1);
  }
  void bytes(const uint8_t* s, size_t n) {
    std::memcpy(p, s, n);
    p += n;
  }
  void u64(uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    while (n) *p++ = static_cast<uint8_t>(tmp[--n]);
  }
};

// A JSON number written by JSON.stringify as plain digits: a non-negative safe integer.
inline bool Plain(double v) { return v >= 0 && v <= kMaxSafe && std::floor(v) == v; }

class ItemEncoder : public Napi::ObjectWrap<ItemEncoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ItemEncoder", {InstanceMethod<&ItemEncoder::Write>("write")});
  }

  // new ItemEncoder({names, nameUnits: 1 | 2, starts, shardRank, kind, file, fileOffset, nbytes,
  //   dtype, ndim, dims, dimsStart, hash, hashBytes, heads, headStarts, tails, tailStarts,
  //   hashPrefix, bucketBytes})
  explicit ItemEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ItemEncoder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "ItemEncoder(columns: object)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    wide_ = o.Get("nameUnits").ToNumber().Int32Value() == 2;
    if (!ReadColumn(env, o, "names", wide_ ? napi_uint16_array : napi_uint8_array, &names_) ||
        !ReadColumn(env, o, "starts", napi_uint32_array, &starts_) ||
        !ReadColumn(env, o, "shardRank", napi_uint32_array, &shardRank_) ||
        !ReadColumn(env, o, "kind", napi_uint8_array, &kind_) ||
        !ReadColumn(env, o, "file", napi_uint32_array, &file_) ||
        !ReadColumn(env, o, "fileOffset", napi_float64_array, &fileOffset_) ||
        !ReadColumn(env, o, "nbytes", napi_float64_array, &nbytes_) ||
        !ReadColumn(env, o, "dtype", napi_int32_array, &dtype_) ||
        !ReadColumn(env, o, "ndim", napi_int32_array, &ndim_) ||
        !ReadColumn(env, o, "dims", napi_float64_array, &dims_) ||
        !ReadColumn(env, o, "dimsStart", napi_uint32_array, &dimsStart_) ||
        !ReadColumn(env, o, "hash", napi_uint8_array, &hash_) ||
        !ReadColumn(env, o, "heads", napi_uint8_array, &heads_) ||
        !ReadColumn(env, o, "headStarts", napi_uint32_array, &headStarts_) ||
        !ReadColumn(env, o, "tails", napi_uint8_array, &tails_) ||
        !ReadColumn(env, o, "tailStarts", napi_uint32_array, &tailStarts_) ||
        !ReadColumn(env, o, "hashPrefix", napi_uint8_array, &hashPrefix_))
      return;
    hashBytes_ = o.Get("hashBytes").ToNumber().Uint32Value();
    bucketBytes_ = o.Get("bucketBytes").ToNumber().DoubleValue();
    size_ = shardRank_.length;
    if (starts_.length != size_ + 1 || kind_.length < size_ || file_.length < size_ ||
        fileOffset_.length < size_ || nbytes_.length < size_ || dtype_.length < size_ ||
        ndim_.length < size_ || dimsStart_.length < size_ || headStarts_.length < 1 ||
        tailStarts_.length < 1 || !(bucketBytes_ >= 1)) {
      Napi::RangeError::New(env, "ItemEncoder: columns of different lengths").ThrowAsJavaScriptException();
      return;
    }
  }

 private:
  // write(entry, part, offset, nbytes, from, to, out, outAt, canon, canonAt, state) -> k
  // Writes items [from, k) of a bucket, each preceded by its separator (`\n      ` for the first
  // item of the bucket, `,\n      ` after) in `out` and by `,` (not for the first) in `canon`.
  // state[0], state[1]: the new ends of out and canon; state[2]: why it stopped at k (0: k == to,
  // 1: item k is for the JS writer, 2: no room for item k).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 11 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() ||
        !info[3].IsTypedArray() || !info[6].IsTypedArray() || !info[8].IsTypedArray() ||
        !info[10].IsTypedArray()) {
      Napi::TypeError::New(env, "write(entry, part, offset, nbytes, from, to, out, outAt, canon, canonAt, state)")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto ta = [](const Napi::Value& v) { return v.As<Napi::TypedArray>(); };
    auto ptr = [](Napi::TypedArray a) {
      return static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    };
    Napi::TypedArray entryA = ta(info[0]), partA = ta(info[1]), offsetA = ta(info[2]), nbytesA = ta(info[3]);
    Napi::TypedArray outA = ta(info[6]), canonA = ta(info[8]), stateA = ta(info[10]);
    if (entryA.TypedArrayType() != napi_uint32_array || partA.TypedArrayType() != napi_int32_array ||
        offsetA.TypedArrayType() != napi_float64_array || nbytesA.TypedArrayType() != napi_float64_array ||
        outA.TypedArrayType() != napi_uint8_array || canonA.TypedArrayType() != napi_uint8_array ||
        stateA.TypedArrayType() != napi_float64_array || stateA.ElementLength() < 3) {
      Napi::TypeError::New(env, "write: typed arrays of the wrong type").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    const size_t count = entryA.ElementLength();
    if (partA.ElementLength() < count || offsetA.ElementLength() < count || nbytesA.ElementLength() < count) {
      Napi::RangeError::New(env, "write: item columns of different lengths").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    const uint32_t* entry = reinterpret_cast<const uint32_t*>(ptr(entryA));
    const int32_t* part = reinterpret_cast<const int32_t*>(ptr(partA));
    const double* itemOffset = reinterpret_cast<const double*>(ptr(offsetA));
    const double* itemNbytes = reinterpret_cast<const double*>(ptr(nbytesA));
    double* state = reinterpret_cast<double*>(ptr(stateA));
    const double fromD = info[4].ToNumber().DoubleValue();
    const double toD = info[5].ToNumber().DoubleValue();
    const double outAtD = info[7].ToNumber().DoubleValue();
    const double canonAtD = info[9].ToNumber().DoubleValue();
    const size_t outCap = outA.ElementLength();
    const size_t canonCap = canonA.ElementLength();
    if (!(fromD >= 0 && fromD <= toD && toD <= static_cast<double>(count) && outAtD >= 0 &&
          outAtD <= static_cast<double>(outCap) && canonAtD >= 0 && canonAtD <= static_cast<double>(canonCap))) {
      Napi::RangeError::New(env, "write: range outside the columns or buffers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint8_t* outBase = ptr(outA);
    uint8_t* canonBase = ptr(canonA);
    Out o{outBase + static_cast<size_t>(outAtD)};
    uint8_t* c = canonBase + static_cast<size_t>(canonAtD);
    size_t k = static_cast<size_t>(fromD);
    const size_t to = static_cast<size_t>(toD);
    int reason = 0;
    // Items point at scattered entries of a large manifest: each reads a dozen columns at random
    // places, so the writer waits on memory, not on writing. Fetch ahead: the columns of item
    // k + kAhead, and what those columns point at (names, dims) for item k + kAhead / 2.
    for (size_t j = k; j < to && j < k + kAhead; j++) Prefetch(entry[j]);
    for (size_t j = k; j < to && j < k + kAhead / 2; j++) PrefetchDependent(entry[j]);
    for (; k < to; k++) {
      if (k + kAhead < to) Prefetch(entry[k + kAhead]);
      if (k + kAhead / 2 < to) PrefetchDependent(entry[k + kAhead / 2]);
      const size_t need = Bound(entry[k]);
      if (need == 0) {
        reason = 1;
        break;
      }
      if (static_cast<size_t>(outBase + outCap - o.p) < need || static_cast<size_t>(canonBase + canonCap - c) < need) {
        reason = 2;
        break;
      }
      if (k == 0)
        o.lit("\n      ");
      else {
        o.lit(",\n      ");
        *c++ = ',';
      }
      uint8_t* start = o.p;
      if (!Item(&o, entry[k], part[k], itemOffset[k], itemNbytes[k])) {
        // Not for this writer after all: undo the separators.
        o.p = start - (k == 0 ? 7 : 8);
        if (k) c--;
        reason = 1;
        break;
      }
      const size_t n = static_cast<size_t>(o.p - start);
      std::memcpy(c, start, n);
      c += n;
    }
    state[0] = static_cast<double>(o.p - outBase);
    state[1] = static_cast<double>(c - canonBase);
    state[2] = reason;
    return Napi::Number::New(env, static_cast<double>(k));
  }

  static constexpr size_t kAhead = 16;

  void Prefetch(uint32_t i) const {
    if (i >= size_) return;
    __builtin_prefetch(As<uint32_t>(starts_) + i);
    __builtin_prefetch(As<uint32_t>(shardRank_) + i);
    __builtin_prefetch(kind_.data + i);
    __builtin_prefetch(As<uint32_t>(file_) + i);
    __builtin_prefetch(As<double>(fileOffset_) + i);
    __builtin_prefetch(As<double>(nbytes_) + i);
    __builtin_prefetch(As<int32_t>(dtype_) + i);
    __builtin_prefetch(As<int32_t>(ndim_) + i);
    __builtin_prefetch(As<uint32_t>(dimsStart_) + i);
    const size_t h = static_cast<size_t>(i) * hashBytes_;
    if (h < hash_.length) {
      __builtin_prefetch(hash_.data + h);
      if (hashBytes_ > 32) __builtin_prefetch(hash_.data + h + hashBytes_ - 1);
    }
  }

  // The name and dims of entry i (their offsets were fetched by Prefetch).
  void PrefetchDependent(uint32_t i) const {
    if (i >= size_) return;
    const uint32_t a = As<uint32_t>(starts_)[i];
    const uint32_t b = As<uint32_t>(starts_)[i + 1];
    const size_t unit = wide_ ? 2 : 1;
    if (a < b && b <= names_.length) {
      __builtin_prefetch(names_.data + a * unit);
      __builtin_prefetch(names_.data + b * unit - 1);
    }
    const uint32_t d = As<uint32_t>(dimsStart_)[i];
    if (d < dims_.length) __builtin_prefetch(As<double>(dims_) + d);
  }

  // Upper bound of item i's bytes with its separator, or 0 when an index is out of its column.
  size_t Bound(uint32_t i) const {
    if (i >= size_) return 0;
    const uint32_t* starts = As<uint32_t>(starts_);
    const uint32_t a = starts[i], b = starts[i + 1];
    if (a > b || b > names_.length) return 0;
    const int32_t dtype = As<int32_t>(dtype_)[i];
    if (dtype < -1 || static_cast<size_t>(dtype) + 2 > headStarts_.length) return 0;
    const uint32_t file = As<uint32_t>(file_)[i];
    if (static_cast<size_t>(file) + 2 > tailStarts_.length) return 0;
    const int32_t ndim = As<int32_t>(ndim_)[i];
    if (ndim > 0 && static_cast<size_t>(As<uint32_t>(dimsStart_)[i]) + ndim > dims_.length) return 0;
    if ((static_cast<size_t>(i) + 1) * hashBytes_ > hash_.length) return 0;
    const uint32_t* hs = As<uint32_t>(headStarts_);
    const uint32_t* ts = As<uint32_t>(tailStarts_);
    if (hs[dtype + 1] > hs[dtype + 2] || hs[dtype + 2] > heads_.length) return 0;
    if (ts[file] > ts[file + 1] || ts[file + 1] > tails_.length) return 0;
    return 512 + 2 * static_cast<size_t>(b - a) + 20 * static_cast<size_t>(ndim > 0 ? ndim : 0) +
           (hs[dtype + 2] - hs[dtype + 1]) + (ts[file + 1] - ts[file]) + 2 * hashBytes_ + hashPrefix_.length;
  }

  // Name i's units, when all are printable ASCII that JSON writes as they are.
  bool Name(Out* o, uint32_t i) const {
    const uint32_t* starts = As<uint32_t>(starts_);
    const uint32_t a = starts[i], b = starts[i + 1];
    if (wide_) {
      const uint16_t* s = As<uint16_t>(names_);
      for (uint32_t k = a; k < b; k++) {
        const uint16_t ch = s[k];
        if (ch < 0x20 || ch == 0x22 || ch == 0x5c || ch > 0x7e) return false;
        *o->p++ = static_cast<uint8_t>(ch);
      }
      return true;
    }
    const uint8_t* s = names_.data;
    for (uint32_t k = a; k < b; k++) {
      const uint8_t ch = s[k];
      if (ch < 0x20 || ch == 0x22 || ch == 0x5c || ch > 0x7e) return false;
    }
    o->bytes(s + a, b - a);
    return true;
  }

  bool Num(Out* o, double v) const {
    if (!Plain(v)) return false;
    o->u64(static_cast<uint64_t>(v));
    return true;
  }

  // Item text as ItemWriter.write gives it (see there), or false for the JS writer.
  bool Item(Out* o, uint32_t i, int32_t p, double offset, double nbytes) const {
    static const char kHex[] = "0123456789abcdef";
    const double tensorOffset = p < 0 ? 0 : p * bucketBytes_;
    const int32_t dtype = As<int32_t>(dtype_)[i];
    const uint32_t* hs = As<uint32_t>(headStarts_);
    o->bytes(heads_.data + hs[dtype + 1], hs[dtype + 2] - hs[dtype + 1]);
    if (!Num(o, As<double>(fileOffset_)[i] + tensorOffset)) return false;
    o->bytes(hashPrefix_.data, hashPrefix_.length);
    const uint8_t* h = hash_.data + static_cast<size_t>(i) * hashBytes_;
    for (uint32_t k = 0; k < hashBytes_; k++) {
      *o->p++ = static_cast<uint8_t>(kHex[h[k] >> 4]);
      *o->p++ = static_cast<uint8_t>(kHex[h[k] & 15]);
    }
    o->lit("\",\"key\":\"");
    if (!Name(o, i)) return false;
    const uint32_t rank = As<uint32_t>(shardRank_)[i];
    o->lit(":");
    o->u64(rank);
    const uint8_t kind = kind_.data[i];
    if (kind == 't')
      o->lit("\",\"kind\":\"tensor\",\"nbytes\":");
    else if (kind == 'h')
      o->lit("\",\"kind\":\"header\",\"nbytes\":");
    else
      o->lit("\",\"kind\":\"file\",\"nbytes\":");
    if (!Num(o, nbytes)) return false;
    o->lit(",\"offset\":");
    if (!Num(o, offset)) return false;
    if (p >= 0) {
      const double tensorNbytes = As<double>(nbytes_)[i];
      o->lit(",\"part\":{\"count\":");
      if (!Num(o, std::ceil(tensorNbytes / bucketBytes_))) return false;
      o->lit(",\"index\":");
      o->u64(static_cast<uint64_t>(p));
      o->lit(",\"tensor_nbytes\":");
      if (!Num(o, tensorNbytes)) return false;
      o->lit(",\"tensor_offset\":");
      if (!Num(o, tensorOffset)) return false;
      o->lit("}");
    }
    const int32_t ndim = As<int32_t>(ndim_)[i];
    if (ndim < 0)
      o->lit(",\"shape\":null,\"shard_rank\":");
    else {
      const double* dims = As<double>(dims_) + As<uint32_t>(dimsStart_)[i];
      o->lit(",\"shape\":[");
      for (int32_t d = 0; d < ndim; d++) {
        if (d) o->lit(",");
        if (!Num(o, dims[d])) return false;
      }
      o->lit("],\"shard_rank\":");
    }
    o->u64(rank);
    o->lit(",\"tensor\":\"");
    if (!Name(o, i)) return false;
    const uint32_t file = As<uint32_t>(file_)[i];
    const uint32_t* ts = As<uint32_t>(tailStarts_);
    o->bytes(tails_.data + ts[file], ts[file + 1] - ts[file]);
    return true;
  }

  Column names_, starts_, shardRank_, kind_, file_, fileOffset_, nbytes_, dtype_, ndim_, dims_, dimsStart_, hash_,
      heads_, headStarts_, tails_, tailStarts_, hashPrefix_;
  bool wide_ = false;
  uint32_t hashBytes_ = 0;
  double bucketBytes_ = 0;
  size_t size_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ItemEncoder", ItemEncoder::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(hotweights_planner, Init)
