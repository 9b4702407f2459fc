// Positional writes of a whole buffer in bounded pieces, on the libuv thread pool: one task per
// buffer instead of one per piece, so writing a large bucket costs one round trip between
// threads. Pieces stay small because the kernel sizes a new file's page-cache folios by the
// write, and large folios are slow to fault in on some virtual machines.
#include "io.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <unistd.h>

namespace {

class WriteAllWorker : public Napi::AsyncWorker {
 public:
  WriteAllWorker(Napi::Env env, Napi::Object keep, int fd, const uint8_t* data, size_t length,
                 off_t position, size_t piece)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        fd_(fd),
        data_(data),
        length_(length),
        position_(position),
        piece_(piece) {
    keep_ = Napi::Persistent(keep);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    size_t done = 0;
    while (done < length_) {
      const size_t n = length_ - done < piece_ ? length_ - done : piece_;
      const ssize_t w = pwrite(fd_, data_ + done, n, position_ + static_cast<off_t>(done));
      if (w < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        SetError(std::string("pwrite failed: ") + std::strerror(err_));
        return;
      }
      if (w == 0) {
        err_ = EIO;
        SetError("pwrite wrote nothing");
        return;
      }
      done += static_cast<size_t>(w);
    }
  }

  void OnOK() override {
    keep_.Reset();
    deferred_.Resolve(Env().Undefined());
  }

  void OnError(const Napi::Error& e) override {
    keep_.Reset();
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("errno", Napi::Number::New(Env(), err_));
    err.Set("code", Napi::String::New(Env(), err_ == ENOSPC ? "ENOSPC" : err_ == EIO ? "EIO" : "EWRITE"));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;
  const int fd_;
  const uint8_t* data_;
  const size_t length_;
  const off_t position_;
  const size_t piece_;
  int err_ = 0;
};

// writeAll(fd, view: TypedArray, position, piece) -> Promise<void>
Napi::Value WriteAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsNumber() ||
      !info[3].IsNumber()) {
    Napi::TypeError::New(env, "writeAll(fd: number, view: Uint8Array, position: number, piece: number)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::TypedArray view = info[1].As<Napi::TypedArray>();
  const double position = info[2].As<Napi::Number>().DoubleValue();
  const double piece = info[3].As<Napi::Number>().DoubleValue();
  if (position < 0 || piece < 1) {
    Napi::RangeError::New(env, "position must be >= 0 and piece >= 1").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::ArrayBuffer ab = view.ArrayBuffer();
  const uint8_t* data = static_cast<const uint8_t*>(ab.Data()) + view.ByteOffset();
  auto* worker = new WriteAllWorker(env, view, info[0].As<Napi::Number>().Int32Value(), data,
                                    view.ByteLength(), static_cast<off_t>(position),
                                    static_cast<size_t>(piece));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// posix_fallocate on the thread pool: claiming a new tmpfs segment zero-fills its pages (first
// touch of fresh memory, ~40 ms per 64 MiB here), which should not stall the event loop.
class ReserveWorker : public Napi::AsyncWorker {
 public:
  ReserveWorker(Napi::Env env, int fd, off_t length)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), length_(length) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    err_ = length_ > 0 ? posix_fallocate(fd_, 0, length_) : 0;
    if (err_ != 0) SetError(std::string("posix_fallocate failed: ") + std::strerror(err_));
  }

  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

  void OnError(const Napi::Error& e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("errno", Napi::Number::New(Env(), err_));
    err.Set("code", Napi::String::New(Env(), err_ == ENOSPC ? "ENOSPC" : "EFALLOCATE"));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  const int fd_;
  const off_t length_;
  int err_ = 0;
};

// reserveAsync(fd, length) -> Promise<void>
Napi::Value ReserveAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "reserveAsync(fd: number, length: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new ReserveWorker(env, info[0].As<Napi::Number>().Int32Value(),
                                   static_cast<off_t>(info[1].As<Napi::Number>().DoubleValue()));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("writeAll", Napi::Function::New(env, WriteAll));
  exports.Set("reserveAsync", Napi::Function::New(env, ReserveAsync));
}
