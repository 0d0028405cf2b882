#include "app/train_plan.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <thread>

#include "app/train_setup.h"
#include "core/backend/registry.h"
#include "core/train/optimizer.h"
#include "core/train/train_engine.h"
#include "core/train/simulate.h"
#include "core/train/train_model.h"
#include "core/util/thread_pool.h"

namespace lms::app {
namespace {

std::vector<int> Divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// The median of several timings. The plan predicts the step time training will see, and a
// training step is as disturbed as the profile was by the rest of the machine (other processes,
// a virtual machine's neighbours); the minimum predicted the least-disturbed step instead, and
// came out 5–10% short of the measured median on a quiet 2-vCPU machine.
double Typical(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct StageTiming {
  double fwd_s = 0, bwd_s = 0;
};

// Typical forward and backward seconds of one micro-batch through a stage of layers [0, n).
StageTiming TimeStage(const train::ModelShape& s, const train::ParamLayout& layout, const std::vector<float>& p,
                      int n_layers, bool ends, int mbs, int threads, int reps) {
  ThreadPool pool(threads);
  train::Stage st(s, layout, 0, n_layers, ends, ends, mbs, &pool);
  const int64_t rows = st.in_rows();
  std::mt19937_64 rng(1);
  std::vector<int32_t> tok(static_cast<size_t>(rows));
  for (auto& t : tok) t = static_cast<int32_t>(rng() % s.n_vocab);
  std::vector<float> x(static_cast<size_t>(rows * s.d_model), 0.01f), out(x.size()), dx(x.size());
  std::vector<float> g(p.size(), 0.0f);
  std::vector<double> f, b;
  for (int r = 0; r < reps + 1; ++r) {  // the first round warms caches and allocations
    train::LossSum ls;
    auto t0 = std::chrono::steady_clock::now();
    (void)st.Forward(0, p.data(), tok.data(), x.data(), tok.data(), 1e-3f, out.data(), &ls);
    auto t1 = std::chrono::steady_clock::now();
    (void)st.Backward(0, p.data(), out.data(), g.data(), g.data() + layout.Head().offset, dx.data());
    auto t2 = std::chrono::steady_clock::now();
    if (r == 0) continue;
    f.push_back(std::chrono::duration<double>(t1 - t0).count());
    b.push_back(std::chrono::duration<double>(t2 - t1).count());
  }
  return {Typical(f), Typical(b)};
}

// Typical seconds of what a training step does besides its passes: zeroing the gradients, then
// AdamW (global norm, clipping, update) over every parameter of the model.
double TimeOptimizerStep(const TrainRunConfig& c, const train::ParamLayout& full, int reps) {
  std::vector<float> params(static_cast<size_t>(full.total), 0.01f), grads(params.size());
  train::AdamW opt(c.optim, full);
  std::vector<double> t;
  for (int r = 0; r < reps + 1; ++r) {  // the first round faults the optimizer state in
    const auto t0 = std::chrono::steady_clock::now();
    std::fill(grads.begin(), grads.end(), 0.0f);
    opt.Step(r, params, grads);
    if (r > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return Typical(t);
}

double TotalMemory() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * size : 8e9;
}

// Bytes of activations kept per token for one layer and for the head (fp32), as Stage keeps them.
void ActivationBytes(const train::ModelShape& s, double* per_layer, double* head) {
  const double d = s.d_model, qd = s.n_heads * s.head_dim(), kvd = s.n_kv_heads * s.head_dim(), ff = s.d_ff;
  *per_layer = 4.0 * (5 * d + 2 * qd + 2 * kvd + 3 * ff + 2 + s.n_heads * s.seq_len);
  *head = 4.0 * (d + 1 + s.n_vocab);
}

// Fills device d's column of the cost table from one layer's timing at micro-batches of
// `tokens` and (when different) `tokens2` tokens — a per-token slope plus a fixed cost per
// micro-batch, or proportional where noise makes the slope meaningless — and adds what the
// embedding and head cost (`ends`: a one-layer first+last stage) to the last layer.
void FillColumn(train::CostTable& cost, int d, const StageTiming& layer, const StageTiming& layer2, double tokens,
                double tokens2, const StageTiming& ends) {
  double fwd_tok = layer.fwd_s / tokens, bwd_tok = layer.bwd_s / tokens, fixed = 0.0;
  if (tokens2 != tokens) {
    const double slope_f = (layer.fwd_s - layer2.fwd_s) / (tokens - tokens2);
    const double slope_b = (layer.bwd_s - layer2.bwd_s) / (tokens - tokens2);
    if (slope_f > 0 && slope_b > 0) {  // else timing noise: keep the proportional model
      fixed = std::max(0.0, layer.fwd_s + layer.bwd_s - (slope_f + slope_b) * tokens);
      fwd_tok = slope_f;
      bwd_tok = slope_b;
    }
  }
  const int L = static_cast<int>(cost.fwd_s_per_token.size());
  for (int l = 0; l < L; ++l) {
    cost.fwd_s_per_token[l][d] = fwd_tok;
    cost.bwd_s_per_token[l][d] = bwd_tok;
    cost.s_per_microbatch[l][d] = fixed;
  }
  // The head dominates the ends, so they go with the last layer.
  cost.fwd_s_per_token[L - 1][d] += std::max(0.0, ends.fwd_s - layer.fwd_s) / tokens;
  cost.bwd_s_per_token[L - 1][d] += std::max(0.0, ends.bwd_s - layer.bwd_s) / tokens;
}

// Timing through a training engine (a GPU): one forward and one backward of a micro-batch of
// `mbs` sequences through a single-stage model of `layers` layers (with the embedding and head),
// read from the step's timeline, which the engine takes on the device itself. The typical of
// `reps` runs after one warm-up.
struct EngineTiming {
  StageTiming pass;
  double optimizer_s = 0;
  int64_t params = 0;
  int64_t activation_bytes = -1;  // as the engine reports it (one micro-batch in flight)
};
Result<EngineTiming> TimeEngine(const TrainRunConfig& c, train::ModelShape s, int layers, int mbs,
                                const std::string& device, int reps) {
  s.n_layers = layers;
  const train::ParamLayout layout = train::ParamLayout::For(s);
  train::TrainEngineSpec spec;
  spec.shape = s;
  spec.optim = c.optim;
  spec.pipeline.boundaries = {0, layers};
  spec.pipeline.microbatches = 1;
  spec.pipeline.micro_batch_size = mbs;
  spec.device = device;
  spec.precision = c.precision;
  LMS_ASSIGN_OR_RETURN(auto engine, train::CreateTrainEngine(spec, layout));
  std::vector<float> p;
  train::InitParams(s, layout, 1, p);
  LMS_RETURN_IF_ERROR(engine->SetState(p, nullptr, nullptr));
  std::mt19937_64 rng(1);
  std::vector<int32_t> tok(static_cast<size_t>(int64_t{mbs} * s.seq_len));
  for (auto& t : tok) t = static_cast<int32_t>(rng() % s.n_vocab);
  std::vector<double> f, b, o;
  for (int r = 0; r < reps + 1; ++r) {
    LMS_ASSIGN_OR_RETURN(train::StepReport rep, engine->ForwardBackward(tok.data(), tok.data(), 1e-3f));
    const auto t0 = std::chrono::steady_clock::now();
    LMS_RETURN_IF_ERROR(engine->OptimizerStep(r).status());
    LMS_RETURN_IF_ERROR(engine->ZeroGrads());
    const double opt_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r == 0) continue;
    for (const auto& e : rep.events) (e.forward ? f : b).push_back(e.end_s - e.start_s);
    o.push_back(opt_s);
  }
  if (f.empty() || b.empty()) return Status::Internal("the engine's timeline has no passes to profile");
  return EngineTiming{{Typical(f), Typical(b)}, Typical(o), layout.total, engine->activation_bytes()};
}

// One layer's share of a (1 + K)-layer pass beyond a 1-layer one. Where timing noise makes the
// difference vanish (layers far cheaper than the embedding and head), a proportional share.
StageTiming PerLayer(const StageTiming& one, const StageTiming& more, int K) {
  auto part = [K](double a, double b) { return b > a ? (b - a) / K : b / (K + 1); };
  return {part(one.fwd_s, more.fwd_s), part(one.bwd_s, more.bwd_s)};
}

// The devices a run's device string names among those the registry lists: "cuda" (all),
// "cuda:N", "cuda:0,1".
Result<std::vector<DeviceInfo>> NamedDevices(const std::string& device) {
  LMS_ASSIGN_OR_RETURN(DeviceList list, ParseDeviceList(device));
  std::vector<DeviceInfo> all;
  for (const DeviceInfo& d : ListDevices())
    if (d.kind == list.kind) all.push_back(d);
  if (all.empty()) return Status::NotFound(fmt::format("no {} device is present to profile", list.kind));
  if (list.indices.empty()) return all;
  std::vector<DeviceInfo> out;
  for (int id : list.indices) {
    auto it = std::find_if(all.begin(), all.end(), [&](const DeviceInfo& d) { return d.index == id; });
    if (it == all.end()) return Status::NotFound(fmt::format("no {} device {}", list.kind, id));
    out.push_back(*it);
  }
  return out;
}

// Activation bytes a token keeps, measured: engines of 1 and 1 + K layers holding one
// micro-batch of `tokens`. The head's share also carries the stage's scratch (conservative).
struct MeasuredActivations {
  double per_layer = 0, head = 0;
};
std::optional<MeasuredActivations> MeasureActivations(const EngineTiming& one, const EngineTiming& more, int K,
                                                      double tokens) {
  if (one.activation_bytes < 0 || more.activation_bytes <= one.activation_bytes || tokens <= 0) return std::nullopt;
  MeasuredActivations m;
  m.per_layer = static_cast<double>(more.activation_bytes - one.activation_bytes) / K / tokens;
  m.head = std::max(0.0, static_cast<double>(one.activation_bytes) / tokens - m.per_layer);
  return m;
}

// Weight and activation bytes per layer: the embedding with the first layer, the final norm and
// head with the last. Activations as the CPU stages keep them (fp32), or as measured on an engine.
void LayerWeights(const train::ModelShape& shape, train::CostTable& cost,
                  const std::optional<MeasuredActivations>& measured = std::nullopt) {
  const train::ParamLayout full = train::ParamLayout::For(shape);
  const int L = shape.n_layers;
  double act_layer = 0, act_head = 0;
  ActivationBytes(shape, &act_layer, &act_head);
  if (measured) {
    act_layer = measured->per_layer;
    act_head = measured->head;
  }
  for (int l = 0; l < L; ++l) {
    const auto& P = full.layers[l];
    double w = 0;
    for (const auto* t : {&P.attn_norm, &P.wq, &P.wk, &P.wv, &P.wo, &P.ffn_norm, &P.w_gate, &P.w_up, &P.w_down}) w += t->size();
    if (l == 0) w += full.token_embd.size();
    if (l == L - 1) w += full.output_norm.size() + full.output.size() + (shape.tied ? full.token_embd.size() : 0);
    cost.weight_bytes.push_back(4.0 * w);
    cost.act_bytes_per_token.push_back(act_layer + (l == L - 1 ? act_head : 0.0));
  }
  cost.boundary_bytes_per_token = 4.0 * shape.d_model;
}

// Costs on the GPUs (or other registered engines) named by c.device: each kind of card (by
// name) timed once, through the engine, with a 1- and a (1+K)-layer model (the difference is K
// layers; the rest of the 1-layer pass the embedding, head and loss), at two micro-batch sizes
// as on the CPU.
Result<train::PlanProblem> ProfileEngines(const TrainRunConfig& c, const train::ModelShape& shape, bool fixed_microbatches,
                                          int reps) {
  LMS_ASSIGN_OR_RETURN(std::vector<DeviceInfo> devs, NamedDevices(c.device));
  const int L = shape.n_layers, D = static_cast<int>(devs.size());
  int mbs = std::max(1, c.batch_size / std::max(1, c.microbatches));
  int mbs2 = mbs > 1 ? mbs / 2 : 1;
  if (!fixed_microbatches && c.batch_size > 1) {
    mbs = 1;
    for (int dv : Divisors(c.batch_size)) {
      if (int64_t{dv} * shape.seq_len <= std::max<int64_t>(8192, shape.seq_len)) mbs = dv;
    }
    mbs2 = 1;
  }
  const double tokens = static_cast<double>(mbs) * shape.seq_len, tokens2 = static_cast<double>(mbs2) * shape.seq_len;
  train::PlanProblem pr;
  auto& cost = pr.cost;
  cost.fwd_s_per_token.assign(L, std::vector<double>(D));
  cost.bwd_s_per_token.assign(L, std::vector<double>(D));
  cost.s_per_microbatch.assign(L, std::vector<double>(D, 0.0));
  const train::ParamLayout full = train::ParamLayout::For(shape);
  double opt_s_per_param = 0;
  const int K = std::min(3, std::max(1, L - 1));  // layers told apart: 1 against 1 + K
  std::optional<MeasuredActivations> measured;    // from the first kind of card profiled
  for (int d = 0; d < D; ++d) {
    int same = 0;
    while (devs[same].name != devs[d].name) ++same;
    if (same < d) {
      for (int l = 0; l < L; ++l) {
        cost.fwd_s_per_token[l][d] = cost.fwd_s_per_token[l][same];
        cost.bwd_s_per_token[l][d] = cost.bwd_s_per_token[l][same];
        cost.s_per_microbatch[l][d] = cost.s_per_microbatch[l][same];
      }
    } else {
      const std::string dev = fmt::format("{}:{}", devs[d].kind, devs[d].index);
      LMS_ASSIGN_OR_RETURN(EngineTiming one, TimeEngine(c, shape, 1, mbs, dev, reps));
      LMS_ASSIGN_OR_RETURN(EngineTiming two, TimeEngine(c, shape, 1 + K, mbs, dev, reps));
      if (!measured) measured = MeasureActivations(one, two, K, tokens);
      const StageTiming layer = PerLayer(one.pass, two.pass, K);
      StageTiming layer2 = layer;
      if (mbs2 != mbs) {
        LMS_ASSIGN_OR_RETURN(EngineTiming one2, TimeEngine(c, shape, 1, mbs2, dev, reps));
        LMS_ASSIGN_OR_RETURN(EngineTiming two2, TimeEngine(c, shape, 1 + K, mbs2, dev, reps));
        layer2 = PerLayer(one2.pass, two2.pass, K);
      }
      FillColumn(cost, d, layer, layer2, tokens, tokens2, one.pass);
      // AdamW streams every parameter's state once: its time scales with the parameters.
      if (d == 0) opt_s_per_param = two.optimizer_s / static_cast<double>(two.params);
    }
    pr.devices.push_back({fmt::format("{}{} {}", devs[d].kind, devs[d].index, devs[d].name),
                          devs[d].memory_bytes ? 0.9 * static_cast<double>(devs[d].memory_bytes) : 8e9, 0});
  }
  LayerWeights(shape, cost, measured);
  cost.state_per_weight_byte = c.precision == "f32" ? 4.25 : 4.75;  // + decay flags (+ a bf16 copy)
  cost.step_fixed_s = opt_s_per_param * static_cast<double>(full.total);
  // Between GPUs of one machine: not measured; a conservative PCIe-class link.
  pr.intra_node = {20e9, 10e-6};
  pr.inter_node = pr.intra_node;
  pr.batch_tokens = int64_t{c.batch_size} * shape.seq_len;
  pr.seq_len = shape.seq_len;
  pr.microbatch_choices = Divisors(c.batch_size);
  return pr;
}

}  // namespace

std::vector<int> LocalDevices(const TrainRunConfig& c) {
  if (!c.stage_threads.empty()) return c.stage_threads;
  return StageThreads(c);
}

Result<train::PlanProblem> ProfileLocal(const TrainRunConfig& c, const train::ModelShape& shape, bool fixed_microbatches,
                                        int reps) {
  if (c.device != "cpu") return ProfileEngines(c, shape, fixed_microbatches, reps);
  const std::vector<int> devices = LocalDevices(c);
  const int L = shape.n_layers, D = static_cast<int>(devices.size());
  train::ModelShape one = shape;
  one.n_layers = 1;
  const train::ParamLayout layout = train::ParamLayout::For(one);
  std::vector<float> p;
  train::InitParams(one, layout, 1, p);
  // Two micro-batch sizes separate a layer's per-token cost from its fixed cost per micro-batch
  // (t = a + b·n), which decides how small micro-batches may usefully get. With the micro-batch
  // count fixed, the sizes are its own and half (or twice) that; when the planner may choose any
  // divisor of the batch, they span the choices (the largest capped at 4,096 tokens), so the
  // fit interpolates instead of extrapolating.
  int mbs = std::max(1, c.batch_size / std::max(1, c.microbatches));
  int mbs2 = mbs > 1 ? mbs / 2 : (c.batch_size > 1 ? 2 : 1);
  if (!fixed_microbatches && c.batch_size > 1) {
    mbs = 1;
    for (int dv : Divisors(c.batch_size)) {
      if (int64_t{dv} * shape.seq_len <= std::max<int64_t>(4096, int64_t{mbs} * shape.seq_len)) mbs = dv;
    }
    mbs2 = 1;
  }
  const double tokens = static_cast<double>(mbs) * shape.seq_len;
  train::PlanProblem pr;
  auto& cost = pr.cost;
  cost.fwd_s_per_token.assign(L, std::vector<double>(D));
  cost.bwd_s_per_token.assign(L, std::vector<double>(D));
  cost.s_per_microbatch.assign(L, std::vector<double>(D, 0.0));
  const double tokens2 = static_cast<double>(mbs2) * shape.seq_len;
  // Each kind of device (thread count) is timed alone; then every device is timed again while
  // all of them run the same layer at once, as the stages do in the pipeline's steady state:
  // the ratio is each device's contention factor (cores, caches and memory bandwidth shared).
  struct Timings {
    StageTiming layer, layer2, ends;
  };
  std::vector<Timings> timed(static_cast<size_t>(D));
  for (int d = 0; d < D; ++d) {
    int same = 0;
    while (devices[same] != devices[d]) ++same;
    if (same < d) {
      timed[d] = timed[same];
      continue;
    }
    timed[d].layer = TimeStage(one, layout, p, 1, false, mbs, devices[d], reps);
    timed[d].layer2 = mbs2 != mbs ? TimeStage(one, layout, p, 1, false, mbs2, devices[d], reps) : timed[d].layer;
    timed[d].ends = TimeStage(one, layout, p, 1, true, mbs, devices[d], reps);
  }
  if (D > 1) {
    std::vector<StageTiming> shared(static_cast<size_t>(D));
    std::vector<std::thread> th;
    for (int d = 1; d < D; ++d)
      th.emplace_back([&, d] { shared[d] = TimeStage(one, layout, p, 1, false, mbs, devices[d], reps); });
    shared[0] = TimeStage(one, layout, p, 1, false, mbs, devices[0], reps);
    for (auto& t : th) t.join();
    // One factor per kind of device (the mean over its devices), so equal devices stay equal.
    for (int d = 0; d < D; ++d) {
      double sum = 0;
      int n = 0;
      for (int e = 0; e < D; ++e) {
        if (devices[e] != devices[d]) continue;
        sum += (shared[e].fwd_s + shared[e].bwd_s) / (timed[e].layer.fwd_s + timed[e].layer.bwd_s);
        ++n;
      }
      cost.contention.push_back(std::max(1.0, sum / n));  // sharing never speeds a device up
    }
  }
  for (int d = 0; d < D; ++d) {
    FillColumn(cost, d, timed[d].layer, timed[d].layer2, tokens, tokens2, timed[d].ends);
    pr.devices.push_back({fmt::format("cpu{}x{}t", d, devices[d]), TotalMemory() / D, 0});
  }
  const train::ParamLayout full = train::ParamLayout::For(shape);
  LayerWeights(shape, cost);
  cost.state_per_weight_byte = 4.25;  // + the weight-decay flags
  cost.step_fixed_s = TimeOptimizerStep(c, full, reps);
  pr.intra_node = {8e9, 2e-6};  // an in-process copy between stage threads
  pr.inter_node = pr.intra_node;
  pr.batch_tokens = int64_t{c.batch_size} * shape.seq_len;
  pr.seq_len = shape.seq_len;
  pr.microbatch_choices = Divisors(c.batch_size);
  return pr;
}

Result<train::PlanProblem> DescribeCluster(const TrainRunConfig& c, const train::ModelShape& s, const std::string& kind) {
  LMS_ASSIGN_OR_RETURN(train::Cluster cl, train::NamedCluster(kind));
  const int L = s.n_layers, D = static_cast<int>(cl.devices.size());
  const double d = s.d_model, qd = s.n_heads * s.head_dim(), kvd = s.n_kv_heads * s.head_dim(), ff = s.d_ff;
  // Forward FLOPs per token: 2 per weight of the matmuls, plus causal attention (QKᵀ and AV,
  // each 2·qd per visible key, T/2 keys on average). Backward is twice the forward.
  const double layer_w = d * qd * 2 + d * kvd * 2 + 3 * d * ff;
  const double layer_f = 2 * layer_w + 2 * 2 * qd * s.seq_len / 2.0;
  const double head_f = 2 * d * s.n_vocab;
  train::PlanProblem pr;
  auto& cost = pr.cost;
  double act_layer = 0, act_head = 0;
  ActivationBytes(s, &act_layer, &act_head);
  for (int l = 0; l < L; ++l) {
    const double f = layer_f + (l == L - 1 ? head_f : 0.0);
    std::vector<double> fw(D), bw(D);
    for (int k = 0; k < D; ++k) {
      fw[k] = f / cl.devices[k].flops;
      bw[k] = 2 * f / cl.devices[k].flops;
    }
    cost.fwd_s_per_token.push_back(fw);
    cost.bwd_s_per_token.push_back(bw);
    double w = layer_w + 2 * d;
    if (l == 0) w += d * s.n_vocab;
    if (l == L - 1) w += d + (s.tied ? d * s.n_vocab : d * s.n_vocab);
    cost.weight_bytes.push_back(4.0 * w);
    cost.act_bytes_per_token.push_back(act_layer + (l == L - 1 ? act_head : 0.0));
  }
  cost.boundary_bytes_per_token = 4.0 * d;
  for (const auto& dev : cl.devices) pr.devices.push_back({dev.name, dev.memory_bytes, dev.node});
  pr.intra_node = cl.intra_node;
  pr.inter_node = cl.inter_node;
  pr.batch_tokens = int64_t{c.batch_size} * s.seq_len;
  pr.seq_len = s.seq_len;
  pr.microbatch_choices = Divisors(c.batch_size);
  return pr;
}

void ReplicateDevice(train::PlanProblem& pr, int d, int n) {
  auto& cost = pr.cost;
  const int D = static_cast<int>(pr.devices.size());
  for (int k = D; k < n; ++k) {
    for (auto* table : {&cost.fwd_s_per_token, &cost.bwd_s_per_token, &cost.s_per_microbatch}) {
      for (auto& row : *table)
        if (!row.empty()) row.push_back(row[d]);
    }
    if (!cost.contention.empty()) cost.contention.push_back(cost.contention[d]);
    train::PlanDevice dev = pr.devices[d];
    dev.name = fmt::format("{} (extrapolated {})", pr.devices[d].name, k);
    pr.devices.push_back(dev);
  }
}

Result<std::string> DeviceString(const std::string& device, const std::vector<int>& devs) {
  LMS_ASSIGN_OR_RETURN(std::vector<DeviceInfo> named, NamedDevices(device));
  std::string ids;
  for (int d : devs) {
    if (d < 0 || d >= static_cast<int>(named.size())) {
      return Status::InvalidArgument(fmt::format("the plan uses device {}, which is not here", d));
    }
    ids += fmt::format("{}{}", ids.empty() ? "" : ",", named[d].index);
  }
  return fmt::format("{}:{}", named.front().kind, ids);
}

Result<AutoPlan> PlanForRun(const TrainRunConfig& c, const train::ModelShape& shape) {
  LMS_ASSIGN_OR_RETURN(train::PlanProblem pr, ProfileLocal(c, shape, /*fixed_microbatches=*/false));
  LMS_ASSIGN_OR_RETURN(train::ScheduleKind sk, train::ParseSchedule(c.schedule));
  pr.schedule = sk;
  LMS_ASSIGN_OR_RETURN(train::Plan plan, train::PlanPipeline(pr));
  AutoPlan a;
  a.boundaries = plan.boundaries;
  a.device = c.device;
  if (c.device == "cpu") {
    const std::vector<int> devices = LocalDevices(c);
    for (int d : plan.devices) a.threads.push_back(devices[d]);
  } else {
    LMS_ASSIGN_OR_RETURN(a.device, DeviceString(c.device, plan.devices));
    a.threads.assign(plan.devices.size(), 1);
  }
  a.microbatches = plan.microbatches;
  a.predicted_step_s = plan.predicted_step_s;
  a.note = fmt::format("planned: {} stage(s){}, M={}, predicted {:.3f} s per step", plan.devices.size(),
                       c.device == "cpu" ? "" : " on " + a.device, plan.microbatches, plan.predicted_step_s);
  return a;
}

}  // namespace lms::app
