#include "app/train_job.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "app/train_record.h"
#include "app/train_setup.h"
#include "core/net/rank_group.h"
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

// Every rank must train the same model the same way: rank 0's setup, as text, against each
// rank's. All ranks fail together (with the same message) when any differs.
Status CheckSameSetup(net::RankGroup& g, const TrainRunConfig& c, const train::TrainerConfig& t, int64_t params,
                      int64_t train_tokens) {
  const std::string mine = fmt::format(
      "model {}, {} parameters; layers [{}] {}×{} chunks, {} micro-batches of a batch of {}×{}; seed {}; {} tokens; "
      "{} steps, eval every {}, checkpoint every {}",
      t.shape.Summary(), params, fmt::join(t.pipeline.boundaries, ","), train::ScheduleName(t.pipeline.schedule),
      t.pipeline.chunks, t.pipeline.microbatches, t.batch_size, t.grad_accum, t.seed, train_tokens, c.steps,
      c.eval_every, c.checkpoint_every);
  std::vector<uint8_t> root(mine.begin(), mine.end());
  LMS_RETURN_IF_ERROR(g.Broadcast(root, 0));
  double differ = std::string(root.begin(), root.end()) == mine ? 0.0 : 1.0;
  LMS_RETURN_IF_ERROR(g.AllReduceSum(&differ, 1));
  if (differ > 0) {
    return Status::InvalidArgument(fmt::format("{} rank(s) prepared another model, data or pipeline than rank 0 (rank 0: {}): "
                                               "give every rank the same config and data", differ, std::string(root.begin(), root.end())));
  }
  return Status::Ok();
}

nlohmann::json TimelineJson(const train::StepReport& rep, int stages, int microbatches, int chunks) {
  nlohmann::json ev = nlohmann::json::array();
  for (const auto& e : rep.events) {
    ev.push_back({{"stage", e.stage}, {"microbatch", e.microbatch}, {"op", e.forward ? "F" : "B"}, {"chunk", e.chunk},
                  {"start_s", e.start_s}, {"end_s", e.end_s}});
  }
  return {{"stages", stages}, {"microbatches", microbatches}, {"chunks", chunks}, {"wall_s", rep.wall_s}, {"busy_s", rep.busy_s},
          {"peak_in_flight", rep.peak_in_flight}, {"bubble", rep.Bubble()},
          {"bubble_theory", train::TheoreticalBubble(stages, microbatches, chunks)}, {"events", ev}};
}

}  // namespace

TrainProgress TrainJob::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return progress_;
}

void TrainJob::Publish(const TrainProgress& p) {
  std::lock_guard<std::mutex> lock(mu_);
  progress_ = p;
}

