#include "app/train_setup.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "app/model_cache.h"
#include "app/train_plan.h"
#include "core/tokenizer/tokenizer.h"
#include "core/train/data.h"
#include "core/train/gguf_io.h"
#include "core/util/thread_pool.h"

namespace lms::app {
namespace fs = std::filesystem;

const char* const kByteLevelChatTemplate =
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}";

std::vector<int> StageThreads(const TrainRunConfig& c) {
  if (!c.stage_threads.empty()) return c.stage_threads;
  const int per = c.threads > 0 ? c.threads : std::max(1, ThreadPool::AvailableCores() / std::max(1, c.stages));
  return std::vector<int>(static_cast<size_t>(std::max(1, c.stages)), per);
}

Result<TrainingSetup> PrepareTraining(const TrainRunConfig& c, bool reuse_shards) {
  TrainingSetup s;
  train::ModelShape shape = c.shape;
  std::unique_ptr<Tokenizer> tok;
  // The base model: a GGUF path, or a known model's name (its cached file).
  std::string base;
  if (!c.base.empty()) {
    LMS_ASSIGN_OR_RETURN(base, ResolveModel(c.base));
  }
  if (!base.empty()) {
    LMS_ASSIGN_OR_RETURN(train::ImportedModel m, train::ImportGguf(base, c.shape.seq_len));
    shape = m.shape;
    s.initial_params = std::move(m.params);
    s.tokenizer_kv = std::move(m.tokenizer_kv);
    s.context_length = m.context_length;
  }
  if (c.tokenizer == "byte") {
    const VocabData v = train::ByteLevelVocab();
    LMS_ASSIGN_OR_RETURN(tok, Tokenizer::FromVocab(v));
    s.tokenizer_kv = train::VocabMetadata(v, c.chat_template.empty() ? kByteLevelChatTemplate : c.chat_template);
  } else {
    const std::string src = c.tokenizer.empty() ? base : c.tokenizer;
    LMS_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::Open(src));
    LMS_ASSIGN_OR_RETURN(tok, Tokenizer::FromGguf(*file));
    if (c.tokenizer.empty() == false) {
      s.tokenizer_kv.clear();
      for (const auto& kv : file->metadata())
        if (kv.key.rfind("tokenizer.", 0) == 0) s.tokenizer_kv.push_back(kv);
    }
  }
  if (c.base.empty()) {
    shape.n_vocab = tok->n_vocab();
  } else if (tok->n_vocab() > shape.n_vocab) {
    return Status::InvalidArgument(fmt::format("tokenizer has {} tokens but the base model only {}", tok->n_vocab(), shape.n_vocab));
  }
  LMS_RETURN_IF_ERROR(shape.Validate());

  const std::string train_shard = (fs::path(c.out) / "train.tok").string();
  const std::string val_shard = (fs::path(c.out) / "val.tok").string();
  if (reuse_shards && fs::exists(train_shard) && fs::exists(val_shard)) {
    LMS_ASSIGN_OR_RETURN(s.train_tokens, train::ReadShard(train_shard));
    LMS_ASSIGN_OR_RETURN(s.val_tokens, train::ReadShard(val_shard));
  } else {
    LMS_ASSIGN_OR_RETURN(std::vector<int32_t> all, train::TokenizeFiles(c.text, *tok));
    const size_t n_val = std::max<size_t>(static_cast<size_t>(all.size() * c.val_fraction), shape.seq_len + 1);
    if (all.size() < n_val + shape.seq_len + 1) {
      return Status::InvalidArgument(fmt::format("the text has {} tokens: too few for training and validation "
                                                 "sequences of {}", all.size(), shape.seq_len + 1));
    }
    s.val_tokens.assign(all.end() - static_cast<int64_t>(n_val), all.end());
    s.train_tokens.assign(all.begin(), all.end() - static_cast<int64_t>(n_val));
    LMS_RETURN_IF_ERROR(train::WriteShard(train_shard, s.train_tokens));
    LMS_RETURN_IF_ERROR(train::WriteShard(val_shard, s.val_tokens));
  }

  auto& t = s.trainer;
  t.shape = shape;
  t.optim = c.optim;
  t.optim.total_steps = c.steps;
  t.batch_size = c.batch_size;
  t.grad_accum = c.grad_accum;
  t.seed = c.seed;
  t.eval_batches = c.eval_batches;
  t.device = c.device;
  t.precision = c.precision;
  LMS_ASSIGN_OR_RETURN(t.pipeline.schedule, train::ParseSchedule(c.schedule));
  t.pipeline.microbatches = c.microbatches;
  const bool interleaved = t.pipeline.schedule == train::ScheduleKind::kInterleaved;
  t.pipeline.chunks = c.chunks > 0 ? c.chunks : (interleaved ? 2 : 1);
  if (!interleaved && t.pipeline.chunks != 1) {
    return Status::InvalidArgument("[pipeline] chunks apply only to schedule = \"interleaved\"");
  }
  if (interleaved && t.pipeline.chunks < 2) {
    return Status::InvalidArgument("the interleaved schedule needs at least 2 chunks per stage");
  }
  if (c.stages < 1) return Status::InvalidArgument("stages must be at least 1");
  if (c.stages * t.pipeline.chunks > shape.n_layers) {
    return Status::InvalidArgument(
        interleaved ? fmt::format("{} stages × {} chunks for {} layers: every chunk needs a layer", c.stages,
                                  t.pipeline.chunks, shape.n_layers)
                    : fmt::format("{} stages for {} layers: every stage needs a layer", c.stages, shape.n_layers));
  }
  if (interleaved && c.microbatches % c.stages != 0) {
    return Status::InvalidArgument(fmt::format("the interleaved schedule needs micro-batches in multiples of the stages "
                                               "({} micro-batches, {} stages)", c.microbatches, c.stages));
  }
  t.pipeline.threads = StageThreads(c);
  if (c.plan == "equal") {
    if (static_cast<int>(t.pipeline.threads.size()) != c.stages) {
      return Status::InvalidArgument(fmt::format("[pipeline] stage_threads has {} entries for {} stages",
                                                 t.pipeline.threads.size(), c.stages));
    }
    t.pipeline.boundaries = train::EqualSplit(shape.n_layers, c.stages * t.pipeline.chunks);
    s.plan_note = interleaved ? fmt::format("equal split into {} chunks", c.stages * t.pipeline.chunks) : "equal split";
  } else if (c.plan == "auto") {
    if (interleaved) return Status::InvalidArgument("plan = \"auto\" chooses stages for gpipe and 1f1b, not interleaved");
    LMS_ASSIGN_OR_RETURN(AutoPlan plan, PlanForRun(c, shape));
    t.pipeline.boundaries = plan.boundaries;
    t.pipeline.threads = plan.threads;
    t.device = plan.device;
    t.pipeline.microbatches = plan.microbatches;
    s.plan_note = plan.note;
  } else {
    return Status::InvalidArgument("plan must be 'equal' or 'auto', not '" + c.plan + "'");
  }
  return s;
}

}  // namespace lms::app
