// The CUDA backend. Tensors live in device memory from a DeviceArena; every op enqueues kernels
// on one stream, and only CopyToHost waits for them. BeginBatch uploads the batch layout (token
// ids, positions, slots, block tables) in one copy from pinned memory. With graphs on, the
// launches of a decode-sized step are recorded instead and run as one CUDA graph when the step's
// results are read (gpu/step_graphs.h).
#include "gpu/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "gpu/cuda_check.h"
#include "gpu/device_arena.h"
#include "gpu/ops/ops.h"
#include "gpu/ops/prefill_tiles.h"
#include "gpu/op_times.h"
#include "gpu/step_graphs.h"

namespace lms::gpu {
namespace {

int64_t Ld(const TensorView& t) { return static_cast<int64_t>(t.row_stride / sizeof(float)); }

DeviceMatrix Matrix(const TensorView& t) {
  return DeviceMatrix{t.data, t.type, t.rows, t.cols, t.row_stride};
}

Status ToStatus(cudaError_t e, const char* op) { return CudaStatus(e, op); }
Status ToStatus(Status s, const char*) { return s; }

// out (m x n, row-major) = x (m x k) W^T with 16-bit inputs: column-major, out^T = op(A) B with
// A = W read column-major as k x n (transposed) and B = x read column-major as k x m.
// beta 1 adds the product to out (out += x W^T).
Status Gemm16(cublasHandle_t h, int n, int m, int k, const void* w, cudaDataType dt, int ldw, const void* x16,
              float* out, int ld_out, float beta, cudaStream_t) {
  const float alpha = 1.0f;
  return CublasStatus(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, dt, ldw, x16, dt, k, &beta, out,
                                   CUDA_R_32F, ld_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "cublasGemmEx");
}

RopeArgs MakeRopeArgs(int32_t head_dim, const RopeParams& p) {
  RopeArgs a;
  a.head_dim = head_dim;
  a.n_dims = p.n_dims;
  a.theta_scale = std::pow(p.theta_base, -2.0f / p.n_dims);  // the CPU's expression, in float
  a.freq_scale = p.freq_scale;
  a.neox = p.neox;
  return a;
}

Status LinearShapes(const TensorView& x, std::span<const TensorView> weights, std::span<const TensorView> outs) {
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i].cols != x.cols || outs[i].cols != weights[i].rows || outs[i].rows != x.rows) {
      return Status::Internal(fmt::format("linear shapes: x {}x{}, w {}x{}, out {}x{}", x.rows, x.cols, weights[i].rows,
                                          weights[i].cols, outs[i].rows, outs[i].cols));
    }
  }
  return Status::Ok();
}

// Whether x's products take the mat-vec kernel (a decode-sized batch).
bool MatVecSized(const TensorView& x) {
  const bool aligned = Ld(x) % 4 == 0 && reinterpret_cast<uintptr_t>(x.data) % 16 == 0;
  return x.rows <= kMatVecMaxRows && x.cols % 32 == 0 && aligned;
}

// Whether the mat-vec kernel can apply this RMSNorm weight to x on the fly.
bool NormFuses(const TensorView& norm, const TensorView& x) {
  return norm.type == TensorType::kF32 && norm.cols == x.cols && reinterpret_cast<uintptr_t>(norm.data) % 16 == 0;
}

