#include "nccl_engine.h"

#include <algorithm>
#include <chrono>

#include "device_library.h"

namespace hwnccl {

namespace {
// Sleep between two polls of the streams: short against a chunk's transfer time, long enough
// not to spin a core.
constexpr auto kPoll = std::chrono::microseconds(200);
}  // namespace

Engine::Engine(int device, Completion done) : device_(device), done_(std::move(done)) {
  // Detached: a thread stuck inside a blocking NCCL call (a peer died during ncclCommInitRank)
  // must not keep the process from exiting. The engine therefore lives as long as the process.
  thread_ = std::thread([this] { Run(); });
  thread_.detach();
}

void Engine::Submit(Op *op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(op);
  }
  cv_.notify_one();
}

void Engine::Abort(const std::string &why) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_) return;
  abort_reason_ = why;
  aborted_ = true;
  // ncclCommAbort may be called while another thread waits on the communicator; it frees it, so
  // the engine thread must not touch these handles again (it checks aborted_ under mutex_).
  for (auto &entry : comms_) Nccl().CommAbort(entry.second);
  comms_.clear();
}

void Engine::Quiesce(int ms) {
  Abort("the process is exiting");
  // Deliberately never unlocked: the next op (failed at once after the abort) waits forever on a
  // detached thread, which dies with the process.
  if (!busy_.try_lock_for(std::chrono::milliseconds(ms))) return;
}

void Engine::Run() {
  for (;;) {
    Op *op = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      op = queue_.front();
      queue_.pop_front();
    }
    {
      std::lock_guard<std::timed_mutex> busy(busy_);
      Execute(op);
    }
    done_(op);
  }
}

void Engine::Execute(Op *op) {
  if (aborted_ && op->kind != Op::Kind::kClose) {
    std::lock_guard<std::mutex> lock(mutex_);
    op->ok = false;
    op->error = "the NCCL communicators were aborted: " + abort_reason_;
    return;
  }
  switch (op->kind) {
    case Op::Kind::kSetup: return Setup(op);
    case Op::Kind::kInitComm: return InitComm(op);
    case Op::Kind::kSplit: return Split(op);
    case Op::Kind::kBcast: return Broadcast(op);
    case Op::Kind::kClose: return Close(op);
  }
}

bool Engine::Cuda(Op *op, const char *call, cudaError_t rc) {
  if (rc == kCudaSuccess) return true;
  op->ok = false;
  op->error = CudaErrorText(call, rc) + " on device " + std::to_string(device_);
  return false;
}

bool Engine::NcclCall(Op *op, const char *call, ncclResult_t rc, ncclComm_t comm) {
  if (rc == kNcclSuccess || rc == kNcclInProgress) return true;
  op->ok = false;
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_) {
    op->error = std::string(call) + " was stopped by ncclCommAbort: " + abort_reason_;
    return false;
  }
  const char *detail = Nccl().GetLastError ? Nccl().GetLastError(comm) : nullptr;
  op->error = NcclErrorText(call, rc, detail);
  return false;
}

ncclComm_t Engine::Comm(Op *op, int id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = comms_.find(id);
  if (it != comms_.end()) return it->second;
  op->ok = false;
  op->error = aborted_ ? "the NCCL communicators were aborted: " + abort_reason_
                       : "internal: communicator " + std::to_string(id) + " was not created";
  return nullptr;
}

void Engine::Setup(Op *op) {
  const CudaApi &c = hwnccl::Cuda();
  if (!Cuda(op, "cudaSetDevice", c.SetDevice(device_))) return;
  if (!Cuda(op, "cudaStreamCreateWithFlags", c.StreamCreateWithFlags(&copy_stream_, kCudaStreamNonBlocking))) return;
  if (!Cuda(op, "cudaStreamCreateWithFlags", c.StreamCreateWithFlags(&nccl_stream_, kCudaStreamNonBlocking))) return;
  for (auto *events : {&landed_, &sent_, &drained_})
    for (auto &e : *events)
      if (!Cuda(op, "cudaEventCreateWithFlags", c.EventCreateWithFlags(&e, kCudaEventDisableTiming))) return;
  ready_ = true;
}

void Engine::InitComm(Op *op) {
  ncclComm_t comm = nullptr;
  if (!NcclCall(op, "ncclCommInitRank", Nccl().CommInitRank(&comm, op->nranks, op->unique_id, op->rank), nullptr))
    return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_) {
    Nccl().CommAbort(comm);
    op->ok = false;
    op->error = "ncclCommInitRank finished after the abort: " + abort_reason_;
    return;
  }
  comms_[op->comm_id] = comm;
}

void Engine::Split(Op *op) {
  ncclComm_t parent = Comm(op, op->parent_id);
  if (!parent) return;
  ncclComm_t comm = nullptr;
  if (!NcclCall(op, "ncclCommSplit", Nccl().CommSplit(parent, op->color, op->key, &comm, nullptr), parent)) return;
  op->has_comm = comm != nullptr;
  if (!comm) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_) {
    Nccl().CommAbort(comm);
    op->ok = false;
    op->error = "ncclCommSplit finished after the abort: " + abort_reason_;
    return;
  }
  comms_[op->comm_id] = comm;
}

bool Engine::EnsureSlots(Op *op, size_t bytes) {
  if (slot_bytes_ >= bytes) return true;
  const CudaApi &c = hwnccl::Cuda();
  for (auto &s : slots_) {
    if (s) c.Free(s);
    s = nullptr;
  }
  slot_bytes_ = 0;
  for (auto &s : slots_) {
    cudaError_t rc = c.Malloc(&s, bytes);
    if (rc != kCudaSuccess) {
      s = nullptr;
      Cuda(op, "cudaMalloc", rc);
      op->error += " while allocating 2 staging slots of " + std::to_string(bytes) +
                   " B; lower HOTWEIGHTS_NCCL_CHUNK_MB or free device memory";
      return false;
    }
  }
  slot_bytes_ = bytes;
  return true;
}

