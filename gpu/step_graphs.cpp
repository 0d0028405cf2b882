#include "gpu/step_graphs.h"

#include <utility>

#include "gpu/cuda_backend.h"
#include "gpu/cuda_check.h"

namespace lms::gpu {

void ArgBytes::Put(const DeviceBatch& b) {
  Put(b.n_tokens);
  Put(b.tokens);
  Put(b.positions);
  Put(b.seq_of_token);
  Put(b.slots);
  Put(b.n_logit_rows);
  Put(b.logit_rows);
  Put(b.block_tables);
  Put(b.bt_stride);
  Put(b.n_tiles);
  Put(b.tiles);
  Put(b.tiled);
}

void ArgBytes::Put(const DeviceMatrix& m) {
  Put(m.data);
  Put(m.type);
  Put(m.rows);
  Put(m.cols);
  Put(m.row_bytes);
}

void ArgBytes::Put(const RopeArgs& a) {
  Put(a.head_dim);
  Put(a.n_dims);
  Put(a.theta_scale);
  Put(a.freq_scale);
  Put(a.neox);
}

void ArgBytes::Put(const AttentionArgs& a) {
  Put(a.n_heads);
  Put(a.n_kv_heads);
  Put(a.head_dim);
  Put(a.block_size);
  Put(a.scale);
  Put(a.f16);
  Put(a.ld_cache);
  Put(a.splits);
  Put(a.partials);
}

void ArgBytes::Put(const MatVecSet& s) {
  Put(s.count);
  for (int i = 0; i < s.count; ++i) {
    Put(s.w[i]);
    Put(s.y[i]);
    Put(s.ld_y[i]);
  }
  for (int i = 0; i <= s.count; ++i) Put(s.row_start[i]);
  Put(s.out);
  Put(s.norm);
  Put(s.eps);
}

void ArgBytes::Put(const KvStoreArgs& a) {
  Put(a.k_cache);
  Put(a.v_cache);
  Put(a.f16);
  Put(a.ld_cache);
}

StepGraphs::~StepGraphs() {
  for (auto& [sig, exec] : graphs_) cudaGraphExecDestroy(exec);
}

void StepGraphs::Record(const char* name, const ArgBytes& args, Launch launch) {
  signature_.append(name);
  signature_.push_back('\0');
  const uint32_t n = static_cast<uint32_t>(args.bytes().size());
  signature_.append(reinterpret_cast<const char*>(&n), sizeof(n));
  signature_.append(args.bytes());
  launches_.push_back(std::move(launch));
  names_.push_back(name);
}

void StepGraphs::Discard() {
  signature_.clear();
  launches_.clear();
  names_.clear();
}

Status StepGraphs::Capture(cudaStream_t stream, cudaGraphExec_t* exec) {
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  Status st = Status::Ok();
  for (size_t i = 0; i < launches_.size() && st.ok(); ++i) {
    st = launches_[i](stream);
    if (!st.ok()) st = st.WithContext(std::string("capturing ") + names_[i]);
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(stream, &graph);
  if (!st.ok() || e != cudaSuccess) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // a broken capture leaves a sticky-looking error behind
    return st.ok() ? CudaStatus(e, "cudaStreamEndCapture") : st;
  }
  const cudaError_t ie = cudaGraphInstantiate(exec, graph, 0);
  cudaGraphDestroy(graph);
  return CudaStatus(ie, "cudaGraphInstantiate");
}

Status StepGraphs::RunDirect(cudaStream_t stream) {
  Status st = Status::Ok();
  for (size_t i = 0; i < launches_.size() && st.ok(); ++i) {
    st = launches_[i](stream);
    if (!st.ok()) st = st.WithContext(std::string("running ") + names_[i]);
  }
  Discard();
  if (stats_ != nullptr) ++stats_->direct;
  return st;
}

Status StepGraphs::Flush(cudaStream_t stream) {
  if (launches_.empty()) return Status::Ok();
  const size_t n_launches = launches_.size();
  auto it = graphs_.find(signature_);
  if (it == graphs_.end()) {
    if (seen_.size() >= 4 * kMaxGraphs) seen_.clear();
    // A step seen for the first time runs as it is: its kernels load outside any capture (some
    // drivers refuse to load a module while capturing), and a step that never comes back costs
    // no capture. One that could not be captured runs as it is from then on.
    if (uncapturable_.count(signature_) > 0 || seen_.insert(signature_).second) return RunDirect(stream);
    if (graphs_.size() >= kMaxGraphs) {
      // Nothing may still be running a graph that is destroyed.
      LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
      for (auto& [sig, exec] : graphs_) cudaGraphExecDestroy(exec);
      graphs_.clear();
    }
    cudaGraphExec_t exec = nullptr;
    if (!Capture(stream, &exec).ok()) {
      // Capture failed; a launch's own error shows again when it runs directly.
      if (uncapturable_.size() < 4 * kMaxGraphs) uncapturable_.insert(signature_);
      return RunDirect(stream);
    }
    seen_.erase(signature_);
    it = graphs_.emplace(std::move(signature_), exec).first;
    if (stats_ != nullptr) ++stats_->captures;
  } else if (stats_ != nullptr) {
    ++stats_->replays;
    stats_->launches_replayed += static_cast<int64_t>(n_launches);
  }
  Discard();
  return CudaStatus(cudaGraphLaunch(it->second, stream), "cudaGraphLaunch");
}

}  // namespace lms::gpu