// Block tables are uploaded this many entries wide at least, and in powers of two, so a growing
// sequence changes the layout (and so a graph's arguments) only now and then.
int32_t PaddedStride(size_t widest) {
  size_t s = 4;
  while (s < widest) s *= 2;
  return static_cast<int32_t>(s);
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, const CudaBackendOptions& o)
      : device_(device),
        graphs_(o.graphs),
        tiled_prefill_(o.tiled_prefill),
        dependent_launches_(o.dependent_launches),
        steps_(o.graph_stats) {}

  ~CudaBackend() override {
    cudaSetDevice(device_);
    steps_.Discard();
    if (stream_) cudaStreamSynchronize(stream_);
    times_.reset();
    if (cublas_) cublasDestroy(cublas_);
    if (upload_done_) cudaEventDestroy(upload_done_);
    if (pinned_) cudaFreeHost(pinned_);
    if (pinned_ids_) cudaFreeHost(pinned_ids_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status Init() {
    LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    LMS_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device_));
    name_ = fmt::format("cuda:{} ({}, {} MiB, sm_{}{})", device_, prop.name, prop.totalGlobalMem >> 20, prop.major,
                        prop.minor);
    sm_count_ = prop.multiProcessorCount;
    // Programmatic dependent launch needs compute capability 9.0; elsewhere the launches stay plain.
    if (dependent_launches_ && prop.major >= 9) SetDependentLaunches(true);
    // Non-blocking (graph capture wants a stream that does not sync with the legacy default
    // stream); Allocate and AdoptWeight wait for their default-stream memsets and copies instead.
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LMS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&upload_done_, cudaEventDisableTiming));
    LMS_CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas_));
    LMS_CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas_, stream_));
    // A workspace of our own, so cuBLAS allocates nothing while a graph is being captured.
    LMS_ASSIGN_OR_RETURN(void* ws, arena_.Allocate(kCublasWorkspace));
    LMS_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(cublas_, ws, kCublasWorkspace));
    // Split attention's partial results: a fixed buffer, so a recorded step's pointer stays valid.
    LMS_ASSIGN_OR_RETURN(void* parts, arena_.Allocate(kAttentionPartialBytes));
    attention_partials_ = static_cast<float*>(parts);
    if (OpTimesRequested()) times_ = std::make_unique<OpTimes>();
    return Status::Ok();
  }

  // The op times so far (see CudaOpTimes).
  Result<std::vector<OpTimeTotal>> TakeOpTimes(bool reset) {
    if (!times_) return std::vector<OpTimeTotal>{};
    LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    LMS_RETURN_IF_ERROR(FlushStep());
    LMS_RETURN_IF_ERROR(times_->Collect());
    auto totals = times_->Totals();
    if (reset) times_->Reset();
    return totals;
  }

  std::string Name() const override { return name_; }

  Result<TensorView> Allocate(TensorType type, int64_t rows, int64_t cols) override {
    const auto& ti = TypeInfo(type);
    if (rows <= 0 || cols <= 0 || cols % ti.block_elems != 0) {
      return Status::InvalidArgument(fmt::format("cannot allocate a {} tensor of {} x {}", ti.name, rows, cols));
    }
    LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    LMS_RETURN_IF_ERROR(FlushStep());
    TensorView t;
    t.type = type;
    t.rows = rows;
    t.cols = cols;
    t.row_stride = RowBytes(type, cols);
    LMS_ASSIGN_OR_RETURN(t.data, arena_.Allocate(t.row_stride * static_cast<size_t>(rows)));
    LMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());  // the zeroing is done before any op reads it
    return t;
  }

  // Weights are copied to the device as they are stored: quantized stays quantized.
  Result<TensorView> AdoptWeight(const TensorView& host) override {
    if (!KernelSupportsType(host.type)) {
      return Status::Unsupported(fmt::format("the CUDA backend cannot compute with {} weights",
                                             TensorTypeName(host.type)));
    }
    LMS_ASSIGN_OR_RETURN(TensorView t, Allocate(host.type, host.rows, host.cols));
    if (host.row_stride == t.row_stride) {
      LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(t.data, host.data, t.row_stride * host.rows, cudaMemcpyHostToDevice));
    } else {
      LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy2D(t.data, t.row_stride, host.data, host.row_stride, t.row_stride, host.rows,
                                            cudaMemcpyHostToDevice));
    }
    LMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());  // the copy may return before its DMA ends
    return t;
  }

  Status CopyToHost(const TensorView& src, void* dst, size_t bytes) override {
    LMS_RETURN_IF_ERROR(FlushStep());
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src.data, bytes, cudaMemcpyDeviceToHost, stream_));
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  Status CopyFromHost(const void* src, const TensorView& dst, size_t bytes) override {
    LMS_RETURN_IF_ERROR(FlushStep());
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.data, src, bytes, cudaMemcpyHostToDevice, stream_));
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  Status CopyRows(const TensorView& t, int64_t src_row, int64_t dst_row, int64_t n) override {
    LMS_RETURN_IF_ERROR(FlushStep());
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(t.row(dst_row), t.row(src_row), static_cast<size_t>(n) * t.row_stride,
                                             cudaMemcpyDeviceToDevice, stream_));
    return Status::Ok();
  }

  Status BeginBatch(const BatchLayout& batch) override;

  Status Embed(const TensorView& table, const TensorView& out) override {
    for (int32_t id : batch_->tokens) {
      if (id < 0 || id >= table.rows) {
        return Status::InvalidArgument(fmt::format("token id {} is outside the vocabulary (0..{})", id, table.rows - 1));
      }
    }
    return Op("embed", LaunchEmbed, Matrix(table), dev_, out.f32(), Ld(out));
  }

  Status RmsNorm(const TensorView& x, const TensorView& w, float eps, const TensorView& out) override {
    return Op("rms_norm", LaunchRmsNorm, x.f32(), Ld(x), w.f32(), eps, out.f32(), Ld(out), x.rows,
              static_cast<int>(x.cols));
  }

  Status Linear(const TensorView& x, std::span<const TensorView> weights, std::span<const TensorView> biases,
                std::span<const TensorView> outs) override;

  Status Rope(const TensorView& q, const TensorView& k, int32_t head_dim, const RopeParams& p) override {
    const RopeArgs a = MakeRopeArgs(head_dim, p);
    LMS_RETURN_IF_ERROR(Op("rope", LaunchRope, q.f32(), Ld(q), static_cast<int32_t>(q.cols / head_dim), a, dev_));
    return Op("rope", LaunchRope, k.f32(), Ld(k), static_cast<int32_t>(k.cols / head_dim), a, dev_);
  }

  Status StoreKv(const TensorView& k, const TensorView& v, const TensorView& k_cache,
                 const TensorView& v_cache) override {
    LMS_RETURN_IF_ERROR(CheckKvStore(k_cache));
    const bool f16 = k_cache.type == TensorType::kF16;
    const int64_t ld_cache = f16 ? static_cast<int64_t>(k_cache.row_stride / 2) : Ld(k_cache);
    if (k.cols == v.cols) {
      return Op("store_kv", LaunchStoreKv2, k.f32(), Ld(k), v.f32(), Ld(v), k_cache.data, v_cache.data, f16, ld_cache,
                k.cols, dev_);
    }
    LMS_RETURN_IF_ERROR(Op("store_kv", LaunchStoreKv, k.f32(), Ld(k), k_cache.data, f16, ld_cache, k.cols, dev_));
    return Op("store_kv", LaunchStoreKv, v.f32(), Ld(v), v_cache.data, f16, ld_cache, v.cols, dev_);
  }

  Status Attention(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache,
                   const AttentionParams& p, const TensorView& out) override {
    if (k_cache.type != TensorType::kF16 && k_cache.type != TensorType::kF32) {
      return Status::Unsupported(fmt::format("CUDA backend: a {} KV cache is not supported yet (use --kv-type f16)",
                                             TensorTypeName(k_cache.type)));
    }
    const int group = p.n_heads / p.n_kv_heads;
    if (!AttentionSupports(p.head_dim, group)) {
      return Status::Unsupported(fmt::format("CUDA attention: head_dim {} with {} query heads per KV head "
                                             "(head_dim 32/64/128/256, at most {} per KV head)",
                                             p.head_dim, group, kMaxAttentionGroup));
    }
    AttentionArgs a;
    a.n_heads = p.n_heads;
    a.n_kv_heads = p.n_kv_heads;
    a.head_dim = p.head_dim;
    a.block_size = p.block_size;
    a.scale = p.scale;
    a.f16 = k_cache.type == TensorType::kF16;
    a.ld_cache = static_cast<int64_t>(k_cache.row_stride / (a.f16 ? 2 : 4));
    a.splits = AttentionSplits(static_cast<int64_t>(dev_.n_tokens) * p.n_kv_heads, AttentionPartialFloats(group, p.head_dim));
    a.partials = attention_partials_;
    // Prefill tiles go to the tiled kernel where it takes these operands; else the paged kernel
    // takes every token.
    DeviceBatch batch = dev_;
    const bool tiled = batch.n_tiles > 0 && PrefillAttentionSupports(p.head_dim, q.f32(), Ld(q), k_cache.data,
                                                                     v_cache.data, a, out.f32(), Ld(out));
    if (!tiled) {
      batch.n_tiles = 0;
      batch.tiles = batch.tiled = nullptr;
    }
    LMS_RETURN_IF_ERROR(Op("attention", LaunchAttentionPaged, q.f32(), Ld(q), k_cache.data, v_cache.data, a, batch,
                           out.f32(), Ld(out)));
    if (!tiled) return Status::Ok();
    return Op("attention_prefill", LaunchAttentionPrefill, q.f32(), Ld(q), k_cache.data, v_cache.data, a, batch,
              out.f32(), Ld(out));
  }

  Status SwiGlu(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    return Op("swiglu", LaunchSwiGlu, gate.f32(), Ld(gate), up.f32(), Ld(up), out.f32(), Ld(out), gate.rows,
              gate.cols);
  }

  Status AddInPlace(const TensorView& x, const TensorView& y) override {
    return Op("add", LaunchAdd, x.f32(), Ld(x), y.f32(), Ld(y), x.rows, x.cols);
  }

  Status NormLinear(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                    std::span<const TensorView> weights, std::span<const TensorView> biases,
                    std::span<const TensorView> outs) override;
  Status NormLinearSwiGlu(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                          const TensorView& w_gate, const TensorView& w_up, const TensorView& gate, const TensorView& up,
                          const TensorView& out) override;
  Status LinearAdd(const TensorView& x, const TensorView& w, const TensorView& y, const TensorView& acc) override;
  Status RopeStoreKv(const TensorView& q, const TensorView& k, const TensorView& v, int32_t head_dim,
                     const RopeParams& p, const TensorView& k_cache, const TensorView& v_cache) override;

  Status ArgMaxRows(const TensorView& x, int32_t* ids) override;

  Status GatherLogitRows(const TensorView& x, const TensorView& out) override {
    for (int32_t r : batch_->logit_rows) {
      if (r < 0 || r >= x.rows) return Status::Internal("logit row outside the batch");
    }
    return Op("gather", LaunchGatherRows, x.f32(), Ld(x), out.f32(), Ld(out), x.cols, dev_);
  }

 private:
  // Calls launch(args..., stream) now, or, while a step is being recorded, records the call
  // with its arguments for the step's graph. The arguments are copied.
  template <class F, class... A>
  Status Op(const char* name, F launch, const A&... args) {
    if (!recording_) {
      OpScope timed(times_.get(), name, stream_);  // a graph's launches are not timed one by one
      return ToStatus(launch(args..., stream_), name);
    }
    ArgBytes sig;
    (sig.Put(args), ...);
    steps_.Record(name, sig, [name, launch, args...](cudaStream_t s) { return ToStatus(launch(args..., s), name); });
    return Status::Ok();
  }
  // out = x W^T, or out += x W^T with beta 1 (always by cuBLAS then).
  Status LinearOne(const TensorView& x, const TensorView& w, const TensorView& out, float beta = 0.0f);
  Status AddBiases(std::span<const TensorView> biases, std::span<const TensorView> outs);
  // The batch's slots lie in the cache, and the cache's type is one the kernels write.
  Status CheckKvStore(const TensorView& k_cache) const {
    for (int32_t slot : batch_->slots) {
      if (slot < 0 || slot >= k_cache.rows) {
        return Status::Internal(fmt::format("KV slot {} outside the cache ({} rows)", slot, k_cache.rows));
      }
    }
    if (k_cache.type != TensorType::kF16 && k_cache.type != TensorType::kF32) {
      return Status::Unsupported(fmt::format("CUDA backend: a {} KV cache is not supported yet (use --kv-type f16)",
                                             TensorTypeName(k_cache.type)));
    }
    return Status::Ok();
  }
  // The mat-vec set for x and these weights and outputs when one fused launch can take them
  // (a decode-sized x; one to three weights of one type and width the kernel reads), else nullopt.
  std::optional<MatVecSet> FusedSet(const TensorView& x, std::span<const TensorView> weights,
                                    std::span<const TensorView> outs) const;
  // Decode-sized x and two or three weights of one type: one mat-vec launch for all (*done).
  Status MatVecTogether(const TensorView& x, std::span<const TensorView> weights, std::span<const TensorView> outs,
                        bool* done);
  // Runs what the step recorded (a graph replayed or captured). A no-op when nothing is recorded;
  // called wherever the host needs the stream's results or changes what the kernels read.
  Status FlushStep() { return steps_.Flush(stream_); }
  // Waits for the stream (running a recorded step first).
  Status SyncStream() {
    LMS_RETURN_IF_ERROR(FlushStep());
    return CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  // Blocks per (KV head, token) for paged attention: enough that blocks x splits covers the SMs
  // about once, within the partials buffer; 1 when the batch fills the GPU by itself.
  int32_t AttentionSplits(int64_t blocks, int64_t partial_floats) const {
    if (blocks <= 0 || blocks >= sm_count_) return 1;
    int64_t splits = std::min<int64_t>(kMaxAttentionSplits, (sm_count_ + blocks - 1) / blocks);
    while (splits > 1 && blocks * splits * partial_floats * static_cast<int64_t>(sizeof(float)) >
                             static_cast<int64_t>(kAttentionPartialBytes)) {
      --splits;
    }
    return static_cast<int32_t>(splits);
  }

  static constexpr size_t kCublasWorkspace = size_t{32} << 20;
  static constexpr size_t kAttentionPartialBytes = size_t{4} << 20;
  int sm_count_ = 1;
  float* attention_partials_ = nullptr;
  int device_;
  bool graphs_ = false;
  bool tiled_prefill_ = false;
  bool dependent_launches_ = false;
  bool recording_ = false;  // this batch's launches go to steps_
  StepGraphs steps_;
  std::unique_ptr<OpTimes> times_;  // LMS_CUDA_OP_TIMES=1
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t upload_done_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceArena arena_;
  // The batch: host copy for checks, pinned staging, device copy.
  const BatchLayout* batch_ = nullptr;
  int32_t* pinned_ = nullptr;
  size_t pinned_ints_ = 0;
  DeviceScratch batch_buf_;
  DeviceBatch dev_;
  // Linear scratch: activations and dequantized weights in 16-bit floats.
  DeviceScratch x16_, w16_;
  // ArgMaxRows: the ids on the device and their pinned landing place.
  DeviceScratch ids_;
  int32_t* pinned_ids_ = nullptr;
  size_t pinned_ids_n_ = 0;
};

