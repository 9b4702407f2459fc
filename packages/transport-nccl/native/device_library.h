// Opens libnccl and the CUDA runtime with dlopen and resolves what device_api.h declares. Never
// aborts: every failure becomes a reason string that the probe shows to the user.
#pragma once

#include <string>

#include "device_api.h"

namespace hwnccl {

struct Libraries {
  bool ok = false;
  std::string reason;  // why the transport cannot run here (when !ok)
  int nccl_version = 0;
  int cuda_runtime_version = 0;
  int devices = 0;
  bool split = false;  // ncclCommSplit is there and NCCL is new enough to have it
  std::string cudart_path;  // the alternative that opened
};

// `cudart` may list alternatives separated by ':' (the first that opens wins). Results are cached
// per (nccl, cudart) pair; a process uses one pair (another after a successful load is refused).
Libraries LoadLibraries(const std::string &nccl, const std::string &cudart);

// "2.19.3" for NCCL codes, "12.4" for CUDA runtime codes.
std::string VersionText(int code, bool nccl);

const NcclApi &Nccl();
const CudaApi &Cuda();

// "cudaMalloc: out of memory (error 2)" and "ncclBroadcast: remote process exited ... (detail)".
std::string CudaErrorText(const char *call, cudaError_t rc);
std::string NcclErrorText(const char *call, ncclResult_t rc, const char *detail);

}  // namespace hwnccl
