// How pipeline stages on GPUs hand each other activations (forward) and their gradients
// (backward): device buffers, enqueued on the stages' own streams. Sends do not block; a receive
// returns once its copy is enqueued behind the send on the receiver's stream. Each stage calls
// from its own thread.
//  * InProcessDeviceTransport: stages in one process on one GPU (or GPUs that can reach each
//    other's memory), e.g. several stages sharing a GPU, which NCCL cannot do (one rank a GPU).
//  * NcclPipelineTransport (gpu/comm/nccl_transport.h): one stage a GPU over NCCL, each stage's
//    send and the receive after it grouped (SendRecv: Megatron-LM's send-forward /
//    receive-backward pairs), since an NCCL send waits for its receive.
#pragma once

#include <cuda_runtime.h>

#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/train/transport.h"
#include "core/util/status.h"

namespace lms::gpu {

class DeviceTransport {
 public:
  virtual ~DeviceTransport() = default;
  virtual Status Send(int src, int dst, lms::train::MessageKind kind, int microbatch, const float* buf, size_t n,
                      cudaStream_t stream) = 0;
  virtual Status Recv(int dst, int src, lms::train::MessageKind kind, int microbatch, float* buf, size_t n,
                      cudaStream_t stream) = 0;
  // A stage's send followed at once by its next receive (Megatron-LM's send-forward /
  // receive-backward pairs), issued together: over NCCL a send waits on the GPU for its receive,
  // so two neighbours that both send before they receive would wait forever unless each pair is
  // grouped. The default is Send, then Recv.
  struct Message {
    int peer = 0;
    lms::train::MessageKind kind = lms::train::MessageKind::kActivation;
    int microbatch = 0;
    float* buf = nullptr;  // the send reads it
    size_t n = 0;
  };
  virtual Status SendRecv(int self, const Message& send, const Message& recv, cudaStream_t stream) {
    LMS_RETURN_IF_ERROR(Send(self, send.peer, send.kind, send.microbatch, send.buf, send.n, stream));
    return Recv(self, recv.peer, recv.kind, recv.microbatch, recv.buf, recv.n, stream);
  }
  // Wakes every waiting receiver with Cancelled (a stage failed).
  virtual void Abort() = 0;
  // False once Abort has left the transport unusable (NCCL communicators are torn down).
  virtual bool Reusable() const { return true; }
};

class InProcessDeviceTransport final : public DeviceTransport {
 public:
  ~InProcessDeviceTransport() override;
  Status Send(int src, int dst, lms::train::MessageKind kind, int microbatch, const float* buf, size_t n,
              cudaStream_t stream) override;
  Status Recv(int dst, int src, lms::train::MessageKind kind, int microbatch, float* buf, size_t n,
              cudaStream_t stream) override;
  void Abort() override;

 private:
  struct Parcel {
    float* data = nullptr;   // a copy the sender made (stream-ordered allocation)
    int device = 0;          // the sender's GPU, where data lives
    size_t n = 0;
    cudaEvent_t ready = nullptr;
  };
  using Key = std::tuple<int, int, int, int>;  // src, dst, kind, microbatch
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, Parcel> mailbox_;  // GUARDED_BY(mu_)
  bool aborted_ = false;           // GUARDED_BY(mu_)
};

}  // namespace lms::gpu
