// Decode-time matrix-vector products (and small batches of up to kMatVecMaxRows rows) that read
// each weight once, dequantizing in the kernel. One warp per output row n: lane l takes the
// row's 32-element chunks l, l + 32, ... (a block of the 32-element formats, a sub-block of the
// K-quants), dequantizes it into registers and dots it with every input row. F16/BF16 rows take
// a wider kernel whose loads are contiguous across the warp. One launch may cover up to
// kMatVecMaxMatrices matrices that share the input (q, k and v; gate and up): the rows of all of
// them are numbered one after another, and each warp finds its matrix.
#include "gpu/ops/dequant.cuh"
#include "gpu/ops/ops.h"
#include "gpu/ops/reduce.cuh"

namespace lms::gpu {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per thread block

// The matrix a warp's global row falls in, and the row within it.
__device__ __forceinline__ int FindMatrix(const MatVecSet& set, int64_t r, int64_t* local) {
  int i = 0;
  while (i + 1 < set.count && r >= set.row_start[i + 1]) ++i;
  *local = r - set.row_start[i];
  return i;
}

template <TensorType T>
__global__ void MatVecKernel(MatVecSet set, const float* x, int64_t ld_x, int m) {
  const int64_t rg = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (rg >= set.row_start[set.count]) return;  // the whole warp leaves together
  int64_t r = 0;
  const int mat = FindMatrix(set, rg, &r);
  const DeviceMatrix& w = set.w[mat];
  const int64_t chunks = w.cols / 32;
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
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
    if (lane == 0) set.y[mat][mi * set.ld_y[mat] + r] = total;
  }
}

// 16-bit weights: lane l reads 8 values (16 bytes) at a time, so a warp reads 512 contiguous
// bytes per step, and it issues four such loads before it uses any of them: with a few warps
// per SM (a 2048-row matrix is only 512 blocks) a single load in flight per lane leaves most of
// the memory bandwidth unused. REQUIRES: k % 8 == 0, rows 16-byte aligned.
template <bool kBf16>
__device__ __forceinline__ void Dot8(const uint4& raw, const float* x, int64_t ld_x, int m, int64_t v,
                                     float (&acc)[kMatVecMaxRows]) {
  // The eight 16-bit values from the four words by shifts: reading the words through a
  // uint16_t pointer would break C++'s aliasing rules, which a compiler may act on.
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  float wv[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const uint16_t h = static_cast<uint16_t>(words[j / 2] >> (16 * (j % 2)));
    wv[j] = kBf16 ? Bf16Bits(h) : HalfBits(h);
  }
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
__global__ void MatVec16Kernel(MatVecSet set, const float* x, int64_t ld_x, int m) {
  const int64_t rg = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (rg >= set.row_start[set.count]) return;
  int64_t r = 0;
  const int mat = FindMatrix(set, rg, &r);
  const DeviceMatrix& w = set.w[mat];
  const uint4* row = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.data) + r * w.row_bytes);
  const int64_t k8 = w.cols / 8;
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
    if (lane == 0) set.y[mat][mi * set.ld_y[mat] + r] = total;
  }
}

template <TensorType T>
void Launch(const MatVecSet& set, unsigned blocks, const float* x, int64_t ld_x, int m, cudaStream_t s) {
  MatVecKernel<T><<<blocks, kRowsPerBlock * 32, 0, s>>>(set, x, ld_x, m);
}

}  // namespace

cudaError_t LaunchMatVecSet(const MatVecSet& set, const float* x, int64_t ld_x, int64_t m, cudaStream_t s) {
  if (m < 1 || m > kMatVecMaxRows || set.count < 1 || set.count > kMatVecMaxMatrices) return cudaErrorInvalidValue;
  const DeviceMatrix& w0 = set.w[0];
  bool wide16 = w0.type == TensorType::kF16 || w0.type == TensorType::kBF16;
  for (int i = 0; i < set.count; ++i) {
    const DeviceMatrix& w = set.w[i];
    if (w.type != w0.type || w.cols != w0.cols || w.cols % 32 != 0) return cudaErrorInvalidValue;
    if (set.row_start[i + 1] - set.row_start[i] != w.rows) return cudaErrorInvalidValue;
    wide16 = wide16 && w.cols % 8 == 0 && w.row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
  }
  const unsigned blocks = static_cast<unsigned>((set.row_start[set.count] + kRowsPerBlock - 1) / kRowsPerBlock);
  const int mi = static_cast<int>(m);
  if (wide16) {
    if (w0.type == TensorType::kBF16) {
      MatVec16Kernel<true><<<blocks, kRowsPerBlock * 32, 0, s>>>(set, x, ld_x, mi);
    } else {
      MatVec16Kernel<false><<<blocks, kRowsPerBlock * 32, 0, s>>>(set, x, ld_x, mi);
    }
    return cudaGetLastError();
  }
  switch (w0.type) {
    case TensorType::kF32: Launch<TensorType::kF32>(set, blocks, x, ld_x, mi, s); break;
    case TensorType::kF16: Launch<TensorType::kF16>(set, blocks, x, ld_x, mi, s); break;
    case TensorType::kBF16: Launch<TensorType::kBF16>(set, blocks, x, ld_x, mi, s); break;
    case TensorType::kQ8_0: Launch<TensorType::kQ8_0>(set, blocks, x, ld_x, mi, s); break;
    case TensorType::kQ4_0: Launch<TensorType::kQ4_0>(set, blocks, x, ld_x, mi, s); break;
    case TensorType::kQ4_1: Launch<TensorType::kQ4_1>(set, blocks, x, ld_x, mi, s); break;
    case TensorType::kQ4_K: Launch<TensorType::kQ4_K>(set, blocks, x, ld_x, mi, s); break;
    case TensorType::kQ6_K: Launch<TensorType::kQ6_K>(set, blocks, x, ld_x, mi, s); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t LaunchMatVec(const DeviceMatrix& w, const float* x, int64_t ld_x, int64_t m, float* y, int64_t ld_y,
                         cudaStream_t s) {
  MatVecSet set;
  set.count = 1;
  set.w[0] = w;
  set.y[0] = y;
  set.ld_y[0] = ld_y;
  set.row_start[1] = w.rows;
  return LaunchMatVecSet(set, x, ld_x, m, s);
}

}  // namespace lms::gpu
