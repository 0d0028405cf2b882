// lmstation plan CONFIG.toml — choose stage boundaries, devices and micro-batch count with the
// inter-operator DP, from costs profiled on this machine's CPU "devices" (or derived from FLOPs
// for a described cluster with --cluster), and compare with the equal-layers split: predicted
// by the formula and the event simulator, and with --measure, measured on real passes.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <random>

#include "app/commands.h"
#include "app/model_cache.h"
#include "app/train_config.h"
#include "app/train_plan.h"
#include "app/train_setup.h"
#include "core/train/data.h"
#include "core/train/gguf_io.h"
#include "core/train/simulate.h"
#include "core/train/train_engine.h"

namespace lms::app {
namespace {

nlohmann::json PlanJson(const train::PlanProblem& pr, const train::Plan& p, const train::SimResult& sim) {
  nlohmann::json stages = nlohmann::json::array();
  for (size_t s = 0; s < p.devices.size(); ++s) {
    stages.push_back({{"layers", {p.boundaries[s], p.boundaries[s + 1]}}, {"device", pr.devices[p.devices[s]].name},
                      {"time_s", p.stage_s[s]}, {"memory_bytes", p.stage_memory[s]}});
  }
  return {{"microbatches", p.microbatches}, {"boundaries", p.boundaries}, {"stages", stages},
          {"predicted_step_s", p.predicted_step_s}, {"simulated_step_s", sim.step_s}, {"simulated_bubble", sim.bubble}};
}

void PrintTable(const char* title, const train::PlanProblem& pr, const train::Plan& p, const train::SimResult& sim) {
  std::printf("%s: M=%d, predicted %.4f s/step (simulated %.4f s, bubble %.3f)\n", title, p.microbatches,
              p.predicted_step_s, sim.step_s, sim.bubble);
  std::printf("  %-6s %-10s %-16s %12s %14s\n", "stage", "layers", "device", "time/mb (s)", "memory (MiB)");
  for (size_t s = 0; s < p.devices.size(); ++s) {
    std::printf("  %-6zu %-10s %-16s %12.5f %14.1f\n", s, fmt::format("{}-{}", p.boundaries[s], p.boundaries[s + 1] - 1).c_str(),
                pr.devices[p.devices[s]].name.c_str(), p.stage_s[s], p.stage_memory[s] / (1 << 20));
  }
}

// Median and best wall time of `reps` real training steps with the given split: zero the gradients, one
// forward+backward pass through the pipeline, AdamW — what Trainer::Step does.
struct Measured {
  double median_s = 0, best_s = 0;
};
Result<Measured> MeasureStep(const TrainRunConfig& c, const train::ModelShape& shape, const std::vector<int>& bounds, const std::vector<int>& threads,
                           const std::string& device, int M, int batch, train::ScheduleKind sk, int reps) {
  const train::ParamLayout layout = train::ParamLayout::For(shape);
  std::vector<float> p;
  train::InitParams(shape, layout, 1, p);
  train::TrainEngineSpec spec;
  spec.shape = shape;
  spec.optim = c.optim;
  spec.pipeline.boundaries = bounds;
  spec.pipeline.threads = threads;
  spec.pipeline.schedule = sk;
  spec.pipeline.microbatches = M;
  spec.pipeline.micro_batch_size = batch / M;
  spec.device = device;
  spec.precision = c.precision;
  LMS_ASSIGN_OR_RETURN(auto engine, train::CreateTrainEngine(spec, layout));
  LMS_RETURN_IF_ERROR(engine->SetState(p, nullptr, nullptr));
  std::mt19937_64 rng(2);
  std::vector<int32_t> tok(static_cast<size_t>(batch) * shape.seq_len);
  for (auto& t : tok) t = static_cast<int32_t>(rng() % shape.n_vocab);
  std::vector<double> w;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    LMS_RETURN_IF_ERROR(engine->ZeroGrads());
    LMS_ASSIGN_OR_RETURN(train::StepReport rep, engine->ForwardBackward(tok.data(), tok.data(), 1e-3f));
    LMS_RETURN_IF_ERROR(engine->OptimizerStep(r).status());
    if (r > 0) w.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(w.begin(), w.end());
  return Measured{w[w.size() / 2], w.front()};
}

}  // namespace

CommandFn AddPlanCommand(CLI::App& cli) {
  struct Opts {
    std::string config, cluster, device;
    bool json = false, measure = false;
    int reps = 5, stages = 0, microbatches = 0, gpus = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("plan", "Plan pipeline stages for a training config (Alpa's inter-operator DP)");
  sub->add_option("config", o->config, "TOML file")->required()->check(CLI::ExistingFile);
  sub->add_option("--cluster", o->cluster, "Plan for a described cluster: 8xh100-nvlink, 2x8xh100-100gbe, h100+a100");
  sub->add_flag("--measure", o->measure, "Also run real training steps of the planned and the equal split on this machine");
  sub->add_option("--reps", o->reps, "Measured steps per split (median)");
  sub->add_option("--stages", o->stages, "Pipeline stages, i.e. local devices (overrides the file)");
  sub->add_option("--device", o->device, "Profile the GPUs of this device string (cuda, cuda:N, cuda:0,1) instead of the CPU");
  sub->add_option("--gpus", o->gpus, "With --device: plan for this many GPUs like the first one profiled (extrapolated)");
  sub->add_option("--microbatches", o->microbatches, "Plan only for this micro-batch count (default: any divisor of the batch)");
  sub->add_flag("--json", o->json, "Print one JSON object");
  return [o]() {
    auto cfg = LoadTrainConfig(o->config);
    if (!cfg.ok()) return Fail(cfg.status());
    TrainRunConfig& c = *cfg;
    if (o->stages > 0) {
      c.stages = o->stages;
      c.stage_threads.clear();
    }
    if (!o->device.empty()) c.device = o->device;
    if (o->gpus > 0 && (c.device == "cpu" || !o->cluster.empty())) {
      return Fail(Status::InvalidArgument("--gpus extrapolates profiled GPUs: give --device (and no --cluster)"));
    }
    if (o->gpus > 0 && o->measure) return Fail(Status::InvalidArgument("--gpus plans for GPUs that may not be here: no --measure"));
    if (o->microbatches > 0) {
      if (c.batch_size % o->microbatches != 0) return Fail(Status::InvalidArgument("--microbatches must divide the batch size"));
      c.microbatches = o->microbatches;
    }
    train::ModelShape shape = c.shape;
    if (!c.base.empty()) {
      auto base = ResolveModel(c.base);
      if (!base.ok()) return Fail(base.status());
      auto m = train::ImportGguf(*base, c.shape.seq_len);
      if (!m.ok()) return Fail(m.status());
      shape = m->shape;
    } else if (c.tokenizer == "byte") {
      shape.n_vocab = static_cast<int32_t>(train::ByteLevelVocab().tokens.size());
    }
    if (Status s = shape.Validate(); !s.ok()) return Fail(s);
    auto sk = train::ParseSchedule(c.schedule);
    if (!sk.ok()) return Fail(sk.status());
    const auto t0 = std::chrono::steady_clock::now();
    auto pr = o->cluster.empty() ? ProfileLocal(c, shape, o->microbatches > 0) : DescribeCluster(c, shape, o->cluster);
    if (!pr.ok()) return Fail(pr.status());
    if (o->gpus > 0) ReplicateDevice(*pr, 0, o->gpus);
    pr->schedule = *sk;
    if (o->microbatches > 0) pr->microbatch_choices = {o->microbatches};
    const auto t1 = std::chrono::steady_clock::now();
    auto plan = train::PlanPipeline(*pr);
    const auto t2 = std::chrono::steady_clock::now();
    if (!plan.ok()) return Fail(plan.status());
    const double plan_s = std::chrono::duration<double>(t2 - t1).count();
    // The baseline: equal layers per device, devices in order, all of them, the same M.
    const int D = static_cast<int>(pr->devices.size());
    const int S_eq = std::min(D, shape.n_layers);
    std::vector<int> eq_devs(S_eq);
    for (int i = 0; i < S_eq; ++i) eq_devs[i] = i;
    auto equal = train::EvaluatePlan(*pr, plan->microbatches, train::EqualSplit(shape.n_layers, S_eq), eq_devs);
    const train::SimResult sim = train::SimulatePlan(*pr, *plan);
    nlohmann::json j = {{"plan", PlanJson(*pr, *plan, sim)},
                        {"contention", pr->cost.contention}, {"optimizer_step_s", pr->cost.step_fixed_s},
                        {"profile_s", std::chrono::duration<double>(t1 - t0).count()},
                        {"planning_s", plan_s}, {"tmax_evaluated", plan->tmax_evaluated}};
    train::SimResult sim_eq;
    if (equal.ok()) {
      sim_eq = train::SimulatePlan(*pr, *equal);
      j["equal"] = PlanJson(*pr, *equal, sim_eq);
    }
    if (o->measure && o->cluster.empty()) {
      // CPU: a thread count per device; GPUs: the device string lists them in stage order.
      const bool cpu = c.device == "cpu";
      const std::vector<int> devices = cpu ? LocalDevices(c) : std::vector<int>{};
      auto placed = [&](const std::vector<int>& devs, std::vector<int>& th) -> Result<std::string> {
        th.clear();
        if (cpu) {
          for (int d : devs) th.push_back(devices[d]);
          return std::string("cpu");
        }
        th.assign(devs.size(), 1);
        return DeviceString(c.device, devs);
      };
      std::vector<int> th;
      auto dev = placed(plan->devices, th);
      if (!dev.ok()) return Fail(dev.status());
      auto mp = MeasureStep(c, shape, plan->boundaries, th, *dev, plan->microbatches, c.batch_size, *sk, o->reps);
      if (!mp.ok()) return Fail(mp.status());
      j["plan"]["measured_step_s"] = mp->median_s;
      j["plan"]["measured_best_step_s"] = mp->best_s;
      j["plan"]["prediction_error"] = plan->predicted_step_s / mp->median_s - 1.0;
      j["plan"]["prediction_error_best"] = plan->predicted_step_s / mp->best_s - 1.0;
      if (equal.ok()) {
        std::vector<int> th_eq;
        auto dev_eq = placed(eq_devs, th_eq);
        if (!dev_eq.ok()) return Fail(dev_eq.status());
        auto me = MeasureStep(c, shape, equal->boundaries, th_eq, *dev_eq, equal->microbatches, c.batch_size, *sk, o->reps);
        if (!me.ok()) return Fail(me.status());
        j["equal"]["measured_step_s"] = me->median_s;
        j["equal"]["measured_best_step_s"] = me->best_s;
        j["equal"]["prediction_error"] = equal->predicted_step_s / me->median_s - 1.0;
        j["equal"]["prediction_error_best"] = equal->predicted_step_s / me->best_s - 1.0;
      }
    }
    if (o->json) {
      std::printf("%s\n", j.dump().c_str());
      return 0;
    }
    std::printf("model: %s; %d device(s)%s; planned in %.3f s (%lld t_max bounds)\n", shape.Summary().c_str(), D,
                !o->cluster.empty() ? (" (" + o->cluster + ")").c_str()
                : o->gpus > 0 ? fmt::format(" (profiled on {}, extrapolated)", c.device).c_str()
                              : " (profiled here)",
                plan_s,
                static_cast<long long>(plan->tmax_evaluated));
    if (!pr->cost.contention.empty()) {
      std::printf("contention (stage slowdown while all devices run):");
      for (double f : pr->cost.contention) std::printf(" %.2f", f);
      std::printf("; optimizer %.4f s/step\n", pr->cost.step_fixed_s);
    }
    PrintTable("plan", *pr, *plan, sim);
    auto measured = [](const nlohmann::json& p) {
      if (p.contains("measured_step_s")) {
        std::printf("  measured %.4f s/step median (prediction %+.1f%%), %.4f s best (prediction %+.1f%%)\n",
                    p["measured_step_s"].get<double>(), 100.0 * p["prediction_error"].get<double>(),
                    p["measured_best_step_s"].get<double>(), 100.0 * p["prediction_error_best"].get<double>());
      }
    };
    measured(j["plan"]);
    if (equal.ok()) {
      PrintTable("equal split", *pr, *equal, sim_eq);
      measured(j["equal"]);
    } else {
      std::printf("equal split: %s\n", equal.status().message().c_str());
    }
    return 0;
  };
}

}  // namespace lms::app
