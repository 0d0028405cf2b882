// lmstation train CONFIG.toml — train (or fine-tune) a Llama-style model with pipeline stages.
// Writes into --out: token shards, checkpoint.bin (atomic, every checkpoint_every steps and at
// the end), log.csv (one row per step), timeline.json (the last step's per-stage events) and
// model.gguf (the exported model, loadable by `lmstation run`). Metrics also go to the SQLite
// record (--db, or the default record when it exists): see app/train_record.h.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "app/commands.h"
#include "app/train_config.h"
#include "app/train_job.h"

namespace lms::app {

CommandFn AddTrainCommand(CLI::App& cli) {
  struct Opts {
    std::string config, out, schedule, plan, db, device, precision;
    int stages = 0, microbatches = 0, steps = 0, threads = 0, chunks = 0;
    bool json = false, resume = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("train", "Train or fine-tune a model from a TOML config (pipeline-parallel)");
  sub->add_option("config", o->config, "TOML file")->required()->check(CLI::ExistingFile);
  sub->add_option("--stages", o->stages, "Pipeline stages (overrides the file)");
  sub->add_option("--schedule", o->schedule, "gpipe, 1f1b or interleaved (overrides the file)");
  sub->add_option("--chunks", o->chunks, "Model chunks per stage for the interleaved schedule (default 2)");
  sub->add_option("--microbatches", o->microbatches, "Micro-batches per step (overrides the file)");
  sub->add_option("--steps", o->steps, "Optimizer steps (overrides the file)");
  sub->add_option("--out", o->out, "Output directory (overrides the file)");
  sub->add_option("--plan", o->plan, "Stage split: equal or auto (the planner; overrides the file)");
  sub->add_option("-t,--threads", o->threads, "Worker threads per stage (overrides the file)");
  sub->add_option("--device", o->device, "cpu, cuda (stages spread over every local GPU), cuda:N or cuda:0,1 (overrides the file)");
  sub->add_option("--precision", o->precision, "f32 or bf16 (CUDA's default: bf16 matrix products, f32 master weights)");
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
    if (o->chunks > 0) c.chunks = o->chunks;
    if (o->steps > 0) c.steps = o->steps;
    if (!o->out.empty()) c.out = o->out;
    if (!o->plan.empty()) c.plan = o->plan;
    if (o->threads > 0) c.threads = o->threads;
    if (!o->device.empty()) c.device = o->device;
    if (!o->precision.empty()) c.precision = o->precision;
    TrainJobOptions jo;
    jo.config_path = o->config;
    jo.db = o->db;
    jo.resume = o->resume;
    jo.verbose = true;
    TrainJob job;
    bool stepped = false;
    auto r = job.Run(c, jo, [&stepped](const TrainProgress& p) {
      stepped = true;
      std::fprintf(stderr, "\rstep %lld/%d  loss %.4f  lr %.2e  %.0f tok/s  bubble %.2f  ETA %.0fs   ",
                   static_cast<long long>(p.step), p.total_steps, p.loss.back(), p.lr.back(), p.tokens_per_s, p.bubble, p.eta_s);
    });
    if (stepped) std::fprintf(stderr, "\n");
    if (!r.ok()) return Fail(r.status());
    const TrainSummary& s = *r;
    std::fprintf(stderr, "val loss %.4f; exported %s\n", s.val_loss, s.model.c_str());
    if (o->json) {
      nlohmann::json j = {{"loss", s.loss}, {"val_loss", s.val_loss}, {"tokens_per_s", s.tokens_per_s},
                          {"bubble", s.bubble}, {"bubble_theory", s.bubble_theory},
                          {"steps", s.steps}, {"stages", s.stages}, {"schedule", s.schedule}, {"chunks", s.chunks},
                          {"microbatches", s.microbatches}, {"boundaries", s.boundaries}, {"model", s.model},
                          {"checkpoint", s.checkpoint}};
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  };
}

}  // namespace lms::app
