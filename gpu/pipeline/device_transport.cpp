#include "gpu/pipeline/device_transport.h"

#include <fmt/format.h>

#include "gpu/cuda_check.h"

namespace lms::gpu {

InProcessDeviceTransport::~InProcessDeviceTransport() {
  for (auto& [key, p] : mailbox_) {  // parcels nobody received (an aborted step)
    cudaEventSynchronize(p.ready);
    cudaEventDestroy(p.ready);
    cudaFree(p.data);
  }
}

Status InProcessDeviceTransport::Send(int src, int dst, lms::train::MessageKind kind, int microbatch, const float* buf,
                                      size_t n, cudaStream_t stream) {
  Parcel p;
  p.n = n;
  LMS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&p.device));  // the sending thread's current GPU
  // The copy is ordered after the kernels that produced buf on the sender's stream, so the
  // sender may reuse buf as soon as its stream moves on.
  LMS_CUDA_RETURN_IF_ERROR(cudaMallocAsync(reinterpret_cast<void**>(&p.data), n * sizeof(float), stream));
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p.data, buf, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  LMS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&p.ready, cudaEventDisableTiming));
  LMS_CUDA_RETURN_IF_ERROR(cudaEventRecord(p.ready, stream));
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Key key{src, dst, static_cast<int>(kind), microbatch};
    if (mailbox_.count(key) == 0) {
      mailbox_[key] = p;
      p.data = nullptr;
    }
  }
  if (p.data) {  // not posted: a second parcel under the same key
    cudaFreeAsync(p.data, stream);
    cudaEventDestroy(p.ready);
    return Status::Internal(fmt::format("stage {} sent micro-batch {} to stage {} twice", src, microbatch, dst));
  }
  cv_.notify_all();
  return Status::Ok();
}

Status InProcessDeviceTransport::Recv(int dst, int src, lms::train::MessageKind kind, int microbatch, float* buf,
                                      size_t n, cudaStream_t stream) {
  Parcel p;
  {
    std::unique_lock<std::mutex> lock(mu_);
    const Key key{src, dst, static_cast<int>(kind), microbatch};
    cv_.wait(lock, [&] { return aborted_ || mailbox_.count(key) > 0; });
    if (aborted_) return Status::Cancelled("the pipeline step was aborted");
    p = mailbox_[key];
    mailbox_.erase(key);
  }
  Status st;
  if (p.n != n) {
    st = Status::Internal(fmt::format("stage {} expected {} floats from stage {}, got {}", dst, n, src, p.n));
  } else {
    int here = 0;
    st = CudaStatus(cudaGetDevice(&here), "cudaGetDevice");
    if (st.ok()) st = CudaStatus(cudaStreamWaitEvent(stream, p.ready, 0), "cudaStreamWaitEvent");
    if (st.ok() && here == p.device) {
      st = CudaStatus(cudaMemcpyAsync(buf, p.data, n * sizeof(float), cudaMemcpyDeviceToDevice, stream),
                      "cudaMemcpyAsync");
    } else if (st.ok()) {
      // Stream-ordered allocations are not covered by peer access: name both GPUs.
      st = CudaStatus(cudaMemcpyPeerAsync(buf, here, p.data, p.device, n * sizeof(float), stream),
                      "cudaMemcpyPeerAsync");
    }
  }
  // Freed in the receiver's stream order, after the copy out (or at once after the send's copy
  // when the sizes disagreed).
  if (!st.ok()) cudaStreamWaitEvent(stream, p.ready, 0);
  cudaFreeAsync(p.data, stream);
  cudaEventDestroy(p.ready);  // destruction is deferred by CUDA until the event completes
  return st;
}

void InProcessDeviceTransport::Abort() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
  }
  cv_.notify_all();
}

}  // namespace lms::gpu
