/*
 * A TEST DOUBLE of the NCCL API (libnccl), for machines without a GPU. Buffers are host memory
 * (see cudart-standin.c); collectives run over TCP sockets between processes, synchronously on
 * the calling thread. It implements only what @hotweights/transport-nccl calls. Built by the
 * tests with gcc; never shipped.
 *
 * Like NCCL, ncclGetUniqueId starts a bootstrap root in the calling process and the id carries
 * its address; ncclCommInitRank meets there, then each communicator is a ring of sockets (each
 * rank connects to the next), and ncclBroadcast forwards pieces along the ring from the root.
 *
 * Fault injection (its own variables, read at each call):
 *   STANDIN_NCCL_VERSION           what ncclGetVersion reports (default 21903; below 21800 the
 *                                  package treats ncclCommSplit as absent, as with real NCCL)
 *   STANDIN_NCCL_EXIT_AFTER_BYTES  SIGKILL this process once it received that many broadcast bytes
 *   STANDIN_NCCL_STALL_AFTER_BYTES stop taking part (block) once it received that many bytes
 *   STANDIN_NCCL_ADDR              address the rings and the bootstrap listen on (127.0.0.1)
 *   STANDIN_FAULT_RANK             apply the two faults above only in the process whose RANK
 *                                  (the launcher's variable) equals this
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
} ncclResult_t;

typedef struct { char internal[128]; } ncclUniqueId;

#define MAGIC 0x48574e43u /* "HWNC" */
#define NOCOLOR (-1)
#define PIECE (256 * 1024)
#define MAX_RANKS 1024

struct id_layout { uint32_t magic; uint32_t ip; uint16_t port; uint64_t nonce; };
struct hello { uint64_t nonce; int32_t rank, nranks; uint16_t port; };

struct ncclComm {
  int rank, nranks;
  int next_fd, prev_fd;
  volatile int aborted;
  int async_error;
  int busy, free_when_idle;
  pthread_mutex_t lock;
  char last_error[256];
};
typedef struct ncclComm *ncclComm_t;

static uint64_t g_received = 0;
static char g_global_error[256];

static const char *addr_text(void) {
  const char *a = getenv("STANDIN_NCCL_ADDR");
  return a ? a : "127.0.0.1";
}

static long long env_ll(const char *name) {
  const char *v = getenv(name);
  return v ? atoll(v) : -1;
}

static ncclResult_t fail(ncclComm_t c, ncclResult_t rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static ncclResult_t fail(ncclComm_t c, ncclResult_t rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c ? c->last_error : g_global_error, sizeof g_global_error, fmt, ap);
  va_end(ap);
  if (c && rc == ncclRemoteError) c->async_error = rc;
  return rc;
}

static int listener(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, addr_text(), &a.sin_addr);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, MAX_RANKS)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

static int dial(uint32_t ip, uint16_t port) {
  for (int attempt = 0; attempt < 600; attempt++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    close(fd);
    usleep(100 * 1000);
  }
  return -1;
}

