// Maps a file (normally a /dev/shm segment) into an external ArrayBuffer without copying.
// The mapping is MAP_SHARED, so other processes mapping the same file see the same bytes;
// the ArrayBuffer's finalizer unmaps it.
#include <napi.h>

#include "io.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

void Unmap(Napi::Env /*env*/, void* data, size_t* length) {
  munmap(data, *length);
  delete length;
}

// The (fd, length, offset, fourth) arguments map and mapRange share; false (with a JavaScript
// exception pending) when they are not numbers, the fourth of the wanted kind, or out of range.
struct MapArgs {
  int fd;
  size_t length;
  off_t offset;
};
bool ReadMapArgs(const Napi::CallbackInfo& info, bool fourthIsBoolean, const char* signature,
                 MapArgs& out) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !(fourthIsBoolean ? info[3].IsBoolean() : info[3].IsNumber())) {
    Napi::TypeError::New(env, signature).ThrowAsJavaScriptException();
    return false;
  }
  const double length = info[1].As<Napi::Number>().DoubleValue();
  const double offset = info[2].As<Napi::Number>().DoubleValue();
  if (length < 1 || offset < 0) {
    Napi::RangeError::New(env, "length must be >= 1 and offset >= 0").ThrowAsJavaScriptException();
    return false;
  }
  out = {info[0].As<Napi::Number>().Int32Value(), static_cast<size_t>(length),
         static_cast<off_t>(offset)};
  return true;
}

