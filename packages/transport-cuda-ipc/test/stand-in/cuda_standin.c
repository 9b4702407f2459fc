/*
 * A TEST DOUBLE of the CUDA driver API (not CUDA): the subset @hotweights/transport-cuda-ipc
 * calls, implemented over host memory so the device path runs end to end on machines without a
 * GPU. "Device memory" is a mapped shared-memory segment (/dev/shm/hwcuda-standin.<pid>.<n>), so
 * a device pointer is a host address and an IPC handle names the segment another process maps.
 * Copies are plain memcpy (streams and events complete at once). Nothing here says anything about
 * how a real GPU behaves; scripts/gpu-check.sh is what runs the package over the real libcuda.
 *
 * Fault injection (read at each call):
 *   CUDA_STANDIN_DEVICES=N      number of devices (default 1; 0: cuInit says no device)
 *   CUDA_STANDIN_MEM_MB=N       device memory per process (default 4096); beyond it,
 *                                          cuMemAlloc returns CUDA_ERROR_OUT_OF_MEMORY
 *   CUDA_STANDIN_FAIL_IPC_OPEN=1  cuIpcOpenMemHandle returns CUDA_ERROR_INVALID_HANDLE
 *   CUDA_STANDIN_EXIT_ON_IPC_OPEN=1  the process exits (status 9) inside
 *                                          cuIpcOpenMemHandle: a peer dying mid-bucket
 *   CUDA_STANDIN_CORRUPT_DTOD=1            every device-to-device copy flips its first byte:
 *                                          bytes that land wrong on the device
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct standin_ctx *CUcontext;
typedef struct standin_stream *CUstream;
typedef struct standin_event *CUevent;
typedef struct { char reserved[64]; } CUipcMemHandle;

enum {
  OK = 0,
  ERR_INVALID_VALUE = 1,
  ERR_OUT_OF_MEMORY = 2,
  ERR_NOT_INITIALIZED = 3,
  ERR_NO_DEVICE = 100,
  ERR_INVALID_DEVICE = 101,
  ERR_INVALID_CONTEXT = 201,
  ERR_MAP_FAILED = 205,
  ERR_INVALID_HANDLE = 400,
};

#define PREFIX "hwcuda-standin."
#define MAGIC "HWCUDA-STANDIN1"

struct standin_ctx { int device; };
struct standin_stream { int unused; };
struct standin_event { struct timespec at; };

struct mapping {
  uintptr_t base;
  size_t size;
  int owned;              /* allocated here (1) or opened through IPC (0) */
  char name[48];
  struct mapping *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mapping *g_maps;
static size_t g_used;
static unsigned g_counter;
static int g_initialized;
static struct standin_ctx g_ctx[64];
static __thread CUcontext t_current;

static long env_long(const char *name, long fallback) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : fallback;
}

static int device_count(void) { return (int)env_long("CUDA_STANDIN_DEVICES", 1); }

/* Segments of processes that died (a crashed test) would stay in /dev/shm: remove them. */
static void reclaim_stale(void) {
  DIR *d = opendir("/dev/shm");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, PREFIX, strlen(PREFIX)) != 0) continue;
    long pid = strtol(e->d_name + strlen(PREFIX), NULL, 10);
    if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
      char path[300];
      snprintf(path, sizeof path, "/%s", e->d_name);
      shm_unlink(path);
    }
  }
  closedir(d);
}

CUresult cuInit(unsigned flags) {
  (void)flags;
  if (device_count() <= 0) return ERR_NO_DEVICE;
  pthread_mutex_lock(&g_lock);
  if (!g_initialized) reclaim_stale();
  g_initialized = 1;
  pthread_mutex_unlock(&g_lock);
  return OK;
}

CUresult cuDriverGetVersion(int *v) {
  if (!v) return ERR_INVALID_VALUE;
  *v = 12000;
  return OK;
}

CUresult cuDeviceGetCount(int *n) {
  if (!g_initialized) return ERR_NOT_INITIALIZED;
  if (!n) return ERR_INVALID_VALUE;
  *n = device_count();
  return OK;
}

CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
  if (!g_initialized) return ERR_NOT_INITIALIZED;
  if (!dev || ordinal < 0 || ordinal >= device_count() || ordinal >= 64) return ERR_INVALID_DEVICE;
  *dev = ordinal;
  return OK;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  if (!name || len <= 0) return ERR_INVALID_VALUE;
  snprintf(name, (size_t)len, "hotweights CUDA stand-in %d (host memory, not a GPU)", dev);
  return OK;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  (void)dev;
  if (!bytes) return ERR_INVALID_VALUE;
  *bytes = (size_t)env_long("CUDA_STANDIN_MEM_MB", 4096) << 20;
  return OK;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev) {
  if (!g_initialized) return ERR_NOT_INITIALIZED;
  if (!ctx || dev < 0 || dev >= device_count() || dev >= 64) return ERR_INVALID_DEVICE;
  g_ctx[dev].device = dev;
  *ctx = &g_ctx[dev];
  return OK;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  return dev >= 0 && dev < device_count() ? OK : ERR_INVALID_DEVICE;
}

