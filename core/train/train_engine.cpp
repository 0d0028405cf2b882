#include "core/train/train_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>

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

class CpuTrainEngine final : public TrainEngine {
 public:
  CpuTrainEngine(const TrainEngineSpec& spec, const ParamLayout& layout, std::unique_ptr<Pipeline> p)
      : optim_(spec.optim, layout), pipeline_(std::move(p)), params_(layout.total, 0.0f), grads_(layout.total, 0.0f) {}

  std::string Describe() const override { return "cpu"; }
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
  Status GetParams(std::vector<float>& params) const override {
    params = params_;
    return Status::Ok();
  }
  Status GetMoments(std::vector<float>& m, std::vector<float>& v) const override {
    m = optim_.m();
    v = optim_.v();
    return Status::Ok();
  }
  Status GetGrads(std::vector<float>& grads) const override {
    grads = grads_;
    return Status::Ok();
  }
  Status ZeroGrads() override {
    std::fill(grads_.begin(), grads_.end(), 0.0f);
    return Status::Ok();
  }
  Result<StepReport> ForwardBackward(const int32_t* inputs, const int32_t* targets, float loss_scale) override {
    return pipeline_->ForwardBackward(params_, grads_, inputs, targets, loss_scale);
  }
  Result<StepReport> Forward(const int32_t* inputs, const int32_t* targets) override {
    return pipeline_->Forward(params_, inputs, targets);
  }
  Result<double> OptimizerStep(int64_t step) override { return optim_.Step(step, params_, grads_); }

 private:
  AdamW optim_;
  std::unique_ptr<Pipeline> pipeline_;
  std::vector<float> params_, grads_;
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
  LMS_ASSIGN_OR_RETURN(auto p, Pipeline::Create(spec.shape, layout, spec.pipeline));
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
