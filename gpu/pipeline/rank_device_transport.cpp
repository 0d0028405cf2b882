#include "gpu/pipeline/rank_device_transport.h"

#include <vector>

#include "core/train/rank_transport.h"
#include "gpu/cuda_check.h"

namespace lms::gpu {

Status RankDeviceTransport::Send(int src, int dst, lms::train::MessageKind kind, int microbatch, const float* buf,
                                 size_t n, cudaStream_t stream) {
  std::vector<float> host(n);
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host.data(), buf, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return group_->SendFloats(dst % stages_, lms::train::PipelineTag(src, dst, kind, microbatch), host.data(), n);
}

Status RankDeviceTransport::Recv(int dst, int src, lms::train::MessageKind kind, int microbatch, float* buf, size_t n,
                                 cudaStream_t stream) {
  std::vector<float> host(n);
  LMS_RETURN_IF_ERROR(group_->RecvFloats(src % stages_, lms::train::PipelineTag(src, dst, kind, microbatch), host.data(), n));
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(buf, host.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  // The host copy goes out of scope here: wait until the GPU has it.
  return CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

}  // namespace lms::gpu
