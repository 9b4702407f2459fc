// N-API surface of the CUDA-IPC transport. JS owns policy (pools, windows, the rendezvous, what a
// failure means); this file owns the driver calls: load and probe, allocate, export and open IPC
// handles, and chunked copies spread over streams, run off the event loop and timed with events.
#include <napi.h>

#include <string>
#include <vector>

#include "cuda_library.h"

namespace hwcuda {
namespace {

bool g_loaded = false;

void RequireLoaded(Napi::Env env) {
  if (!g_loaded) throw Napi::Error::New(env, "the CUDA driver is not loaded (call load first)");
}

[[noreturn]] void ThrowCuda(Napi::Env env, const char *what, CUresult rc) {
  Napi::Error err = Napi::Error::New(env, std::string(what) + ": " + Describe(rc));
  err.Set("cudaCode", Napi::Number::New(env, rc));
  throw err;
}

void Check(Napi::Env env, const char *what, CUresult rc) {
  if (rc != kSuccess) ThrowCuda(env, what, rc);
}

int IntArg(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("expected ") + what);
  return info[i].As<Napi::Number>().Int32Value();
}

double SizeArg(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("expected ") + what);
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0) throw Napi::RangeError::New(info.Env(), std::string(what) + " must not be negative");
  return v;
}

CUdeviceptr PtrArg(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() <= i || !info[i].IsBigInt()) throw Napi::TypeError::New(info.Env(), "expected a device pointer (bigint)");
  bool lossless = false;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  return static_cast<CUdeviceptr>(v);
}

Napi::Value Ptr(Napi::Env env, CUdeviceptr p) { return Napi::BigInt::New(env, static_cast<uint64_t>(p)); }

// load(path) -> { ok, reason?, driverVersion?, devices? }
Napi::Value Load(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(info.Env(), "expected the CUDA driver library path as a string");
  LoadResult r = LoadCudaLibrary(info[0].As<Napi::String>().Utf8Value());
  if (r.ok) g_loaded = true;
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("ok", r.ok);
  if (!r.ok) out.Set("reason", r.reason);
  out.Set("driverVersion", r.driver_version);
  out.Set("devices", r.devices);
  return out;
}

// device(ordinal) -> { name, free, total }; makes the device current on this thread.
Napi::Value Device(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  int ordinal = IntArg(info, 0, "a device ordinal");
  const Api &a = GetApi();
  Check(env, "cuCtxSetCurrent", UseDevice(ordinal));
  char name[256] = {0};
  Check(env, "cuDeviceGetName", a.DeviceGetName(name, sizeof name - 1, ordinal));
  size_t free_bytes = 0, total = 0;
  Check(env, "cuMemGetInfo", a.MemGetInfo(&free_bytes, &total));
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", name);
  out.Set("free", static_cast<double>(free_bytes));
  out.Set("total", static_cast<double>(total));
  return out;
}

Napi::Value Alloc(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  int ordinal = IntArg(info, 0, "a device ordinal");
  size_t size = static_cast<size_t>(SizeArg(info, 1, "a size in bytes"));
  Check(env, "cuCtxSetCurrent", UseDevice(ordinal));
  CUdeviceptr p = 0;
  Check(env, "cuMemAlloc", GetApi().MemAlloc(&p, size));
  return Ptr(env, p);
}

Napi::Value Free(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Check(env, "cuCtxSetCurrent", UseDevice(IntArg(info, 0, "a device ordinal")));
  Check(env, "cuMemFree", GetApi().MemFree(PtrArg(info, 1)));
  return env.Undefined();
}

// ipcExport(ordinal, ptr) -> { handle: Buffer(64), offset } (the handle names the allocation
// holding ptr; offset is where ptr sits in it).
Napi::Value IpcExport(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Check(env, "cuCtxSetCurrent", UseDevice(IntArg(info, 0, "a device ordinal")));
  CUdeviceptr p = PtrArg(info, 1);
  CUdeviceptr base = 0;
  size_t size = 0;
  Check(env, "cuMemGetAddressRange", GetApi().MemGetAddressRange(&base, &size, p));
  CUipcMemHandle h{};
  Check(env, "cuIpcGetMemHandle", GetApi().IpcGetMemHandle(&h, base));
  Napi::Object out = Napi::Object::New(env);
  out.Set("handle", Napi::Buffer<char>::Copy(env, h.reserved, kIpcHandleSize));
  out.Set("offset", static_cast<double>(p - base));
  return out;
}

