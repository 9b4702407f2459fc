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
#include <vector>

namespace {

// Rejects `deferred` with an Error carrying `errno` and a `code`: ENOSPC and EIO by name (what
// callers act on), anything else as `other`.
void RejectErrno(Napi::Env env, Napi::Promise::Deferred& deferred, const std::string& message, int err,
                 const char* other) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, err == ENOSPC ? "ENOSPC" : err == EIO ? "EIO" : other));
  deferred.Reject(e.Value());
}

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
    RejectErrno(Env(), deferred_, e.Message(), err_, "EWRITE");
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
    RejectErrno(Env(), deferred_, e.Message(), err_, "EFALLOCATE");
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

// A byte range of one file into another, in the kernel (copy_file_range: no copy through user
// memory, a reflink-like share where the filesystem can), on the thread pool. Where the kernel
// refuses the pair (EXDEV across filesystem types, ENOSYS, EINVAL, EOPNOTSUPP) the rest goes
// through pread/pwrite in 256 KiB pieces, still in this one task.
class CopyRangeWorker : public Napi::AsyncWorker {
 public:
  CopyRangeWorker(Napi::Env env, int in, off_t inAt, int out, off_t outAt, size_t length)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        in_(in),
        inAt_(inAt),
        out_(out),
        outAt_(outAt),
        length_(length) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    size_t done = 0;
    bool kernel = true;
    while (done < length_ && kernel) {
      loff_t a = inAt_ + static_cast<off_t>(done);
      loff_t b = outAt_ + static_cast<off_t>(done);
      const size_t want = length_ - done < kChunk ? length_ - done : kChunk;
      const ssize_t n = copy_file_range(in_, &a, out_, &b, want, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) {
          kernel = false;
          break;
        }
        Fail(errno, "copy_file_range");
        return;
      }
      if (n == 0) {
        Fail(0, "copy_file_range");
        return;
      }
      done += static_cast<size_t>(n);
    }
    if (done == length_) return;
    std::vector<uint8_t> buf(kPiece);
    while (done < length_) {
      const size_t want = length_ - done < kPiece ? length_ - done : kPiece;
      const ssize_t r = pread(in_, buf.data(), want, inAt_ + static_cast<off_t>(done));
      if (r < 0) {
        if (errno == EINTR) continue;
        Fail(errno, "pread");
        return;
      }
      if (r == 0) {
        Fail(0, "pread");
        return;
      }
      size_t put = 0;
      while (put < static_cast<size_t>(r)) {
        const ssize_t w = pwrite(out_, buf.data() + put, static_cast<size_t>(r) - put,
                                 outAt_ + static_cast<off_t>(done + put));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          Fail(w < 0 ? errno : EIO, "pwrite");
          return;
        }
        put += static_cast<size_t>(w);
      }
      done += put;
    }
  }

  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

  void OnError(const Napi::Error& e) override {
    // err_ 0: the source ended before the range did.
    RejectErrno(Env(), deferred_, e.Message(), err_, err_ == 0 ? "ESHORT" : "ECOPY");
  }

 private:
  static constexpr size_t kChunk = 16u << 20;
  static constexpr size_t kPiece = 256u << 10;

  void Fail(int err, const char* what) {
    err_ = err;
    SetError(std::string(what) + (err ? std::string(" failed: ") + std::strerror(err) : std::string(": the source file ends before the range")));
  }

  Napi::Promise::Deferred deferred_;
  const int in_;
  const off_t inAt_;
  const int out_;
  const off_t outAt_;
  const size_t length_;
  int err_ = 0;
};

// copyRange(inFd, inOffset, outFd, outOffset, length) -> Promise<void>
Napi::Value CopyRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (size_t i = 0; i < 5; i++) {
    if (info.Length() < 5 || !info[i].IsNumber() || info[i].As<Napi::Number>().DoubleValue() < 0) {
      Napi::TypeError::New(env, "copyRange(inFd, inOffset, outFd, outOffset, length): non-negative numbers")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  auto num = [&](size_t i) { return info[i].As<Napi::Number>().DoubleValue(); };
  auto* worker = new CopyRangeWorker(env, static_cast<int>(num(0)), static_cast<off_t>(num(1)),
                                     static_cast<int>(num(2)), static_cast<off_t>(num(3)),
                                     static_cast<size_t>(num(4)));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("writeAll", Napi::Function::New(env, WriteAll));
  exports.Set("reserveAsync", Napi::Function::New(env, ReserveAsync));
  exports.Set("copyRange", Napi::Function::New(env, CopyRange));
}
