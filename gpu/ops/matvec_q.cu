// Decode-time matrix-vector products (and small batches of up to kMatVecMaxRows rows) that read
// each weight once, dequantizing in the kernel. One warp per output row n: lane l takes the
// row's 32-element chunks l, l + 32, ... (a block of the 32-element formats, a sub-block of the
// K-quants), dequantizes it into registers and dots it with every input row. F16/BF16 rows take
// a wider kernel whose loads are contiguous across the warp. One launch may cover up to
// kMatVecMaxMatrices matrices that share the input (q, k and v; gate and up): the rows of all of
// them are numbered one after another, and each warp finds its matrix. The fused forms (ops.h:
// RMSNorm of x on the fly, y += product, SwiGLU of a gate/up pair) change only what a warp
// multiplies x by and what it writes.
#include "gpu/ops/dequant.cuh"
#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"
#include "gpu/ops/reduce.cuh"

namespace lms::gpu {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per thread block
// Per-lane sums for up to R rows of x. Kernels are built for R = 1 (one token, the common
// decode case, in the fewest registers) and R = kMatVecMaxRows.
template <int R>
using RowSums = float[R];

// The matrix a warp's global row falls in, and the row within it.
__device__ __forceinline__ int FindMatrix(const MatVecSet& set, int64_t r, int64_t* local) {
  int i = 0;
  while (i + 1 < set.count && r >= set.row_start[i + 1]) ++i;
  *local = r - set.row_start[i];
  return i;
}

// Rows the grid covers: every matrix's, or the gate's alone when a warp takes a row of both.
__host__ __device__ __forceinline__ int64_t GridRows(const MatVecSet& set) {
  return set.out == MatVecOut::kSwiGlu ? set.row_start[1] : set.row_start[set.count];
}

// Four elements of an x row from element e (16-byte aligned). kNorm: times the norm weight g.
// kSquares: their squares (before g) are added to *sq.
template <bool kNorm, bool kSquares>
__device__ __forceinline__ float4 LoadX4(const float* xr, const float* g, int64_t e, float* sq) {
  float4 v = *reinterpret_cast<const float4*>(xr + e);
  if constexpr (kSquares) *sq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  if constexpr (kNorm) {
    const float4 gg = *reinterpret_cast<const float4*>(g + e);
    v.x *= gg.x;
    v.y *= gg.y;
    v.z *= gg.z;
    v.w *= gg.w;
  }
  return v;
}

// This lane's share of row r of w dotted with the m rows of x, into acc (and sq, see LoadX4).
template <TensorType T, int R, bool kNorm, bool kSquares>
__device__ __forceinline__ void RowDot(const DeviceMatrix& w, int64_t r, const float* x, int64_t ld_x, int m,
                                       const float* g, RowSums<R>& acc, RowSums<R>& sq) {
  const int lane = threadIdx.x % 32;
  const int64_t chunks = w.cols / 32;
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  for (int64_t c = lane; c < chunks; c += 32) {
    float v[32];
    DequantChunk32<T>(row, c, v);
#pragma unroll
    for (int mi = 0; mi < R; ++mi) {
      if (mi >= m) break;
      const float* xr = x + mi * ld_x;
      float a = 0.0f;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float4 xx = LoadX4<kNorm, kSquares>(xr, g, c * 32 + 4 * j, &sq[mi]);
        a += v[4 * j] * xx.x + v[4 * j + 1] * xx.y + v[4 * j + 2] * xx.z + v[4 * j + 3] * xx.w;
      }
      acc[mi] += a;
    }
  }
}

// The eight 16-bit values of four words, as floats: by shifts, since reading the words through
// a uint16_t pointer would break C++'s aliasing rules, which a compiler may act on.
template <bool kBf16>
__device__ __forceinline__ void Unpack8(const uint4& raw, float (&wv)[8]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const uint16_t h = static_cast<uint16_t>(words[j / 2] >> (16 * (j % 2)));
    wv[j] = kBf16 ? Bf16Bits(h) : HalfBits(h);
  }
}

