// One engine per transport: a dedicated thread that owns the CUDA device context, the streams, the
// device staging slots and the NCCL communicators, and runs every submitted operation in order.
// Blocking NCCL calls and the waits on streams therefore never run on the event loop, and every
// rank issues its collectives in the order JS submitted them (the same on every participant).
// Abort() is the one call made from the JS thread: it aborts every communicator, which is how a
// deadline ends a collective whose peer died instead of leaving the thread waiting forever.
#pragma once

#include <napi.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "device_api.h"

namespace hwnccl {

struct Op {
  enum class Kind { kSetup, kInitComm, kSplit, kBcast, kClose };
  Kind kind = Kind::kBcast;
  int comm_id = 0;
  int parent_id = 0;  // kSplit
  int color = 0;      // kSplit: kNcclSplitNoColor for ranks outside the new communicator
  int key = 0;
  int nranks = 0;  // kInitComm
  int rank = 0;
  ncclUniqueId unique_id{};
  int root = 0;  // kBcast: root's rank inside the communicator
  uint8_t *host = nullptr;  // kBcast: host bytes (the device path would hand a device pointer)
  size_t length = 0;
  size_t chunk = 0;
  bool ok = true;
  bool has_comm = true;  // kSplit: false on ranks outside the new communicator
  std::string error;
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference keep;  // keeps the host buffer alive until completion
  explicit Op(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class Engine {
 public:
  using Completion = std::function<void(Op *)>;
  Engine(int device, Completion done);
  void Submit(Op *op);
  // From the JS thread: ncclCommAbort on every communicator; everything later fails with `why`.
  void Abort(const std::string &why);
  bool aborted() const { return aborted_; }
  // At process exit: aborts, then waits (up to `ms`) until no op touches JS-owned host memory,
  // and keeps it that way, since the memory goes with the environment.
  void Quiesce(int ms);

 private:
  void Run();
  void Execute(Op *op);
  void Setup(Op *op);
  void InitComm(Op *op);
  void Split(Op *op);
  void Broadcast(Op *op);
  void Close(Op *op);
  // The one place that puts host bytes on the device and back: chunks through two device slots,
  // copies on one stream and NCCL on another, ordered by events so chunk k+1 is copied while
  // chunk k is broadcast. A device-resident bucket would skip this and broadcast in place.
  bool StageThroughDevice(Op *op, ncclComm_t comm);
  bool EnsureSlots(Op *op, size_t bytes);
  // Waits for both streams, polling NCCL's async error and the abort flag (never blocks forever).
  bool WaitStreams(Op *op, ncclComm_t comm, const char *what);
  bool Cuda(Op *op, const char *call, cudaError_t rc);
  bool NcclCall(Op *op, const char *call, ncclResult_t rc, ncclComm_t comm);
  ncclComm_t Comm(Op *op, int id);

  int device_;
  Completion done_;
  std::thread thread_;
  std::mutex mutex_;  // guards queue_, comms_ and abort_reason_
  std::timed_mutex busy_;  // held by the engine thread while it executes an op
  std::condition_variable cv_;
  std::deque<Op *> queue_;
  std::unordered_map<int, ncclComm_t> comms_;
  std::atomic<bool> aborted_{false};
  std::string abort_reason_;
  bool stop_ = false;
  bool ready_ = false;
  cudaStream_t copy_stream_ = nullptr;
  cudaStream_t nccl_stream_ = nullptr;
  std::array<void *, 2> slots_{};
  size_t slot_bytes_ = 0;
  std::array<cudaEvent_t, 2> landed_{};   // H2D of a slot done (root)
  std::array<cudaEvent_t, 2> sent_{};     // broadcast of a slot done
  std::array<cudaEvent_t, 2> drained_{};  // D2H of a slot done (receivers)
};

}  // namespace hwnccl
