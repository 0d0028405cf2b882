// Launchers of the CUDA kernels, one .cu file per op. Every pointer is device memory; every
// launcher enqueues on `stream` and returns the launch error (cudaSuccess when it went in).
// Row strides are in elements of the tensor's type (floats for f32 activations).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor/types.h"

namespace lms::gpu {

// One forward batch in device memory (see BatchLayout). block_tables is [n_seqs][bt_stride],
// rows padded with -1.
struct DeviceBatch {
  int32_t n_tokens = 0;
  const int32_t* tokens = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* seq_of_token = nullptr;
  const int32_t* slots = nullptr;
  int32_t n_logit_rows = 0;
  const int32_t* logit_rows = nullptr;
  const int32_t* block_tables = nullptr;
  int32_t bt_stride = 0;
  // Tiled prefill (gpu/ops/prefill_tiles.h): n_tiles tiles of four ints, and per token 1 where a
  // tile covers it (the paged kernel then leaves it alone); nullptr and 0 when there are none.
  int32_t n_tiles = 0;
  const int32_t* tiles = nullptr;
  const int32_t* tiled = nullptr;
};

// A weight or table: rows of `cols` elements of `type`, row_bytes apart.
struct DeviceMatrix {
  const void* data = nullptr;
  TensorType type = TensorType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
};

// launch.cu: whether the decode-step kernels are launched as programmatic dependent launches
// (launch.cuh). Process-wide; off until set.
void SetDependentLaunches(bool on);
bool DependentLaunches();

// True for the types the kernels dequantize: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K.
bool KernelSupportsType(TensorType t);

// dequant_host.cu: the kernels' dequantization (DequantChunk32 chunk by chunk, LoadElement
// element by element) run on the host, for tests. False for an unsupported type or length.
bool DequantizeRowHostChunks(TensorType t, const void* row, int64_t n, float* out);
bool DequantizeRowHostElements(TensorType t, const void* row, int64_t n, float* out);

// embed.cu: out[t][:] = dequant(table[tokens[t]]).  out is (n_tokens, table.cols).
cudaError_t LaunchEmbed(const DeviceMatrix& table, const DeviceBatch& b, float* out, int64_t ld_out, cudaStream_t s);

// rms_norm.cu: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w.  x, out are (rows, n).
cudaError_t LaunchRmsNorm(const float* x, int64_t ld_x, const float* w, float eps, float* out, int64_t ld_out,
                          int64_t rows, int n, cudaStream_t s);

// rope.cu: rotates every head of q (n_tokens, n_q_heads*head_dim) and k in place.
struct RopeArgs {
  int32_t head_dim = 0, n_dims = 0;
  float theta_scale = 1.0f;  // theta_base^(-2/n_dims), computed on the host as the CPU does
  float freq_scale = 1.0f;
  bool neox = false;
};
cudaError_t LaunchRope(float* x, int64_t ld, int32_t n_heads, const RopeArgs& a, const DeviceBatch& b, cudaStream_t s);
// Both rotations and both cache stores (store_kv.cu's) in one launch, a block per token: q and k
// rotated in place as LaunchRope does, then k and v (n_kv_heads*head_dim wide) written to the
// caches at the tokens' slots.
struct KvStoreArgs {
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  bool f16 = true;
  int64_t ld_cache = 0;
};
cudaError_t LaunchRopeStoreKv(float* q, int64_t ld_q, int32_t n_q_heads, float* k, int64_t ld_k, const float* v,
                              int64_t ld_v, int32_t n_kv_heads, const RopeArgs& a, const KvStoreArgs& c,
                              const DeviceBatch& b, cudaStream_t s);

// swiglu.cu: out = silu(gate) * up, (rows, n).
cudaError_t LaunchSwiGlu(const float* gate, int64_t ld_g, const float* up, int64_t ld_u, float* out, int64_t ld_o,
                         int64_t rows, int64_t n, cudaStream_t s);

// add.cu: x += y (rows, n); out[r][c] += bias[c].
cudaError_t LaunchAdd(float* x, int64_t ld_x, const float* y, int64_t ld_y, int64_t rows, int64_t n, cudaStream_t s);
cudaError_t LaunchAddBias(float* out, int64_t ld, const float* bias, int64_t rows, int64_t n, cudaStream_t s);

// store_kv.cu: cache[slots[t]][:] = src[t][:] (f16 or f32 cache), (n_tokens, n).
cudaError_t LaunchStoreKv(const float* src, int64_t ld_src, void* cache, bool f16, int64_t ld_cache, int64_t n,
                          const DeviceBatch& b, cudaStream_t s);
// Both at once: k into k_cache and v into v_cache (one launch).
cudaError_t LaunchStoreKv2(const float* k, int64_t ld_k, const float* v, int64_t ld_v, void* k_cache, void* v_cache,
                           bool f16, int64_t ld_cache, int64_t n, const DeviceBatch& b, cudaStream_t s);

// attention_paged.cu: causal attention of each token's query heads over its sequence's cached
// K/V [0, position], read through the block table. q, out: (n_tokens, n_heads*head_dim). Tokens
// that b.tiled marks are skipped (LaunchAttentionPrefill computes them).
struct AttentionArgs {
  int32_t n_heads = 0, n_kv_heads = 0, head_dim = 0, block_size = 0;
  float scale = 1.0f;
  bool f16 = true;       // cache element type (else f32)
  int64_t ld_cache = 0;  // elements between cache rows
  // Split over positions (flash-decoding), for batches too small to fill the GPU with one block
  // per (KV head, token): `splits` blocks each take every splits-th share of the positions and
  // write a partial softmax to `partials`; a second launch merges them in split order. 1: none.
  int32_t splits = 1;
  float* partials = nullptr;  // n_tokens * n_kv_heads * splits * AttentionPartialFloats(...) floats
};
constexpr int kMaxAttentionSplits = 32;
// Floats of one block's partial result: group * head_dim weighted sums, group maxima, group sums.
#ifdef __CUDACC__
__host__ __device__
#endif
inline int64_t AttentionPartialFloats(int32_t group, int32_t head_dim) {
  return int64_t{group} * (head_dim + 2);
}
constexpr int kMaxAttentionGroup = 8;  // query heads per KV head
bool AttentionSupports(int32_t head_dim, int32_t group);
cudaError_t LaunchAttentionPaged(const float* q, int64_t ld_q, const void* k_cache, const void* v_cache,
                                 const AttentionArgs& a, const DeviceBatch& b, float* out, int64_t ld_out,
                                 cudaStream_t s);

// attention_prefill.cu: the same attention for the tokens in b's prefill tiles, tiled in the
// manner of FlashAttention-2 on tensor cores (f16 operands, fp32 softmax and accumulation; sm_80
// and later). Supports: head_dim 32, 64 or 128 and the alignment its vector loads need.
bool PrefillAttentionSupports(int32_t head_dim, const float* q, int64_t ld_q, const void* k_cache, const void* v_cache,
                              const AttentionArgs& a, const float* out, int64_t ld_out);
cudaError_t LaunchAttentionPrefill(const float* q, int64_t ld_q, const void* k_cache, const void* v_cache,
                                   const AttentionArgs& a, const DeviceBatch& b, float* out, int64_t ld_out,
                                   cudaStream_t s);

// argmax.cu: ids[r] = the first column of row r holding its largest value (0 when none is
// above -inf), (rows, n); ids in device memory.
cudaError_t LaunchArgMaxRows(const float* x, int64_t ld, int64_t rows, int64_t n, int32_t* ids, cudaStream_t s);

// gather.cu: out[i] = x[logit_rows[i]], (n_logit_rows, n).
cudaError_t LaunchGatherRows(const float* x, int64_t ld_x, float* out, int64_t ld_out, int64_t n,
                             const DeviceBatch& b, cudaStream_t s);

// matvec_q.cu: y[m][n] = sum_k x[m][k] * W[n][k] for m <= kMatVecMaxRows, dequantizing W in
// the kernel. REQUIRES: W.cols % 32 == 0.
constexpr int kMatVecMaxRows = 8;
cudaError_t LaunchMatVec(const DeviceMatrix& w, const float* x, int64_t ld_x, int64_t m, float* y, int64_t ld_y,
                         cudaStream_t s);
// The same for `count` matrices of one type and width at once (one launch): y[i] = x · w[i]ᵀ.
// row_start[i] is the number of rows of the matrices before i (row_start[0] = 0, row_start[count]
// the total). Passed by value, so a recorded launch keeps its own copy.
//
// Fused forms, for a decode step in fewer launches:
//  - norm: x is RMS-normalized by the weight `norm` (length cols) on the fly: each warp also sums
//    the squares of the x rows it reads, and scales its dot products by 1/sqrt(mean + eps), so
//    no normalized copy of x is written;
//  - out = kAdd: y[i] += the product (the residual stream after a projection);
//  - out = kSwiGlu: count == 2 matrices of equal rows (gate, up); each warp takes row r of both
//    and writes y[0] = silu(gate) * up.
constexpr int kMatVecMaxMatrices = 3;
enum class MatVecOut : int { kStore, kAdd, kSwiGlu };
struct MatVecSet {
  int count = 0;
  DeviceMatrix w[kMatVecMaxMatrices];
  float* y[kMatVecMaxMatrices] = {};
  int64_t ld_y[kMatVecMaxMatrices] = {};
  int64_t row_start[kMatVecMaxMatrices + 1] = {};
  MatVecOut out = MatVecOut::kStore;
  const float* norm = nullptr;  // RMSNorm weight, or none
  float eps = 0.0f;
};
cudaError_t LaunchMatVecSet(const MatVecSet& set, const float* x, int64_t ld_x, int64_t m, cudaStream_t s);

// gemm.cu helpers: W dequantized to f16 (or copied, for F16) / bf16 (for BF16), and f32
// activations converted to the same 16-bit type, for cuBLAS.
cudaError_t LaunchDequantizeTo16(const DeviceMatrix& w, bool bf16, void* out, cudaStream_t s);
cudaError_t LaunchConvertTo16(const float* x, int64_t ld_x, int64_t rows, int64_t cols, bool bf16, void* out,
                              cudaStream_t s);

}  // namespace lms::gpu
