// Pipeline stages on GPUs of their own exchanging activations and gradients over NCCL: stage s
// is rank rank_of_stage[s] of an NcclGroup this process drives (one communicator a GPU over the
// stages' GPUs). Each message is a point-to-point ncclSend/ncclRecv on the rank's NCCL stream,
// ordered after the stage's work by an event and before its next work by another; a stage's
// send and the receive that follows it go in one NCCL group (SendRecv), which is what keeps
// 1F1B's neighbours, each sending before it receives, from waiting on each other forever.
// Abort tears the communicators down (NCCL has no other way to wake a send whose receiver
// failed), so a transport that was aborted cannot be reused.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "core/net/rank_group.h"
#include "gpu/comm/nccl_group.h"
#include "gpu/pipeline/device_transport.h"

namespace lms::gpu {

class NcclPipelineTransport final : public DeviceTransport {
 public:
  // One rank per stage, on the stage's GPU.
  static Result<std::unique_ptr<NcclPipelineTransport>> Create(const std::vector<int>& gpu_of_stage);
  // Across processes: stage s is rank s of `ranks`, and this process drives its own stage on
  // `device`. Rank 0 makes the NCCL unique id and sends it to the others over the rank group's
  // TCP connections (the multi-node bootstrap); every rank must call this together. When the
  // group breaks (a rank died or failed), this rank's communicator is aborted, so a stage waiting
  // in NCCL for a peer that is gone wakes with an error.
  static Result<std::unique_ptr<NcclPipelineTransport>> Join(net::RankGroup& ranks, int device);
  ~NcclPipelineTransport() override;

  Status Send(int src, int dst, lms::train::MessageKind kind, int microbatch, const float* buf, size_t n,
              cudaStream_t stream) override;
  Status Recv(int dst, int src, lms::train::MessageKind kind, int microbatch, float* buf, size_t n,
              cudaStream_t stream) override;
  Status SendRecv(int self, const Message& send, const Message& recv, cudaStream_t stream) override;
  void Abort() override;
  bool Reusable() const override { return !aborted_.load(); }

 private:
  NcclPipelineTransport() = default;
  // Runs `issue` (NCCL calls on the stage's rank) between the stage's stream and the NCCL stream.
  template <typename F>
  Status Bracketed(int stage, cudaStream_t stream, F issue);

  std::unique_ptr<NcclGroup> group_;
  std::vector<int> gpus_;                    // per stage; -1 for another process's
  std::vector<cudaEvent_t> before_, after_;  // per stage; null for another process's
  net::RankGroup* ranks_ = nullptr;          // Join: whose on-broken hook aborts group_
  std::atomic<bool> aborted_{false};
};

// Has the CUDA training engine exchange over NCCL where it can: between the GPUs of one process
// (SetMultiGpuTransport) and between ranks with a GPU each (SetRankTransport); off: unsets both.
void UseNcclForTraining(bool on);

}  // namespace lms::gpu
