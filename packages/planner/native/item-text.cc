// Writes a plan bucket's item text (canonical JSON, one item per line) from the manifest's typed
// columns and the bucket's item columns, in one call per bucket: the same bytes as ItemWriter.write
// in src/planned-items.ts, at memcpy-like speed instead of ~12 ns per byte in JS.
//
// Anything this writer does not handle exactly as JSON.stringify would (a name that needs escaping
// or is not printable ASCII, a number that is not a non-negative safe integer, an index outside its
// column) stops the run at that item: the caller writes that one item in JS and calls again.
//
// A whole plan's items are written in two sweeps instead (layout, then render): items point at
// scattered entries of a large manifest, and visiting them in entry order turns a dozen cache and
// TLB misses per item into sequential reads. Both sweeps split the items over a few threads.
#include <napi.h>
#include <pthread.h>
#include "typed-data.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

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

// Lowercase hex pairs of every byte value, and the decimal pairs 00..99.
struct Tables {
  char hex[512];
  char decimal[200];
  // Bytes JSON writes as they are in a string: printable ASCII but `"` and `\`.
  bool plain[256];
  Tables() {
    static const char kHex[] = "0123456789abcdef";
    for (int v = 0; v < 256; v++) {
      hex[2 * v] = kHex[v >> 4];
      hex[2 * v + 1] = kHex[v & 15];
      plain[v] = v >= 0x20 && v <= 0x7e && v != 0x22 && v != 0x5c;
    }
    for (int v = 0; v < 100; v++) {
      decimal[2 * v] = static_cast<char>('0' + v / 10);
      decimal[2 * v + 1] = static_cast<char>('0' + v % 10);
    }
  }
};
const Tables kTables;

// Output cursor over a caller's buffer (capacity checked by the caller, per item). Kept in a local
// by Item: written through a pointer, every byte stored would make the compiler reload it.
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
    int n = 1;
    for (uint64_t t = v; t >= 10; t /= 10) n++;
    uint8_t* e = p + n;
    p = e;
    while (v >= 100) {
      const uint64_t q = v / 100;
      e -= 2;
      std::memcpy(e, kTables.decimal + 2 * (v - q * 100), 2);
      v = q;
    }
    if (v >= 10) {
      e -= 2;
      std::memcpy(e, kTables.decimal + 2 * v, 2);
    } else {
      *--e = static_cast<uint8_t>('0' + v);
    }
  }
};

// A JSON number written by JSON.stringify as plain digits: a non-negative safe integer.
inline bool Plain(double v) { return v >= 0 && v <= kMaxSafe && std::floor(v) == v; }

// Runs fn(from, to) over [0, n) in chunks taken in turn by this thread and up to threads - 1
// others: a thread the machine does not get to (both cores busy) leaves its chunks to the ones
// that run, so more threads are never much slower than one. A thread that cannot be started only
// leaves more chunks to the others.
template <typename Fn>
void Split(size_t n, int threads, Fn fn) {
  constexpr size_t kChunk = 2048;
  std::atomic<size_t> next{0};
  auto run = [&]() {
    for (;;) {
      const size_t from = next.fetch_add(kChunk);
      if (from >= n) return;
      fn(from, std::min(n, from + kChunk));
    }
  };
  using Run = decltype(run);
  struct Job {
    Run* run;
    pthread_t thread;
    bool started;
  };
  const size_t chunks = (n + kChunk - 1) / kChunk;
  size_t count = threads < 1 ? 1 : static_cast<size_t>(threads);
  if (count > chunks) count = chunks > 0 ? chunks : 1;
  std::vector<Job> jobs(count);
  for (size_t t = 1; t < count; t++) {
    jobs[t].run = &run;
    jobs[t].started = pthread_create(
                          &jobs[t].thread, nullptr,
                          [](void* arg) -> void* {
                            (*static_cast<Job*>(arg)->run)();
                            return nullptr;
                          },
                          &jobs[t]) == 0;
  }
  run();
  for (size_t t = 1; t < count; t++)
    if (jobs[t].started) pthread_join(jobs[t].thread, nullptr);
}