CUresult cuCtxSetCurrent(CUcontext ctx) {
  t_current = ctx;
  return OK;
}

CUresult cuCtxGetCurrent(CUcontext *ctx) {
  if (!ctx) return ERR_INVALID_VALUE;
  *ctx = t_current;
  return OK;
}

CUresult cuCtxSynchronize(void) { return t_current ? OK : ERR_INVALID_CONTEXT; }

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
  size_t limit = (size_t)env_long("CUDA_STANDIN_MEM_MB", 4096) << 20;
  pthread_mutex_lock(&g_lock);
  if (free_bytes) *free_bytes = g_used > limit ? 0 : limit - g_used;
  pthread_mutex_unlock(&g_lock);
  if (total) *total = limit;
  return OK;
}

static struct mapping *find(uintptr_t p) {
  for (struct mapping *m = g_maps; m; m = m->next)
    if (p >= m->base && p < m->base + (m->size ? m->size : 1)) return m;
  return NULL;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) {
  if (!t_current) return ERR_INVALID_CONTEXT;
  if (!dptr || size == 0) return ERR_INVALID_VALUE;
  size_t limit = (size_t)env_long("CUDA_STANDIN_MEM_MB", 4096) << 20;
  pthread_mutex_lock(&g_lock);
  if (g_used + size > limit) {
    pthread_mutex_unlock(&g_lock);
    return ERR_OUT_OF_MEMORY;
  }
  struct mapping *m = calloc(1, sizeof *m);
  snprintf(m->name, sizeof m->name, "/" PREFIX "%d.%u", (int)getpid(), g_counter++);
  int fd = shm_open(m->name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    if (fd >= 0) {
      close(fd);
      shm_unlink(m->name);
    }
    free(m);
    pthread_mutex_unlock(&g_lock);
    return ERR_OUT_OF_MEMORY;
  }
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    shm_unlink(m->name);
    free(m);
    pthread_mutex_unlock(&g_lock);
    return ERR_OUT_OF_MEMORY;
  }
  m->base = (uintptr_t)p;
  m->size = size;
  m->owned = 1;
  m->next = g_maps;
  g_maps = m;
  g_used += size;
  pthread_mutex_unlock(&g_lock);
  *dptr = (CUdeviceptr)m->base;
  return OK;
}

static CUresult unmap(CUdeviceptr dptr, int owned) {
  pthread_mutex_lock(&g_lock);
  struct mapping **pp = &g_maps;
  while (*pp && !((*pp)->base == (uintptr_t)dptr && (*pp)->owned == owned)) pp = &(*pp)->next;
  struct mapping *m = *pp;
  if (!m) {
    pthread_mutex_unlock(&g_lock);
    return ERR_INVALID_VALUE;
  }
  *pp = m->next;
  munmap((void *)m->base, m->size);
  if (owned) {
    shm_unlink(m->name);
    g_used -= m->size;
  }
  pthread_mutex_unlock(&g_lock);
  free(m);
  return OK;
}

CUresult cuMemFree_v2(CUdeviceptr dptr) { return unmap(dptr, 1); }

CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr dptr) {
  pthread_mutex_lock(&g_lock);
  struct mapping *m = find((uintptr_t)dptr);
  pthread_mutex_unlock(&g_lock);
  if (!m) return ERR_INVALID_VALUE;
  if (base) *base = m->base;
  if (size) *size = m->size;
  return OK;
}

/* Every copy checks that device addresses lie inside a live mapping, as the driver would. */
static int valid_range(CUdeviceptr p, size_t n) {
  pthread_mutex_lock(&g_lock);
  struct mapping *m = find((uintptr_t)p);
  int ok = m && (uintptr_t)p + n <= m->base + m->size;
  pthread_mutex_unlock(&g_lock);
  return ok;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  if (!valid_range(dst, n)) return ERR_INVALID_VALUE;
  memcpy((void *)(uintptr_t)dst, src, n);
  return OK;
}

CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  if (!valid_range(src, n)) return ERR_INVALID_VALUE;
  memcpy(dst, (const void *)(uintptr_t)src, n);
  return OK;
}

CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  if (!valid_range(dst, n) || !valid_range(src, n)) return ERR_INVALID_VALUE;
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
  if (n > 0 && env_long("CUDA_STANDIN_CORRUPT_DTOD", 0)) *(unsigned char *)(uintptr_t)dst ^= 0xff;
  return OK;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s) {
  (void)s;
  return cuMemcpyHtoD_v2(dst, src, n);
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s) {
  (void)s;
  return cuMemcpyDtoH_v2(dst, src, n);
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
  (void)s;
  return cuMemcpyDtoD_v2(dst, src, n);
}

CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned flags) {
  (void)flags;
  return p && n ? OK : ERR_INVALID_VALUE;
}

