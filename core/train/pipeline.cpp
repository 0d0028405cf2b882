#include "core/train/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/net/rank_group.h"
#include "core/train/rank_transport.h"

namespace lms::train {

Result<ScheduleKind> ParseSchedule(const std::string& name) {
  if (name == "gpipe") return ScheduleKind::kGPipe;
  if (name == "1f1b") return ScheduleKind::k1F1B;
  if (name == "interleaved") return ScheduleKind::kInterleaved;
  return Status::InvalidArgument("unknown schedule '" + name + "' (expected gpipe, 1f1b or interleaved)");
}

const char* ScheduleName(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::kGPipe: return "gpipe";
    case ScheduleKind::k1F1B: return "1f1b";
    case ScheduleKind::kInterleaved: return "interleaved";
  }
  return "?";
}

namespace {

// Device s's order under interleaved 1F1B. The k-th forward of a device (k = 0..M·V−1) is
// micro-batch (k div S·V)·S + k mod S of chunk (k mod S·V) div S: S micro-batches through chunk
// 0, the same S through chunk 1, …, then the next S. Backwards take the chunks in reverse.
std::vector<PipeOp> InterleavedOps(int s, int S, int M, int V) {
  const int total = M * V;
  auto at = [&](int k, bool forward) {
    const int group = k % (S * V);
    const int chunk = forward ? group / S : V - 1 - group / S;
    return PipeOp{forward, (k / (S * V)) * S + k % S, chunk};
  };
  const int warmup = std::min(total, 2 * (S - s - 1) + (V - 1) * S);
  std::vector<PipeOp> o;
  int next_f = 0, next_b = 0;
  for (; next_f < warmup; ++next_f) o.push_back(at(next_f, true));
  while (next_f < total) {
    o.push_back(at(next_f++, true));
    o.push_back(at(next_b++, false));
  }
  while (next_b < total) o.push_back(at(next_b++, false));
  return o;
}

}  // namespace

std::vector<std::vector<PipeOp>> MakeSchedule(ScheduleKind k, int S, int M, int V) {
  std::vector<std::vector<PipeOp>> ops(S);
  for (int s = 0; s < S; ++s) {
    auto& o = ops[s];
    if (k == ScheduleKind::kInterleaved) {
      o = InterleavedOps(s, S, M, V);
      continue;
    }
    if (k == ScheduleKind::kGPipe) {
      for (int m = 0; m < M; ++m) o.push_back({true, m});
      for (int m = 0; m < M; ++m) o.push_back({false, m});
      continue;
    }
    const int warmup = std::min(S - s - 1, M);
    int next_f = 0, next_b = 0;
    for (; next_f < warmup; ++next_f) o.push_back({true, next_f});
    while (next_f < M) {
      o.push_back({true, next_f++});
      o.push_back({false, next_b++});
    }
    while (next_b < M) o.push_back({false, next_b++});
  }
  return ops;
}

double TheoreticalBubble(int S, int M, int V) { return static_cast<double>(S - 1) / (static_cast<double>(V) * M + S - 1); }

std::vector<int> EqualSplit(int L, int S) {
  std::vector<int> b(S + 1, 0);
  for (int s = 0; s <= S; ++s) b[s] = static_cast<int>((static_cast<int64_t>(L) * s) / S);
  return b;
}

double StepReport::Bubble() const {
  if (busy_s.empty() || wall_s <= 0) return 0.0;
  double busy = 0;
  for (double b : busy_s) busy += b;
  return 1.0 - busy / (wall_s * static_cast<double>(busy_s.size()));
}