Result<TrainSummary> TrainJob::Run(TrainRunConfig c, const TrainJobOptions& o,
                                   const std::function<void(const TrainProgress&)>& on_step) {
  TrainProgress P;
  P.total_steps = c.steps;
  Publish(P);
  std::unique_ptr<TrainRecord> rec;
  // Errors also mark the recorded run failed and show in the snapshot.
  auto fail = [&](const Status& s) -> Status {
    if (rec) (void)rec->Finish("failed");
    P.phase = "failed";
    Publish(P);
    return s;
  };
  net::RankGroup* const ranks = o.ranks && o.ranks->world() > 1 ? o.ranks : nullptr;
  const bool primary = !ranks || ranks->rank() == 0;
  const std::string primary_out = c.out;
  if (ranks) {
    if (c.plan != "equal") {
      return fail(Status::InvalidArgument("a multi-process run splits the layers equally (plan = \"equal\"): the "
                                          "planner's profile would differ from rank to rank"));
    }
    if (c.stages != ranks->world()) {
      return fail(Status::InvalidArgument(fmt::format("{} ranks need stages = {} (one stage per process), not {}",
                                                      ranks->world(), ranks->world(), c.stages)));
    }
    if (!primary) c.out = (fs::path(c.out) / fmt::format("rank-{}", ranks->rank())).string();
  }
  std::error_code ec;
  fs::create_directories(c.out, ec);
  if (ec) return fail(Status::IoError("cannot create output directory '" + c.out + "': " + ec.message()));

  auto setup = PrepareTraining(c, o.resume);
  if (!setup.ok()) return fail(setup.status());
  TrainingSetup& S = *setup;
  S.trainer.ranks = ranks;
  const int64_t n_train_tokens = static_cast<int64_t>(S.train_tokens.size());
  auto trainer = train::Trainer::Create(S.trainer, std::move(S.initial_params), std::move(S.train_tokens),
                                        std::move(S.val_tokens));
  if (!trainer.ok()) return fail(trainer.status());
  train::Trainer& tr = **trainer;
  if (ranks) {
    if (Status st = CheckSameSetup(*ranks, c, S.trainer, tr.layout().total, n_train_tokens); !st.ok()) return fail(st);
  }
  const std::string ckpt_path = (fs::path(c.out) / "checkpoint.bin").string();
  const std::string log_path = (fs::path(c.out) / "log.csv").string();
  bool resuming = o.resume && fs::exists(ckpt_path);
  if (ranks && o.resume) {
    // Rank 0's checkpoint, whatever the others have on their disks.
    std::vector<uint8_t> bytes;
    if (primary && resuming) {
      auto b = train::ReadWholeFile(ckpt_path);
      if (!b.ok()) return fail(b.status());
      bytes = std::move(*b);
    }
    if (Status st = ranks->Broadcast(bytes, 0); !st.ok()) return fail(st);
    resuming = !bytes.empty();
    if (resuming && !primary) {
      if (Status st = train::WriteFileAtomic(ckpt_path, bytes); !st.ok()) return fail(st);
    }
  }
  if (resuming) {
    auto ck = train::LoadCheckpoint(ckpt_path);
    if (!ck.ok()) return fail(ck.status());
    if (Status st = tr.Restore(*ck); !st.ok()) return fail(st);
    if (Status st = TruncateLog(log_path, tr.step()); !st.ok()) return fail(st);
    if (o.verbose) std::fprintf(stderr, "resumed from %s at step %lld\n", ckpt_path.c_str(), static_cast<long long>(tr.step()));
  } else if (primary) {
    std::ofstream(log_path, std::ios::trunc) << "step,loss,lr,grad_norm,tokens_per_s,bubble,val_loss\n";
  }
  if (primary) {
    auto record = TrainRecord::Open(o.db, c.out, o.config_path, tr.step());
    if (!record.ok()) return fail(record.status());
    rec = std::move(*record);
  }
  const auto& pipe = S.trainer.pipeline;
  if (rec && o.verbose) {
    std::fprintf(stderr, "recording metrics in %s (run %lld)\n", rec->path().c_str(), static_cast<long long>(rec->run_id()));
  }
  if (o.verbose) {
    std::fprintf(stderr, "model: %s, %lld parameters; on %s; %d stage(s) %s, layers [%s], %d micro-batch(es); %s\n",
                 S.trainer.shape.Summary().c_str(), static_cast<long long>(tr.layout().total), tr.engine().Describe().c_str(),
                 tr.engine().stages(),
                 train::ScheduleName(pipe.schedule), fmt::format("{}", fmt::join(pipe.boundaries, ",")).c_str(),
                 pipe.microbatches, S.plan_note.c_str());
  }
  P.phase = "training";
  P.step = P.first_step = tr.step();
  P.model_summary = fmt::format("{}, {} parameters, on {}", S.trainer.shape.Summary(), tr.layout().total,
                                tr.engine().Describe());
  P.schedule = train::ScheduleName(pipe.schedule);
  P.microbatches = pipe.microbatches;
  P.plan_note = S.plan_note;
  for (int c = 0; c + 1 < static_cast<int>(pipe.boundaries.size()); ++c) {  // a row per chunk, named by its stage
    const int s = c % tr.engine().stages();
    P.plan.push_back({s, pipe.boundaries[c], pipe.boundaries[c + 1], s < static_cast<int>(pipe.threads.size()) ? pipe.threads[s] : 1});
  }
  if (rec) {
    P.record_path = rec->path();
    P.record_run_id = rec->run_id();
  }
  Publish(P);

  auto save = [&]() -> Status {
    auto ck = tr.MakeCheckpoint();  // every rank: it gathers the weights
    if (!ck.ok()) return ck.status();
    if (!primary) return Status::Ok();
    return train::SaveCheckpoint(ckpt_path, *ck);
  };
  train::StepStats last;
  double tok_total = 0, sec_total = 0, bubble_sum = 0;
  int measured = 0;
  double val_loss = NAN;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first_step = tr.step();
  bool cancelled = false;
  while (tr.step() < c.steps) {
    if (cancel_.load()) {
      if (ranks) {  // the other ranks cannot learn of it in step: stop them all
        ranks->Abort();
        return fail(Status::Cancelled("cancelled; the other ranks of the run stop with it"));
      }
      cancelled = true;
      break;
    }
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
    if (primary) {
      std::ofstream(log_path, std::ios::app)
          << fmt::format("{},{:.17g},{:.9g},{:.9g},{:.1f},{:.4f},{}\n", last.step, last.loss, last.lr, last.grad_norm,
                         last.tokens / last.seconds, last.bubble, val_field);
    }
    if (c.checkpoint_every > 0 && last.step % c.checkpoint_every == 0) {
      if (Status s = save(); !s.ok()) return fail(s);
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    P.step = last.step;
    P.loss.push_back(static_cast<float>(last.loss));
    P.lr.push_back(last.lr);
    P.tokens_per_s = tok_total / sec_total;
    P.bubble = last.bubble;
    P.eta_s = elapsed / static_cast<double>(tr.step() - first_step) * static_cast<double>(c.steps - tr.step());
    if (step_val) P.val_loss = step_val;
    P.timeline = last.report.events;
    P.timeline_wall_s = last.report.wall_s;
    Publish(P);
    if (on_step) on_step(P);
  }
  if (Status s = save(); !s.ok()) return fail(s);
  TrainSummary sum;
  sum.steps = tr.step();
  sum.stages = tr.engine().stages();
  sum.microbatches = pipe.microbatches;
  sum.chunks = tr.engine().chunks();
  sum.schedule = train::ScheduleName(pipe.schedule);
  sum.boundaries = pipe.boundaries;
  sum.checkpoint = ckpt_path;
  sum.loss = measured ? last.loss : NAN;
  sum.tokens_per_s = sec_total > 0 ? tok_total / sec_total : 0.0;
  sum.bubble = measured ? bubble_sum / measured : 0.0;
  sum.bubble_theory = train::TheoreticalBubble(sum.stages, sum.microbatches, sum.chunks);
  if (cancelled) {
    if (rec) {
      if (Status s = rec->Finish("cancelled"); !s.ok()) return fail(s);
    }
    sum.cancelled = true;
    sum.val_loss = val_loss;
    P.phase = "cancelled";
    Publish(P);
    return sum;
  }
  P.phase = "exporting";
  Publish(P);
  auto v = tr.ValidationLoss();
  if (!v.ok()) return fail(v.status());
  val_loss = *v;
  if (rec && measured) {
    if (Status s = rec->AddValue(last.step, "val_loss", val_loss); !s.ok()) return fail(s);
    if (Status s = rec->AddTimeline(last.step, last.report); !s.ok()) return fail(s);
  }
  if (primary) {
    std::ofstream tl(fs::path(c.out) / "timeline.json");
    tl << TimelineJson(last.report, tr.engine().stages(), pipe.microbatches, tr.engine().chunks()).dump(1) << "\n";
  }
  train::ExportOptions eo;
  eo.name = c.export_name;
  eo.context_length = S.context_length;
  auto type = ParseTensorType(c.export_type);
  if (!type) return fail(Status::InvalidArgument("[export] type '" + c.export_type + "' is not a tensor type"));
  eo.matrix_type = *type;
  const std::string gguf_path = (fs::path(primary_out) / "model.gguf").string();
  const std::vector<float>& final_params = tr.params();  // every rank: it gathers the weights
  if (ranks && final_params.empty()) return fail(Status::IoError("gathering the weights from the other ranks failed"));
  if (primary) {
    if (Status s = train::ExportGguf(gguf_path, S.trainer.shape, final_params, S.tokenizer_kv, eo); !s.ok()) return fail(s);
  }
  sum.val_loss = val_loss;
  sum.model = gguf_path;
  if (rec) {
    if (Status s = rec->Finish("done"); !s.ok()) return s;
  }
  P.val_loss = val_loss;
  P.phase = "done";
  Publish(P);
  return sum;
}

}  // namespace lms::app