CUresult cuMemHostUnregister(void *p) { return p ? OK : ERR_INVALID_VALUE; }

CUresult cuStreamCreate(CUstream *s, unsigned flags) {
  (void)flags;
  if (!s) return ERR_INVALID_VALUE;
  *s = calloc(1, sizeof(struct standin_stream));
  return OK;
}

CUresult cuStreamDestroy_v2(CUstream s) {
  free(s);
  return OK;
}

CUresult cuStreamSynchronize(CUstream s) {
  (void)s;
  return OK;
}

CUresult cuEventCreate(CUevent *e, unsigned flags) {
  (void)flags;
  if (!e) return ERR_INVALID_VALUE;
  *e = calloc(1, sizeof(struct standin_event));
  return OK;
}

CUresult cuEventDestroy_v2(CUevent e) {
  free(e);
  return OK;
}

CUresult cuEventRecord(CUevent e, CUstream s) {
  (void)s;
  if (!e) return ERR_INVALID_VALUE;
  clock_gettime(CLOCK_MONOTONIC, &e->at);
  return OK;
}

CUresult cuEventSynchronize(CUevent e) { return e ? OK : ERR_INVALID_VALUE; }

CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) {
  if (!ms || !a || !b) return ERR_INVALID_VALUE;
  *ms = (float)((b->at.tv_sec - a->at.tv_sec) * 1e3 + (b->at.tv_nsec - a->at.tv_nsec) / 1e6);
  return OK;
}

CUresult cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr dptr) {
  if (!h) return ERR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  struct mapping *m = find((uintptr_t)dptr);
  if (!m || !m->owned) {
    pthread_mutex_unlock(&g_lock);
    return ERR_INVALID_VALUE;
  }
  memset(h, 0, sizeof *h);
  memcpy(h->reserved, MAGIC, 16);
  snprintf(h->reserved + 16, 48, "%s", m->name);
  pthread_mutex_unlock(&g_lock);
  return OK;
}

CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *dptr, CUipcMemHandle h, unsigned flags) {
  (void)flags;
  if (!t_current) return ERR_INVALID_CONTEXT;
  if (env_long("CUDA_STANDIN_EXIT_ON_IPC_OPEN", 0)) _exit(9);
  if (env_long("CUDA_STANDIN_FAIL_IPC_OPEN", 0)) return ERR_INVALID_HANDLE;
  if (!dptr || memcmp(h.reserved, MAGIC, 16) != 0) return ERR_INVALID_HANDLE;
  char name[48];
  memcpy(name, h.reserved + 16, sizeof name);
  name[sizeof name - 1] = 0;
  /* Like the driver: a process cannot open its own allocation's handle. */
  char own[32];
  snprintf(own, sizeof own, "/" PREFIX "%d.", (int)getpid());
  if (strncmp(name, own, strlen(own)) == 0) return ERR_INVALID_CONTEXT;
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) return ERR_INVALID_HANDLE;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    close(fd);
    return ERR_INVALID_HANDLE;
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return ERR_MAP_FAILED;
  struct mapping *m = calloc(1, sizeof *m);
  m->base = (uintptr_t)p;
  m->size = (size_t)st.st_size;
  snprintf(m->name, sizeof m->name, "%s", name);
  pthread_mutex_lock(&g_lock);
  m->next = g_maps;
  g_maps = m;
  pthread_mutex_unlock(&g_lock);
  *dptr = (CUdeviceptr)m->base;
  return OK;
}

CUresult cuIpcCloseMemHandle(CUdeviceptr dptr) { return unmap(dptr, 0); }

static const char *error_text(CUresult e) {
  switch (e) {
    case OK: return "no error";
    case ERR_INVALID_VALUE: return "invalid argument";
    case ERR_OUT_OF_MEMORY: return "out of memory";
    case ERR_NOT_INITIALIZED: return "initialization error";
    case ERR_NO_DEVICE: return "no CUDA-capable device is detected";
    case ERR_INVALID_DEVICE: return "invalid device ordinal";
    case ERR_INVALID_CONTEXT: return "invalid device context";
    case ERR_MAP_FAILED: return "mapping of buffer object failed";
    case ERR_INVALID_HANDLE: return "invalid resource handle";
    default: return NULL;
  }
}

static const char *error_name(CUresult e) {
  switch (e) {
    case OK: return "CUDA_SUCCESS";
    case ERR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case ERR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case ERR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case ERR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case ERR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case ERR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case ERR_MAP_FAILED: return "CUDA_ERROR_MAP_FAILED";
    case ERR_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
    default: return NULL;
  }
}

CUresult cuGetErrorString(CUresult e, const char **s) {
  if (!s) return ERR_INVALID_VALUE;
  *s = error_text(e);
  return *s ? OK : ERR_INVALID_VALUE;
}

CUresult cuGetErrorName(CUresult e, const char **s) {
  if (!s) return ERR_INVALID_VALUE;
  *s = error_name(e);
  return *s ? OK : ERR_INVALID_VALUE;
}
