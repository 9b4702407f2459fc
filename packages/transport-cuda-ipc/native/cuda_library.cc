#include "cuda_library.h"

#include <dlfcn.h>

#include <map>
#include <mutex>

#include "hotweights/dl_symbols.h"

namespace hwcuda {

namespace {

std::mutex g_mutex;
bool g_tried = false;
std::string g_path;
LoadResult g_result;
Api g_api;
std::map<int, CUcontext> g_contexts;

using hwdl::Resolve;

LoadResult Load(const std::string &path) {
  LoadResult r;
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    r.reason = hwdl::OpenFailure(path, dlerror(), path + " not found (no NVIDIA driver here)");
    return r;
  }
  // The driver keeps legacy entry points beside versioned ones (`cuMemAlloc` with 32-bit sizes next
  // to `cuMemAlloc_v2`); the names below are the ones the CUDA 11/12 headers map each call to.
  Api a;
  std::string missing;
  Resolve(handle, "cuInit", &a.Init, &missing);
  Resolve(handle, "cuDriverGetVersion", &a.DriverGetVersion, &missing);
  Resolve(handle, "cuDeviceGetCount", &a.DeviceGetCount, &missing);
  Resolve(handle, "cuDeviceGet", &a.DeviceGet, &missing);
  Resolve(handle, "cuDeviceGetName", &a.DeviceGetName, &missing);
  Resolve(handle, "cuDevicePrimaryCtxRetain", &a.DevicePrimaryCtxRetain, &missing);
  Resolve(handle, "cuCtxSetCurrent", &a.CtxSetCurrent, &missing);
  Resolve(handle, "cuMemGetInfo_v2", &a.MemGetInfo, &missing);
  Resolve(handle, "cuMemAlloc_v2", &a.MemAlloc, &missing);
  Resolve(handle, "cuMemFree_v2", &a.MemFree, &missing);
  Resolve(handle, "cuMemGetAddressRange_v2", &a.MemGetAddressRange, &missing);
  Resolve(handle, "cuMemcpyHtoDAsync_v2", &a.MemcpyHtoDAsync, &missing);
  Resolve(handle, "cuMemcpyDtoHAsync_v2", &a.MemcpyDtoHAsync, &missing);
  Resolve(handle, "cuMemcpyDtoDAsync_v2", &a.MemcpyDtoDAsync, &missing);
  Resolve(handle, "cuMemHostRegister_v2", &a.MemHostRegister, &missing);
  Resolve(handle, "cuMemHostUnregister", &a.MemHostUnregister, &missing);
  Resolve(handle, "cuStreamCreate", &a.StreamCreate, &missing);
  Resolve(handle, "cuStreamDestroy_v2", &a.StreamDestroy, &missing);
  Resolve(handle, "cuStreamSynchronize", &a.StreamSynchronize, &missing);
  Resolve(handle, "cuEventCreate", &a.EventCreate, &missing);
  Resolve(handle, "cuEventDestroy_v2", &a.EventDestroy, &missing);
  Resolve(handle, "cuEventRecord", &a.EventRecord, &missing);
  Resolve(handle, "cuEventSynchronize", &a.EventSynchronize, &missing);
  Resolve(handle, "cuEventElapsedTime", &a.EventElapsedTime, &missing);
  Resolve(handle, "cuIpcGetMemHandle", &a.IpcGetMemHandle, &missing);
  // Older drivers have no cuIpcOpenMemHandle_v2.
  Resolve(handle, "cuIpcOpenMemHandle_v2", &a.IpcOpenMemHandle, &missing, "cuIpcOpenMemHandle");
  Resolve(handle, "cuIpcCloseMemHandle", &a.IpcCloseMemHandle, &missing);
  Resolve(handle, "cuGetErrorString", &a.GetErrorString, &missing);
  Resolve(handle, "cuGetErrorName", &a.GetErrorName, &missing);
  if (!a.Init) {
    r.reason = path + " is not a CUDA driver library (no cuInit)";
    return r;
  }
  if (!missing.empty()) {
    r.reason = path + " lacks CUDA driver functions (" + missing + ")";
    return r;
  }
  g_api = a;
  CUresult rc = a.Init(0);
  if (rc != kSuccess) {
    r.reason = rc == kErrorNoDevice ? "no CUDA device (cuInit: " + Describe(rc) + ")"
                                    : "cuInit failed: " + Describe(rc);
    return r;
  }
  a.DriverGetVersion(&r.driver_version);
  rc = a.DeviceGetCount(&r.devices);
  if (rc != kSuccess) {
    r.reason = "cuDeviceGetCount failed: " + Describe(rc);
    return r;
  }
  if (r.devices <= 0) {
    r.reason = "no CUDA device (the driver reports 0 devices)";
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace

LoadResult LoadCudaLibrary(const std::string &path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_tried) {
    if (path == g_path) return g_result;
    LoadResult r;
    r.reason = "this process already uses the CUDA driver " + g_path + "; cannot also open " + path;
    return r;
  }
  g_result = Load(path);
  // Only a success pins the path: a failed probe may be retried with another library.
  if (g_result.ok) {
    g_tried = true;
    g_path = path;
  }
  return g_result;
}

const Api &GetApi() { return g_api; }

std::string Describe(CUresult r) {
  const char *name = nullptr;
  const char *text = nullptr;
  if (g_api.GetErrorName) g_api.GetErrorName(r, &name);
  if (g_api.GetErrorString) g_api.GetErrorString(r, &text);
  std::string out = name ? name : "CUDA error " + std::to_string(r);
  if (text) out += std::string(" (") + text + ")";
  return out;
}

CUresult UseDevice(int ordinal) {
  CUcontext ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_contexts.find(ordinal);
    if (it != g_contexts.end()) {
      ctx = it->second;
    } else {
      CUdevice dev = 0;
      CUresult rc = g_api.DeviceGet(&dev, ordinal);
      if (rc != kSuccess) return rc;
      rc = g_api.DevicePrimaryCtxRetain(&ctx, dev);
      if (rc != kSuccess) return rc;
      g_contexts[ordinal] = ctx;
    }
  }
  return g_api.CtxSetCurrent(ctx);
}

}  // namespace hwcuda