Status CudaBackend::BeginBatch(const BatchLayout& batch) {
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  LMS_RETURN_IF_ERROR(FlushStep());  // a forward that ended without reading logits
  recording_ = false;
  batch_ = &batch;
  const int32_t n = batch.n_tokens();
  if (static_cast<int32_t>(batch.positions.size()) != n || static_cast<int32_t>(batch.seq_of_token.size()) != n ||
      static_cast<int32_t>(batch.slots.size()) != n) {
    return Status::Internal("batch layout arrays differ in length");
  }
  size_t widest = 1;
  for (const auto& t : batch.block_tables) widest = std::max(widest, t.size());
  const size_t bt_stride = static_cast<size_t>(PaddedStride(widest));
  for (int32_t s : batch.seq_of_token) {
    if (s < 0 || s >= static_cast<int32_t>(batch.block_tables.size())) return Status::Internal("token of no sequence");
  }
  const size_t n_logits = batch.logit_rows.size();
  PrefillTiles tiles;
  if (tiled_prefill_) tiles = MakePrefillTiles(batch.positions, batch.seq_of_token, kPrefillMinRun);
  const size_t tile_ints = tiles.count() > 0 ? tiles.tiles.size() + tiles.tiled.size() : 0;
  const size_t ints = 4 * static_cast<size_t>(n) + n_logits + batch.block_tables.size() * bt_stride + tile_ints;
  // The previous upload must be done before the staging buffer is rewritten or regrown.
  LMS_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(upload_done_));
  if (ints > pinned_ints_) {
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // kernels may still read the device copy
    if (pinned_) cudaFreeHost(pinned_);
    pinned_ = nullptr;
    pinned_ints_ = ints + ints / 2;
    LMS_CUDA_RETURN_IF_ERROR(cudaMallocHost(&pinned_, pinned_ints_ * sizeof(int32_t)));
    LMS_RETURN_IF_ERROR(batch_buf_.Get(pinned_ints_ * sizeof(int32_t)).status());
  }
  int32_t* h = pinned_;
  auto put = [&](const std::vector<int32_t>& v) {
    if (v.empty()) return;  // an empty vector's data() may be null, which memcpy may not take
    std::memcpy(h, v.data(), v.size() * sizeof(int32_t));
    h += v.size();
  };
  put(batch.tokens);
  put(batch.positions);
  put(batch.seq_of_token);
  put(batch.slots);
  put(batch.logit_rows);
  for (const auto& t : batch.block_tables) {
    if (!t.empty()) std::memcpy(h, t.data(), t.size() * sizeof(int32_t));
    std::fill(h + t.size(), h + bt_stride, -1);
    h += bt_stride;
  }
  if (tile_ints > 0) {
    put(tiles.tiles);
    put(tiles.tiled);
  }
  LMS_ASSIGN_OR_RETURN(void* dbuf, batch_buf_.Get(ints * sizeof(int32_t)));
  int32_t* d = static_cast<int32_t*>(dbuf);
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(d, pinned_, ints * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  LMS_CUDA_RETURN_IF_ERROR(cudaEventRecord(upload_done_, stream_));
  dev_.n_tokens = n;
  dev_.tokens = d;
  dev_.positions = d + n;
  dev_.seq_of_token = d + 2 * n;
  dev_.slots = d + 3 * n;
  dev_.logit_rows = d + 4 * n;
  dev_.n_logit_rows = static_cast<int32_t>(n_logits);
  dev_.block_tables = d + 4 * n + n_logits;
  dev_.bt_stride = static_cast<int32_t>(bt_stride);
  const int32_t* after_tables = dev_.block_tables + batch.block_tables.size() * bt_stride;
  dev_.n_tiles = tile_ints > 0 ? tiles.count() : 0;
  dev_.tiles = tile_ints > 0 ? after_tables : nullptr;
  dev_.tiled = tile_ints > 0 ? after_tables + tiles.tiles.size() : nullptr;
  // The ops of a decode-sized batch are recorded, not run, until the host reads a result.
  recording_ = graphs_ && n <= kGraphMaxTokens;
  return Status::Ok();
}

