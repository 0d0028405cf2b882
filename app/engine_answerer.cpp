#include "app/engine_answerer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "app/model_cache.h"

namespace lms::app {

Result<std::unique_ptr<EngineAnswerer>> EngineAnswerer::Create(const std::string& model, const GenerationOptions& gen) {
  LMS_RETURN_IF_ERROR(gen.sampling.Validate());
  if (gen.parallel < 2) return Status::InvalidArgument("the engine answerer runs 2 or more conversations at once (--parallel)");
  std::unique_ptr<EngineAnswerer> a(new EngineAnswerer());
  LMS_ASSIGN_OR_RETURN(a->path_, ResolveModel(model));
  LMS_ASSIGN_OR_RETURN(a->lm_, LoadModel(a->path_, gen.threads, gen.device));
  a->gen_ = gen;
  serve::EngineOptions eo;
  eo.n_ctx = gen.ctx;
  eo.max_running = gen.parallel;
  eo.kv_type = KvCacheType(gen.kv_type);
  LMS_ASSIGN_OR_RETURN(a->engine_, serve::Engine::Start(*a->lm_.model, *a->lm_.backend, eo));
  return a;
}

EngineAnswerer::~EngineAnswerer() {
  engine_.reset();  // the engine thread stops before the model it reads goes away
}

Result<eval::AnswerText> EngineAnswerer::Reply(const std::vector<eval::ChatMessage>& conversation) {
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : conversation) messages.push_back({{"role", m.role}, {"content", m.content}});
  LMS_ASSIGN_OR_RETURN(std::string text, RenderChat(*lm_.model, gen_.chat_template_file, messages, true));
  serve::Request req;
  req.prompt = lm_.model->tokenizer().Encode(text, /*add_special=*/false, /*parse_special=*/true);
  // As LocalAnswerer: the reply gets at most half the context; a longer conversation is cut from
  // the front so that the reply fits.
  const int32_t ctx = engine_->max_seq_len();
  const int32_t max_new = std::min(gen_.n_predict, ctx / 2);
  const int32_t room = ctx - max_new;
  if (static_cast<int32_t>(req.prompt.size()) > room) req.prompt.erase(req.prompt.begin(), req.prompt.end() - room);
  req.params.sampling = gen_.sampling;
  req.params.max_tokens = max_new;
  req.params.stop = gen_.stop;
  LMS_ASSIGN_OR_RETURN(auto channel, engine_->Submit(std::move(req)));
  eval::AnswerText out;
  serve::StreamEvent ev;
  while (!channel->done()) {
    if (!channel->Next(ev, std::chrono::milliseconds(1000))) continue;
    out.text += ev.text;
    if (ev.finish_reason.empty()) continue;
    if (ev.finish_reason == "error") return Status::Internal(fmt::format("the engine failed on this request: {}", ev.error));
    if (ev.finish_reason == "cancelled") return Status::Cancelled("the engine stopped before the reply was complete");
    out.tokens = ev.completion_tokens;
  }
  out.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

Result<std::vector<double>> EngineAnswerer::OptionLogProbs(const std::vector<eval::ChatMessage>& conversation, const std::string& reply_prefix,
                                                           const std::vector<std::string>& options) {
  std::lock_guard<std::mutex> lock(scorer_mu_);
  if (!scorer_) {
    GenerationOptions one = gen_;
    one.parallel = 1;
    LMS_ASSIGN_OR_RETURN(scorer_, LocalAnswerer::Create(path_, one));
  }
  return scorer_->OptionLogProbs(conversation, reply_prefix, options);
}

}  // namespace lms::app
