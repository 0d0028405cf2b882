// lmstation train CONFIG.toml — train (or fine-tune) a Llama-style model with pipeline stages.
// Writes into --out: token shards, checkpoint.bin (atomic, every checkpoint_every steps and at
// the end), log.csv (one row per step), timeline.json (the last step's per-stage events) and
// model.gguf (the exported model, loadable by `lmstation run`). Metrics also go to the SQLite
// record (--db, or the default record when it exists): see app/train_record.h.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "app/commands.h"
#include "app/train_config.h"
#include "app/train_record.h"
#include "app/train_setup.h"
#include "core/train/checkpoint.h"
#include "core/train/fileio.h"
#include "core/train/gguf_io.h"
#include "core/train/trainer.h"

namespace lms::app {
namespace fs = std::filesystem;

namespace {

// Keeps the log rows of steps ≤ `step` (a resumed run rewrites what followed its checkpoint).
Status TruncateLog(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return Status::Ok();
  std::string line, kept;
  bool header = true;
  while (std::getline(in, line)) {
    if (header) {
      kept += line + "\n";
      header = false;
      continue;
    }
    // A row the killed run left half-written has no valid step: drop it with the rest.
    char* end = nullptr;
    const long long row_step = std::strtoll(line.c_str(), &end, 10);
    if (end != line.c_str() && *end == ',' && row_step <= step) kept += line + "\n";
  }
  return train::WriteFileAtomic(path, std::vector<uint8_t>(kept.begin(), kept.end()));
}

nlohmann::json TimelineJson(const train::StepReport& rep, int stages, int microbatches) {
  nlohmann::json ev = nlohmann::json::array();
  for (const auto& e : rep.events) {
    ev.push_back({{"stage", e.stage}, {"microbatch", e.microbatch}, {"op", e.forward ? "F" : "B"},
                  {"start_s", e.start_s}, {"end_s", e.end_s}});
  }
  return {{"stages", stages}, {"microbatches", microbatches}, {"wall_s", rep.wall_s}, {"busy_s", rep.busy_s},
          {"peak_in_flight", rep.peak_in_flight}, {"bubble", rep.Bubble()},
          {"bubble_theory", train::TheoreticalBubble(stages, microbatches)}, {"events", ev}};
}

}  // namespace

CommandFn AddTrainCommand(CLI::App& cli) {
  struct Opts {
    std::string config, out, schedule, plan, db;
    int stages = 0, microbatches = 0, steps = 0, threads = 0;
    bool json = false, resume = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("train", "Train or fine-tune a model from a TOML config (pipeline-parallel)");
  sub->add_option("config", o->config, "TOML file")->required()->check(CLI::ExistingFile);
  sub->add_option("--stages", o->stages, "Pipeline stages (overrides the file)");
  sub->add_option("--schedule", o->schedule, "gpipe or 1f1b (overrides the file)");
  sub->add_option("--microbatches", o->microbatches, "Micro-batches per step (overrides the file)");
  sub->add_option("--steps", o->steps, "Optimizer steps (overrides the file)");
  sub->add_option("--out", o->out, "Output directory (overrides the file)");
  sub->add_option("--plan", o->plan, "Stage split: equal or auto (the planner; overrides the file)");
  sub->add_option("-t,--threads", o->threads, "Worker threads per stage (overrides the file)");
  sub->add_option("--db", o->db, "Record metrics in this database (default: $XDG_DATA_HOME/lmstation/lmstation.db when it exists)");
  sub->add_flag("--resume", o->resume, "Continue from OUT/checkpoint.bin when it exists");
  sub->add_flag("--json", o->json, "Print a final JSON object (loss, val_loss, tokens_per_s, bubble)");
  return [o]() {
    auto cfg = LoadTrainConfig(o->config);
    if (!cfg.ok()) return Fail(cfg.status());
    TrainRunConfig& c = *cfg;
    if (o->stages > 0) c.stages = o->stages;
    if (!o->schedule.empty()) c.schedule = o->schedule;
    if (o->microbatches > 0) c.microbatches = o->microbatches;
    if (o->steps > 0) c.steps = o->steps;
    if (!o->out.empty()) c.out = o->out;
    if (!o->plan.empty()) c.plan = o->plan;
    if (o->threads > 0) c.threads = o->threads;
    std::error_code ec;
    fs::create_directories(c.out, ec);
    if (ec) return Fail(Status::IoError("cannot create output directory '" + c.out + "': " + ec.message()));

    auto setup = PrepareTraining(c, o->resume);
    if (!setup.ok()) return Fail(setup.status());
    TrainingSetup& S = *setup;
    auto trainer = train::Trainer::Create(S.trainer, std::move(S.initial_params), std::move(S.train_tokens),
                                          std::move(S.val_tokens));
    if (!trainer.ok()) return Fail(trainer.status());
    train::Trainer& tr = **trainer;
    const std::string ckpt_path = (fs::path(c.out) / "checkpoint.bin").string();
    const std::string log_path = (fs::path(c.out) / "log.csv").string();
    if (o->resume && fs::exists(ckpt_path)) {
      auto ck = train::LoadCheckpoint(ckpt_path);
      if (!ck.ok()) return Fail(ck.status());
      if (Status st = tr.Restore(*ck); !st.ok()) return Fail(st);
      if (Status st = TruncateLog(log_path, tr.step()); !st.ok()) return Fail(st);
      std::fprintf(stderr, "resumed from %s at step %lld\n", ckpt_path.c_str(), static_cast<long long>(tr.step()));
    } else {
      std::ofstream(log_path, std::ios::trunc) << "step,loss,lr,grad_norm,tokens_per_s,bubble,val_loss\n";
    }
    auto record = TrainRecord::Open(o->db, c.out, o->config, tr.step());
    if (!record.ok()) return Fail(record.status());
    std::unique_ptr<TrainRecord> rec = std::move(*record);
    // Errors from here on also mark the recorded run failed.
    auto fail = [&rec](const Status& s) {
      if (rec) (void)rec->Finish("failed");
      return Fail(s);
    };
    if (rec) std::fprintf(stderr, "recording metrics in %s (run %lld)\n", rec->path().c_str(), static_cast<long long>(rec->run_id()));
    std::fprintf(stderr, "model: %s, %lld parameters; %d stage(s) %s, layers [%s], %d micro-batch(es); %s\n",
                 S.trainer.shape.Summary().c_str(), static_cast<long long>(tr.layout().total), tr.pipeline().stages(),
                 train::ScheduleName(S.trainer.pipeline.schedule),
                 fmt::format("{}", fmt::join(S.trainer.pipeline.boundaries, ",")).c_str(),
                 S.trainer.pipeline.microbatches, S.plan_note.c_str());

    auto save = [&]() { return train::SaveCheckpoint(ckpt_path, tr.MakeCheckpoint()); };
    train::StepStats last;
    double tok_total = 0, sec_total = 0, bubble_sum = 0;
    int measured = 0;
    double val_loss = NAN;
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t first_step = tr.step();
    while (tr.step() < c.steps) {
      auto st = tr.Step();
      if (!st.ok()) return fail(st.status());
      last = std::move(*st);
      tok_total += static_cast<double>(last.tokens);
      sec_total += last.seconds;
      bubble_sum += last.bubble;
      ++measured;
      std::string val_field;
      std::optional<double> step_val;
      if (c.eval_every > 0 && last.step % c.eval_every == 0 && last.step < c.steps) {
        auto v = tr.ValidationLoss();
        if (!v.ok()) return fail(v.status());
        val_loss = *v;
        step_val = *v;
        val_field = fmt::format("{:.9g}", *v);
      }
      if (rec) {
        if (Status s = rec->AddStep(last, step_val); !s.ok()) return fail(s);
      }
      std::ofstream(log_path, std::ios::app)
          << fmt::format("{},{:.17g},{:.9g},{:.9g},{:.1f},{:.4f},{}\n", last.step, last.loss, last.lr, last.grad_norm,
                         last.tokens / last.seconds, last.bubble, val_field);
      if (c.checkpoint_every > 0 && last.step % c.checkpoint_every == 0) {
        if (Status s = save(); !s.ok()) return fail(s);
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = elapsed / static_cast<double>(tr.step() - first_step) * static_cast<double>(c.steps - tr.step());
      std::fprintf(stderr, "\rstep %lld/%d  loss %.4f  lr %.2e  %.0f tok/s  bubble %.2f  ETA %.0fs   ",
                   static_cast<long long>(last.step), c.steps, last.loss, last.lr, tok_total / sec_total, last.bubble, eta);
    }
    std::fprintf(stderr, "\n");
    if (Status s = save(); !s.ok()) return fail(s);
    auto v = tr.ValidationLoss();
    if (!v.ok()) return fail(v.status());
    val_loss = *v;
    if (rec && measured) {
      if (Status s = rec->AddValue(last.step, "val_loss", val_loss); !s.ok()) return fail(s);
      if (Status s = rec->AddTimeline(last.step, last.report); !s.ok()) return fail(s);
    }
    {
      std::ofstream tl(fs::path(c.out) / "timeline.json");
      tl << TimelineJson(last.report, tr.pipeline().stages(), S.trainer.pipeline.microbatches).dump(1) << "\n";
    }
    train::ExportOptions eo;
    eo.name = c.export_name;
    eo.context_length = S.context_length;
    auto type = ParseTensorType(c.export_type);
    if (!type) return fail(Status::InvalidArgument("[export] type '" + c.export_type + "' is not a tensor type"));
    eo.matrix_type = *type;
    const std::string gguf_path = (fs::path(c.out) / "model.gguf").string();
    if (Status s = train::ExportGguf(gguf_path, S.trainer.shape, tr.params(), S.tokenizer_kv, eo); !s.ok()) return fail(s);
    const double tps = sec_total > 0 ? tok_total / sec_total : 0.0;
    const double bubble = measured ? bubble_sum / measured : 0.0;
    std::fprintf(stderr, "val loss %.4f; exported %s\n", val_loss, gguf_path.c_str());
    if (o->json) {
      nlohmann::json j = {{"loss", measured ? last.loss : NAN}, {"val_loss", val_loss}, {"tokens_per_s", tps},
                          {"bubble", bubble},
                          {"bubble_theory", train::TheoreticalBubble(tr.pipeline().stages(), S.trainer.pipeline.microbatches)},
                          {"steps", tr.step()}, {"stages", tr.pipeline().stages()},
                          {"schedule", train::ScheduleName(S.trainer.pipeline.schedule)},
                          {"microbatches", S.trainer.pipeline.microbatches},
                          {"boundaries", S.trainer.pipeline.boundaries}, {"model", gguf_path},
                          {"checkpoint", ckpt_path}};
      std::printf("%s\n", j.dump().c_str());
    }
    if (rec) {
      if (Status s = rec->Finish("done"); !s.ok()) return Fail(s);
    }
    return 0;
  };
}

}  // namespace lms::app