// Indexes 0..n-1 ordered by entry[k] (a stable LSD radix sort, 11 bits a pass).
std::vector<uint32_t> ByEntry(const uint32_t* entry, size_t n) {
  std::vector<uint32_t> a(n), b(n);
  uint32_t max = 0;
  for (size_t k = 0; k < n; k++) {
    a[k] = static_cast<uint32_t>(k);
    max = std::max(max, entry[k]);
  }
  for (int shift = 0; shift < 32 && (max >> shift) != 0; shift += 11) {
    size_t count[2049] = {0};
    for (size_t k = 0; k < n; k++) count[((entry[a[k]] >> shift) & 2047) + 1]++;
    for (int d = 0; d < 2048; d++) count[d + 1] += count[d];
    for (size_t k = 0; k < n; k++) b[count[(entry[a[k]] >> shift) & 2047]++] = a[k];
    a.swap(b);
  }
  return a;
}

// A typed array argument of the expected type with at least `min` elements, or null (and a
// pending JS exception).
template <typename T>
T* Arg(const Napi::CallbackInfo& info, size_t at, napi_typedarray_type type, size_t min, const char* what,
       size_t* length = nullptr) {
  Napi::Env env = info.Env();
  size_t n = 0;
  T* data = info.Length() > at ? TypedData<T>(info[at], type, &n) : nullptr;
  if (!data) {
    Napi::TypeError::New(env, std::string(what) + ": a typed array of the expected type").ThrowAsJavaScriptException();
    return nullptr;
  }
  if (n < min) {
    Napi::RangeError::New(env, std::string(what) + ": too short").ThrowAsJavaScriptException();
    return nullptr;
  }
  if (length) *length = n;
  return data;
}