__device__ __forceinline__ float Sum8(const float (&wv)[8], const float4& a, const float4& b) {
  return wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z +
         wv[7] * b.w;
}

// 16-bit weights: lane l reads 8 values (16 bytes) at a time, so a warp reads 512 contiguous
// bytes per step, and it issues four such loads before it uses any of them: with a few warps
// per SM (a 2048-row matrix is only 512 blocks) a single load in flight per lane leaves most of
// the memory bandwidth unused. REQUIRES: k % 8 == 0, rows 16-byte aligned.
// Dot8 adds one word's eight products to acc (and with kNorm the squares of x to sq); with
// kPair, for a gate/up pair of rows, also the up word's to up, reading the x values once for both.
template <bool kBf16, int R, bool kNorm, bool kPair>
__device__ __forceinline__ void Dot8(const uint4& raw, const uint4& raw_up, const float* x, int64_t ld_x, int m,
                                     int64_t v, const float* g, RowSums<R>& acc, RowSums<R>& up, RowSums<R>& sq) {
  float wv[8], wu[8];
  Unpack8<kBf16>(raw, wv);
  if constexpr (kPair) Unpack8<kBf16>(raw_up, wu);
#pragma unroll
  for (int mi = 0; mi < R; ++mi) {
    if (mi >= m) break;
    const float* xr = x + mi * ld_x;
    const float4 a = LoadX4<kNorm, kNorm>(xr, g, v * 8, &sq[mi]);
    const float4 b = LoadX4<kNorm, kNorm>(xr, g, v * 8 + 4, &sq[mi]);
    acc[mi] += Sum8(wv, a, b);
    if constexpr (kPair) up[mi] += Sum8(wu, a, b);
  }
}

// A lane's first four loads of a 16-bit row (RowDot16's first step), made before PdlWait: the
// weights are read while the kernel before still runs.
struct First16 {
  uint4 r[4];
  bool loaded = false;
};
__device__ __forceinline__ const uint4* Row16(const DeviceMatrix& w, int64_t r) {
  return reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.data) + r * w.row_bytes);
}
__device__ __forceinline__ First16 LoadFirst16(const DeviceMatrix& w, int64_t r) {
  First16 f;
  const int lane = threadIdx.x % 32;
  if (lane + 96 < w.cols / 8) {
    const uint4* row = Row16(w, r);
#pragma unroll
    for (int j = 0; j < 4; ++j) f.r[j] = row[lane + 32 * j];
    f.loaded = true;
  }
  return f;
}

// Row r of w dotted with the x rows into acc; with kPair, row r of w_up as well into up, four
// words of each row in flight per lane. first, first_up: the words LoadFirst16 read ahead.
template <bool kBf16, int R, bool kNorm, bool kPair>
__device__ __forceinline__ void RowDot16(const DeviceMatrix& w, const DeviceMatrix& w_up, int64_t r, const float* x,
                                         int64_t ld_x, int m, const float* g, RowSums<R>& acc, RowSums<R>& up,
                                         RowSums<R>& sq, const First16& first, const First16& first_up) {
  const int lane = threadIdx.x % 32;
  const uint4* row = Row16(w, r);
  const uint4* urow = kPair ? Row16(w_up, r) : row;
  const int64_t k8 = w.cols / 8;
  int64_t v = lane;
  if (first.loaded) {  // first_up too, for a pair: the matrices have one width
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      Dot8<kBf16, R, kNorm, kPair>(first.r[j], first_up.r[j], x, ld_x, m, v + 32 * j, g, acc, up, sq);
    }
    v += 128;
  }
  for (; v + 96 < k8; v += 128) {
    uint4 wr[4], ur[4] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      wr[j] = row[v + 32 * j];
      if constexpr (kPair) ur[j] = urow[v + 32 * j];
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) Dot8<kBf16, R, kNorm, kPair>(wr[j], ur[j], x, ld_x, m, v + 32 * j, g, acc, up, sq);
  }
  for (; v < k8; v += 32) Dot8<kBf16, R, kNorm, kPair>(row[v], urow[v], x, ld_x, m, v, g, acc, up, sq);
}