Napi::Value IpcOpen(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Check(env, "cuCtxSetCurrent", UseDevice(IntArg(info, 0, "a device ordinal")));
  if (info.Length() < 2 || !info[1].IsBuffer()) throw Napi::TypeError::New(env, "expected an IPC handle (Buffer)");
  auto buf = info[1].As<Napi::Buffer<char>>();
  if (buf.Length() != kIpcHandleSize) throw Napi::RangeError::New(env, "an IPC handle is 64 bytes");
  CUipcMemHandle h{};
  std::copy(buf.Data(), buf.Data() + kIpcHandleSize, h.reserved);
  CUdeviceptr p = 0;
  Check(env, "cuIpcOpenMemHandle", GetApi().IpcOpenMemHandle(&p, h, kIpcMemLazyEnablePeerAccess));
  return Ptr(env, p);
}

Napi::Value IpcClose(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Check(env, "cuCtxSetCurrent", UseDevice(IntArg(info, 0, "a device ordinal")));
  Check(env, "cuIpcCloseMemHandle", GetApi().IpcCloseMemHandle(PtrArg(info, 1)));
  return env.Undefined();
}

uint8_t *BytesOf(Napi::Env env, Napi::Value v, size_t *len) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "expected host memory (a Uint8Array)");
  auto a = v.As<Napi::Uint8Array>();
  *len = a.ByteLength();
  return a.Data();
}

// hostRegister(bytes) / hostUnregister(bytes): page-lock host memory (--pinned).
Napi::Value HostRegister(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Check(env, "cuCtxSetCurrent", UseDevice(IntArg(info, 0, "a device ordinal")));
  size_t len = 0;
  uint8_t *p = BytesOf(env, info[1], &len);
  if (len > 0) Check(env, "cuMemHostRegister", GetApi().MemHostRegister(p, len, kHostRegisterPortable));
  return env.Undefined();
}

Napi::Value HostUnregister(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Check(env, "cuCtxSetCurrent", UseDevice(IntArg(info, 0, "a device ordinal")));
  size_t len = 0;
  uint8_t *p = BytesOf(env, info[1], &len);
  if (len > 0) Check(env, "cuMemHostUnregister", GetApi().MemHostUnregister(p));
  return env.Undefined();
}

enum class Direction { kHtoD, kDtoH, kDtoD };

// One chunked copy on the libuv pool: chunks go round-robin onto `streams` streams, an event
// pair times the whole copy on the device, and the promise settles once every stream is done.
class CopyWorker : public Napi::AsyncWorker {
 public:
  CopyWorker(Napi::Env env, Direction dir, int ordinal, CUdeviceptr dptr, uint8_t *host, CUdeviceptr src,
             size_t bytes, size_t chunk, int streams)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        dir_(dir),
        ordinal_(ordinal),
        dptr_(dptr),
        host_(host),
        src_(src),
        bytes_(bytes),
        chunk_(chunk == 0 ? bytes : chunk),
        streams_(streams < 1 ? 1 : streams) {}

  Napi::Promise Promise() { return deferred_.Promise(); }
  void Keep(Napi::Value v) { keep_.push_back(Napi::Persistent(v.As<Napi::Object>())); }