Status ValidatePipeline(const ModelShape& shape, const PipelineOptions& opt) {
  LMS_RETURN_IF_ERROR(shape.Validate());
  const int C = static_cast<int>(opt.boundaries.size()) - 1;  // chunks (= stages but interleaved)
  if (C < 1) return Status::InvalidArgument("a pipeline needs at least one stage");
  const int V = opt.chunks;
  if (opt.schedule == ScheduleKind::kInterleaved) {
    if (V < 2) return Status::InvalidArgument("the interleaved schedule needs at least 2 chunks per stage");
    if (C % V != 0) {
      return Status::InvalidArgument(fmt::format("{} layer ranges do not divide into {} chunks per stage", C, V));
    }
  } else if (V != 1) {
    return Status::InvalidArgument("chunks per stage apply only to the interleaved schedule");
  }
  const int S = C / V;  // devices
  if (C > shape.n_layers) {
    return Status::InvalidArgument(
        V == 1 ? fmt::format("{} stages for {} layers: every stage needs a layer", C, shape.n_layers)
               : fmt::format("{} stages × {} chunks for {} layers: every chunk needs a layer", S, V, shape.n_layers));
  }
  if (opt.boundaries.front() != 0 || opt.boundaries.back() != shape.n_layers) {
    return Status::InvalidArgument(fmt::format("stage boundaries must run from 0 to {} layers", shape.n_layers));
  }
  for (int c = 0; c < C; ++c) {
    if (opt.boundaries[c + 1] <= opt.boundaries[c]) {
      return Status::InvalidArgument(fmt::format("{} {} has no layers (boundaries must increase)", V == 1 ? "stage" : "chunk", c));
    }
  }
  if (opt.microbatches < 1) return Status::InvalidArgument("micro-batches must be at least 1");
  if (opt.schedule == ScheduleKind::kInterleaved && opt.microbatches % S != 0) {
    return Status::InvalidArgument(fmt::format("the interleaved schedule needs micro-batches in multiples of the "
                                               "stages ({} micro-batches, {} stages)", opt.microbatches, S));
  }
  if (opt.micro_batch_size < 1) return Status::InvalidArgument("micro-batch size must be at least 1");
  if (!opt.threads.empty() && static_cast<int>(opt.threads.size()) != S) {
    return Status::InvalidArgument(fmt::format("{} thread counts given for {} stages", opt.threads.size(), S));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Pipeline>> Pipeline::Create(const ModelShape& shape, const ParamLayout& layout,
                                                   const PipelineOptions& opt_in, net::RankGroup* ranks) {
  LMS_RETURN_IF_ERROR(ValidatePipeline(shape, opt_in));
  PipelineOptions opt = opt_in;
  const int C = static_cast<int>(opt.boundaries.size()) - 1, V = opt.chunks, S = C / V;
  if (opt.threads.empty()) opt.threads.assign(S, 1);
  if (ranks && ranks->world() > 1) {
    if (ranks->world() != S) {
      return Status::InvalidArgument(fmt::format("{} processes train a pipeline of {} stages: a multi-process run has "
                                                 "one stage per process", ranks->world(), S));
    }
    if (C > (1 << 14) || opt.microbatches > (1 << 20)) return Status::InvalidArgument("too many chunks or micro-batches");
  } else {
    ranks = nullptr;
  }
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->shape_ = shape;
  p->layout_ = &layout;
  p->opt_ = opt;
  p->S_ = S;
  p->ranks_ = ranks;
  for (int s = 0; s < S; ++s) {
    if (opt.threads[s] < 1) return Status::InvalidArgument(fmt::format("stage {} needs at least one thread", s));
    p->pools_.push_back(p->Local(s) ? std::make_unique<ThreadPool>(opt.threads[s]) : nullptr);
  }
  for (int c = 0; c < C; ++c) {
    p->stages_.push_back(p->Local(c % S) ? std::make_unique<Stage>(shape, layout, opt.boundaries[c], opt.boundaries[c + 1],
                                                                   c == 0, c == C - 1, opt.micro_batch_size,
                                                                   p->pools_[c % S].get())
                                         : nullptr);
  }
  if (ranks) {
    p->transport_ = std::make_unique<RankTransport>(ranks, S);
  } else {
    p->transport_ = std::make_unique<InProcessTransport>();
  }
  if (C > 1 && shape.tied) p->head_grad_.assign(static_cast<size_t>(layout.token_embd.size()), 0.0f);
  return p;
}

Pipeline::~Pipeline() = default;

bool Pipeline::Local(int s) const { return ranks_ == nullptr || s == ranks_->rank(); }

Result<StepReport> Pipeline::ForwardBackward(const std::vector<float>& params, std::vector<float>& grads,
                                             const int32_t* inputs, const int32_t* targets, float loss_scale) {
  if (grads.size() != params.size()) return Status::InvalidArgument("gradient and parameter sizes differ");
  return Run(&params, &grads, inputs, targets, loss_scale, true);
}

Result<StepReport> Pipeline::Forward(const std::vector<float>& params, const int32_t* inputs, const int32_t* targets) {
  return Run(&params, nullptr, inputs, targets, 0.0f, false);
}

Result<StepReport> Pipeline::Run(const std::vector<float>* params, std::vector<float>* grads, const int32_t* inputs,
                                 const int32_t* targets, float loss_scale, bool backward) {
  if (static_cast<int64_t>(params->size()) != layout_->total) {
    return Status::InvalidArgument("parameter vector does not match the model layout");
  }
  if (!broken_.ok()) return broken_;
  const int S = stages(), V = opt_.chunks, C = S * V, M = opt_.microbatches;
  const int64_t rows = int64_t{opt_.micro_batch_size} * shape_.seq_len, d = shape_.d_model;
  std::vector<std::vector<PipeOp>> ops;
  if (backward) {
    ops = MakeSchedule(opt_.schedule, S, M, V);
  } else {  // forward only: each device's chunks in order, micro-batch by micro-batch
    ops.assign(S, {});
    for (int s = 0; s < S; ++s)
      for (int m = 0; m < M; ++m)
        for (int v = 0; v < V; ++v) ops[s].push_back({true, m, v});
  }
  const float* p = params->data();
  float* g = grads ? grads->data() : nullptr;
  float* head_grad = nullptr;
  if (backward) {
    if (!head_grad_.empty()) {
      std::fill(head_grad_.begin(), head_grad_.end(), 0.0f);
      head_grad = head_grad_.data();
    } else {
      head_grad = g + layout_->Head().offset;
    }
  }

  StepReport rep;
  rep.busy_s.assign(S, 0.0);
  rep.peak_in_flight.assign(S, 0);
  std::vector<std::vector<TimelineEvent>> events(S);
  std::vector<Status> status(S);
  std::vector<LossSum> mb_loss(M);
  const auto t0 = std::chrono::steady_clock::now();
  auto now = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  auto run_stage = [&](int dev) {
    std::vector<float> out(C == 1 ? 0 : static_cast<size_t>(rows * d));
    int live = 0;
    for (const PipeOp& op : ops[dev]) {
      const int m = op.microbatch;
      const int s = op.chunk * S + dev;  // the chunk's place in the pipeline
      Stage& st = *stages_[s];
      const bool first = s == 0, last = s == C - 1;
      Status err;
      std::vector<float> in;
      if (op.forward) {
        if (!first) {
          auto r = transport_->Recv(s, s - 1, MessageKind::kActivation, m);
          if (!r.ok()) { status[dev] = r.status(); break; }
          in = std::move(r).value();
        }
        const double start = now();
        LossSum ls;
        err = st.Forward(m, p, inputs + m * rows, in.data(), targets + m * rows, loss_scale,
                         last ? nullptr : out.data(), &ls);
        if (!backward) st.Release(m);
        const double end = now();
        if (!err.ok()) { status[dev] = err; break; }
        events[dev].push_back({dev, m, true, start, end, op.chunk});
        rep.busy_s[dev] += end - start;
        rep.peak_in_flight[dev] = std::max(rep.peak_in_flight[dev], ++live);
        if (!backward) --live;
        if (last) mb_loss[m] = ls;
        if (!last) err = transport_->Send(s, s + 1, MessageKind::kActivation, m, out);
      } else {
        if (!last) {
          auto r = transport_->Recv(s, s + 1, MessageKind::kGradient, m);
          if (!r.ok()) { status[dev] = r.status(); break; }
          in = std::move(r).value();
        }
        const double start = now();
        err = st.Backward(m, p, in.data(), g, head_grad, first ? nullptr : out.data());
        const double end = now();
        if (!err.ok()) { status[dev] = err; break; }
        events[dev].push_back({dev, m, false, start, end, op.chunk});
        rep.busy_s[dev] += end - start;
        --live;
        if (!first) err = transport_->Send(s, s - 1, MessageKind::kGradient, m, out);
      }
      if (!err.ok()) { status[dev] = err; break; }
    }
    if (!status[dev].ok()) transport_->Abort();
  };

  if (S == 1) {
    run_stage(0);
  } else if (ranks_) {
    run_stage(ranks_->rank());  // this process's one device
  } else {
    std::vector<std::thread> threads;
    for (int s = 0; s < S; ++s) threads.emplace_back(run_stage, s);
    for (auto& t : threads) t.join();
  }
  rep.wall_s = now();
  // Report the first real failure, not the cancellations it caused.
  Status failure;
  for (const Status& st : status) {
    if (!st.ok() && (failure.ok() || failure.code() == StatusCode::kCancelled)) failure = st;
  }
  if (!failure.ok()) {
    transport_->Reset();
    for (auto& st : stages_)
      for (int m = 0; m < M; ++m)
        if (st) st->Release(m);
    if (ranks_) broken_ = failure.WithContext("an earlier step of this multi-process run failed");
    return failure;
  }
  for (int m = 0; m < M; ++m) {
    rep.loss_sum += mb_loss[m].sum;
    rep.tokens += mb_loss[m].count;
  }
  if (backward && !head_grad_.empty()) {
    // The tied embedding's two gradient shares (embedding on stage 0, head on stage S−1); in
    // a multi-process run the head's share travels from the last chunk's process to rank 0.
    const bool has_embd = Local(0), has_head = Local((C - 1) % S);
    if (has_head && !has_embd) {
      if (Status st = ranks_->SendFloats(0, kEngineTagBase, head_grad_.data(), head_grad_.size()); !st.ok()) {
        broken_ = st;
        return st;
      }
    } else if (has_embd && !has_head) {
      if (Status st = ranks_->RecvFloats((C - 1) % S, kEngineTagBase, head_grad_.data(), head_grad_.size()); !st.ok()) {
        broken_ = st;
        return st;
      }
    }
    if (has_embd) {
      float* emb = g + layout_->token_embd.offset;
      for (size_t i = 0; i < head_grad_.size(); ++i) emb[i] += head_grad_[i];
    }
  }
  for (int s = 0; s < S; ++s) rep.events.insert(rep.events.end(), events[s].begin(), events[s].end());
  return rep;
}

}  // namespace lms::train
