// Opens the CUDA driver library with dlopen, resolves the Api and initialises the driver. Never
// aborts: every failure becomes a reason string the probe shows to the user.
#pragma once

#include <string>

#include "cuda_abi.h"

namespace hwcuda {

struct LoadResult {
  bool ok = false;
  std::string reason;  // why the driver is unusable (when !ok)
  int driver_version = 0;
  int devices = 0;
};

// Opens `path` once (later calls return the cached result; another path after a successful load
// is refused: one process talks to one driver).
LoadResult LoadCudaLibrary(const std::string &path);

// The resolved functions; valid only after LoadCudaLibrary returned ok.
const Api &GetApi();

// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for a result code.
std::string Describe(CUresult r);

// Retains the device's primary context (once) and makes it current on the calling thread.
// Returns kSuccess or the failing result.
CUresult UseDevice(int ordinal);

}  // namespace hwcuda
