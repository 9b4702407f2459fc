/*
 * A TEST DOUBLE of the CUDA runtime API (libcudart), for machines without a GPU: "device" memory
 * is host memory, streams and events complete at once. It implements only what
 * @hotweights/transport-nccl calls. Built by the tests with gcc; never shipped.
 *
 * Fault injection (its own variables, read at each call):
 *   STANDIN_CUDA_DEVICES       number of devices (default 1; 0 = no device)
 *   STANDIN_CUDA_MEMORY_BYTES  capacity of each device; cudaMalloc beyond it fails with
 *                              cudaErrorMemoryAllocation (default: unlimited)
 *   STANDIN_FAULT_RANK         apply the memory limit only in the process whose RANK (the
 *                              launcher's variable) equals this
 */
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

typedef int cudaError_t;
enum {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
};
enum { kH2H = 0, kH2D = 1, kD2H = 2, kD2D = 3, kDefault = 4 };

struct standin_stream { int unused; };
struct standin_event { int unused; };
typedef struct standin_stream *cudaStream_t;
typedef struct standin_event *cudaEvent_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t g_allocated = 0;
static __thread int t_device = 0;

static int device_count(void) {
  const char *v = getenv("STANDIN_CUDA_DEVICES");
  return v ? atoi(v) : 1;
}

static size_t capacity(void) {
  const char *only = getenv("STANDIN_FAULT_RANK");
  const char *rank = getenv("RANK");
  if (only && (!rank || strcmp(only, rank) != 0)) return (size_t)-1;
  const char *v = getenv("STANDIN_CUDA_MEMORY_BYTES");
  return v ? (size_t)strtoull(v, NULL, 10) : (size_t)-1;
}

cudaError_t cudaRuntimeGetVersion(int *v) { *v = 12040; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { *v = 12040; return cudaSuccess; }

cudaError_t cudaGetDeviceCount(int *count) {
  *count = device_count();
  return *count > 0 ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaSetDevice(int device) {
  int n = device_count();
  if (n == 0) return cudaErrorNoDevice;
  if (device < 0 || device >= n) return cudaErrorInvalidDevice;
  t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) { *device = t_device; return cudaSuccess; }

/* Each block carries its size in front, so cudaFree can give the capacity back. */
cudaError_t cudaMalloc(void **ptr, size_t size) {
  if (device_count() == 0) return cudaErrorNoDevice;
  pthread_mutex_lock(&g_lock);
  if (size > capacity() || g_allocated > capacity() - size) {
    pthread_mutex_unlock(&g_lock);
    return cudaErrorMemoryAllocation;
  }
  size_t *block = malloc(size + 16);
  if (!block) {
    pthread_mutex_unlock(&g_lock);
    return cudaErrorMemoryAllocation;
  }
  g_allocated += size;
  pthread_mutex_unlock(&g_lock);
  block[0] = size;
  *ptr = (char *)block + 16;
  return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
  if (!ptr) return cudaSuccess;
  size_t *block = (size_t *)((char *)ptr - 16);
  pthread_mutex_lock(&g_lock);
  g_allocated -= block[0];
  pthread_mutex_unlock(&g_lock);
  free(block);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, int kind) {
  if (kind < kH2H || kind > kDefault || (count && (!dst || !src))) return cudaErrorInvalidValue;
  memcpy(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, int kind, cudaStream_t s) {
  (void)s;
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
  (void)flags;
  *s = calloc(1, sizeof(struct standin_stream));
  return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) { (void)s; return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t s) { (void)s; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t s) { free(s); return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned f) {
  (void)s; (void)e; (void)f;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
  (void)flags;
  *e = calloc(1, sizeof(struct standin_event));
  return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) { (void)e; (void)s; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { free(e); return cudaSuccess; }

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    default: return "unknown error";
  }
}