  void Execute() override {
    const Api &a = GetApi();
    CUresult rc = UseDevice(ordinal_);
    if (rc != kSuccess) return Fail("cuCtxSetCurrent", rc);
    std::vector<CUstream> streams(streams_, nullptr);
    CUevent start = nullptr, stop = nullptr;
    const char *what = "cuStreamCreate";
    for (auto &s : streams)
      if ((rc = a.StreamCreate(&s, kStreamNonBlocking)) != kSuccess) break;
    if (rc == kSuccess) {
      what = "cuEventCreate";
      rc = a.EventCreate(&start, kEventDefault);
      if (rc == kSuccess) rc = a.EventCreate(&stop, kEventDefault);
    }
    if (rc == kSuccess) {
      what = "cuEventRecord";
      rc = a.EventRecord(start, streams[0]);
    }
    for (size_t done = 0, i = 0; rc == kSuccess && done < bytes_; done += chunk_, i++) {
      size_t n = bytes_ - done < chunk_ ? bytes_ - done : chunk_;
      CUstream s = streams[i % streams.size()];
      switch (dir_) {
        case Direction::kHtoD:
          what = "cuMemcpyHtoDAsync";
          rc = a.MemcpyHtoDAsync(dptr_ + done, host_ + done, n, s);
          break;
        case Direction::kDtoH:
          what = "cuMemcpyDtoHAsync";
          rc = a.MemcpyDtoHAsync(host_ + done, src_ + done, n, s);
          break;
        case Direction::kDtoD:
          what = "cuMemcpyDtoDAsync";
          rc = a.MemcpyDtoDAsync(dptr_ + done, src_ + done, n, s);
          break;
      }
    }
    // Every stream is drained even after a failure, so no copy still touches the buffers.
    for (auto s : streams)
      if (s) {
        CUresult sync = a.StreamSynchronize(s);
        if (rc == kSuccess && sync != kSuccess) {
          what = "cuStreamSynchronize";
          rc = sync;
        }
      }
    if (rc == kSuccess) {
      // The stop event follows every stream's work (all synchronised above).
      what = "cuEventRecord";
      rc = a.EventRecord(stop, streams[0]);
      if (rc == kSuccess) rc = a.EventSynchronize(stop);
      if (rc == kSuccess) a.EventElapsedTime(&ms_, start, stop);
    }
    if (start) a.EventDestroy(start);
    if (stop) a.EventDestroy(stop);
    for (auto s : streams)
      if (s) a.StreamDestroy(s);
    if (rc != kSuccess) Fail(what, rc);
  }

  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), ms_)); }

  void OnError(const Napi::Error &e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("cudaCode", Napi::Number::New(Env(), code_));
    deferred_.Reject(err.Value());
  }

 private:
  void Fail(const char *what, CUresult rc) {
    code_ = rc;
    SetError(std::string(what) + ": " + Describe(rc));
  }

  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> keep_;
  Direction dir_;
  int ordinal_;
  CUdeviceptr dptr_;
  uint8_t *host_;
  CUdeviceptr src_;
  size_t bytes_, chunk_;
  int streams_;
  float ms_ = 0;
  CUresult code_ = 0;
};

// copyToDevice(ordinal, dst, host, chunk, streams), copyToHost(ordinal, host, src, chunk, streams),
// copyDevice(ordinal, dst, src, bytes, chunk, streams): each resolves with the device-timed ms.
Napi::Value CopyToDevice(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  size_t len = 0;
  uint8_t *host = BytesOf(env, info[2], &len);
  auto *w = new CopyWorker(env, Direction::kHtoD, IntArg(info, 0, "a device ordinal"), PtrArg(info, 1), host, 0,
                           len, static_cast<size_t>(SizeArg(info, 3, "a chunk size")), IntArg(info, 4, "a stream count"));
  w->Keep(info[2]);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value CopyToHost(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  size_t len = 0;
  uint8_t *host = BytesOf(env, info[1], &len);
  auto *w = new CopyWorker(env, Direction::kDtoH, IntArg(info, 0, "a device ordinal"), 0, host, PtrArg(info, 2), len,
                           static_cast<size_t>(SizeArg(info, 3, "a chunk size")), IntArg(info, 4, "a stream count"));
  w->Keep(info[1]);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value CopyDevice(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  auto *w = new CopyWorker(env, Direction::kDtoD, IntArg(info, 0, "a device ordinal"), PtrArg(info, 1), nullptr,
                           PtrArg(info, 2), static_cast<size_t>(SizeArg(info, 3, "a byte count")),
                           static_cast<size_t>(SizeArg(info, 4, "a chunk size")), IntArg(info, 5, "a stream count"));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("device", Napi::Function::New(env, Device));
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("ipcExport", Napi::Function::New(env, IpcExport));
  exports.Set("ipcOpen", Napi::Function::New(env, IpcOpen));
  exports.Set("ipcClose", Napi::Function::New(env, IpcClose));
  exports.Set("hostRegister", Napi::Function::New(env, HostRegister));
  exports.Set("hostUnregister", Napi::Function::New(env, HostUnregister));
  exports.Set("copyToDevice", Napi::Function::New(env, CopyToDevice));
  exports.Set("copyToHost", Napi::Function::New(env, CopyToHost));
  exports.Set("copyDevice", Napi::Function::New(env, CopyDevice));
  return exports;
}

}  // namespace
}  // namespace hwcuda

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hwcuda::Init(env, exports); }

NODE_API_MODULE(hotweights_cuda_ipc, InitAddon)
