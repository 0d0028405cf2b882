// lmstation train CONFIG.toml — train (or fine-tune) a Llama-style model with pipeline stages.
// Writes into --out: token shards, checkpoint.bin (atomic, every checkpoint_every steps and at
// the end), log.csv (one row per step), timeline.json (the last step's per-stage events) and
// model.gguf (the exported model, loadable by `lmstation run`). Metrics also go to the SQLite
// record (--db, or the default record when it exists): see app/train_record.h.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "app/commands.h"
#include "app/train_config.h"
#include "app/train_job.h"
#include "core/net/rank_group.h"

namespace lms::app {

CommandFn AddTrainCommand(CLI::App& cli) {
  struct Opts {
    std::string config, out, schedule, plan, db, device, precision, rendezvous;
    int stages = 0, microbatches = 0, steps = 0, threads = 0, chunks = 0, ranks = 0, rank = -1;
    double join_timeout = 300;
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
  sub->add_option("--ranks", o->ranks,
                  "Processes training together, one pipeline stage each (default: the launcher's, from mpirun, PMI or srun; else 1)");
  sub->add_option("--rank", o->rank, "This process's rank, 0..ranks-1 (default: the launcher's)");
  sub->add_option("--rendezvous", o->rendezvous,
                  "HOST:PORT where rank 0 listens and the others join (default: $LMS_RENDEZVOUS, else 127.0.0.1:29500)");
  sub->add_option("--join-timeout", o->join_timeout, "Seconds to wait for every rank to join (default 300)");
  sub->add_flag("--json", o->json, "Print a final JSON object (loss, val_loss, tokens_per_s, bubble)");
  // The rank group of a multi-process run (null for one process). A launcher's environment
  // (mpirun, PMI, Slurm) gives the rank and size when the flags do not.
  auto join_ranks = [](const Opts& op) -> Result<std::unique_ptr<net::RankGroup>> {
    const net::LauncherInfo env = net::FromLauncherEnvironment();
    const int world = op.ranks > 0 ? op.ranks : env.world;
    const int rank = op.rank >= 0 ? op.rank : env.rank;
    if (world <= 1) {
      if (op.rank > 0) return Status::InvalidArgument("--rank needs --ranks");
      return std::unique_ptr<net::RankGroup>();
    }
    std::string where = op.rendezvous;
    if (where.empty()) {
      const char* env = std::getenv("LMS_RENDEZVOUS");
      where = env && *env ? env : "127.0.0.1:29500";
    }
    LMS_ASSIGN_OR_RETURN(auto hp, net::ParseHostPort(where));
    net::RankGroupOptions go;
    go.world = world;
    go.rank = rank;
    go.host = hp.first;
    go.port = hp.second;
    go.timeout_s = op.join_timeout;
    if (rank == 0) std::fprintf(stderr, "rank 0 of %d: waiting for the others at %s\n", world, where.c_str());
    return net::RankGroup::Join(go);
  };
  return [o, join_ranks]() {
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
    auto group = join_ranks(*o);
    if (!group.ok()) return Fail(group.status());
    const bool primary = !*group || (*group)->rank() == 0;
    if (*group) {
      jo.ranks = group->get();
      jo.verbose = primary;
      if (c.stages <= 1 && o->stages <= 0) c.stages = (*group)->world();  // one stage per process
      std::fprintf(stderr, "rank %d of %d joined\n", (*group)->rank(), (*group)->world());
    }
    TrainJob job;
    bool stepped = false;
    auto r = job.Run(c, jo, [&stepped, primary](const TrainProgress& p) {
      if (!primary) return;
      stepped = true;
      std::fprintf(stderr, "\rstep %lld/%d  loss %.4f  lr %.2e  %.0f tok/s  bubble %.2f  ETA %.0fs   ",
                   static_cast<long long>(p.step), p.total_steps, p.loss.back(), p.lr.back(), p.tokens_per_s, p.bubble, p.eta_s);
    });
    if (stepped) std::fprintf(stderr, "\n");
    if (!r.ok()) return Fail(r.status());
    const TrainSummary& s = *r;
    if (!primary) return 0;
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
