#include "ui/model_runtime.h"

#include "app/generation_options.h"

namespace lms::ui {

Result<std::shared_ptr<ModelRuntime>> LoadModelRuntime(const std::string& path, int64_t kv_bytes) {
  auto rt = std::make_shared<ModelRuntime>();
  rt->path = path;
  LMS_ASSIGN_OR_RETURN(rt->lm, app::LoadModel(path, 0));
  serve::EngineOptions eo;
  eo.kv_bytes = kv_bytes;
  eo.n_ctx = 4096;
  eo.max_running = 4;
  LMS_ASSIGN_OR_RETURN(rt->engine, serve::Engine::Start(*rt->lm.model, *rt->lm.backend, eo));
  return rt;
}

Result<std::shared_ptr<serve::RequestChannel>> SubmitChat(ModelRuntime& rt, const nlohmann::json& messages,
                                                          const ChatSampling& s) {
  const Model& model = *rt.lm.model;
  LMS_ASSIGN_OR_RETURN(std::string text, app::RenderChat(model, "", messages, true));
  serve::Request req;
  req.prompt = model.tokenizer().Encode(text, false, true);
  req.params.max_tokens = s.max_tokens;
  req.params.sampling.temperature = s.temperature;
  req.params.sampling.top_p = s.top_p;
  req.params.sampling.seed = s.seed;
  return rt.engine->Submit(std::move(req));
}

}  // namespace lms::ui
