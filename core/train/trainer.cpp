#include "core/train/trainer.h"

#include <fmt/format.h>

#include <chrono>
#include <sstream>

namespace lms::train {

Result<std::unique_ptr<Trainer>> Trainer::Create(const TrainerConfig& c, std::vector<float> params,
                                                 std::vector<int32_t> train_tokens,
                                                 std::vector<int32_t> val_tokens) {
  LMS_RETURN_IF_ERROR(c.shape.Validate());
  if (c.batch_size < 1 || c.grad_accum < 1) return Status::InvalidArgument("batch size and gradient accumulation must be at least 1");
  const int M = c.pipeline.microbatches;
  if (M < 1 || c.batch_size % M != 0) {
    return Status::InvalidArgument(fmt::format("batch size {} is not a multiple of the {} micro-batches", c.batch_size, M));
  }
  const int64_t need = int64_t{c.shape.seq_len} + 1;
  if (static_cast<int64_t>(train_tokens.size()) < need) {
    return Status::InvalidArgument(fmt::format("training text has {} tokens; a sequence needs {}", train_tokens.size(), need));
  }
  if (static_cast<int64_t>(val_tokens.size()) < need) {
    return Status::InvalidArgument(fmt::format("validation text has {} tokens; a sequence needs {}", val_tokens.size(), need));
  }
  for (const auto* toks : {&train_tokens, &val_tokens}) {
    for (int32_t t : *toks) {
      if (t < 0 || t >= c.shape.n_vocab) return Status::InvalidArgument(fmt::format("token {} is outside the model's vocabulary of {}", t, c.shape.n_vocab));
    }
  }
  std::unique_ptr<Trainer> tr(new Trainer(c));
  tr->rng_.seed(c.seed);
  if (params.empty()) {
    InitParams(c.shape, tr->layout_, tr->rng_(), tr->params_);
  } else {
    if (static_cast<int64_t>(params.size()) != tr->layout_.total) return Status::InvalidArgument("initial weights do not match the model shape");
    tr->params_ = std::move(params);
  }
  TrainEngineSpec spec;
  spec.shape = c.shape;
  spec.optim = c.optim;
  spec.pipeline = c.pipeline;
  spec.pipeline.micro_batch_size = c.batch_size / M;
  spec.device = c.device;
  spec.precision = c.precision;
  spec.ranks = c.ranks;
  LMS_ASSIGN_OR_RETURN(tr->engine_, CreateTrainEngine(spec, tr->layout_));
  LMS_RETURN_IF_ERROR(tr->engine_->SetState(tr->params_, nullptr, nullptr));
  tr->train_ = std::make_unique<BatchLoader>(std::move(train_tokens), c.shape.seq_len);
  tr->val_ = std::make_unique<BatchLoader>(std::move(val_tokens), c.shape.seq_len);
  return tr;
}

Result<StepStats> Trainer::Step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepStats st;
  LMS_RETURN_IF_ERROR(engine_->ZeroGrads());
  const int64_t tokens = int64_t{c_.batch_size} * c_.shape.seq_len * c_.grad_accum;
  double loss_sum = 0;
  int64_t counted = 0;
  for (int a = 0; a < c_.grad_accum; ++a) {
    train_->Next(c_.batch_size, inputs_, targets_);
    LMS_ASSIGN_OR_RETURN(StepReport rep, engine_->ForwardBackward(inputs_.data(), targets_.data(),
                                                                 1.0f / static_cast<float>(tokens)));
    loss_sum += rep.loss_sum;
    counted += rep.tokens;
    st.report = std::move(rep);
  }
  st.lr = LearningRate(c_.optim, step_);
  LMS_ASSIGN_OR_RETURN(st.grad_norm, engine_->OptimizerStep(step_));
  ++step_;
  st.step = step_;
  st.loss = loss_sum / static_cast<double>(counted);
  st.tokens = counted;
  st.bubble = st.report.Bubble();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

Result<double> Trainer::ValidationLoss() {
  const int64_t saved = val_->position();
  val_->set_position(0);
  double sum = 0;
  int64_t n = 0;
  std::vector<int32_t> in, tg;
  for (int b = 0; b < c_.eval_batches; ++b) {
    val_->Next(c_.batch_size, in, tg);
    LMS_ASSIGN_OR_RETURN(StepReport rep, engine_->Forward(in.data(), tg.data()));
    sum += rep.loss_sum;
    n += rep.tokens;
  }
  val_->set_position(saved);
  return n ? sum / static_cast<double>(n) : 0.0;
}

Result<Checkpoint> Trainer::MakeCheckpoint() const {
  Checkpoint c;
  c.shape = c_.shape;
  c.step = step_;
  c.data_position = train_->position();
  std::ostringstream rs;
  rs << rng_;
  c.rng_state = rs.str();
  LMS_RETURN_IF_ERROR(engine_->GetParams(c.params));
  LMS_RETURN_IF_ERROR(engine_->GetMoments(c.m, c.v));
  return c;
}

const std::vector<float>& Trainer::params() const {
  if (!engine_->GetParams(params_).ok()) params_.clear();
  return params_;
}

Status Trainer::Restore(const Checkpoint& c) {
  const ModelShape& a = c.shape;
  const ModelShape& b = c_.shape;
  if (a.n_layers != b.n_layers || a.d_model != b.d_model || a.n_heads != b.n_heads || a.n_kv_heads != b.n_kv_heads ||
      a.d_ff != b.d_ff || a.n_vocab != b.n_vocab || a.seq_len != b.seq_len || a.tied != b.tied) {
    return Status::InvalidArgument("checkpoint model shape (" + a.Summary() + ") differs from this run's (" + b.Summary() + ")");
  }
  if (static_cast<int64_t>(c.params.size()) != layout_.total) return Status::InvalidArgument("checkpoint parameter count differs");
  std::istringstream rs(c.rng_state);
  rs >> rng_;
  if (rs.fail()) return Status::InvalidArgument("checkpoint RNG state is malformed");
  LMS_RETURN_IF_ERROR(engine_->SetState(c.params, &c.m, &c.v));
  step_ = c.step;
  train_->set_position(c.data_position);
  return Status::Ok();
}

}  // namespace lms::train
