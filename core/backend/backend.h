// The compute backend interface: a small table of operations the model forward is written
// against. core ships the CPU implementation; gpu/ registers a CUDA one. Tensors are plain views
// (pointer, type, shape, row stride) into memory that the backend owns or can address.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor/types.h"
#include "core/util/status.h"

namespace lms {

// A 2-D row-major view: `rows` rows of `cols` elements, `row_stride` bytes apart.
// 1-D tensors have rows == 1. Quantized types: cols is a multiple of the block size.
struct TensorView {
  void* data = nullptr;
  TensorType type = TensorType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_stride = 0;

  float* f32() const { return static_cast<float*>(data); }
  uint8_t* row(int64_t r) const { return static_cast<uint8_t*>(data) + r * row_stride; }
};

// Where one forward batch's tokens come from and where their keys and values go. The batch
// may mix prompt chunks and single decode tokens of different sequences: every token attends
// to cache positions [0, position] of its own sequence, read through that sequence's block
// table (a token's own K/V are stored before attention runs).
struct BatchLayout {
  std::vector<int32_t> tokens;        // [n_tokens]
  std::vector<int32_t> positions;     // [n_tokens] position within its sequence
  std::vector<int32_t> seq_of_token;  // [n_tokens] index into block_tables
  std::vector<int32_t> slots;         // [n_tokens] cache slot = block * block_size + offset
  std::vector<std::vector<int32_t>> block_tables;  // [n_seqs][blocks]
  std::vector<int32_t> logit_rows;    // token rows whose logits are wanted, in output order
  int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }
};

struct RopeParams {
  int32_t n_dims = 0;        // rotated dimensions per head (≤ head_dim)
  float theta_base = 10000.0f;
  float freq_scale = 1.0f;   // linear position scaling
  bool neox = false;         // NeoX style: pairs (i, i + n_dims/2) instead of (2i, 2i+1)
};

struct AttentionParams {
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 16;
  float scale = 1.0f;        // usually 1/sqrt(head_dim)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Name() const = 0;
  virtual int Threads() const { return 1; }

  // Memory the backend can compute on. Returned views are zero-initialised and stay valid
  // until the backend is destroyed.
  virtual Result<TensorView> Allocate(TensorType type, int64_t rows, int64_t cols) = 0;
  // Makes a weight usable by this backend (the CPU backend uses host memory in place).
  virtual Result<TensorView> AdoptWeight(const TensorView& host) = 0;
  virtual Status CopyToHost(const TensorView& src, void* dst, size_t bytes) = 0;
  // Writes `bytes` bytes of host memory into a tensor this backend allocated (tests, staging).
  virtual Status CopyFromHost(const void* src, const TensorView& dst, size_t bytes) {
    std::memcpy(dst.data, src, bytes);
    return Status::Ok();
  }
  // Copies rows [src_row, src_row + n) of t over rows [dst_row, dst_row + n) (KV-cache
  // copy-on-write). REQUIRES: the ranges lie inside t and do not overlap.
  virtual Status CopyRows(const TensorView& t, int64_t src_row, int64_t dst_row, int64_t n) {
    std::memcpy(t.row(dst_row), t.row(src_row), static_cast<size_t>(n) * t.row_stride);
    return Status::Ok();
  }

  // Called once per forward with the batch about to run (a GPU backend uploads it here).
  virtual Status BeginBatch(const BatchLayout& batch) = 0;

  // out[t] = table[ids[t]] (dequantised to f32).
  virtual Status Embed(const TensorView& table, const TensorView& out) = 0;
  // out = x / rms(x) * weight, row by row.
  virtual Status RmsNorm(const TensorView& x, const TensorView& weight, float eps,
                         const TensorView& out) = 0;
  // For each i: outs[i][m][n] = sum_k x[m][k] * weights[i][n][k] (+ biases[i][n] when given).
  // Several weights sharing one input run together so the input is prepared once.
  virtual Status Linear(const TensorView& x, std::span<const TensorView> weights,
                        std::span<const TensorView> biases, std::span<const TensorView> outs) = 0;
  // Rotates q (rows: tokens; cols: n_heads*head_dim) and k in place by the batch's positions.
  virtual Status Rope(const TensorView& q, const TensorView& k, int32_t head_dim,
                      const RopeParams& p) = 0;
  // Writes this batch's k and v rows into the layer's caches at the batch's slots.
  virtual Status StoreKv(const TensorView& k, const TensorView& v, const TensorView& k_cache,
                         const TensorView& v_cache) = 0;
  // Causal attention of each token over its sequence's cached keys and values.
  virtual Status Attention(const TensorView& q, const TensorView& k_cache,
                           const TensorView& v_cache, const AttentionParams& p,
                           const TensorView& out) = 0;
  // out = silu(gate) * up.
  virtual Status SwiGlu(const TensorView& gate, const TensorView& up, const TensorView& out) = 0;
  // x += y.
  virtual Status AddInPlace(const TensorView& x, const TensorView& y) = 0;
  // out[i] = x[rows[i]] for the batch's logit rows.
  virtual Status GatherLogitRows(const TensorView& x, const TensorView& out) = 0;

  // Sequences of the ops above that a backend may run in fewer passes (a decode step on a GPU:
  // fewer launches, no round trip of intermediates through memory). The defaults (backend.cpp)
  // run the ops one after another, so their results are those ops' bit for bit; an override
  // matches them within the ops' own tolerance. The scratch tensors are where the defaults keep
  // intermediates: an override may leave them untouched, so nothing may read them afterwards.
  //
  // xn = RmsNorm(x, norm, eps); Linear(xn, weights, biases, outs).
  virtual Status NormLinear(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                            std::span<const TensorView> weights, std::span<const TensorView> biases,
                            std::span<const TensorView> outs);
  // xn = RmsNorm(x, norm, eps); gate, up = Linear(xn, {w_gate, w_up}); out = silu(gate) * up.
  virtual Status NormLinearSwiGlu(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                                  const TensorView& w_gate, const TensorView& w_up, const TensorView& gate,
                                  const TensorView& up, const TensorView& out);
  // y = Linear(x, w); acc += y (the residual stream after a projection).
  virtual Status LinearAdd(const TensorView& x, const TensorView& w, const TensorView& y, const TensorView& acc);
  // Rope(q, k, head_dim, p); StoreKv(k, v, k_cache, v_cache).
  virtual Status RopeStoreKv(const TensorView& q, const TensorView& k, const TensorView& v, int32_t head_dim,
                             const RopeParams& p, const TensorView& k_cache, const TensorView& v_cache);
  // ids[r] (host memory) = the first column of f32 row r of x holding the row's largest value,
  // as the greedy sampler picks (NaNs never win; a row with no value above -inf gives 0). The
  // default copies the rows to the host; a GPU backend copies only the ids.
  virtual Status ArgMaxRows(const TensorView& x, int32_t* ids);
};

// The first index of row[0..n) holding its largest value; 0 when none is above -inf (NaNs never
// win). The rule of the greedy sampler and of Backend::ArgMaxRows.
int32_t FirstArgMax(const float* row, int64_t n);

struct CpuBackendOptions {
  int threads = 0;  // 0: the cores available
  // Repack quantized weights at load for the faster kernels (double the weight memory of the
  // types concerned, since the mapped file stays). Env LMS_PREPACK=0 turns it off.
  bool prepack = true;
};
std::unique_ptr<Backend> MakeCpuBackend(const CpuBackendOptions& options);

}  // namespace lms
