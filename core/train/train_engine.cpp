#include "core/train/train_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "core/net/rank_group.h"
#include "core/train/rank_transport.h"

namespace lms::train {

namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, TrainEngineFactory>& Registry() {
  static std::map<std::string, TrainEngineFactory> r;
  return r;
}

// The CPU pipeline with AdamW on the host. In a multi-process run (spec.ranks) every process
// keeps layout-sized vectors but computes and updates only the ranges of its own chunks; sums
// over ranks give the loss, the gradient norm and, for checkpoints, the whole weight vector.
class CpuTrainEngine final : public TrainEngine {
 public:
  CpuTrainEngine(const TrainEngineSpec& spec, const ParamLayout& layout, std::unique_ptr<Pipeline> p)
      : optim_(spec.optim, layout), layout_(layout), pipeline_(std::move(p)), params_(layout.total, 0.0f),
        grads_(layout.total, 0.0f) {
    ranks_ = spec.ranks && spec.ranks->world() > 1 ? spec.ranks : nullptr;
    const int C = static_cast<int>(spec.pipeline.boundaries.size()) - 1, S = pipeline_->stages();
    for (int c = 0; c < C; ++c) {
      if (!pipeline_->Local(c % S)) continue;
      owned_.push_back(layout.StageRange(spec.pipeline.boundaries[c], spec.pipeline.boundaries[c + 1], c == 0, c == C - 1));
    }
    head_rank_ = (C - 1) % S;
  }

  std::string Describe() const override {
    return ranks_ ? fmt::format("cpu, rank {} of {}", ranks_->rank(), ranks_->world()) : "cpu";
  }
  int stages() const override { return pipeline_->stages(); }
  int chunks() const override { return pipeline_->chunks(); }

  Status SetState(const std::vector<float>& params, const std::vector<float>* m, const std::vector<float>* v) override {
    if (params.size() != params_.size() || (m && m->size() != params_.size()) || (v && v->size() != params_.size())) {
      return Status::InvalidArgument("weights or optimizer moments do not match the model's parameter count");
    }
    params_ = params;
    if (m) {
      optim_.m() = *m;
    } else {
      std::fill(optim_.m().begin(), optim_.m().end(), 0.0f);
    }
    if (v) {
      optim_.v() = *v;
    } else {
      std::fill(optim_.v().begin(), optim_.v().end(), 0.0f);
    }
    return Status::Ok();
  }
  Status GetParams(std::vector<float>& params) const override { return Gathered(params_, params); }
  Status GetMoments(std::vector<float>& m, std::vector<float>& v) const override {
    LMS_RETURN_IF_ERROR(Gathered(optim_.m(), m));
    return Gathered(optim_.v(), v);
  }
  Status GetGrads(std::vector<float>& grads) const override { return Gathered(grads_, grads); }
  Status ZeroGrads() override {
    std::fill(grads_.begin(), grads_.end(), 0.0f);
    return Status::Ok();
  }
  Result<StepReport> ForwardBackward(const int32_t* inputs, const int32_t* targets, float loss_scale) override {
    LMS_ASSIGN_OR_RETURN(StepReport rep, pipeline_->ForwardBackward(params_, grads_, inputs, targets, loss_scale));
    LMS_RETURN_IF_ERROR(ShareReport(rep));
    return rep;
  }
  Result<StepReport> Forward(const int32_t* inputs, const int32_t* targets) override {
    LMS_ASSIGN_OR_RETURN(StepReport rep, pipeline_->Forward(params_, inputs, targets));
    LMS_RETURN_IF_ERROR(ShareReport(rep));
    return rep;
  }
  Result<double> OptimizerStep(int64_t step) override {
    if (!ranks_) return optim_.Step(step, params_, grads_);
    double sq = 0;
    for (const auto& [b, e] : owned_) sq += SumSquares(grads_.data() + b, e - b);
    LMS_RETURN_IF_ERROR(ranks_->AllReduceSum(&sq, 1));
    const double norm = std::sqrt(sq);
    for (const auto& [b, e] : owned_) optim_.Update(step, params_, grads_, b, e, norm);
    // The tied head reads the embedding, which rank 0 owns and has just updated.
    if (layout_.output.size() == 0 && head_rank_ != 0) {
      float* emb = params_.data() + layout_.token_embd.offset;
      const size_t n = static_cast<size_t>(layout_.token_embd.size());
      if (ranks_->rank() == 0) {
        LMS_RETURN_IF_ERROR(ranks_->SendFloats(head_rank_, kEngineTagBase + 1, emb, n));
      } else if (ranks_->rank() == head_rank_) {
        LMS_RETURN_IF_ERROR(ranks_->RecvFloats(0, kEngineTagBase + 1, emb, n));
      }
    }
    return norm;
  }

 private:
  // The whole vector: this rank's ranges of `mine`, the other ranks' from them (a sum over
  // ranks of vectors that are zero outside each rank's ranges, which adds nothing but zeros).
  Status Gathered(const std::vector<float>& mine, std::vector<float>& out) const {
    if (!ranks_) {
      out = mine;
      return Status::Ok();
    }
    out.assign(mine.size(), 0.0f);
    for (const auto& [b, e] : owned_) std::copy(mine.begin() + b, mine.begin() + e, out.begin() + b);
    return ranks_->AllReduceSum(out.data(), out.size());
  }
  Status ShareReport(StepReport& rep) const { return ranks_ ? SumReportOverRanks(*ranks_, rep) : Status::Ok(); }

  AdamW optim_;
  const ParamLayout& layout_;
  std::unique_ptr<Pipeline> pipeline_;
  std::vector<float> params_, grads_;
  net::RankGroup* ranks_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> owned_;
  int head_rank_ = 0;
};

}  // namespace

void RegisterTrainEngine(const std::string& kind, TrainEngineFactory factory) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[kind] = std::move(factory);
}

std::vector<std::string> RegisteredTrainEngines() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::vector<std::string> kinds;
  for (const auto& [k, f] : Registry()) kinds.push_back(k);
  return kinds;
}

Result<std::unique_ptr<TrainEngine>> CreateCpuTrainEngine(const TrainEngineSpec& spec, const ParamLayout& layout) {
  if (!spec.precision.empty() && spec.precision != "f32") {
    return Status::InvalidArgument(fmt::format("the CPU trainer computes in f32; precision '{}' needs a GPU", spec.precision));
  }
  LMS_ASSIGN_OR_RETURN(auto p, Pipeline::Create(spec.shape, layout, spec.pipeline, spec.ranks));
  return std::unique_ptr<TrainEngine>(std::make_unique<CpuTrainEngine>(spec, layout, std::move(p)));
}

Result<std::unique_ptr<TrainEngine>> CreateTrainEngine(const TrainEngineSpec& spec, const ParamLayout& layout) {
  const std::string kind = spec.device.substr(0, spec.device.find(':'));
  if (kind.empty() || kind == "cpu") {
    if (spec.device.size() > kind.size()) return Status::InvalidArgument("device 'cpu' takes no index: '" + spec.device + "'");
    return CreateCpuTrainEngine(spec, layout);
  }
  TrainEngineFactory f;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(kind);
    if (it != Registry().end()) f = it->second;
  }
  if (!f) {
    if (kind == "cuda") {
      return Status::Unsupported("this build has no CUDA training: configure with -DLMS_CUDA=ON on a machine with the CUDA toolkit");
    }
    return Status::InvalidArgument(fmt::format("unknown training device '{}' (expected cpu or cuda[:N[,M…]])", spec.device));
  }
  return f(spec, layout);
}

}  // namespace lms::train
