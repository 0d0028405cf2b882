// Embedding gather: one thread block per token, threads over the row's elements.
#include "gpu/ops/dequant.cuh"
#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

__global__ void EmbedKernel(const uint8_t* table, TensorType type, size_t row_bytes, int64_t cols,
                            const int32_t* tokens, float* out, int64_t ld_out) {
  PdlStart();
  const int t = blockIdx.x;
  const uint8_t* row = table + static_cast<size_t>(tokens[t]) * row_bytes;
  float* o = out + t * ld_out;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) o[i] = LoadElement(type, row, i);
}

}  // namespace

bool KernelSupportsType(TensorType t) {
  switch (t) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
    case TensorType::kQ8_0:
    case TensorType::kQ4_0:
    case TensorType::kQ4_1:
    case TensorType::kQ4_K:
    case TensorType::kQ6_K:
      return true;
    default:
      return false;
  }
}

cudaError_t LaunchEmbed(const DeviceMatrix& table, const DeviceBatch& b, float* out, int64_t ld_out, cudaStream_t s) {
  return LaunchKernel("EmbedKernel", EmbedKernel, b.n_tokens, 256, 0, s, static_cast<const uint8_t*>(table.data),
                      table.type, table.row_bytes, table.cols, b.tokens, out, ld_out);
}

}  // namespace lms::gpu
