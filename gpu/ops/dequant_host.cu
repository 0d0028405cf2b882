// The kernels' dequantization functions run on the host, so the GPU tests can check them
// against core's DequantizeRow on any machine (no GPU needed).
#include "gpu/ops/dequant.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

template <TensorType T>
void Chunks(const void* row, int64_t n, float* out) {
  for (int64_t c = 0; c < n / 32; ++c) DequantChunk32<T>(static_cast<const uint8_t*>(row), c, out + c * 32);
}

}  // namespace

bool DequantizeRowHostChunks(TensorType t, const void* row, int64_t n, float* out) {
  if (n % 32 != 0) return false;
  switch (t) {
    case TensorType::kF32: Chunks<TensorType::kF32>(row, n, out); return true;
    case TensorType::kF16: Chunks<TensorType::kF16>(row, n, out); return true;
    case TensorType::kBF16: Chunks<TensorType::kBF16>(row, n, out); return true;
    case TensorType::kQ8_0: Chunks<TensorType::kQ8_0>(row, n, out); return true;
    case TensorType::kQ4_0: Chunks<TensorType::kQ4_0>(row, n, out); return true;
    case TensorType::kQ4_1: Chunks<TensorType::kQ4_1>(row, n, out); return true;
    case TensorType::kQ4_K: Chunks<TensorType::kQ4_K>(row, n, out); return true;
    case TensorType::kQ6_K: Chunks<TensorType::kQ6_K>(row, n, out); return true;
    default: return false;
  }
}

bool DequantizeRowHostElements(TensorType t, const void* row, int64_t n, float* out) {
  if (!KernelSupportsType(t)) return false;
  for (int64_t i = 0; i < n; ++i) out[i] = LoadElement(t, static_cast<const uint8_t*>(row), i);
  return true;
}

}  // namespace lms::gpu
