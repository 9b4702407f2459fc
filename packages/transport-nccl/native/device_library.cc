#include "device_library.h"

#include <dlfcn.h>

#include <mutex>
#include <sstream>

#include "hotweights/dl_symbols.h"

namespace hwnccl {

namespace {

std::mutex g_mutex;
bool g_tried = false;
std::string g_key;
Libraries g_result;
NcclApi g_nccl;
CudaApi g_cuda;

using hwdl::Resolve;

// Call right after the failed dlopen: it reads dlerror().
std::string OpenFailure(const std::string &path) {
  return hwdl::OpenFailure(path, dlerror(), "no " + path + " (not found by the dynamic loader)");
}

std::string Version(int code, bool nccl) {
  std::ostringstream s;
  if (nccl) {
    // NCCL_VERSION(X,Y,Z): X*10000+Y*100+Z since 2.9, X*1000+Y*100+Z before.
    if (code >= 10000) s << code / 10000 << '.' << (code % 10000) / 100 << '.' << code % 100;
    else s << code / 1000 << '.' << (code % 1000) / 100 << '.' << code % 100;
  } else {
    s << code / 1000 << '.' << (code % 1000) / 10;
  }
  return s.str();
}

// Every reason that applies, NCCL's first, so one look at `hotweights transports` tells what
// is missing on this machine (the library, the runtime, the device).
Libraries Load(const std::string &nccl_path, const std::string &cudart_paths) {
  Libraries r;
  std::string nccl_reason, cuda_reason;
  void *cudart = nullptr;
  for (size_t start = 0; start <= cudart_paths.size();) {
    size_t end = cudart_paths.find(':', start);
    if (end == std::string::npos) end = cudart_paths.size();
    std::string one = cudart_paths.substr(start, end - start);
    start = end + 1;
    if (one.empty()) continue;
    cudart = dlopen(one.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (cudart) {
      r.cudart_path = one;
      break;
    }
    std::string why = OpenFailure(one);
    cuda_reason = cuda_reason.empty() ? why : cuda_reason + ", " + why;
  }
  CudaApi c;
  std::string missing;
  if (!cudart) {
    cuda_reason = (cuda_reason.empty() ? "no CUDA runtime library named" : cuda_reason) +
                  " (the CUDA runtime; set HOTWEIGHTS_CUDART_LIBRARY)";
  } else {
    Resolve(cudart, "cudaRuntimeGetVersion", &c.RuntimeGetVersion, &missing);
    Resolve(cudart, "cudaGetDeviceCount", &c.GetDeviceCount, &missing);
    Resolve(cudart, "cudaSetDevice", &c.SetDevice, &missing);
    Resolve(cudart, "cudaMalloc", &c.Malloc, &missing);
    Resolve(cudart, "cudaFree", &c.Free, &missing);
    Resolve(cudart, "cudaMemcpyAsync", &c.MemcpyAsync, &missing);
    Resolve(cudart, "cudaStreamCreateWithFlags", &c.StreamCreateWithFlags, &missing);
    Resolve(cudart, "cudaStreamQuery", &c.StreamQuery, &missing);
    Resolve(cudart, "cudaStreamSynchronize", &c.StreamSynchronize, &missing);
    Resolve(cudart, "cudaStreamWaitEvent", &c.StreamWaitEvent, &missing);
    Resolve(cudart, "cudaStreamDestroy", &c.StreamDestroy, &missing);
    Resolve(cudart, "cudaEventCreateWithFlags", &c.EventCreateWithFlags, &missing);
    Resolve(cudart, "cudaEventRecord", &c.EventRecord, &missing);
    Resolve(cudart, "cudaEventDestroy", &c.EventDestroy, &missing);
    Resolve(cudart, "cudaGetErrorString", &c.GetErrorString, &missing);
    if (!missing.empty()) {
      cuda_reason = r.cudart_path + " is not a usable CUDA runtime (missing " + missing + ")";
    } else {
      g_cuda = c;  // for CudaErrorText
      c.RuntimeGetVersion(&r.cuda_runtime_version);
      cudaError_t rc = c.GetDeviceCount(&r.devices);
      if (rc != kCudaSuccess || r.devices <= 0) {
        r.devices = 0;
        cuda_reason = "no CUDA device (" + CudaErrorText("cudaGetDeviceCount", rc) + ", runtime " + r.cudart_path + ")";
      }
    }
  }

  // RTLD_GLOBAL: NCCL loads its network plugins, which look for its symbols.
  void *nccl = dlopen(nccl_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  NcclApi n;
  if (!nccl) {
    nccl_reason = OpenFailure(nccl_path) + " (NCCL; set HOTWEIGHTS_NCCL_LIBRARY)";
  } else {
    missing.clear();
    Resolve(nccl, "ncclGetVersion", &n.GetVersion, &missing);
    Resolve(nccl, "ncclGetUniqueId", &n.GetUniqueId, &missing);
    Resolve(nccl, "ncclCommInitRank", &n.CommInitRank, &missing);
    Resolve(nccl, "ncclBroadcast", &n.Broadcast, &missing);
    Resolve(nccl, "ncclCommGetAsyncError", &n.CommGetAsyncError, &missing);
    Resolve(nccl, "ncclCommAbort", &n.CommAbort, &missing);
    Resolve(nccl, "ncclCommDestroy", &n.CommDestroy, &missing);
    Resolve(nccl, "ncclGetErrorString", &n.GetErrorString, &missing);
    // Optional (newer NCCL only): left null when missing.
    Resolve(nccl, "ncclCommSplit", &n.CommSplit);
    Resolve(nccl, "ncclGetLastError", &n.GetLastError);
    if (!missing.empty()) {
      nccl_reason = nccl_path + " is not a usable NCCL (missing " + missing + ")";
    } else {
      n.GetVersion(&r.nccl_version);
      r.split = n.CommSplit != nullptr && r.nccl_version >= kNcclSplitMinVersion;
      g_nccl = n;
    }
  }
  r.reason = nccl_reason;
  if (!cuda_reason.empty()) r.reason += (r.reason.empty() ? "" : "; ") + cuda_reason;
  r.ok = r.reason.empty();
  return r;
}

}  // namespace

std::string CudaErrorText(const char *call, cudaError_t rc) {
  const char *text = g_cuda.GetErrorString ? g_cuda.GetErrorString(rc) : nullptr;
  return std::string(call) + ": " + (text ? text : "CUDA error") + " (cudaError " + std::to_string(rc) + ")";
}

std::string NcclErrorText(const char *call, ncclResult_t rc, const char *detail) {
  const char *text = g_nccl.GetErrorString ? g_nccl.GetErrorString(rc) : nullptr;
  std::string out = std::string(call) + ": " + (text ? text : "NCCL error") + " (ncclResult " + std::to_string(rc) + ")";
  if (detail && *detail) out += ": " + std::string(detail);
  return out;
}

std::string VersionText(int code, bool nccl) { return Version(code, nccl); }

Libraries LoadLibraries(const std::string &nccl, const std::string &cudart) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::string key = nccl + "|" + cudart;
  if (g_tried && key == g_key) return g_result;
  if (g_tried && g_result.ok) {
    Libraries r;
    r.reason = "this process already uses " + g_key + "; cannot also open " + key;
    return r;
  }
  g_tried = true;
  g_key = key;
  g_result = Load(nccl, cudart);
  return g_result;
}

const NcclApi &Nccl() { return g_nccl; }
const CudaApi &Cuda() { return g_cuda; }


}  // namespace hwnccl
