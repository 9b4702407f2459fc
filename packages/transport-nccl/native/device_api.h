// The subset of the NCCL and CUDA runtime C APIs this addon calls, declared here so the addon
// builds without CUDA or NCCL headers and libraries; both are opened with dlopen at run time.
// Values and signatures follow nccl.h (NCCL >= 2.12) and cuda_runtime_api.h (CUDA >= 11).
#pragma once

#include <cstddef>

namespace hwnccl {

using ncclResult_t = int;
constexpr ncclResult_t kNcclSuccess = 0;
constexpr ncclResult_t kNcclInProgress = 7;
constexpr int kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
constexpr int kNcclUint8 = 1;            // ncclUint8 in ncclDataType_t
constexpr int kNcclSplitNoColor = -1;    // NCCL_SPLIT_NOCOLOR
constexpr int kNcclSplitMinVersion = 21800;  // ncclCommSplit appeared in NCCL 2.18

struct ncclUniqueId {
  char internal[kNcclUniqueIdBytes];
};
using ncclComm_t = struct ncclComm *;

using cudaError_t = int;
constexpr cudaError_t kCudaSuccess = 0;
constexpr cudaError_t kCudaErrorNotReady = 600;
constexpr int kCudaMemcpyHostToDevice = 1;
constexpr int kCudaMemcpyDeviceToHost = 2;
constexpr unsigned kCudaStreamNonBlocking = 0x01;
constexpr unsigned kCudaEventDisableTiming = 0x02;
using cudaStream_t = struct CUstream_st *;
using cudaEvent_t = struct CUevent_st *;

struct NcclApi {
  ncclResult_t (*GetVersion)(int *) = nullptr;
  ncclResult_t (*GetUniqueId)(ncclUniqueId *) = nullptr;
  ncclResult_t (*CommInitRank)(ncclComm_t *, int, ncclUniqueId, int) = nullptr;
  // Optional (NCCL >= 2.18); the config argument is passed as nullptr (inherit the parent's).
  ncclResult_t (*CommSplit)(ncclComm_t, int, int, ncclComm_t *, void *) = nullptr;
  ncclResult_t (*Broadcast)(const void *, void *, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t *) = nullptr;
  ncclResult_t (*CommAbort)(ncclComm_t) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  const char *(*GetErrorString)(ncclResult_t) = nullptr;
  // Optional (NCCL >= 2.13): the detail behind the last error.
  const char *(*GetLastError)(ncclComm_t) = nullptr;
};

struct CudaApi {
  cudaError_t (*RuntimeGetVersion)(int *) = nullptr;
  cudaError_t (*GetDeviceCount)(int *) = nullptr;
  cudaError_t (*SetDevice)(int) = nullptr;
  cudaError_t (*Malloc)(void **, size_t) = nullptr;
  cudaError_t (*Free)(void *) = nullptr;
  cudaError_t (*MemcpyAsync)(void *, const void *, size_t, int, cudaStream_t) = nullptr;
  cudaError_t (*StreamCreateWithFlags)(cudaStream_t *, unsigned) = nullptr;
  cudaError_t (*StreamQuery)(cudaStream_t) = nullptr;
  cudaError_t (*StreamSynchronize)(cudaStream_t) = nullptr;
  cudaError_t (*StreamWaitEvent)(cudaStream_t, cudaEvent_t, unsigned) = nullptr;
  cudaError_t (*StreamDestroy)(cudaStream_t) = nullptr;
  cudaError_t (*EventCreateWithFlags)(cudaEvent_t *, unsigned) = nullptr;
  cudaError_t (*EventRecord)(cudaEvent_t, cudaStream_t) = nullptr;
  cudaError_t (*EventDestroy)(cudaEvent_t) = nullptr;
  const char *(*GetErrorString)(cudaError_t) = nullptr;
};

}  // namespace hwnccl
