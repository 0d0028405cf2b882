// Pipeline messages between processes for the CUDA engine: device s is rank s of a RankGroup,
// and a message is copied from the sender's GPU to the host, sent over the group's TCP
// connection, and copied onto the receiver's GPU. Slower than NCCL, but it needs nothing beyond
// the group and works wherever the processes are, also several of them on one GPU (which NCCL
// refuses). Abort aborts the group: a failed step ends a multi-process run on every rank.
#pragma once

#include "core/net/rank_group.h"
#include "gpu/pipeline/device_transport.h"

namespace lms::gpu {

class RankDeviceTransport final : public DeviceTransport {
 public:
  RankDeviceTransport(net::RankGroup* group, int stages) : group_(group), stages_(stages) {}
  Status Send(int src, int dst, lms::train::MessageKind kind, int microbatch, const float* buf, size_t n,
              cudaStream_t stream) override;
  Status Recv(int dst, int src, lms::train::MessageKind kind, int microbatch, float* buf, size_t n,
              cudaStream_t stream) override;
  void Abort() override { group_->Abort(); }
  bool Reusable() const override { return false; }

 private:
  net::RankGroup* group_;
  int stages_;
};

}  // namespace lms::gpu