Status CudaBackend::Linear(const TensorView& x, std::span<const TensorView> weights, std::span<const TensorView> biases,
                           std::span<const TensorView> outs) {
  LMS_RETURN_IF_ERROR(LinearShapes(x, weights, outs));
  bool together = false;
  LMS_RETURN_IF_ERROR(MatVecTogether(x, weights, outs, &together));
  for (size_t i = 0; i < weights.size() && !together; ++i) LMS_RETURN_IF_ERROR(LinearOne(x, weights[i], outs[i]));
  return AddBiases(biases, outs);
}

Status CudaBackend::AddBiases(std::span<const TensorView> biases, std::span<const TensorView> outs) {
  for (size_t i = 0; i < biases.size(); ++i) {
    if (!biases[i].data) continue;
    LMS_RETURN_IF_ERROR(Op("bias", LaunchAddBias, outs[i].f32(), Ld(outs[i]), biases[i].f32(), outs[i].rows,
                           outs[i].cols));
  }
  return Status::Ok();
}

std::optional<MatVecSet> CudaBackend::FusedSet(const TensorView& x, std::span<const TensorView> weights,
                                               std::span<const TensorView> outs) const {
  if (weights.empty() || weights.size() > static_cast<size_t>(kMatVecMaxMatrices) || !MatVecSized(x)) {
    return std::nullopt;
  }
  MatVecSet set;
  set.count = static_cast<int>(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i].type != weights[0].type || !KernelSupportsType(weights[i].type)) return std::nullopt;
    set.w[i] = Matrix(weights[i]);
    set.y[i] = outs[i].f32();
    set.ld_y[i] = Ld(outs[i]);
    set.row_start[i + 1] = set.row_start[i] + weights[i].rows;
  }
  return set;
}