/* Blocking I/O that notices an abort within 100 ms. Returns 0, or -1 (EOF/error), -2 (aborted). */
static int io_all(ncclComm_t c, int fd, void *buf, size_t n, int sending) {
  char *p = buf;
  while (n > 0) {
    if (c && c->aborted) return -2;
    struct pollfd pfd = {.fd = fd, .events = sending ? POLLOUT : POLLIN};
    int r = poll(&pfd, 1, 100);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    ssize_t k = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* The bootstrap root: collects one hello per rank, then tells each rank every rank's ring port. */
struct root_args { int fd; uint64_t nonce; };
static void *bootstrap_root(void *arg) {
  struct root_args *ra = arg;
  int fds[MAX_RANKS];
  uint16_t ports[MAX_RANKS];
  int nranks = 0, joined = 0;
  while (nranks == 0 || joined < nranks) {
    int fd = accept(ra->fd, NULL, NULL);
    if (fd < 0) break;
    struct hello h;
    if (io_all(NULL, fd, &h, sizeof h, 0) || h.nonce != ra->nonce || h.nranks < 1 || h.nranks > MAX_RANKS ||
        (nranks && h.nranks != nranks) || h.rank < 0 || h.rank >= h.nranks) {
      close(fd);
      continue;
    }
    nranks = h.nranks;
    fds[h.rank] = fd;
    ports[h.rank] = h.port;
    joined++;
  }
  for (int r = 0; r < joined; r++) {
    io_all(NULL, fds[r], ports, sizeof(uint16_t) * (size_t)nranks, 1);
    close(fds[r]);
  }
  close(ra->fd);
  free(ra);
  return NULL;
}

ncclResult_t ncclGetVersion(int *version) {
  long long v = env_ll("STANDIN_NCCL_VERSION");
  *version = v > 0 ? (int)v : 21903;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  struct id_layout l = {.magic = MAGIC};
  int fd = listener(&l.port);
  if (fd < 0) return fail(NULL, ncclSystemError, "cannot listen on %s: %s", addr_text(), strerror(errno));
  inet_pton(AF_INET, addr_text(), &l.ip);
  FILE *r = fopen("/dev/urandom", "rb");
  if (!r || fread(&l.nonce, sizeof l.nonce, 1, r) != 1) l.nonce = (uint64_t)getpid() << 20 ^ (uint64_t)fd;
  if (r) fclose(r);
  struct root_args *ra = malloc(sizeof *ra);
  ra->fd = fd;
  ra->nonce = l.nonce;
  pthread_t t;
  pthread_create(&t, NULL, bootstrap_root, ra);
  pthread_detach(t);
  memset(id, 0, sizeof *id);
  memcpy(id->internal, &l, sizeof l);
  return ncclSuccess;
}

/* Connects to the next rank's listener and accepts the previous rank on our own. */
static ncclResult_t ring(ncclComm_t c, int lfd, uint32_t ip, uint16_t next_port) {
  c->next_fd = c->prev_fd = -1;
  if (c->nranks == 1) return ncclSuccess;
  c->next_fd = dial(ip, next_port);
  if (c->next_fd < 0) return fail(c, ncclSystemError, "rank %d cannot reach rank %d", c->rank, (c->rank + 1) % c->nranks);
  int32_t me = c->rank, who = -1;
  io_all(c, c->next_fd, &me, sizeof me, 1);
  struct pollfd pfd = {.fd = lfd, .events = POLLIN};
  if (poll(&pfd, 1, 60 * 1000) <= 0) return fail(c, ncclRemoteError, "rank %d: the previous rank never connected", c->rank);
  c->prev_fd = accept(lfd, NULL, NULL);
  if (c->prev_fd < 0 || io_all(c, c->prev_fd, &who, sizeof who, 0) || who != (c->rank + c->nranks - 1) % c->nranks)
    return fail(c, ncclRemoteError, "rank %d: a stranger connected instead of the previous rank", c->rank);
  return ncclSuccess;
}

static ncclComm_t new_comm(int rank, int nranks) {
  ncclComm_t c = calloc(1, sizeof *c);
  c->rank = rank;
  c->nranks = nranks;
  c->next_fd = c->prev_fd = -1;
  pthread_mutex_init(&c->lock, NULL);
  return c;
}

static void free_comm(ncclComm_t c) {
  if (c->next_fd >= 0) close(c->next_fd);
  if (c->prev_fd >= 0) close(c->prev_fd);
  free(c);
}

ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
  struct id_layout l;
  memcpy(&l, id.internal, sizeof l);
  if (l.magic != MAGIC) return fail(NULL, ncclInvalidArgument, "not a unique id from ncclGetUniqueId");
  if (nranks < 1 || nranks > MAX_RANKS || rank < 0 || rank >= nranks)
    return fail(NULL, ncclInvalidArgument, "rank %d of %d is invalid", rank, nranks);
  struct hello h = {.nonce = l.nonce, .rank = rank, .nranks = nranks};
  int lfd = listener(&h.port);
  if (lfd < 0) return fail(NULL, ncclSystemError, "cannot listen: %s", strerror(errno));
  int boot = dial(l.ip, l.port);
  uint16_t ports[MAX_RANKS];
  if (boot < 0 || io_all(NULL, boot, &h, sizeof h, 1) || io_all(NULL, boot, ports, sizeof(uint16_t) * (size_t)nranks, 0)) {
    if (boot >= 0) close(boot);
    close(lfd);
    return fail(NULL, ncclRemoteError, "rank %d: the bootstrap root is gone before every rank joined", rank);
  }
  close(boot);
  ncclComm_t c = new_comm(rank, nranks);
  ncclResult_t rc = ring(c, lfd, l.ip, ports[(rank + 1) % nranks]);
  close(lfd);
  if (rc != ncclSuccess) {
    snprintf(g_global_error, sizeof g_global_error, "%s", c->last_error);
    free_comm(c);
    return rc;
  }
  *out = c;
  return ncclSuccess;
}

static int enter(ncclComm_t c) {
  pthread_mutex_lock(&c->lock);
  int ok = !c->aborted;
  if (ok) c->busy++;
  pthread_mutex_unlock(&c->lock);
  return ok;
}

static void leave(ncclComm_t c) {
  pthread_mutex_lock(&c->lock);
  int last = --c->busy == 0 && c->free_when_idle;
  pthread_mutex_unlock(&c->lock);
  if (last) free_comm(c);
}

static ncclResult_t io_failure(ncclComm_t c, int r, int peer, const char *what) {
  if (r == -2) return fail(c, ncclInvalidUsage, "the communicator was aborted");
  return fail(c, ncclRemoteError, "rank %d: connection to rank %d lost while %s (remote process exited?)", c->rank, peer, what);
}

struct entry { int32_t color, key, rank; uint16_t port; };

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *out, void *config) {
  (void)config;
  *out = NULL;
  if (!enter(comm)) return fail(comm, ncclInvalidUsage, "the communicator was aborted");
  int n = comm->nranks;
  struct entry *all = calloc((size_t)n, sizeof *all);
  struct entry *mine = &all[comm->rank];
  mine->color = color;
  mine->key = key;
  mine->rank = comm->rank;
  int lfd = -1;
  if (color != NOCOLOR && (lfd = listener(&mine->port)) < 0) {
    free(all);
    leave(comm);
    return fail(comm, ncclSystemError, "cannot listen: %s", strerror(errno));
  }
  /* Ring allgather: at step s, pass on the entry that came from s ranks before us. */
  ncclResult_t rc = ncclSuccess;
  for (int s = 0; s < n - 1 && rc == ncclSuccess; s++) {
    int out_i = (comm->rank - s + n) % n, in_i = (comm->rank - s - 1 + n) % n;
    int r = io_all(comm, comm->next_fd, &all[out_i], sizeof *all, 1);
    if (!r) r = io_all(comm, comm->prev_fd, &all[in_i], sizeof *all, 0);
    if (r) rc = io_failure(comm, r, (comm->rank + 1) % n, "splitting");
  }
  if (rc == ncclSuccess && color != NOCOLOR) {
    /* Members of my color, ordered by (key, parent rank). */
    int members[MAX_RANKS], m = 0;
    for (int i = 0; i < n; i++)
      if (all[i].color == color) members[m++] = i;
    for (int i = 1; i < m; i++)
      for (int j = i; j > 0; j--) {
        struct entry *a = &all[members[j - 1]], *b = &all[members[j]];
        if (a->key < b->key || (a->key == b->key && a->rank < b->rank)) break;
        int t = members[j];
        members[j] = members[j - 1];
        members[j - 1] = t;
      }
    int me = 0;
    while (members[me] != comm->rank) me++;
    ncclComm_t c = new_comm(me, m);
    uint32_t ip;
    inet_pton(AF_INET, addr_text(), &ip);
    rc = ring(c, lfd, ip, all[members[(me + 1) % m]].port);
    if (rc == ncclSuccess) *out = c;
    else {
      snprintf(comm->last_error, sizeof comm->last_error, "%s", c->last_error);
      free_comm(c);
    }
  }
  if (lfd >= 0) close(lfd);
  free(all);
  leave(comm);
  return rc;
}

