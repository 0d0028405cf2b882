// Decode-time matrix-vector products (and small batches of up to kMatVecMaxRows rows) that read
// each weight once, dequantizing in the kernel. One warp per output row n: lane l takes the
// row's 32-element chunks l, l + 32, ... (a block of the 32-element formats, a sub-block of the
// K-quants), dequantizes it into registers and dots it with every input row. F16/BF16 rows take
// a wider kernel whose loads are contiguous across the warp.
#include "gpu/ops/dequant.cuh"
#include "gpu/ops/ops.h"
#include "gpu/ops/reduce.cuh"

namespace lms::gpu {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per thread block

template <TensorType T>
__global__ void MatVecKernel(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t chunks, const float* x,
                             int64_t ld_x, int m, float* y, int64_t ld_y) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= n_rows) return;  // the whole warp leaves together
  const uint8_t* row = w + r * row_bytes;
  float acc[kMatVecMaxRows] = {};
  for (int64_t c = lane; c < chunks; c += 32) {
    float v[32];
    DequantChunk32<T>(row, c, v);
#pragma unroll
    for (int mi = 0; mi < kMatVecMaxRows; ++mi) {
      if (mi >= m) break;
      const float4* xp = reinterpret_cast<const float4*>(x + mi * ld_x + c * 32);
      float a = 0.0f;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float4 xx = xp[j];
        a += v[4 * j] * xx.x + v[4 * j + 1] * xx.y + v[4 * j + 2] * xx.z + v[4 * j + 3] * xx.w;
      }
      acc[mi] += a;
    }
  }
#pragma unroll
  for (int mi = 0; mi < kMatVecMaxRows; ++mi) {
    if (mi >= m) break;
    const float total = WarpSum(acc[mi]);
    if (lane == 0) y[mi * ld_y + r] = total;
  }
}

// 16-bit weights: lane l reads 8 values (16 bytes) at a time, so a warp reads 512 contiguous
// bytes per step, and it issues four such loads before it uses any of them: with a few warps
// per SM (a 2048-row matrix is only 512 blocks) a single load in flight per lane leaves most of
// the memory bandwidth unused. REQUIRES: k % 8 == 0, rows 16-byte aligned.
template <bool kBf16>
__device__ __forceinline__ void Dot8(const uint4& raw, const float* x, int64_t ld_x, int m, int64_t v,
                                     float (&acc)[kMatVecMaxRows]) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(&raw);
  float wv[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) wv[j] = kBf16 ? Bf16Bits(h[j]) : HalfBits(h[j]);
#pragma unroll
  for (int mi = 0; mi < kMatVecMaxRows; ++mi) {
    if (mi >= m) break;
    const float4* xp = reinterpret_cast<const float4*>(x + mi * ld_x + v * 8);
    const float4 a = xp[0], b = xp[1];
    acc[mi] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z +
               wv[7] * b.w;
  }
}

template <bool kBf16>
__global__ void MatVec16Kernel(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const float* x,
                               int64_t ld_x, int m, float* y, int64_t ld_y) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= n_rows) return;
  const uint4* row = reinterpret_cast<const uint4*>(w + r * row_bytes);
  const int64_t k8 = k / 8;
  float acc[kMatVecMaxRows] = {};
  int64_t v = lane;
  for (; v + 96 < k8; v += 128) {
    const uint4 r0 = row[v], r1 = row[v + 32], r2 = row[v + 64], r3 = row[v + 96];
    Dot8<kBf16>(r0, x, ld_x, m, v, acc);
    Dot8<kBf16>(r1, x, ld_x, m, v + 32, acc);
    Dot8<kBf16>(r2, x, ld_x, m, v + 64, acc);
    Dot8<kBf16>(r3, x, ld_x, m, v + 96, acc);
  }
  for (; v < k8; v += 32) Dot8<kBf16>(row[v], x, ld_x, m, v, acc);
#pragma unroll
  for (int mi = 0; mi < kMatVecMaxRows; ++mi) {
    if (mi >= m) break;
    const float total = WarpSum(acc[mi]);
    if (lane == 0) y[mi * ld_y + r] = total;
  }
}

template <TensorType T>
cudaError_t Launch(const DeviceMatrix& w, const float* x, int64_t ld_x, int64_t m, float* y, int64_t ld_y,
                   cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((w.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  MatVecKernel<T><<<blocks, kRowsPerBlock * 32, 0, s>>>(static_cast<const uint8_t*>(w.data), w.row_bytes, w.rows,
                                                         w.cols / 32, x, ld_x, static_cast<int>(m), y, ld_y);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchMatVec(const DeviceMatrix& w, const float* x, int64_t ld_x, int64_t m, float* y, int64_t ld_y,
                         cudaStream_t s) {
  if (m < 1 || m > kMatVecMaxRows || w.cols % 32 != 0) return cudaErrorInvalidValue;
  const bool wide16 = (w.type == TensorType::kF16 || w.type == TensorType::kBF16) && w.cols % 8 == 0 &&
                      w.row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
  if (wide16) {
    const unsigned blocks = static_cast<unsigned>((w.rows + kRowsPerBlock - 1) / kRowsPerBlock);
    const auto* data = static_cast<const uint8_t*>(w.data);
    if (w.type == TensorType::kBF16) {
      MatVec16Kernel<true><<<blocks, kRowsPerBlock * 32, 0, s>>>(data, w.row_bytes, w.rows, w.cols, x, ld_x,
                                                                  static_cast<int>(m), y, ld_y);
    } else {
      MatVec16Kernel<false><<<blocks, kRowsPerBlock * 32, 0, s>>>(data, w.row_bytes, w.rows, w.cols, x, ld_x,
                                                                   static_cast<int>(m), y, ld_y);
    }
    return cudaGetLastError();
  }
  switch (w.type) {
    case TensorType::kF32: return Launch<TensorType::kF32>(w, x, ld_x, m, y, ld_y, s);
    case TensorType::kF16: return Launch<TensorType::kF16>(w, x, ld_x, m, y, ld_y, s);
    case TensorType::kBF16: return Launch<TensorType::kBF16>(w, x, ld_x, m, y, ld_y, s);
    case TensorType::kQ8_0: return Launch<TensorType::kQ8_0>(w, x, ld_x, m, y, ld_y, s);
    case TensorType::kQ4_0: return Launch<TensorType::kQ4_0>(w, x, ld_x, m, y, ld_y, s);
    case TensorType::kQ4_1: return Launch<TensorType::kQ4_1>(w, x, ld_x, m, y, ld_y, s);
    case TensorType::kQ4_K: return Launch<TensorType::kQ4_K>(w, x, ld_x, m, y, ld_y, s);
    case TensorType::kQ6_K: return Launch<TensorType::kQ6_K>(w, x, ld_x, m, y, ld_y, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace lms::gpu
