// Maps a file (normally a /dev/shm segment) into an external ArrayBuffer without copying.
// The mapping is MAP_SHARED, so other processes mapping the same file see the same bytes;
// the ArrayBuffer's finalizer unmaps it.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

void Unmap(Napi::Env /*env*/, void* data, size_t* length) {
  munmap(data, *length);
  delete length;
}

// map(fd, length, offset, writable) -> ArrayBuffer
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !info[3].IsBoolean()) {
    Napi::TypeError::New(env, "map(fd: number, length: number, offset: number, writable: boolean)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const double lengthD = info[1].As<Napi::Number>().DoubleValue();
  const double offsetD = info[2].As<Napi::Number>().DoubleValue();
  const bool writable = info[3].As<Napi::Boolean>().Value();
  if (lengthD < 1 || offsetD < 0) {
    Napi::RangeError::New(env, "length must be >= 1 and offset >= 0").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t length = static_cast<size_t>(lengthD);
  const off_t offset = static_cast<off_t>(offsetD);
  const int prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ;
  void* addr = mmap(nullptr, length, prot, MAP_SHARED, fd, offset);
  if (addr == MAP_FAILED) {
    const int err = errno;
    Napi::Error e = Napi::Error::New(env, std::string("mmap failed: ") + std::strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::ArrayBuffer::New(env, addr, length, Unmap, new size_t(length));
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("map", Napi::Function::New(env, Map));
  exports.Set("reserve", Napi::Function::New(env, Reserve));
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
  return exports;
}

}  // namespace

NODE_API_MODULE(hotweights_shm, Init)