static size_t type_size(int datatype) {
  static const size_t sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};
  return datatype >= 0 && datatype < 10 ? sizes[datatype] : 0;
}

static int fault_here(void) {
  const char *only = getenv("STANDIN_FAULT_RANK");
  const char *rank = getenv("RANK");
  return !only || (rank && strcmp(only, rank) == 0);
}

static void inject_faults(ncclComm_t c, size_t just_received) {
  g_received += just_received;
  if (!fault_here()) return;
  long long die = env_ll("STANDIN_NCCL_EXIT_AFTER_BYTES");
  if (die >= 0 && g_received >= (uint64_t)die) raise(SIGKILL);
  long long stall = env_ll("STANDIN_NCCL_STALL_AFTER_BYTES");
  if (stall >= 0 && g_received >= (uint64_t)stall)
    while (!c->aborted) usleep(100 * 1000);
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, int datatype, int root,
                           ncclComm_t comm, void *stream) {
  (void)stream;
  size_t bytes = count * type_size(datatype);
  if (!type_size(datatype) || root < 0 || root >= comm->nranks)
    return fail(comm, ncclInvalidArgument, "bad datatype %d or root %d", datatype, root);
  if (!enter(comm)) return fail(comm, ncclInvalidUsage, "the communicator was aborted");
  int n = comm->nranks, pos = (comm->rank - root + n) % n;
  if (pos == 0 && sendbuff != recvbuff) memcpy(recvbuff, sendbuff, bytes);
  ncclResult_t rc = ncclSuccess;
  for (size_t off = 0; off < bytes && rc == ncclSuccess; off += PIECE) {
    size_t len = bytes - off < PIECE ? bytes - off : PIECE;
    char *piece = (char *)recvbuff + off;
    if (pos > 0) {
      int r = io_all(comm, comm->prev_fd, piece, len, 0);
      if (r) {
        rc = io_failure(comm, r, (comm->rank + n - 1) % n, "receiving");
        break;
      }
      inject_faults(comm, len);
    }
    if (pos < n - 1) {
      int r = io_all(comm, comm->next_fd, piece, len, 1);
      if (r) rc = io_failure(comm, r, (comm->rank + 1) % n, "sending");
    }
  }
  leave(comm);
  return rc;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *err) {
  *err = (ncclResult_t)comm->async_error;
  return ncclSuccess;
}

/* Unblocks any call in progress on another thread; the memory goes when that call returns. */
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (!comm) return ncclSuccess;
  pthread_mutex_lock(&comm->lock);
  comm->aborted = 1;
  if (comm->next_fd >= 0) shutdown(comm->next_fd, SHUT_RDWR);
  if (comm->prev_fd >= 0) shutdown(comm->prev_fd, SHUT_RDWR);
  int idle = comm->busy == 0;
  if (!idle) comm->free_when_idle = 1;
  pthread_mutex_unlock(&comm->lock);
  if (idle) free_comm(comm);
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) { return ncclCommAbort(comm); }

const char *ncclGetLastError(ncclComm_t comm) { return comm ? comm->last_error : g_global_error; }

const char *ncclGetErrorString(ncclResult_t rc) {
  switch (rc) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}