Status CudaBackend::NormLinear(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                               std::span<const TensorView> weights, std::span<const TensorView> biases,
                               std::span<const TensorView> outs) {
  LMS_RETURN_IF_ERROR(LinearShapes(x, weights, outs));
  std::optional<MatVecSet> set = FusedSet(x, weights, outs);
  if (!set || !NormFuses(norm, x)) return Backend::NormLinear(x, norm, eps, xn, weights, biases, outs);
  set->norm = norm.f32();
  set->eps = eps;
  LMS_RETURN_IF_ERROR(Op("norm_matvec", LaunchMatVecSet, *set, x.f32(), Ld(x), x.rows));
  return AddBiases(biases, outs);
}

Status CudaBackend::NormLinearSwiGlu(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                                     const TensorView& w_gate, const TensorView& w_up, const TensorView& gate,
                                     const TensorView& up, const TensorView& out) {
  const TensorView w[] = {w_gate, w_up};
  const TensorView o[] = {gate, up};
  LMS_RETURN_IF_ERROR(LinearShapes(x, w, o));
  if (out.rows != x.rows || out.cols != w_gate.rows) return Status::Internal("swiglu output shape");
  std::optional<MatVecSet> set = FusedSet(x, w, o);
  if (!set || w_gate.rows != w_up.rows || !NormFuses(norm, x)) {
    return Backend::NormLinearSwiGlu(x, norm, eps, xn, w_gate, w_up, gate, up, out);
  }
  set->out = MatVecOut::kSwiGlu;
  set->y[0] = out.f32();
  set->ld_y[0] = Ld(out);
  set->norm = norm.f32();
  set->eps = eps;
  return Op("norm_matvec_swiglu", LaunchMatVecSet, *set, x.f32(), Ld(x), x.rows);
}