// Throws "mmap failed: <reason>" with the errno mmap left.
Napi::Value ThrowMmapFailed(Napi::Env env) {
  const int err = errno;
  Napi::Error e = Napi::Error::New(env, std::string("mmap failed: ") + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// map(fd, length, offset, writable) -> ArrayBuffer
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MapArgs a;
  if (!ReadMapArgs(info, true, "map(fd: number, length: number, offset: number, writable: boolean)", a))
    return env.Undefined();
  const int prot = info[3].As<Napi::Boolean>().Value() ? (PROT_READ | PROT_WRITE) : PROT_READ;
  void* addr = mmap(nullptr, a.length, prot, MAP_SHARED, a.fd, a.offset);
  if (addr == MAP_FAILED) return ThrowMmapFailed(env);
  return Napi::ArrayBuffer::New(env, addr, a.length, Unmap, new size_t(a.length));
}

// reserve(fd, length): posix_fallocate, so running out of space fails here, before any byte is
// written, instead of as SIGBUS on a later write through a mapping.
Napi::Value Reserve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "reserve(fd: number, length: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const off_t length = static_cast<off_t>(info[1].As<Napi::Number>().DoubleValue());
  const int err = length > 0 ? posix_fallocate(fd, 0, length) : 0;
  if (err != 0) {
    Napi::Error e = Napi::Error::New(env, std::string("posix_fallocate failed: ") + std::strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("code", Napi::String::New(env, err == ENOSPC ? "ENOSPC" : "EFALLOCATE"));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// --- Read-only mappings with an explicit unmap (hashing whole files without read() copies). ---
// A caller that maps piece after piece of a large file must release each piece at once rather
// than when the garbage collector gets round to it, so these mappings are registered: unmapRange
// detaches the ArrayBuffer (every view of it becomes empty, so no access after munmap) and unmaps;
// the finalizer unmaps only what is still registered under its own id (the address may have been
// reused by a newer mapping by then). Worker threads share the registry, hence the mutex.
struct RangeHint {
  uint64_t id;
  size_t length;
};
std::mutex rangesMutex;
std::unordered_map<uintptr_t, uint64_t> liveRanges;
uint64_t nextRangeId = 1;

void UnmapRange(Napi::Env /*env*/, void* data, RangeHint* hint) {
  bool unmap = false;
  {
    std::lock_guard<std::mutex> lock(rangesMutex);
    auto it = liveRanges.find(reinterpret_cast<uintptr_t>(data));
    if (it != liveRanges.end() && it->second == hint->id) {
      liveRanges.erase(it);
      unmap = true;
    }
  }
  if (unmap) munmap(data, hint->length);
  delete hint;
}

// Maps so that address and file offset agree modulo 2 MiB: then a page cache that holds the file
// in 2 MiB folios (ext4/xfs large folios) is mapped with one PMD entry per 2 MiB instead of 512
// PTEs, which makes faulting a warm file in nearly free and keeps TLB misses off the reader.
// Reserves a slightly larger inaccessible area, places the file mapping inside it, trims the rest.
void* MapCongruent(int fd, size_t length, off_t offset, int flags) {
  constexpr size_t kHuge = 2u << 20;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (length < kHuge) return mmap(nullptr, length, PROT_READ, flags, fd, offset);
  const size_t reserved = length + kHuge;
  void* base = mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return mmap(nullptr, length, PROT_READ, flags, fd, offset);
  const uintptr_t b = reinterpret_cast<uintptr_t>(base);
  const uintptr_t want = static_cast<uintptr_t>(offset) % kHuge;
  const uintptr_t start = b + (want + kHuge - b % kHuge) % kHuge;
  void* addr = mmap(reinterpret_cast<void*>(start), length, PROT_READ, flags | MAP_FIXED, fd, offset);
  if (addr == MAP_FAILED) {
    const int err = errno;
    munmap(base, reserved);
    errno = err;
    return MAP_FAILED;
  }
  const uintptr_t end = start + (length + page - 1) / page * page;
  if (start > b) munmap(base, start - b);
  if (b + reserved > end) munmap(reinterpret_cast<void*>(end), b + reserved - end);
  return addr;
}

// mapRange(fd, length, offset, advice) -> ArrayBuffer (read-only, MAP_SHARED).
// advice: 0 none, 1 MAP_POPULATE (fault every page in now), 2 MADV_SEQUENTIAL, 3 MADV_WILLNEED.
Napi::Value MapRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MapArgs a;
  if (!ReadMapArgs(info, false, "mapRange(fd: number, length: number, offset: number, advice: number)", a))
    return env.Undefined();
  const int advice = info[3].As<Napi::Number>().Int32Value();
  const size_t length = a.length;
  void* addr = MapCongruent(a.fd, length, a.offset, MAP_SHARED | (advice == 1 ? MAP_POPULATE : 0));
  if (addr == MAP_FAILED) return ThrowMmapFailed(env);
  if (advice == 2) madvise(addr, length, MADV_SEQUENTIAL);
  if (advice == 3) madvise(addr, length, MADV_WILLNEED);
  RangeHint* hint = new RangeHint{0, length};
  {
    std::lock_guard<std::mutex> lock(rangesMutex);
    hint->id = nextRangeId++;
    liveRanges[reinterpret_cast<uintptr_t>(addr)] = hint->id;
  }
  return Napi::ArrayBuffer::New(env, addr, length, UnmapRange, hint);
}

// unmapRange(buffer) -> boolean: true when this call unmapped it, false when it was not (or no
// longer) a live mapRange buffer.
Napi::Value UnmapRangeNow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "unmapRange(buffer: ArrayBuffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* addr = ab.Data();
  const size_t length = ab.ByteLength();
  if (addr == nullptr || length == 0) return Napi::Boolean::New(env, false);
  {
    std::lock_guard<std::mutex> lock(rangesMutex);
    auto it = liveRanges.find(reinterpret_cast<uintptr_t>(addr));
    if (it == liveRanges.end()) return Napi::Boolean::New(env, false);
    liveRanges.erase(it);
  }
  // Detach first so no JavaScript view can reach the pages once they are gone.
  ab.Detach();
  munmap(addr, length);
  return Napi::Boolean::New(env, true);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("map", Napi::Function::New(env, Map));
  exports.Set("reserve", Napi::Function::New(env, Reserve));
  exports.Set("mapRange", Napi::Function::New(env, MapRange));
  exports.Set("unmapRange", Napi::Function::New(env, UnmapRangeNow));
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
  InitIo(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(hotweights_shm, Init)