// The warp's sums, reduced across lanes and written as set.out says (lane 0 writes). sq holds
// the squares of x when set.norm is set; up, the up row's sums for kSwiGlu.
template <int R>
__device__ __forceinline__ void WriteRows(const MatVecSet& set, int mat, int64_t r, int m, int64_t cols,
                                          const RowSums<R>& acc, const RowSums<R>& up, const RowSums<R>& sq) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int mi = 0; mi < R; ++mi) {
    if (mi >= m) break;
    float total = WarpSum(acc[mi]);
    float scale = 1.0f;
    if (set.norm) {
      scale = 1.0f / sqrtf(WarpSum(sq[mi]) / static_cast<float>(cols) + set.eps);  // rms_norm.cu's formula
      total *= scale;
    }
    float* y = set.y[mat] + mi * set.ld_y[mat] + r;
    if (set.out == MatVecOut::kSwiGlu) {
      float u = WarpSum(up[mi]);
      if (set.norm) u *= scale;
      if (lane == 0) *y = total / (1.0f + expf(-total)) * u;  // swiglu.cu's formula
    } else if (set.out == MatVecOut::kAdd) {
      if (lane == 0) *y += total;
    } else if (lane == 0) {
      *y = total;
    }
  }
}

// How a warp reads its row: 32-element chunks dequantized (every type), 16-byte words of 16-bit
// values (F16/BF16), or such words of a gate and an up row at once (F16/BF16 under kSwiGlu; a
// kernel of its own, so the others keep their fewer registers).
enum class RowPath { kChunk32, kWide16, kWide16Pair };

// One warp a row (of each matrix, for kSwiGlu). T: the weights' type. R: the most rows of x it
// takes.
// Under a dependent launch (launch.cuh) everything before PdlWait reads only the arguments and
// the weights.
template <TensorType T, RowPath P, int R, bool kNorm>
__global__ void MatVecKernel(MatVecSet set, const float* x, int64_t ld_x, int m) {
  PdlLaunchDependents();
  const int64_t rg = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const bool in_grid = rg < GridRows(set);
  const bool swiglu = set.out == MatVecOut::kSwiGlu;
  int64_t r = rg;
  const int mat = swiglu || !in_grid ? 0 : FindMatrix(set, rg, &r);
  [[maybe_unused]] First16 first, first_up;
  if constexpr (P != RowPath::kChunk32) {
    if (in_grid) first = LoadFirst16(set.w[mat], r);
  }
  if constexpr (P == RowPath::kWide16Pair) {
    if (in_grid) first_up = LoadFirst16(set.w[1], r);
  }
  PdlWait();
  if (!in_grid) return;  // the whole warp leaves together
  float acc[R] = {}, up[R] = {}, sq[R] = {};
  constexpr bool kBf16 = T == TensorType::kBF16;
  if constexpr (P != RowPath::kChunk32) {
    constexpr bool kPair = P == RowPath::kWide16Pair;
    const DeviceMatrix& w = kPair ? set.w[0] : set.w[mat];  // mat is 0 for a pair; constant, it takes fewer registers
    RowDot16<kBf16, R, kNorm, kPair>(w, set.w[1], r, x, ld_x, m, set.norm, acc, up, sq, first, first_up);
  } else {
    RowDot<T, R, kNorm, kNorm>(set.w[mat], r, x, ld_x, m, set.norm, acc, sq);
    if (swiglu) RowDot<T, R, kNorm, false>(set.w[1], r, x, ld_x, m, set.norm, up, sq);
  }
  WriteRows<R>(set, mat, r, m, set.w[mat].cols, acc, up, sq);
}

