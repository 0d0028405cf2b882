// NCCL between the local GPUs of one process: one rank per GPU, the communicators created
// together (ncclCommInitAll), each rank with its own stream. Pipeline stages on different GPUs
// exchange activations and gradients through it with point-to-point sends and receives of
// device buffers. Calls for one rank come from one thread (the stage's); a send and its receive
// issued from the same thread must be grouped (GroupStart/GroupEnd), or NCCL waits forever.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "core/util/status.h"

namespace lms::gpu {

Status NcclStatus(ncclResult_t r, const char* what);

class NcclGroup {
 public:
  // One rank per entry of `devices` (CUDA device ordinals, each at most once: NCCL refuses two
  // ranks of a communicator on one GPU).
  static Result<std::unique_ptr<NcclGroup>> Create(const std::vector<int>& devices);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int size() const { return static_cast<int>(devices_.size()); }
  int device(int rank) const { return devices_[rank]; }
  cudaStream_t stream(int rank) const { return streams_[rank]; }

  // Enqueue on rank `from`'s stream: send n floats of device memory to rank `to`, or receive n
  // floats from rank `from_peer` into device memory. A rank may send to itself (a one-GPU
  // machine checks the transport that way) when the send and receive are grouped.
  Status Send(int from, int to, const float* buf, size_t n);
  Status Recv(int at, int from_peer, float* buf, size_t n);
  Status GroupStart();
  Status GroupEnd();
  // Waits for everything enqueued on the rank's stream.
  Status Synchronize(int rank);

 private:
  NcclGroup() = default;
  Status CheckRank(int r, const char* what) const;

  std::vector<int> devices_;
  std::vector<ncclComm_t> comms_;
  std::vector<cudaStream_t> streams_;
};

}  // namespace lms::gpu