class ItemEncoder : public Napi::ObjectWrap<ItemEncoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ItemEncoder",
                       {InstanceMethod<&ItemEncoder::Write>("write"), InstanceMethod<&ItemEncoder::Layout>("layout"),
                        InstanceMethod<&ItemEncoder::Place>("place"), InstanceMethod<&ItemEncoder::Render>("render"),
                        InstanceMethod<&ItemEncoder::Join>("join")});
  }

  // new ItemEncoder({names, nameUnits: 1 | 2, starts, shardRank, kind, file, fileOffset, nbytes,
  //   dtype, ndim, dims, hash, hashBytes, heads, headStarts, tails, tailStarts,
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
        ndim_.length < size_ || headStarts_.length < 1 ||
        tailStarts_.length < 1 || !(bucketBytes_ >= 1)) {
      Napi::RangeError::New(env, "ItemEncoder: columns of different lengths").ThrowAsJavaScriptException();
      return;
    }
    // Where each entry's dims start in `dims` (ndim is -1 for no shape).
    dimsStartStore_.resize(size_);
    uint64_t at = 0;
    for (size_t i = 0; i < size_; i++) {
      dimsStartStore_[i] = static_cast<uint32_t>(std::min<uint64_t>(at, UINT32_MAX));
      const int32_t n = As<int32_t>(ndim_)[i];
      if (n > 0) at += static_cast<uint64_t>(n);
    }
    dimsStart_.data = reinterpret_cast<const uint8_t*>(dimsStartStore_.data());
    dimsStart_.length = size_;
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

  // The item columns of a whole plan (arguments 0-3) and their count (argument 4), checked.
  struct Items {
    const uint32_t* entry;
    const int32_t* part;
    const double* offset;
    const double* nbytes;
    size_t count;
  };

  bool ReadItems(const Napi::CallbackInfo& info, Items* items, int* threads) {
    const double n = info.Length() > 5 ? info[4].ToNumber().DoubleValue() : -1;
    const double t = info.Length() > 5 ? info[5].ToNumber().DoubleValue() : 0;
    if (!(n >= 0 && n <= 4294967295.0 && std::floor(n) == n) || !(t >= 1 && t <= 64)) {
      Napi::RangeError::New(info.Env(), "items: count must be an integer >= 0 and threads 1..64")
          .ThrowAsJavaScriptException();
      return false;
    }
    items->count = static_cast<size_t>(n);
    *threads = static_cast<int>(t);
    return (items->entry = Arg<const uint32_t>(info, 0, napi_uint32_array, items->count, "entry")) &&
           (items->part = Arg<const int32_t>(info, 1, napi_int32_array, items->count, "part")) &&
           (items->offset = Arg<const double>(info, 2, napi_float64_array, items->count, "offset")) &&
           (items->nbytes = Arg<const double>(info, 3, napi_float64_array, items->count, "nbytes"));
  }

  // Entry order still leaves gaps between the entries read (only changed ones are planned): fetch
  // the columns of the item kAhead places on, and what they point at for the one kAhead / 2 on.
  void Ahead(const Items& items, const uint32_t* order, size_t x, size_t to) const {
    if (x + kAhead < to) Prefetch(items.entry[order[x + kAhead]]);
    if (x + kAhead / 2 < to) PrefetchDependent(items.entry[order[x + kAhead / 2]]);
  }

  // Item g's text into scratch (grown as needed); its length, or 0 when it is for the JS writer.
  size_t Measure(const Items& items, size_t g, std::vector<uint8_t>* scratch) const {
    const uint32_t i = items.entry[g];
    const size_t bound = Bound(i);
    if (bound == 0) return 0;
    if (scratch->size() < bound) scratch->resize(bound);
    Out o{scratch->data()};
    if (!Item(&o, i, items.part[g], items.offset[g], items.nbytes[g])) return 0;
    return static_cast<size_t>(o.p - scratch->data());
  }

  // layout(entry, part, offset, nbytes, count, threads, order, lengths) -> items left to JS
  // Fills order with the item indexes by entry (the order both sweeps visit them in) and
  // lengths[g] with the byte length of item g's text (no separator), 0 for an item the JS writer
  // must write (as write() would stop at it).
  Napi::Value Layout(const Napi::CallbackInfo& info) {
    Items items;
    int threads;
    if (!ReadItems(info, &items, &threads)) return info.Env().Undefined();
    uint32_t* order = Arg<uint32_t>(info, 6, napi_uint32_array, items.count, "order");
    if (!order) return info.Env().Undefined();
    uint32_t* lengths = Arg<uint32_t>(info, 7, napi_uint32_array, items.count, "lengths");
    if (!lengths) return info.Env().Undefined();
    const std::vector<uint32_t> sorted = ByEntry(items.entry, items.count);
    std::memcpy(order, sorted.data(), items.count * sizeof(uint32_t));
    std::atomic<size_t> left{0};
    Split(items.count, threads, [&](size_t from, size_t to) {
      std::vector<uint8_t> scratch(4096);
      size_t mine = 0;
      for (size_t x = from; x < to; x++) {
        Ahead(items, order, x, to);
        const uint32_t g = order[x];
        const size_t n = Measure(items, g, &scratch);
        lengths[g] = static_cast<uint32_t>(n);
        if (n == 0) mine++;
      }
      left += mine;
    });
    return Napi::Number::New(info.Env(), static_cast<double>(left.load()));
  }

  // place(lengths, positions, from, to, first, out, outAt, state) -> k
  // Lays out items [from, k) of a bucket whose first item is `first`: writes each one's separator
  // into out (`\n      ` before the first, `,\n      ` before the others), sets positions[g] to
  // where its text goes and leaves lengths[g] bytes for it (render fills them). Stops at an item
  // of length 0 (for the JS writer) or one out has no room for. state[0]: the new end of out;
  // state[1]: why it stopped (0: k == to, 1: item k is for the JS writer, 2: no room for item k).
  Napi::Value Place(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t lenLen = 0, posLen = 0, outCap = 0;
    const uint32_t* lengths = Arg<const uint32_t>(info, 0, napi_uint32_array, 0, "lengths", &lenLen);
    double* positions = lengths ? Arg<double>(info, 1, napi_float64_array, 0, "positions", &posLen) : nullptr;
    uint8_t* out = positions ? Arg<uint8_t>(info, 5, napi_uint8_array, 0, "out", &outCap) : nullptr;
    double* state = out ? Arg<double>(info, 7, napi_float64_array, 2, "state") : nullptr;
    if (!state) return env.Undefined();
    const double from = info[2].ToNumber().DoubleValue();
    const double to = info[3].ToNumber().DoubleValue();
    const double first = info[4].ToNumber().DoubleValue();
    const double outAt = info[6].ToNumber().DoubleValue();
    if (!(first >= 0 && first <= from && from <= to && to <= static_cast<double>(std::min(lenLen, posLen)) &&
          outAt >= 0 && outAt <= static_cast<double>(outCap))) {
      Napi::RangeError::New(env, "place: range outside the columns or out").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t at = static_cast<size_t>(outAt);
    size_t g = static_cast<size_t>(from);
    const size_t end = static_cast<size_t>(to);
    int reason = 0;
    for (; g < end; g++) {
      const size_t n = lengths[g];
      if (n == 0) {
        reason = 1;
        break;
      }
      if (outCap - at < n + 8) {
        reason = 2;
        break;
      }
      if (g == static_cast<size_t>(first)) {
        std::memcpy(out + at, "\n      ", 7);
        at += 7;
      } else {
        std::memcpy(out + at, ",\n      ", 8);
        at += 8;
      }
      positions[g] = static_cast<double>(at);
      at += n;
    }
    state[0] = static_cast<double>(at);
    state[1] = reason;
    return Napi::Number::New(env, static_cast<double>(g));
  }

  // render(entry, part, offset, nbytes, count, threads, order, lengths, positions, out)
  // Writes the text of every item with lengths[g] > 0 at out[positions[g]], in `order`. Throws
  // when a text does not fit there or is not lengths[g] bytes (the columns changed since layout).
  Napi::Value Render(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Items items;
    int threads;
    if (!ReadItems(info, &items, &threads)) return env.Undefined();
    size_t outCap = 0;
    const uint32_t* order = Arg<const uint32_t>(info, 6, napi_uint32_array, items.count, "order");
    const uint32_t* lengths = order ? Arg<const uint32_t>(info, 7, napi_uint32_array, items.count, "lengths") : nullptr;
    const double* positions =
        lengths ? Arg<const double>(info, 8, napi_float64_array, items.count, "positions") : nullptr;
    uint8_t* out = positions ? Arg<uint8_t>(info, 9, napi_uint8_array, 0, "out", &outCap) : nullptr;
    if (!out) return env.Undefined();
    for (size_t g = 0; g < items.count; g++) {
      if (order[g] >= items.count) {
        Napi::RangeError::New(env, "render: order is not a permutation of the items").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      const double at = positions[g];
      if (lengths[g] > 0 && !(at >= 0 && at + lengths[g] <= static_cast<double>(outCap))) {
        Napi::RangeError::New(env, "render: an item's place is outside out").ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    std::atomic<bool> differs{false};
    Split(items.count, threads, [&](size_t from, size_t to) {
      std::vector<uint8_t> scratch(4096);
      for (size_t x = from; x < to && !differs.load(std::memory_order_relaxed); x++) {
        // The places written are scattered over the output (entry order is not plan order): ask
        // for the lines of an item a few ahead, so their misses overlap this item's work.
        if (x + kWriteAhead < to) {
          const uint32_t a = order[x + kWriteAhead];
          const uint8_t* p = out + static_cast<size_t>(positions[a]);
          for (size_t b = 0; b < lengths[a]; b += 64) __builtin_prefetch(p + b, 1);
        }
        Ahead(items, order, x, to);
        const uint32_t g = order[x];
        if (lengths[g] == 0) continue;
        if (Measure(items, g, &scratch) != lengths[g]) {
          differs = true;
          break;
        }
        std::memcpy(out + static_cast<size_t>(positions[g]), scratch.data(), lengths[g]);
      }
    });
    if (differs)
      Napi::Error::New(env, "render: an item's text changed since layout (were the manifest's columns modified?)")
          .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // join(out, positions, lengths, from, to, dst, dstAt) -> new end of dst, or -1 when dst has no
  // room: the texts of items [from, to) of out, joined by commas, into dst from dstAt.
  Napi::Value Join(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t outCap = 0, posLen = 0, lenLen = 0, dstCap = 0;
    const uint8_t* out = Arg<const uint8_t>(info, 0, napi_uint8_array, 0, "out", &outCap);
    const double* positions = out ? Arg<const double>(info, 1, napi_float64_array, 0, "positions", &posLen) : nullptr;
    const uint32_t* lengths =
        positions ? Arg<const uint32_t>(info, 2, napi_uint32_array, 0, "lengths", &lenLen) : nullptr;
    uint8_t* dst = lengths ? Arg<uint8_t>(info, 5, napi_uint8_array, 0, "dst", &dstCap) : nullptr;
    if (!dst) return env.Undefined();
    const double from = info[3].ToNumber().DoubleValue();
    const double to = info[4].ToNumber().DoubleValue();
    const double dstAt = info[6].ToNumber().DoubleValue();
    if (!(from >= 0 && from <= to && to <= static_cast<double>(std::min(posLen, lenLen)) && dstAt >= 0 &&
          dstAt <= static_cast<double>(dstCap))) {
      Napi::RangeError::New(env, "join: range outside the columns or dst").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t at = static_cast<size_t>(dstAt);
    for (size_t g = static_cast<size_t>(from); g < static_cast<size_t>(to); g++) {
      const double p = positions[g];
      const size_t n = lengths[g];
      if (!(p >= 0 && p + n <= static_cast<double>(outCap))) {
        Napi::RangeError::New(env, "join: an item's place is outside out").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      if (dstCap - at < n + 1) return Napi::Number::New(env, -1);
      if (g > static_cast<size_t>(from)) dst[at++] = ',';
      std::memcpy(dst + at, out + static_cast<size_t>(p), n);
      at += n;
    }
    return Napi::Number::New(env, static_cast<double>(at));
  }

  static constexpr size_t kAhead = 16;
  static constexpr size_t kWriteAhead = 16;

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
  __attribute__((always_inline)) bool Name(Out* o, uint32_t i) const {
    const uint32_t* starts = As<uint32_t>(starts_);
    const uint32_t a = starts[i], b = starts[i + 1];
    if (wide_) {
      const uint16_t* s = As<uint16_t>(names_);
      for (uint32_t k = a; k < b; k++) {
        const uint16_t ch = s[k];
        if (ch > 0xff || !kTables.plain[ch]) return false;
        *o->p++ = static_cast<uint8_t>(ch);
      }
      return true;
    }
    const uint8_t* s = names_.data;
    bool plain = true;
    for (uint32_t k = a; k < b; k++) plain &= kTables.plain[s[k]];
    if (!plain) return false;
    o->bytes(s + a, b - a);
    return true;
  }

  __attribute__((always_inline)) bool Num(Out* o, double v) const {
    if (!Plain(v)) return false;
    o->u64(static_cast<uint64_t>(v));
    return true;
  }

  // Item text as ItemWriter.write gives it (see there), or false for the JS writer.
  bool Item(Out* to, uint32_t i, int32_t p, double offset, double nbytes) const {
    Out l{to->p};
    Out* o = &l;
    const double tensorOffset = p < 0 ? 0 : p * bucketBytes_;
    const int32_t dtype = As<int32_t>(dtype_)[i];
    const uint32_t* hs = As<uint32_t>(headStarts_);
    o->bytes(heads_.data + hs[dtype + 1], hs[dtype + 2] - hs[dtype + 1]);
    if (!Num(o, As<double>(fileOffset_)[i] + tensorOffset)) return false;
    o->bytes(hashPrefix_.data, hashPrefix_.length);
    const uint8_t* h = hash_.data + static_cast<size_t>(i) * hashBytes_;
    for (uint32_t k = 0; k < hashBytes_; k++) o->put(kTables.hex + 2 * h[k], 2);
    o->lit("\",\"key\":\"");
    // The name is checked and written once; its second place copies the first.
    uint8_t* name = o->p;
    if (!Name(o, i)) return false;
    const size_t nameLength = static_cast<size_t>(o->p - name);
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
    o->bytes(name, nameLength);
    const uint32_t file = As<uint32_t>(file_)[i];
    const uint32_t* ts = As<uint32_t>(tailStarts_);
    o->bytes(tails_.data + ts[file], ts[file + 1] - ts[file]);
    to->p = l.p;
    return true;
  }

  Column names_, starts_, shardRank_, kind_, file_, fileOffset_, nbytes_, dtype_, ndim_, dims_, dimsStart_, hash_,
      heads_, headStarts_, tails_, tailStarts_, hashPrefix_;
  std::vector<uint32_t> dimsStartStore_;
  bool wide_ = false;
  uint32_t hashBytes_ = 0;
  double bucketBytes_ = 0;
  size_t size_ = 0;
};

}  // namespace

void RegisterDelta(Napi::Env env, Napi::Object exports);
void RegisterPacking(Napi::Env env, Napi::Object exports);
void RegisterKeyOrder(Napi::Env env, Napi::Object exports);
void RegisterEntries(Napi::Env env, Napi::Object exports);

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ItemEncoder", ItemEncoder::Define(env));
  RegisterDelta(env, exports);
  RegisterPacking(env, exports);
  RegisterKeyOrder(env, exports);
  RegisterEntries(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(hotweights_planner, Init)