template <TensorType T, RowPath P, int R>
cudaError_t LaunchRows(const MatVecSet& set, unsigned blocks, const float* x, int64_t ld_x, int m, cudaStream_t s) {
  if (set.norm) {
    return LaunchKernel("MatVecKernel", MatVecKernel<T, P, R, true>, blocks, kRowsPerBlock * 32, 0, s, set, x, ld_x,
                        m);
  }
  return LaunchKernel("MatVecKernel", MatVecKernel<T, P, R, false>, blocks, kRowsPerBlock * 32, 0, s, set, x, ld_x, m);
}

template <TensorType T, RowPath P>
cudaError_t Launch(const MatVecSet& set, unsigned blocks, const float* x, int64_t ld_x, int m, cudaStream_t s) {
  if (m == 1) return LaunchRows<T, P, 1>(set, blocks, x, ld_x, m, s);
  return LaunchRows<T, P, kMatVecMaxRows>(set, blocks, x, ld_x, m, s);
}

// The F16/BF16 kernels: one for a gate/up pair, one for the rest.
template <TensorType T>
cudaError_t LaunchWide16(const MatVecSet& set, unsigned blocks, const float* x, int64_t ld_x, int m, cudaStream_t s) {
  if (set.out == MatVecOut::kSwiGlu) return Launch<T, RowPath::kWide16Pair>(set, blocks, x, ld_x, m, s);
  return Launch<T, RowPath::kWide16>(set, blocks, x, ld_x, m, s);
}

}  // namespace

cudaError_t LaunchMatVecSet(const MatVecSet& set, const float* x, int64_t ld_x, int64_t m, cudaStream_t s) {
  if (m < 1 || m > kMatVecMaxRows || set.count < 1 || set.count > kMatVecMaxMatrices) return cudaErrorInvalidValue;
  if (set.out == MatVecOut::kSwiGlu && (set.count != 2 || set.w[0].rows != set.w[1].rows)) {
    return cudaErrorInvalidValue;
  }
  if (set.norm && reinterpret_cast<uintptr_t>(set.norm) % 16 != 0) return cudaErrorInvalidValue;
  const DeviceMatrix& w0 = set.w[0];
  bool wide16 = w0.type == TensorType::kF16 || w0.type == TensorType::kBF16;
  for (int i = 0; i < set.count; ++i) {
    const DeviceMatrix& w = set.w[i];
    if (w.type != w0.type || w.cols != w0.cols || w.cols % 32 != 0) return cudaErrorInvalidValue;
    if (set.row_start[i + 1] - set.row_start[i] != w.rows) return cudaErrorInvalidValue;
    wide16 = wide16 && w.cols % 8 == 0 && w.row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
  }
  const unsigned blocks = static_cast<unsigned>((GridRows(set) + kRowsPerBlock - 1) / kRowsPerBlock);
  const int mi = static_cast<int>(m);
  if (wide16) {
    if (w0.type == TensorType::kBF16) return LaunchWide16<TensorType::kBF16>(set, blocks, x, ld_x, mi, s);
    return LaunchWide16<TensorType::kF16>(set, blocks, x, ld_x, mi, s);
  }
  switch (w0.type) {
    case TensorType::kF32: return Launch<TensorType::kF32, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    case TensorType::kF16: return Launch<TensorType::kF16, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    case TensorType::kBF16: return Launch<TensorType::kBF16, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    case TensorType::kQ8_0: return Launch<TensorType::kQ8_0, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    case TensorType::kQ4_0: return Launch<TensorType::kQ4_0, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    case TensorType::kQ4_1: return Launch<TensorType::kQ4_1, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    case TensorType::kQ4_K: return Launch<TensorType::kQ4_K, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    case TensorType::kQ6_K: return Launch<TensorType::kQ6_K, RowPath::kChunk32>(set, blocks, x, ld_x, mi, s);
    default: return cudaErrorInvalidValue;
  }
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
