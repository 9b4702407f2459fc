// One thread per process runs every MPI call after MPI_Init, in submission order. Blocking
// collectives (MPI_Bcast, MPI_Comm_create_group) therefore run off the event loop, and every rank
// issues them in the order JS submitted them, which is the same order on every participant, so
// no two ranks ever wait on each other's different collectives.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "mpi_abi.h"

namespace hwmpi {

struct Op {
  enum class Kind { kCreateComm, kFreeComm, kBcast, kBarrier };
  Kind kind = Kind::kBcast;
  int comm_id = 0;
  std::vector<int> ranks;  // kCreateComm: world ranks of the new communicator, in rank order
  int root = 0;            // kBcast: root's rank inside the communicator
  uint8_t *data = nullptr;
  size_t length = 0;
  size_t chunk = 0;  // bytes per MPI_Bcast call (0: as large as an int count allows)
  // Result, written by the MPI thread.
  int rc = kMpiSuccess;
  std::string error;
  bool size_mismatch = false;  // kBcast: the ranks disagreed on the length (nothing was sent)
  // JS side, touched only on the JS thread.
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference keep;  // keeps the broadcast buffer alive until completion
  explicit Op(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class MpiThread {
 public:
  using Completion = std::function<void(Op *)>;
  void Start(const Api *api, Completion done);
  void Submit(Op *op);
  // Runs what is queued, then stops the thread and joins it.
  void DrainAndJoin();
  bool running() const { return running_; }

 private:
  void Run();
  void Execute(Op *op);
  std::string ErrorText(int rc) const;
  const Api *api_ = nullptr;
  Completion done_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Op *> queue_;
  bool stop_ = false;
  bool running_ = false;
  std::unordered_map<int, MPI_Comm> comms_;  // touched only by the MPI thread
  std::unordered_map<int, std::vector<int>> comm_ranks_;  // world ranks of each communicator
  bool AgreeOnLength(Op *op, MPI_Comm comm);
};

}  // namespace hwmpi
