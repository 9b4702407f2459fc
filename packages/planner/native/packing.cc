// First-fit-decreasing packing (src/packing.ts) natively: the same placements, decided by the same
// double arithmetic, without a JIT warm-up for a hundred-thousand-item loop run once per plan.
#include <napi.h>

#include "typed-data.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {


// As alignUp in packing.ts. Every n here is an integer in 0..capacity (< 2^53) and the alignment
// an integer >= 1, so the remainder is exact in integers (fmod would be far slower); a power of
// two (as createPlan's alignments are) needs no division at all.
struct Aligner {
  double alignment;
  uint64_t a;
  bool pow2;
  double Up(double n) const {
    const uint64_t v = static_cast<uint64_t>(n);
    const double r = static_cast<double>(pow2 ? v & (a - 1) : v % a);
    return r == 0 ? n : n + alignment - r;
  }
};

// Free space per bucket, a max segment tree: the lowest bucket with room in O(log buckets).
class FreeTree {
 public:
  size_t count = 0;

  size_t Push(double free) {
    if (count >= size_) Grow();
    const size_t b = count++;
    Set(b, free);
    return b;
  }

  void Set(size_t b, double free) {
    size_t i = b + size_;
    tree_[i] = free;
    for (i >>= 1; i >= 1; i >>= 1) tree_[i] = std::max(tree_[2 * i], tree_[2 * i + 1]);
  }

  // Lowest bucket with free >= need, or -1.
  int64_t First(double need) const {
    if (count == 0 || tree_[1] < need) return -1;
    size_t i = 1;
    while (i < size_) i = tree_[2 * i] >= need ? 2 * i : 2 * i + 1;
    return static_cast<int64_t>(i - size_);
  }

 private:
  void Grow() {
    const size_t next = size_ * 2;
    std::vector<double> t(2 * next, -1);
    for (size_t b = 0; b < size_; b++) t[next + b] = tree_[size_ + b];
    for (size_t i = next - 1; i >= 1; i--) t[i] = std::max(t[2 * i], t[2 * i + 1]);
    tree_.swap(t);
    size_ = next;
  }

  size_t size_ = 1;
  std::vector<double> tree_ = std::vector<double>(2, -1);
};

// packFirstFit(sizes, capacity, alignment, bucket, offset, order) -> buckets, or -1 when the
// sizes are not all integers in 0..capacity (the JS packer then decides, and says what is wrong).
Napi::Value PackFirstFit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0, nb = 0, no = 0, nr = 0;
  const double* sizes = info.Length() >= 6 ? TypedData<const double>(info[0], napi_float64_array, &n) : nullptr;
  uint32_t* bucket = sizes ? TypedData<uint32_t>(info[3], napi_uint32_array, &nb) : nullptr;
  double* offset = bucket ? TypedData<double>(info[4], napi_float64_array, &no) : nullptr;
  uint32_t* order = offset ? TypedData<uint32_t>(info[5], napi_uint32_array, &nr) : nullptr;
  if (!order || nb < n || no < n || nr < n) {
    Napi::TypeError::New(env, "packFirstFit(sizes, capacity, alignment, bucket, offset, order)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const double capacity = info[1].ToNumber().DoubleValue();
  const double alignment = info[2].ToNumber().DoubleValue();
  if (!(capacity >= 0 && std::floor(capacity) == capacity && capacity < 9007199254740991.0) ||
      !(alignment >= 1 && std::floor(alignment) == alignment && alignment < 9007199254740991.0) || n > UINT32_MAX)
    return Napi::Number::New(env, -1);
  for (size_t i = 0; i < n; i++)
    if (!(sizes[i] >= 0 && sizes[i] <= capacity && std::floor(sizes[i]) == sizes[i])) return Napi::Number::New(env, -1);
  // Size descending, ties by input order (sorted as pairs: no indirection per comparison).
  struct Key {
    double size;
    uint32_t index;
  };
  std::vector<Key> keys(n);
  for (size_t i = 0; i < n; i++) keys[i] = {sizes[i], static_cast<uint32_t>(i)};
  std::sort(keys.begin(), keys.end(),
            [](const Key& a, const Key& b) { return a.size > b.size || (a.size == b.size && a.index < b.index); });
  for (size_t k = 0; k < n; k++) order[k] = keys[k].index;
  const uint64_t a = static_cast<uint64_t>(alignment);
  const Aligner align{alignment, a, (a & (a - 1)) == 0};
  FreeTree tree;
  std::vector<double> ends;
  for (size_t k = 0; k < n; k++) {
    const uint32_t i = order[k];
    const double size = sizes[i];
    int64_t b = tree.First(size);
    if (b < 0) {
      b = static_cast<int64_t>(tree.Push(capacity));
      ends.push_back(0);
    }
    const double at = align.Up(ends[b]);
    const double end = at + size;
    ends[b] = end;
    const double free = capacity - align.Up(end);
    tree.Set(static_cast<size_t>(b), free >= 0 ? free : -1);
    bucket[i] = static_cast<uint32_t>(b);
    offset[i] = at;
  }
  return Napi::Number::New(env, static_cast<double>(ends.size()));
}

}  // namespace

void RegisterPacking(Napi::Env env, Napi::Object exports) {
  exports.Set("packFirstFit", Napi::Function::New<PackFirstFit>(env, "packFirstFit"));
}
