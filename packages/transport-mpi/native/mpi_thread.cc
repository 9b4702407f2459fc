#include "mpi_thread.h"

#include <algorithm>
#include <climits>

namespace hwmpi {

namespace {
// Largest count per MPI_Bcast call: counts are int, and 1 GiB keeps every call well inside it.
constexpr size_t kMaxCallBytes = size_t{1} << 30;
// Tag for MPI_Comm_create_group. Creations are serialized on this thread in the same order on
// every member, so one tag suffices.
constexpr int kCreateTag = 4242;
}  // namespace

void MpiThread::Start(const Api *api, Completion done) {
  api_ = api;
  done_ = std::move(done);
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void MpiThread::Submit(Op *op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(op);
  }
  cv_.notify_one();
}

void MpiThread::DrainAndJoin() {
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  running_ = false;
}

void MpiThread::Run() {
  for (;;) {
    Op *op = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) break;  // stop_ and nothing left
      op = queue_.front();
      queue_.pop_front();
    }
    Execute(op);
    done_(op);
  }
  // Communicators are freed here, before MPI_Finalize, by the only thread that used them.
  for (auto &entry : comms_) api_->Comm_free(&entry.second);
  comms_.clear();
  comm_ranks_.clear();
}

// Every participant learns every participant's length before any byte moves (one small
// MPI_Allgather): a rank holding a shorter buffer than the root sends would otherwise have MPI
// write past its end. All ranks see the same lengths, so all fail, or all go on, together, and
// the collectives stay matched.
bool MpiThread::AgreeOnLength(Op *op, MPI_Comm comm) {
  const Api &a = *api_;
  const std::vector<int> &world = comm_ranks_[op->comm_id];
  const uint64_t mine = op->length;
  std::vector<uint64_t> lengths(world.size());
  int rc = a.Allgather(&mine, sizeof mine, a.byte, lengths.data(), sizeof mine, a.byte, comm);
  if (rc != kMpiSuccess) {
    op->rc = rc;
    op->error = "MPI_Allgather of the buffer sizes: " + ErrorText(rc);
    return false;
  }
  const uint64_t sent = lengths[op->root];
  std::string differ;
  for (size_t i = 0; i < lengths.size(); i++) {
    if (lengths[i] == sent) continue;
    differ += (differ.empty() ? "" : ", ") + std::string("rank ") + std::to_string(world[i]) + " holds " +
              std::to_string(lengths[i]) + " B";
  }
  if (differ.empty()) return true;
  op->rc = -1;
  op->size_mismatch = true;
  op->error = "the ranks disagree on the size: the root (rank " + std::to_string(world[op->root]) + ") sends " +
              std::to_string(sent) + " B, " + differ;
  return false;
}

std::string MpiThread::ErrorText(int rc) const {
  char text[kMpiMaxErrorString + 1] = {0};
  int len = 0;
  if (api_->Error_string(rc, text, &len) != kMpiSuccess) return "MPI error " + std::to_string(rc);
  return std::string(text, std::clamp(len, 0, kMpiMaxErrorString)) + " (MPI error " + std::to_string(rc) + ")";
}

void MpiThread::Execute(Op *op) {
  const Api &a = *api_;
  switch (op->kind) {
    case Op::Kind::kCreateComm: {
      MPI_Group world_group = nullptr;
      MPI_Group group = nullptr;
      MPI_Comm comm = nullptr;
      int rc = a.Comm_group(a.comm_world, &world_group);
      if (rc == kMpiSuccess)
        rc = a.Group_incl(world_group, static_cast<int>(op->ranks.size()), op->ranks.data(), &group);
      if (rc == kMpiSuccess) rc = a.Comm_create_group(a.comm_world, group, kCreateTag, &comm);
      if (rc == kMpiSuccess) rc = a.Comm_set_errhandler(comm, a.errors_return);
      if (group) a.Group_free(&group);
      if (world_group) a.Group_free(&world_group);
      if (rc == kMpiSuccess) {
        comms_[op->comm_id] = comm;
        comm_ranks_[op->comm_id] = op->ranks;
      } else {
        op->rc = rc;
        op->error = "MPI_Comm_create_group: " + ErrorText(rc);
      }
      return;
    }
    case Op::Kind::kFreeComm: {
      auto it = comms_.find(op->comm_id);
      if (it == comms_.end()) return;
      int rc = a.Comm_free(&it->second);
      comms_.erase(it);
      comm_ranks_.erase(op->comm_id);
      if (rc != kMpiSuccess) {
        op->rc = rc;
        op->error = "MPI_Comm_free: " + ErrorText(rc);
      }
      return;
    }
    case Op::Kind::kBarrier: {
      auto it = comms_.find(op->comm_id);
      if (it == comms_.end()) {
        op->rc = -1;
        op->error = "internal: communicator " + std::to_string(op->comm_id) + " was not created";
        return;
      }
      int rc = a.Barrier(it->second);
      if (rc != kMpiSuccess) {
        op->rc = rc;
        op->error = "MPI_Barrier: " + ErrorText(rc);
      }
      return;
    }
    case Op::Kind::kBcast: {
      auto it = comms_.find(op->comm_id);
      if (it == comms_.end()) {
        op->rc = -1;
        op->error = "internal: communicator " + std::to_string(op->comm_id) + " was not created";
        return;
      }
      if (!AgreeOnLength(op, it->second)) return;
      size_t step = op->chunk == 0 ? kMaxCallBytes : std::min(op->chunk, kMaxCallBytes);
      for (size_t offset = 0; offset < op->length; offset += step) {
        int count = static_cast<int>(std::min(step, op->length - offset));
        int rc = a.Bcast(op->data + offset, count, a.byte, op->root, it->second);
        if (rc != kMpiSuccess) {
          op->rc = rc;
          op->error = "MPI_Bcast at byte " + std::to_string(offset) + ": " + ErrorText(rc);
          return;
        }
      }
      return;
    }
  }
}

}  // namespace hwmpi