Status CudaBackend::LinearAdd(const TensorView& x, const TensorView& w, const TensorView& y, const TensorView& acc) {
  const TensorView ws[] = {w};
  const TensorView os[] = {acc};
  LMS_RETURN_IF_ERROR(LinearShapes(x, ws, os));
  std::optional<MatVecSet> set = FusedSet(x, ws, os);
  if (!set) return LinearOne(x, w, acc, 1.0f);  // cuBLAS adds the product to acc
  set->out = MatVecOut::kAdd;
  (void)y;  // the default's scratch
  return Op("matvec_add", LaunchMatVecSet, *set, x.f32(), Ld(x), x.rows);
}

Status CudaBackend::RopeStoreKv(const TensorView& q, const TensorView& k, const TensorView& v, int32_t head_dim,
                                const RopeParams& p, const TensorView& k_cache, const TensorView& v_cache) {
  LMS_RETURN_IF_ERROR(CheckKvStore(k_cache));
  if (k.cols != v.cols || k.cols > k_cache.cols || head_dim <= 0 || q.cols % head_dim != 0 ||
      k.cols % head_dim != 0) {
    return Backend::RopeStoreKv(q, k, v, head_dim, p, k_cache, v_cache);
  }
  KvStoreArgs c;
  c.k_cache = k_cache.data;
  c.v_cache = v_cache.data;
  c.f16 = k_cache.type == TensorType::kF16;
  c.ld_cache = c.f16 ? static_cast<int64_t>(k_cache.row_stride / 2) : Ld(k_cache);
  return Op("rope_store_kv", LaunchRopeStoreKv, q.f32(), Ld(q), static_cast<int32_t>(q.cols / head_dim), k.f32(), Ld(k),
            static_cast<const float*>(v.f32()), Ld(v), static_cast<int32_t>(k.cols / head_dim),
            MakeRopeArgs(head_dim, p), c, dev_);
}

