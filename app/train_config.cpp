#include "app/train_config.h"

#include "app/model_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace lms::app {
namespace {

namespace fs = std::filesystem;

template <typename T>
Status Read(const toml::table& t, const char* section, const char* key, T& out) {
  const toml::node* n = t.at_path(std::string(section) + "." + key).node();
  if (!n) return Status::Ok();
  if constexpr (std::is_same_v<T, bool>) {
    if (auto v = n->value<bool>()) { out = *v; return Status::Ok(); }
  } else if constexpr (std::is_integral_v<T>) {
    if (auto v = n->value<int64_t>()) { out = static_cast<T>(*v); return Status::Ok(); }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto v = n->value<double>()) { out = static_cast<T>(*v); return Status::Ok(); }
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (auto v = n->value<std::string>()) { out = *v; return Status::Ok(); }
  }
  return Status::InvalidArgument(fmt::format("[{}] {} has the wrong type", section, key));
}

std::string Resolve(const fs::path& base, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (base / p).lexically_normal().string();
}

}  // namespace

Result<TrainRunConfig> LoadTrainConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return ParseTrainConfig(text.str(), path);
}

Result<TrainRunConfig> ParseTrainConfig(const std::string& text, const std::string& path) {
  toml::table t;
  try {
    t = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}: line {}: {}", path, e.source().begin.line, e.description()));
  }
  const fs::path dir = fs::path(path).parent_path();
  TrainRunConfig c;
  auto ctx = [&](Status s) { return s.WithContext(path); };
  // Unknown sections or keys are mistakes worth reporting (a typo would silently do nothing).
  static const std::map<std::string, std::vector<std::string>> kKnown = {
      {"model", {"base", "layers", "d_model", "heads", "kv_heads", "d_ff", "seq_len", "rope_theta", "rms_eps", "tied"}},
      {"data", {"text", "tokenizer", "val_fraction"}},
      {"optim", {"lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "eps", "grad_clip"}},
      {"train", {"steps", "batch_size", "grad_accum", "seed", "eval_every", "eval_batches", "checkpoint_every", "threads", "out", "device",
                 "precision"}},
      {"pipeline", {"stages", "schedule", "microbatches", "plan", "stage_threads", "chunks"}},
      {"export", {"type", "name", "chat_template"}},
  };
  for (const auto& [k, v] : t) {
    auto it = kKnown.find(std::string(k.str()));
    if (it == kKnown.end() || !v.is_table()) return ctx(Status::InvalidArgument(fmt::format("unknown section [{}]", k.str())));
    for (const auto& [kk, vv] : *v.as_table()) {
      if (std::find(it->second.begin(), it->second.end(), std::string(kk.str())) == it->second.end()) {
        return ctx(Status::InvalidArgument(fmt::format("unknown key '{}' in [{}]", kk.str(), k.str())));
      }
    }
  }
  auto& s = c.shape;
  for (Status st : {Read(t, "model", "base", c.base), Read(t, "model", "layers", s.n_layers),
                    Read(t, "model", "d_model", s.d_model), Read(t, "model", "heads", s.n_heads),
                    Read(t, "model", "kv_heads", s.n_kv_heads), Read(t, "model", "d_ff", s.d_ff),
                    Read(t, "model", "seq_len", s.seq_len), Read(t, "model", "rope_theta", s.rope_theta),
                    Read(t, "model", "rms_eps", s.rms_eps), Read(t, "model", "tied", s.tied),
                    Read(t, "data", "tokenizer", c.tokenizer), Read(t, "data", "val_fraction", c.val_fraction),
                    Read(t, "optim", "lr", c.optim.lr), Read(t, "optim", "min_lr", c.optim.min_lr),
                    Read(t, "optim", "warmup_steps", c.optim.warmup_steps),
                    Read(t, "optim", "weight_decay", c.optim.weight_decay), Read(t, "optim", "beta1", c.optim.beta1),
                    Read(t, "optim", "beta2", c.optim.beta2), Read(t, "optim", "eps", c.optim.eps),
                    Read(t, "optim", "grad_clip", c.optim.grad_clip), Read(t, "train", "steps", c.steps),
                    Read(t, "train", "batch_size", c.batch_size), Read(t, "train", "grad_accum", c.grad_accum),
                    Read(t, "train", "seed", c.seed), Read(t, "train", "eval_every", c.eval_every),
                    Read(t, "train", "eval_batches", c.eval_batches),
                    Read(t, "train", "checkpoint_every", c.checkpoint_every), Read(t, "train", "threads", c.threads),
                    Read(t, "train", "device", c.device), Read(t, "train", "precision", c.precision),
                    Read(t, "train", "out", c.out), Read(t, "pipeline", "stages", c.stages),
                    Read(t, "pipeline", "schedule", c.schedule), Read(t, "pipeline", "microbatches", c.microbatches),
                    Read(t, "pipeline", "chunks", c.chunks),
                    Read(t, "pipeline", "plan", c.plan), Read(t, "export", "type", c.export_type),
                    Read(t, "export", "name", c.export_name), Read(t, "export", "chat_template", c.chat_template)}) {
    if (!st.ok()) return ctx(st);
  }
  if (const toml::node* n = t.at_path("data.text").node()) {
    if (auto one = n->value<std::string>()) {
      c.text.push_back(*one);
    } else if (const toml::array* arr = n->as_array()) {
      for (const auto& e : *arr) {
        auto v = e.value<std::string>();
        if (!v) return ctx(Status::InvalidArgument("[data] text must be a string or an array of strings"));
        c.text.push_back(*v);
      }
    } else {
      return ctx(Status::InvalidArgument("[data] text must be a string or an array of strings"));
    }
  }
  if (const toml::node* n = t.at_path("pipeline.stage_threads").node()) {
    const toml::array* arr = n->as_array();
    if (!arr) return ctx(Status::InvalidArgument("[pipeline] stage_threads must be an array of integers"));
    for (const auto& e : *arr) {
      auto v = e.value<int64_t>();
      if (!v || *v < 1) return ctx(Status::InvalidArgument("[pipeline] stage_threads must hold positive integers"));
      c.stage_threads.push_back(static_cast<int>(*v));
    }
  }
  for (auto& f : c.text) f = Resolve(dir, f);
  // A known model's name ("smollm2") stays a name; a path is relative to this file.
  const bool known_name = std::any_of(KnownModels().begin(), KnownModels().end(),
                                      [&](const KnownModel& k) { return k.name == c.base; });
  if (!known_name) c.base = Resolve(dir, c.base);
  if (c.tokenizer != "byte") c.tokenizer = Resolve(dir, c.tokenizer);
  if (!c.base.empty() && !t.at_path("data.tokenizer").node()) c.tokenizer = "";
  if (!(c.val_fraction > 0.0 && c.val_fraction < 1.0)) return ctx(Status::InvalidArgument("[data] val_fraction must be in (0, 1)"));
  return c;
}

}  // namespace lms::app
