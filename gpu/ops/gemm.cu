// Larger batches: the weight is dequantized to f16 (bf16 for BF16 weights, which cuBLAS then
// reads as they are) and the activations converted to the same type, then one cuBLAS GEMM with
// f32 accumulation and f32 output.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpu/ops/dequant.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

__global__ void DequantizeTo16Kernel(const uint8_t* w, TensorType type, size_t row_bytes, int64_t cols, bool bf16,
                                     void* out) {
  const int64_t r = blockIdx.y;
  const uint8_t* row = w + r * row_bytes;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) {
    const float v = LoadElement(type, row, i);
    if (bf16) {
      static_cast<__nv_bfloat16*>(out)[r * cols + i] = __float2bfloat16_rn(v);
    } else {
      static_cast<__half*>(out)[r * cols + i] = __float2half_rn(v);
    }
  }
}

__global__ void ConvertTo16Kernel(const float* x, int64_t ld_x, int64_t cols, bool bf16, void* out) {
  const int64_t r = blockIdx.y;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) {
    const float v = x[r * ld_x + i];
    if (bf16) {
      static_cast<__nv_bfloat16*>(out)[r * cols + i] = __float2bfloat16_rn(v);
    } else {
      static_cast<__half*>(out)[r * cols + i] = __float2half_rn(v);
    }
  }
}

// Rows beyond 65535 go into further launches (grid y limit).
constexpr int64_t kMaxGridY = 65535;

}  // namespace

cudaError_t LaunchDequantizeTo16(const DeviceMatrix& w, bool bf16, void* out, cudaStream_t s) {
  const int threads = 256;
  const unsigned gx = static_cast<unsigned>((w.cols + threads - 1) / threads);
  for (int64_t r0 = 0; r0 < w.rows; r0 += kMaxGridY) {
    const int64_t rows = w.rows - r0 < kMaxGridY ? w.rows - r0 : kMaxGridY;
    void* o = static_cast<uint8_t*>(out) + r0 * w.cols * 2;
    DequantizeTo16Kernel<<<dim3(gx, static_cast<unsigned>(rows)), threads, 0, s>>>(
        static_cast<const uint8_t*>(w.data) + r0 * w.row_bytes, w.type, w.row_bytes, w.cols, bf16, o);
  }
  return cudaGetLastError();
}

cudaError_t LaunchConvertTo16(const float* x, int64_t ld_x, int64_t rows, int64_t cols, bool bf16, void* out,
                              cudaStream_t s) {
  const int threads = 256;
  const unsigned gx = static_cast<unsigned>((cols + threads - 1) / threads);
  for (int64_t r0 = 0; r0 < rows; r0 += kMaxGridY) {
    const int64_t n = rows - r0 < kMaxGridY ? rows - r0 : kMaxGridY;
    ConvertTo16Kernel<<<dim3(gx, static_cast<unsigned>(n)), threads, 0, s>>>(
        x + r0 * ld_x, ld_x, cols, bf16, static_cast<uint8_t*>(out) + r0 * cols * 2);
  }
  return cudaGetLastError();
}

}  // namespace lms::gpu
