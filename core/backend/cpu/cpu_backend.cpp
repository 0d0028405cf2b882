// The CPU backend: host memory, a thread pool, and ops built from the kernels in core/tensor
// (quantized matrix products) and vec_math (the f32/f16 vector routines).
#include <fmt/format.h>

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/cpu/attention_tile.h"
#include "core/backend/cpu/vec_math.h"
#include "core/tensor/matmul.h"
#include "core/tensor/quant.h"
#include "core/util/thread_pool.h"

namespace lms {
namespace {

constexpr int64_t kColumnChunk = 16;  // output columns are split between threads in these units
constexpr size_t kMaxLinearWeights = 8;  // weights sharing one Linear call

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& o) : pool_(o.threads), prepack_(o.prepack) {
    scratch_.resize(pool_.size());
    if (const char* env = std::getenv("LMS_PREPACK"); env != nullptr && std::string(env) == "0") prepack_ = false;
  }

  std::string Name() const override { return fmt::format("cpu ({} threads)", pool_.size()); }
  int Threads() const override { return pool_.size(); }

  Result<TensorView> Allocate(TensorType type, int64_t rows, int64_t cols) override {
    const auto& ti = TypeInfo(type);
    if (rows <= 0 || cols <= 0 || cols % ti.block_elems != 0) {
      return Status::InvalidArgument(fmt::format("cannot allocate a {} tensor of {} x {}",
                                                 ti.name, rows, cols));
    }
    TensorView t;
    t.type = type;
    t.rows = rows;
    t.cols = cols;
    t.row_stride = RowBytes(type, cols);
    const size_t bytes = t.row_stride * static_cast<size_t>(rows);
    // 64-byte aligned, zeroed.
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) return Status::ResourceExhausted(fmt::format("out of memory allocating {} bytes", bytes));
    std::memset(p, 0, bytes);
    buffers_.emplace_back(p);
    t.data = p;
    return t;
  }

  // Weights stay where the model file is mapped; matrices of the 32-block quant types also get
  // a prepacked copy (see matmul.h), found by their data pointer when a Linear uses them.
  Result<TensorView> AdoptWeight(const TensorView& host) override {
    if (prepack_ && CanPrepackWeights(host.type) && ValidateMatMul(host.type, host.cols).ok()) {
      const size_t bytes = PrepackedWeightBytes(host.type, host.rows, host.cols);
      // Large matrices on 2 MiB pages where the kernel allows it: a token streams through all
      // weights, and 4 KiB pages would cost a TLB miss every 4 KiB.
      const size_t align = bytes >= (size_t{4} << 20) ? (size_t{2} << 20) : 64;
      void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
      if (p && align > 64) madvise(p, (bytes + align - 1) / align * align, MADV_HUGEPAGE);
      if (!p) return Status::ResourceExhausted(fmt::format("out of memory repacking {} bytes", bytes));
      const int64_t groups = (host.rows + 7) / 8;
      pool_.ParallelFor(groups, [&](int64_t b, int64_t e) {
        PrepackWeights(host.type, host.data, host.row_stride, host.rows, host.cols, b, e, p);
      });
      buffers_.emplace_back(p);
      prepacked_[host.data] = p;
    }
    return host;
  }

  Status CopyToHost(const TensorView& src, void* dst, size_t bytes) override {
    std::memcpy(dst, src.data, bytes);
    return Status::Ok();
  }

  Status BeginBatch(const BatchLayout& batch) override {
    batch_ = &batch;
    rope_cache_valid_ = false;
    return Status::Ok();
  }

  Status Embed(const TensorView& table, const TensorView& out) override {
    const int32_t n = batch_->n_tokens();
    for (int32_t t = 0; t < n; ++t) {
      const int32_t id = batch_->tokens[t];
      if (id < 0 || id >= table.rows) {
        return Status::InvalidArgument(fmt::format("token id {} is outside the vocabulary (0..{})", id, table.rows - 1));
      }
    }
    ParallelRows(n, [&](int64_t t) {
      DequantizeRow(table.type, table.row(batch_->tokens[t]), reinterpret_cast<float*>(out.row(t)), table.cols);
    });
    return Status::Ok();
  }

  Status RmsNorm(const TensorView& x, const TensorView& w, float eps, const TensorView& out) override {
    const int n = static_cast<int>(x.cols);
    ParallelRows(x.rows, [&](int64_t r) {
      const float* xr = reinterpret_cast<const float*>(x.row(r));
      float* o = reinterpret_cast<float*>(out.row(r));
      const float scale = static_cast<float>(1.0 / std::sqrt(cpu::SumSquares(xr, n) / n + eps));
      const float* wr = w.f32();
      for (int i = 0; i < n; ++i) o[i] = xr[i] * scale * wr[i];
    });
    return Status::Ok();
  }

  Status Linear(const TensorView& x, std::span<const TensorView> weights,
                std::span<const TensorView> biases, std::span<const TensorView> outs) override {
    const int64_t m = x.rows, k = x.cols;
    // All weights of one call share the input format only if they share a type; group by type.
    size_t i = 0;
    while (i < weights.size()) {
      size_t j = i + 1;
      while (j < weights.size() && weights[j].type == weights[i].type) ++j;
      LMS_RETURN_IF_ERROR(LinearSameType(x, m, k, weights.subspan(i, j - i), outs.subspan(i, j - i)));
      i = j;
    }
    for (size_t b = 0; b < biases.size(); ++b) {
      if (!biases[b].data) continue;
      const float* bias = biases[b].f32();
      for (int64_t r = 0; r < m; ++r) {
        float* o = reinterpret_cast<float*>(outs[b].row(r));
        for (int64_t c = 0; c < outs[b].cols; ++c) o[c] += bias[c];
      }
    }
    return Status::Ok();
  }

  Status Rope(const TensorView& q, const TensorView& k, int32_t head_dim, const RopeParams& p) override {
    const int32_t n = batch_->n_tokens();
    const int half = p.n_dims / 2;
    if (!rope_cache_valid_) {
      // cos/sin per token, computed once per batch and shared by every layer. theta follows
      // the same float recurrence as llama.cpp (theta_i = pos * base^(-2i/n_dims)).
      rope_cos_.resize(static_cast<size_t>(n) * half);
      rope_sin_.resize(static_cast<size_t>(n) * half);
      const float theta_scale = std::pow(p.theta_base, -2.0f / p.n_dims);
      for (int32_t t = 0; t < n; ++t) {
        float theta = static_cast<float>(batch_->positions[t]);
        for (int i = 0; i < half; ++i) {
          const float th = theta * p.freq_scale;
          rope_cos_[t * half + i] = std::cos(th);
          rope_sin_[t * half + i] = std::sin(th);
          theta *= theta_scale;
        }
      }
      rope_cache_valid_ = true;
    }
    auto rotate = [&](const TensorView& x) {
      const int64_t heads = x.cols / head_dim;
      ParallelRows(n, [&](int64_t t) {
        const float* cs = &rope_cos_[t * half];
        const float* sn = &rope_sin_[t * half];
        float* row = reinterpret_cast<float*>(x.row(t));
        for (int64_t h = 0; h < heads; ++h) {
          float* v = row + h * head_dim;
          for (int i = 0; i < half; ++i) {
            const int a = p.neox ? i : 2 * i, b = p.neox ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * cs[i];
          }
        }
      });
    };
    rotate(q);
    rotate(k);
    return Status::Ok();
  }

  Status StoreKv(const TensorView& k, const TensorView& v, const TensorView& k_cache,
                 const TensorView& v_cache) override {
    const int32_t n = batch_->n_tokens();
    for (int32_t t = 0; t < n; ++t) {
      const int32_t slot = batch_->slots[t];
      if (slot < 0 || slot >= k_cache.rows) {
        return Status::Internal(fmt::format("KV slot {} outside the cache ({} rows)", slot, k_cache.rows));
      }
    }
    auto store = [&](const TensorView& src, const TensorView& dst) {
      ParallelRows(n, [&](int64_t t) {
        const float* s = reinterpret_cast<const float*>(src.row(t));
        uint8_t* d = dst.row(batch_->slots[t]);
        if (dst.type == TensorType::kF16) {
          cpu::F32ToF16(s, reinterpret_cast<uint16_t*>(d), static_cast<int>(src.cols));
        } else if (dst.type == TensorType::kQ8_0) {
          (void)QuantizeRow(TensorType::kQ8_0, s, d, src.cols);  // cols % 32 == 0: KvCache::Create checks it
        } else {
          std::memcpy(d, s, src.cols * sizeof(float));
        }
      });
    };
    store(k, k_cache);
    store(v, v_cache);
    return Status::Ok();
  }

  Status Attention(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache,
                   const AttentionParams& p, const TensorView& out) override {
    const int32_t n = batch_->n_tokens();
    const int group = p.n_heads / p.n_kv_heads;
    // Tiles: runs of consecutive batch tokens of one sequence, cut into groups of tokens whose
    // query heads (group of them per KV head) fill one tile.
    if (group > cpu::kMaxTileQueries) {
      return Status::Unsupported(fmt::format("{} query heads per KV head (at most {})", group, cpu::kMaxTileQueries));
    }
    const int per_tile = std::max(1, cpu::kMaxTileQueries / group);
    tiles_.clear();
    int32_t max_ctx = 0;
    for (int32_t t = 0; t < n;) {
      int32_t e = t + 1;
      while (e < n && e - t < per_tile && batch_->seq_of_token[e] == batch_->seq_of_token[t]) ++e;
      tiles_.push_back({t, e});
      t = e;
    }
    for (int32_t t = 0; t < n; ++t) max_ctx = std::max(max_ctx, batch_->positions[t] + 1);
    const size_t score_floats = static_cast<size_t>(cpu::kMaxTileQueries) * cpu::ScoreStride(max_ctx);
    for (auto& s : scratch_) {
      if (s.scores.size() < score_floats) s.scores.resize(score_floats);
      if (s.rows.size() < static_cast<size_t>(cpu::kKeyChunk) * p.head_dim) s.rows.resize(cpu::kKeyChunk * p.head_dim);
    }
    const int64_t total = static_cast<int64_t>(tiles_.size()) * p.n_kv_heads;
    auto work = [&](int ti, int nt) {
      cpu::AttentionTile tile;
      tile.block_size = p.block_size;
      tile.k_cache = static_cast<const uint8_t*>(k_cache.data);
      tile.v_cache = static_cast<const uint8_t*>(v_cache.data);
      tile.row_stride = k_cache.row_stride;
      tile.cache_type = k_cache.type;
      tile.head_dim = p.head_dim;
      tile.scale = p.scale;
      tile.scores = scratch_[ti].scores.data();
      tile.rows = scratch_[ti].rows.data();
      // Interleaved assignment balances the causal triangle between threads.
      for (int64_t item = ti; item < total; item += nt) {
        const auto [t0, t1] = tiles_[item / p.n_kv_heads];
        const int kvh = static_cast<int>(item % p.n_kv_heads);
        tile.block_table = batch_->block_tables[batch_->seq_of_token[t0]].data();
        tile.kv_offset = kvh * p.head_dim;
        tile.nq = 0;
        for (int32_t t = t0; t < t1; ++t) {
          for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
            tile.q[tile.nq] = reinterpret_cast<const float*>(q.row(t)) + h * p.head_dim;
            tile.out[tile.nq] = reinterpret_cast<float*>(out.row(t)) + h * p.head_dim;
            tile.pos[tile.nq] = batch_->positions[t];
            ++tile.nq;
          }
        }
        cpu::AttendTile(tile);
      }
    };
    if (total == 1 || pool_.size() == 1) {
      work(0, 1);
    } else {
      pool_.Run(work);
    }
    return Status::Ok();
  }

  Status SwiGlu(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    ParallelRows(gate.rows, [&](int64_t r) {
      cpu::SiluMul(reinterpret_cast<const float*>(gate.row(r)), reinterpret_cast<const float*>(up.row(r)),
                   reinterpret_cast<float*>(out.row(r)), static_cast<int>(gate.cols));
    });
    return Status::Ok();
  }

  Status AddInPlace(const TensorView& x, const TensorView& y) override {
    ParallelRows(x.rows, [&](int64_t r) {
      float* a = reinterpret_cast<float*>(x.row(r));
      const float* b = reinterpret_cast<const float*>(y.row(r));
      for (int64_t i = 0; i < x.cols; ++i) a[i] += b[i];
    });
    return Status::Ok();
  }

  Status ArgMaxRows(const TensorView& x, int32_t* ids) override {  // in place: x is host memory
    for (int64_t r = 0; r < x.rows; ++r) ids[r] = FirstArgMax(reinterpret_cast<const float*>(x.row(r)), x.cols);
    return Status::Ok();
  }

  Status GatherLogitRows(const TensorView& x, const TensorView& out) override {
    const auto& rows = batch_->logit_rows;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] < 0 || rows[i] >= x.rows) return Status::Internal("logit row outside the batch");
      std::memcpy(out.row(static_cast<int64_t>(i)), x.row(rows[i]), x.cols * sizeof(float));
    }
    return Status::Ok();
  }

 private:
  struct ThreadScratch {
    std::vector<float> scores;
    std::vector<float> rows;
  };
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };

  // Rows are few at decode time: small row counts run on the calling thread only.
  template <typename F>
  void ParallelRows(int64_t rows, F&& fn) {
    if (rows < 4 || pool_.size() == 1) {
      for (int64_t r = 0; r < rows; ++r) fn(r);
      return;
    }
    pool_.ParallelFor(rows, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) fn(r);
    });
  }

  Status LinearSameType(const TensorView& x, int64_t m, int64_t k, std::span<const TensorView> ws,
                        std::span<const TensorView> outs) {
    const TensorType wt = ws[0].type;
    for (size_t i = 0; i < ws.size(); ++i) {
      if (ws[i].cols != k || outs[i].cols != ws[i].rows || outs[i].rows != m) {
        return Status::Internal(fmt::format("linear shapes: x {}x{}, w {}x{}, out {}x{}", m, k,
                                            ws[i].rows, ws[i].cols, outs[i].rows, outs[i].cols));
      }
    }
    const size_t need = ActivationBytes(wt, m, k);
    if (prepared_.size() < need) prepared_.resize(need);
    void* prep = prepared_.data();
    const float* xf = x.f32();
    const int64_t ldx = static_cast<int64_t>(x.row_stride / sizeof(float));
    if (m < 4 || pool_.size() == 1) {
      PrepareActivationRows(wt, xf, k, ldx, 0, m, prep);
    } else {
      pool_.ParallelFor(m, [&](int64_t b, int64_t e) { PrepareActivationRows(wt, xf, k, ldx, b, e, prep); });
    }
    // Prepacked copies, used while the active kernel set has their kernel.
    const void* packed[kMaxLinearWeights] = {};
    if (ws.size() > kMaxLinearWeights) return Status::Internal("too many weights in one linear call");
    if (CanPrepackWeights(wt)) {
      for (size_t i = 0; i < ws.size(); ++i) {
        auto it = prepacked_.find(ws[i].data);
        if (it != prepacked_.end()) packed[i] = it->second;
      }
    }
    // Concatenate the output columns of every weight and split them in chunks between threads.
    int64_t total_chunks = 0;
    std::vector<int64_t> first_chunk(ws.size() + 1);
    for (size_t i = 0; i < ws.size(); ++i) {
      first_chunk[i] = total_chunks;
      total_chunks += (ws[i].rows + kColumnChunk - 1) / kColumnChunk;
    }
    first_chunk[ws.size()] = total_chunks;
    pool_.Run([&](int ti, int nt) {
      const int64_t per = (total_chunks + nt - 1) / nt;
      const int64_t c0 = std::min(total_chunks, ti * per), c1 = std::min(total_chunks, c0 + per);
      for (size_t i = 0; i < ws.size() && c0 < c1; ++i) {
        const int64_t lo = std::max(c0, first_chunk[i]), hi = std::min(c1, first_chunk[i + 1]);
        if (lo >= hi) continue;
        const int64_t n0 = (lo - first_chunk[i]) * kColumnChunk;
        const int64_t n1 = std::min(ws[i].rows, (hi - first_chunk[i]) * kColumnChunk);
        const int64_t ldy = static_cast<int64_t>(outs[i].row_stride / sizeof(float));
        if (packed[i] != nullptr) {
          MatMulPrepackedWeights(wt, packed[i], ws[i].rows, n0, n1, prep, m, k, outs[i].f32(), ldy);
        } else {
          MatMulPrepared(wt, ws[i].data, ws[i].row_stride, n0, n1, prep, m, k, outs[i].f32(), ldy);
        }
      }
    });
    return Status::Ok();
  }

  ThreadPool pool_;
  std::vector<std::unique_ptr<void, FreeDeleter>> buffers_;
  std::vector<ThreadScratch> scratch_;
  std::vector<uint8_t> prepared_;
  const BatchLayout* batch_ = nullptr;
  bool rope_cache_valid_ = false;
  bool prepack_ = true;
  std::unordered_map<const void*, const void*> prepacked_;  // weight data -> prepacked copy
  std::vector<float> rope_cos_, rope_sin_;
  std::vector<std::pair<int32_t, int32_t>> tiles_;  // [first, end) batch tokens of one tile
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace lms
