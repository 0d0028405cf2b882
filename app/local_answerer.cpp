#include "app/local_answerer.h"

#include <algorithm>
#include <chrono>

#include "app/model_cache.h"
#include "core/model/continuation.h"
#include "core/model/generate.h"

namespace lms::app {

Result<std::unique_ptr<LocalAnswerer>> LocalAnswerer::Create(const std::string& model, const GenerationOptions& gen) {
  LMS_RETURN_IF_ERROR(gen.sampling.Validate());
  std::unique_ptr<LocalAnswerer> a(new LocalAnswerer());
  LMS_ASSIGN_OR_RETURN(a->path_, ResolveModel(model));
  LMS_ASSIGN_OR_RETURN(a->lm_, LoadModel(a->path_, gen.threads, gen.device));
  a->gen_ = gen;
  return a;
}

Result<Session*> LocalAnswerer::GetSession() {
  if (!session_) {
    LMS_ASSIGN_OR_RETURN(session_, Session::Create(*lm_.model, *lm_.backend, gen_.session()));
  }
  return session_.get();
}

Result<eval::AnswerText> LocalAnswerer::Reply(const std::vector<eval::ChatMessage>& conversation) {
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : conversation) messages.push_back({{"role", m.role}, {"content", m.content}});
  LMS_ASSIGN_OR_RETURN(std::string text, RenderChat(*lm_.model, gen_.chat_template_file, messages, true));
  std::vector<int32_t> prompt = lm_.model->tokenizer().Encode(text, /*add_special=*/false, /*parse_special=*/true);
  LMS_ASSIGN_OR_RETURN(Session* session, GetSession());
  // The context is the requested one clamped to the model's. Long conversations (multi-turn,
  // judge prompts) are cut from the front so that the reply fits.
  const int32_t ctx = session->n_ctx();
  const int32_t max_new = std::min(gen_.n_predict, ctx / 2);
  const int32_t room = ctx - max_new;
  if (static_cast<int32_t>(prompt.size()) > room) prompt.erase(prompt.begin(), prompt.end() - room);
  Sampler sampler(gen_.sampling);
  GenerateOptions go;
  go.max_tokens = max_new;
  go.stop = gen_.stop;
  LMS_ASSIGN_OR_RETURN(GenerateResult r, Generate(*session, sampler, prompt, go));
  eval::AnswerText out;
  out.text = r.text;
  out.tokens = static_cast<int64_t>(r.tokens.size());
  out.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

Result<std::vector<double>> LocalAnswerer::OptionLogProbs(const std::vector<eval::ChatMessage>& conversation, const std::string& reply_prefix,
                                                          const std::vector<std::string>& options) {
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : conversation) messages.push_back({{"role", m.role}, {"content", m.content}});
  LMS_ASSIGN_OR_RETURN(std::string text, RenderChat(*lm_.model, gen_.chat_template_file, messages, true));
  const Tokenizer& tok = lm_.model->tokenizer();
  std::vector<int32_t> prompt = tok.Encode(text + reply_prefix, /*add_special=*/false, /*parse_special=*/true);
  std::vector<std::vector<int32_t>> option_tokens;
  size_t longest = 0;
  for (const auto& o : options) {
    option_tokens.push_back(tok.Encode(o, /*add_special=*/false, /*parse_special=*/false));
    longest = std::max(longest, option_tokens.back().size());
  }
  LMS_ASSIGN_OR_RETURN(Session* session, GetSession());
  // As in Reply: a prompt too long for the context is cut from the front.
  const int32_t room = session->n_ctx() - static_cast<int32_t>(longest);
  if (static_cast<int32_t>(prompt.size()) > room) prompt.erase(prompt.begin(), prompt.end() - room);
  return ContinuationLogProbs(*session, prompt, option_tokens);
}

nlohmann::json ContestantConfig(const std::string& model_path, const std::string& sha256, const GenerationOptions& gen) {
  const SamplingParams& s = gen.sampling;
  return {{"model", model_path},
          {"sha256", sha256},
          {"temperature", s.temperature},
          {"top_k", s.top_k},
          {"top_p", s.top_p},
          {"min_p", s.min_p},
          {"repeat_penalty", s.repeat_penalty},
          {"seed", s.seed},
          {"max_tokens", gen.n_predict},
          {"ctx", gen.ctx},
          {"system", gen.system_prompt},
          {"chat_template", gen.chat_template_file}};
}

}  // namespace lms::app