Status CudaBackend::ArgMaxRows(const TensorView& x, int32_t* ids) {
  if (x.type != TensorType::kF32) return Status::Internal("argmax of a non-f32 tensor");
  if (x.rows == 0) return Status::Ok();
  const size_t n = static_cast<size_t>(x.rows);
  // At least 1024 ids, so a recorded step's buffer never regrows under it.
  const size_t bytes = std::max<size_t>(n, 1024) * sizeof(int32_t);
  if (!ids_.Fits(bytes)) LMS_RETURN_IF_ERROR(SyncStream());  // the old buffer may be in use
  LMS_ASSIGN_OR_RETURN(void* d, ids_.Get(bytes));
  int32_t* dev_ids = static_cast<int32_t*>(d);
  LMS_RETURN_IF_ERROR(Op("argmax", LaunchArgMaxRows, x.f32(), Ld(x), x.rows, x.cols, dev_ids));
  LMS_RETURN_IF_ERROR(FlushStep());
  if (n > pinned_ids_n_) {
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // an earlier copy may still land there
    if (pinned_ids_) cudaFreeHost(pinned_ids_);
    pinned_ids_ = nullptr;
    pinned_ids_n_ = 0;
    LMS_CUDA_RETURN_IF_ERROR(cudaMallocHost(&pinned_ids_, std::max<size_t>(n, 1024) * sizeof(int32_t)));
    pinned_ids_n_ = std::max<size_t>(n, 1024);
  }
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(pinned_ids_, dev_ids, n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  std::memcpy(ids, pinned_ids_, n * sizeof(int32_t));
  return Status::Ok();
}

Status CudaBackend::MatVecTogether(const TensorView& x, std::span<const TensorView> weights,
                                   std::span<const TensorView> outs, bool* done) {
  *done = false;
  if (weights.size() < 2) return Status::Ok();
  const std::optional<MatVecSet> set = FusedSet(x, weights, outs);
  if (!set) return Status::Ok();
  *done = true;
  return Op("matvec", LaunchMatVecSet, *set, x.f32(), Ld(x), x.rows);
}

Status CudaBackend::LinearOne(const TensorView& x, const TensorView& w, const TensorView& out, float beta) {
  const int64_t m = x.rows, k = x.cols, n = w.rows;
  if (MatVecSized(x) && beta == 0.0f) {
    return Op("matvec", LaunchMatVec, Matrix(w), x.f32(), Ld(x), m, out.f32(), Ld(out));
  }
  // GEMM: out (m x n, row-major) is column-major n x m = W (n x k) * x^T, i.e. op(A) = A^T with
  // A = W read column-major as k x n, and B = x read column-major as k x m.
  const bool bf16 = w.type == TensorType::kBF16;
  const cudaDataType dt = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  const void* a = w.data;
  int64_t lda = static_cast<int64_t>(w.row_stride / 2);
  if (w.type != TensorType::kF16 && w.type != TensorType::kBF16) {
    const size_t bytes = static_cast<size_t>(n) * k * 2;
    if (!w16_.Fits(bytes)) LMS_RETURN_IF_ERROR(SyncStream());  // in use until then
    LMS_ASSIGN_OR_RETURN(void* w16, w16_.Get(bytes));
    LMS_RETURN_IF_ERROR(Op("dequantize", LaunchDequantizeTo16, Matrix(w), bf16, w16));
    a = w16;
    lda = k;
  }
  const size_t x_bytes = static_cast<size_t>(m) * k * 2;
  if (!x16_.Fits(x_bytes)) LMS_RETURN_IF_ERROR(SyncStream());
  LMS_ASSIGN_OR_RETURN(void* x16, x16_.Get(x_bytes));
  LMS_RETURN_IF_ERROR(Op("convert", LaunchConvertTo16, x.f32(), Ld(x), m, k, bf16, x16));
  return Op("gemm", Gemm16, cublas_, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), a, dt,
            static_cast<int>(lda), static_cast<const void*>(x16), out.f32(), static_cast<int>(Ld(out)), beta);
}

}  // namespace