bool Engine::WaitStreams(Op *op, ncclComm_t comm, const char *what) {
  const CudaApi &c = hwnccl::Cuda();
  for (;;) {
    cudaError_t a = c.StreamQuery(nccl_stream_);
    cudaError_t b = c.StreamQuery(copy_stream_);
    if (a == kCudaSuccess && b == kCudaSuccess) return true;
    if (a != kCudaSuccess && a != kCudaErrorNotReady) return Cuda(op, "cudaStreamQuery", a);
    if (b != kCudaSuccess && b != kCudaErrorNotReady) return Cuda(op, "cudaStreamQuery", b);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (aborted_) {
        op->ok = false;
        op->error = std::string(what) + " was stopped by ncclCommAbort: " + abort_reason_;
        return false;
      }
      ncclResult_t async = kNcclSuccess;
      Nccl().CommGetAsyncError(comm, &async);
      if (async != kNcclSuccess && async != kNcclInProgress) {
        op->ok = false;
        const char *detail = Nccl().GetLastError ? Nccl().GetLastError(comm) : nullptr;
        op->error = NcclErrorText(what, async, detail);
        return false;
      }
    }
    std::this_thread::sleep_for(kPoll);
  }
}

bool Engine::StageThroughDevice(Op *op, ncclComm_t comm) {
  const CudaApi &c = hwnccl::Cuda();
  size_t step = op->chunk == 0 ? op->length : std::min(op->chunk, op->length);
  if (!EnsureSlots(op, step)) return false;
  bool root = op->rank == op->root;
  size_t k = 0;
  for (size_t offset = 0; offset < op->length; offset += step, k++) {
    if (aborted_) {
      // ncclCommAbort freed the communicator: no further call may name it.
      std::lock_guard<std::mutex> lock(mutex_);
      op->ok = false;
      op->error = "ncclBroadcast was stopped by ncclCommAbort: " + abort_reason_;
      return false;
    }
    size_t s = k % 2;
    size_t len = std::min(step, op->length - offset);
    void *slot = slots_[s];
    if (root) {
      // The slot is free once the broadcast of chunk k-2 has left it.
      if (k >= 2 && !Cuda(op, "cudaStreamWaitEvent", c.StreamWaitEvent(copy_stream_, sent_[s], 0))) return false;
      if (!Cuda(op, "cudaMemcpyAsync (host to device)",
                c.MemcpyAsync(slot, op->host + offset, len, kCudaMemcpyHostToDevice, copy_stream_)))
        return false;
      if (!Cuda(op, "cudaEventRecord", c.EventRecord(landed_[s], copy_stream_))) return false;
      if (!Cuda(op, "cudaStreamWaitEvent", c.StreamWaitEvent(nccl_stream_, landed_[s], 0))) return false;
    } else if (k >= 2 && !Cuda(op, "cudaStreamWaitEvent", c.StreamWaitEvent(nccl_stream_, drained_[s], 0))) {
      return false;  // the slot is free once chunk k-2 was copied out of it
    }
    if (!NcclCall(op, "ncclBroadcast", Nccl().Broadcast(slot, slot, len, kNcclUint8, op->root, comm, nccl_stream_), comm))
      return false;
    if (!Cuda(op, "cudaEventRecord", c.EventRecord(sent_[s], nccl_stream_))) return false;
    if (!root) {
      if (!Cuda(op, "cudaStreamWaitEvent", c.StreamWaitEvent(copy_stream_, sent_[s], 0))) return false;
      if (!Cuda(op, "cudaMemcpyAsync (device to host)",
                c.MemcpyAsync(op->host + offset, slot, len, kCudaMemcpyDeviceToHost, copy_stream_)))
        return false;
      if (!Cuda(op, "cudaEventRecord", c.EventRecord(drained_[s], copy_stream_))) return false;
    }
  }
  return true;
}

void Engine::Broadcast(Op *op) {
  if (!ready_) {
    op->ok = false;
    op->error = "the device was not set up";
    return;
  }
  ncclComm_t comm = Comm(op, op->comm_id);
  if (!comm) return;
  std::string what = "ncclBroadcast of " + std::to_string(op->length) + " B";
  if (StageThroughDevice(op, comm)) {
    WaitStreams(op, comm, what.c_str());
    return;
  }
  // Chunks already queued must not run on after a failure: wait for them (or the abort), keeping
  // the first error, which says what went wrong.
  std::string first = op->error;
  WaitStreams(op, comm, what.c_str());
  op->ok = false;
  op->error = first;
}

void Engine::Close(Op *op) {
  const CudaApi &c = hwnccl::Cuda();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &entry : comms_) {
      ncclResult_t rc = Nccl().CommDestroy(entry.second);
      if (rc != kNcclSuccess && op->ok) {
        op->ok = false;
        op->error = NcclErrorText("ncclCommDestroy", rc, nullptr);
      }
    }
    comms_.clear();
    stop_ = true;
  }
  if (!ready_) return;
  for (auto &s : slots_)
    if (s) c.Free(s);
  slots_ = {};
  slot_bytes_ = 0;
  for (auto *events : {&landed_, &sent_, &drained_})
    for (auto &e : *events)
      if (e) c.EventDestroy(e);
  c.StreamDestroy(copy_stream_);
  c.StreamDestroy(nccl_stream_);
  ready_ = false;
}

}  // namespace hwnccl
