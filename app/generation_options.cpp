#include "app/generation_options.h"

#include <fstream>
#include <sstream>

#include "app/commands.h"
#include "core/model/chat_template.h"

namespace lms::app {

void GenerationOptions::AddSamplingFlags(CLI::App* sub) {
  sub->add_option("-n,--n-predict", n_predict, "Tokens to generate at most")->capture_default_str();
  sub->add_option("--temp", sampling.temperature, "Temperature (0: greedy)")->capture_default_str();
  sub->add_option("--top-k", sampling.top_k, "Top-k (0: off)")->capture_default_str();
  sub->add_option("--top-p", sampling.top_p, "Top-p (1: off)")->capture_default_str();
  sub->add_option("--min-p", sampling.min_p, "Min-p (0: off)")->capture_default_str();
  sub->add_option("--repeat-penalty", sampling.repeat_penalty, "Repetition penalty (1: off)")->capture_default_str();
  sub->add_option("--repeat-last-n", sampling.repeat_last_n, "Tokens the penalties look back at (-1: all)")->capture_default_str();
  sub->add_option("--frequency-penalty", sampling.frequency_penalty, "Frequency penalty")->capture_default_str();
  sub->add_option("--presence-penalty", sampling.presence_penalty, "Presence penalty")->capture_default_str();
  sub->add_option("--seed", sampling.seed, "Random seed (same seed, same text)")->capture_default_str();
  sub->add_option("--stop", stop, "Stop string (repeatable)");
}

void GenerationOptions::AddRuntimeFlags(CLI::App* sub) {
  sub->add_option("-t,--threads", threads, "Threads (default: the cores available)");
  sub->add_option("--device", device, kDeviceFlagHelp)->capture_default_str();
  sub->add_option("-c,--ctx", ctx, "Context size in tokens")->capture_default_str();
  sub->add_option("-b,--batch", batch, "Tokens per forward pass when reading a prompt")->capture_default_str();
  AddKvTypeFlag(sub, &kv_type);
}

void GenerationOptions::AddParallelFlag(CLI::App* sub) {
  sub->add_option("--parallel", parallel,
                  "Conversations answered at once: a local model runs them batched on the serving engine, an endpoint gets that many "
                  "requests at a time (1: one after another)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
}

void AddKvTypeFlag(CLI::App* sub, std::string* kv_type) {
  sub->add_option("--kv-type", *kv_type, "KV cache element type: f16, or q8_0 (about half the memory)")
      ->check(CLI::IsMember({"f16", "q8_0"}))
      ->capture_default_str();
}

TensorType KvCacheType(const std::string& kv_type) {
  return kv_type == "q8_0" ? TensorType::kQ8_0 : TensorType::kF16;
}

SessionOptions GenerationOptions::session() const {
  SessionOptions s;
  s.n_ctx = ctx;
  s.n_batch = batch;
  s.kv_type = KvCacheType(kv_type);
  return s;
}

Result<ChatTemplate> LoadChatTemplate(const Model& model, const std::string& template_file) {
  std::string source = model.chat_template();
  if (!template_file.empty()) {
    std::ifstream in(template_file);
    if (!in) return Status::IoError("cannot open chat template " + template_file);
    std::stringstream ss;
    ss << in.rdbuf();
    source = ss.str();
  }
  if (source.empty()) source = DefaultChatMlTemplate();
  const Tokenizer& tok = model.tokenizer();
  std::string bos = tok.bos_id() >= 0 ? tok.TokenToPiece(tok.bos_id()) : "";
  std::string eos = tok.eos_id() >= 0 ? tok.TokenToPiece(tok.eos_id()) : "";
  auto tmpl = ChatTemplate::FromSource(source, bos, eos);
  if (!tmpl.ok()) {
    return tmpl.status().WithContext("the chat template cannot be used (override it with --chat-template FILE)");
  }
  return tmpl;
}

Result<std::string> RenderChat(const Model& model, const std::string& template_file,
                               const nlohmann::json& messages, bool add_generation_prompt) {
  LMS_ASSIGN_OR_RETURN(ChatTemplate tmpl, LoadChatTemplate(model, template_file));
  return tmpl.Apply(messages, add_generation_prompt);
}

}  // namespace lms::app