std::vector<DeviceInfo> ListCudaDevices() {
  std::vector<DeviceInfo> out;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    DeviceInfo d;
    d.kind = "cuda";
    d.index = i;
    d.name = prop.name;
    d.memory_bytes = prop.totalGlobalMem;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    out.push_back(d);
  }
  return out;
}

Result<std::unique_ptr<Backend>> MakeCudaBackend(int index, const CudaBackendOptions& options) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return Status::NotFound(fmt::format("no CUDA device is usable: {}", cudaGetErrorString(e)));
  }
  if (index < 0 || index >= count) {
    return Status::NotFound(fmt::format("no CUDA device {} ({} present)", index, count));
  }
  auto b = std::make_unique<CudaBackend>(index, options);
  LMS_RETURN_IF_ERROR(b->Init());
  return std::unique_ptr<Backend>(std::move(b));
}

void RegisterCudaBackend() {
  BackendProvider p;
  p.kind = "cuda";
  p.list_devices = [] { return ListCudaDevices(); };
  p.create = [](int index) {
    CudaBackendOptions o;
    const char* env = std::getenv("LMS_CUDA_GRAPHS");
    o.graphs = env != nullptr && std::string(env) == "1";
    const char* prefill = std::getenv("LMS_CUDA_PREFILL");
    o.tiled_prefill = prefill != nullptr && std::string(prefill) == "tiled";
    const char* pdl = std::getenv("LMS_CUDA_PDL");
    o.dependent_launches = pdl != nullptr && std::string(pdl) == "1";
    return MakeCudaBackend(index, o);
  };
  RegisterBackendProvider(std::move(p));
}

Result<std::vector<OpTimeTotal>> CudaOpTimes(Backend& backend, bool reset) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (!cuda) return Status::InvalidArgument("op times: not a CUDA backend");
  return cuda->TakeOpTimes(reset);
}

double PeakMemoryBandwidth(int index) {
  int clock_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, index) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, index) != cudaSuccess) {
    cudaGetLastError();
    return 0.0;
  }
  return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0);  // double data rate
}

}  // namespace lms::gpu
