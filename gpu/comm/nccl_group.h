// NCCL between GPUs: one rank per GPU, each rank with its own stream. Within one process all
// local GPUs join at once (in one NCCL group); across processes or machines each process joins its
// rank with the unique id rank 0 made (hand it over with core/net/blob_rendezvous, or any launcher
// such as mpirun). Pipeline stages on different GPUs
// exchange activations and gradients through it with point-to-point sends and receives of
// device buffers. Calls for one rank come from one thread (the stage's); a send and its receive
// issued from the same thread must be grouped (GroupStart/GroupEnd), or NCCL waits forever.
// The communicators are non-blocking: no NCCL call waits inside NCCL, so Abort (from any thread)
// never races a call in flight. Each call holds a lock for its own short duration (a group from
// GroupStart to GroupEnd), then waits for NCCL to finish starting it by polling, taking the lock
// for each poll, so an Abort gets in and ends the wait.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/util/status.h"

namespace lms::gpu {

Status NcclStatus(ncclResult_t r, const char* what);

class NcclGroup {
 public:
  // One rank per entry of `devices` (CUDA device ordinals, each at most once: NCCL refuses two
  // ranks of a communicator on one GPU).
  static Result<std::unique_ptr<NcclGroup>> Create(const std::vector<int>& devices);
  // A communicator spanning processes: NewUniqueId() on rank 0, the same bytes to every process,
  // then JoinRank in each (it blocks until all `world` ranks have joined).
  static Result<std::vector<uint8_t>> NewUniqueId();
  static Result<std::unique_ptr<NcclGroup>> JoinRank(const std::vector<uint8_t>& unique_id, int world, int rank,
                                                     int device);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int size() const { return world_; }                      // ranks in the communicator
  const std::vector<int>& local_ranks() const { return ranks_; }  // the ranks this process drives

  // Enqueue on the stream of rank `from` (one this process drives): send n floats of device
  // memory to rank `to`, or receive n floats from rank `from_peer` into device memory. A rank may send to itself (a one-GPU
  // machine checks the transport that way) when the send and receive are grouped.
  Status Send(int from, int to, const float* buf, size_t n);
  Status Recv(int at, int from_peer, float* buf, size_t n);
  Status GroupStart();
  Status GroupEnd();
  // Waits for everything enqueued on the rank's stream.
  Status Synchronize(int rank);
  // The stream the rank's sends and receives go on (a rank this process drives; else nullptr).
  cudaStream_t stream(int rank) const;
  // Tears down every local communicator at once, waking operations that wait for a peer which
  // will never come (a stage failed); it may be called from any thread, as NCCL's watchdogs do.
  // The group is unusable afterwards (calls return Cancelled).
  void Abort();
  bool aborted() const { return aborted_.load(); }

 private:
  NcclGroup() = default;
  // Index into the vectors below of a rank this process drives, or an error.
  Result<size_t> Local(int rank, const char* what) const;
  Status CheckPeer(int rank, const char* what) const;
  // Polls the local communicators `locals` until NCCL has finished what their last calls started
  // (ncclInProgress no more), or the group is aborted.
  Status Settle(const std::vector<size_t>& locals, const char* what);
  // After a send or receive on local communicator i: settled now, or at the end of the group.
  Status Issued(size_t i, const char* what);

  int world_ = 0;
  std::vector<int> ranks_;
  std::vector<int> devices_;
  std::vector<ncclComm_t> comms_;
  std::vector<cudaStream_t> streams_;
  std::atomic<bool> aborted_{false};  // Abort may come from another rank's thread
  // Held by every NCCL call on comms_ (and from GroupStart to GroupEnd), and by Abort.
  std::recursive_mutex mu_;
};

}  // namespace lms::gpu
