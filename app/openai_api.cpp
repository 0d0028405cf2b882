#include "app/openai_api.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <random>

namespace lms::app {
namespace {

using nlohmann::json;

ApiError Bad(std::string param, std::string message) {
  ApiError e;
  e.param = std::move(param);
  e.message = std::move(message);
  return e;
}

std::string RandomId(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

// Optional numeric field: absent or null leaves `out` alone.
std::optional<ApiError> Number(const json& j, const char* key, double lo, double hi, double& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return Bad(key, fmt::format("'{}' must be a number", key));
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) return Bad(key, fmt::format("'{}' is {}; it must be in [{}, {}]", key, v, lo, hi));
  out = v;
  return std::nullopt;
}

std::optional<ApiError> Integer(const json& j, const char* key, int64_t lo, int64_t hi, int64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) return Bad(key, fmt::format("'{}' must be an integer", key));
  const int64_t v = it->is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(it->get<uint64_t>(), INT64_MAX)) : it->get<int64_t>();
  if (v < lo || v > hi) return Bad(key, fmt::format("'{}' is {}; it must be in [{}, {}]", key, v, lo, hi));
  out = v;
  return std::nullopt;
}

std::optional<ApiError> Bool(const json& j, const char* key, bool& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return Bad(key, fmt::format("'{}' must be true or false", key));
  out = it->get<bool>();
  return std::nullopt;
}

// Chat message content: a string, null, or an array of {"type": "text", "text": ...} parts.
std::variant<std::string, ApiError> ContentText(const json& content, size_t index) {
  const std::string param = fmt::format("messages[{}].content", index);
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return Bad(param, param + " must be a string or an array of text parts");
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
      return Bad(param, param + ": only parts of type \"text\" with a string \"text\" are supported");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

std::variant<std::vector<int32_t>, ApiError> ChatPrompt(const json& j, const ApiContext& ctx) {
  auto it = j.find("messages");
  if (it == j.end()) return Bad("messages", "'messages' is required");
  if (!it->is_array() || it->empty()) return Bad("messages", "'messages' must be a non-empty array");
  json messages = json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object()) return Bad(fmt::format("messages[{}]", i), fmt::format("messages[{}] must be an object", i));
    if (!m.contains("role") || !m["role"].is_string()) {
      return Bad(fmt::format("messages[{}].role", i), fmt::format("messages[{}].role must be a string", i));
    }
    auto text = ContentText(m.value("content", json(nullptr)), i);
    if (auto* e = std::get_if<ApiError>(&text)) return *e;
    json msg = m;
    msg["content"] = std::get<std::string>(text);
    messages.push_back(std::move(msg));
  }
  auto rendered = ctx.chat_template->Apply(messages, /*add_generation_prompt=*/true);
  if (!rendered.ok()) return Bad("messages", rendered.status().message());
  // A rendered template carries its own BOS where the model wants one (as `run --chat`).
  return ctx.model->tokenizer().Encode(*rendered, /*add_special=*/false, /*parse_special=*/true);
}

std::variant<std::vector<int32_t>, ApiError> CompletionPrompt(const json& j, const ApiContext& ctx) {
  auto it = j.find("prompt");
  if (it == j.end() || it->is_null()) return Bad("prompt", "'prompt' is required");
  const json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) return ctx.model->tokenizer().Encode(p->get<std::string>(), /*add_special=*/true, false);
  if (p->is_array() && !p->empty()) {
    std::vector<int32_t> ids;
    for (const auto& t : *p) {
      if (!t.is_number_integer()) return Bad("prompt", "'prompt' must be a string, an array of token ids, or one of either in an array");
      const int64_t v = t.get<int64_t>();
      if (v < 0 || v >= ctx.model->config().n_vocab) return Bad("prompt", fmt::format("prompt token id {} is outside the vocabulary", v));
      ids.push_back(static_cast<int32_t>(v));
    }
    return ids;
  }
  return Bad("prompt", "'prompt' must be a string, an array of token ids, or one of either in an array (one prompt per request)");
}

std::vector<int> Bytes(const std::string& s) {
  std::vector<int> b;
  for (unsigned char c : s) b.push_back(c);
  return b;
}

}  // namespace

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ErrorJson(const ApiError& e) {
  json err = {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return Dump(json{{"error", err}});
}

std::variant<ApiRequest, ApiError> ParseApiRequest(const std::string& body, bool chat, const ApiContext& ctx) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("", "the request body is not valid JSON");
  if (!j.is_object()) return Bad("", "the request body must be a JSON object");
  if (j.contains("model") && !j["model"].is_string()) return Bad("model", "'model' must be a string");
  ApiRequest r;
  r.chat = chat;
  serve::RequestParams& p = r.request.params;
  // OpenAI's defaults: temperature 1, top_p 1, no top-k / min-p cut.
  SamplingParams& s = p.sampling;
  s.temperature = 1.0f;
  s.top_p = 1.0f;
  s.top_k = 0;
  s.min_p = 0.0f;
  s.seed = std::random_device{}();
  double temperature = 1, top_p = 1, min_p = 0, presence = 0, frequency = 0, repetition = 1;
  int64_t n = 1, top_k = 0, max_tokens = -1, seed = -1;
  std::optional<ApiError> err;
  if ((err = Number(j, "temperature", 0, 2, temperature)) || (err = Number(j, "top_p", 0, 1, top_p)) ||
      (err = Number(j, "min_p", 0, 1, min_p)) || (err = Number(j, "presence_penalty", -2, 2, presence)) ||
      (err = Number(j, "frequency_penalty", -2, 2, frequency)) ||
      (err = Number(j, "repetition_penalty", 0.01, 10, repetition)) || (err = Integer(j, "n", 1, 16, n)) ||
      (err = Integer(j, "top_k", -1, 1 << 20, top_k)) || (err = Integer(j, "max_tokens", 1, INT32_MAX, max_tokens)) ||
      (err = Integer(j, "max_completion_tokens", 1, INT32_MAX, max_tokens)) ||
      (err = Integer(j, "seed", INT64_MIN, INT64_MAX, seed)) || (err = Bool(j, "stream", r.stream)) ||
      (err = Bool(j, "ignore_eos", p.ignore_eos))) {
    return *err;
  }
  if (top_p <= 0) return Bad("top_p", "'top_p' must be greater than 0");
  s.temperature = static_cast<float>(temperature);
  s.top_p = static_cast<float>(top_p);
  s.min_p = static_cast<float>(min_p);
  s.top_k = static_cast<int32_t>(std::max<int64_t>(0, top_k));
  s.presence_penalty = static_cast<float>(presence);
  s.frequency_penalty = static_cast<float>(frequency);
  s.repeat_penalty = static_cast<float>(repetition);
  if (j.contains("seed") && !j["seed"].is_null()) s.seed = static_cast<uint64_t>(seed);
  p.n = static_cast<int32_t>(n);
  if (auto it = j.find("stream_options"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("stream_options", "'stream_options' must be an object");
    if ((err = Bool(*it, "include_usage", r.include_usage))) return Bad("stream_options.include_usage", err->message);
  }
  if (auto it = j.find("stop"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      p.stop.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 4) {
      for (const auto& x : *it) {
        if (!x.is_string()) return Bad("stop", "'stop' must be a string or an array of up to 4 strings");
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      return Bad("stop", "'stop' must be a string or an array of up to 4 strings");
    }
    for (const auto& x : p.stop)
      if (x.empty()) return Bad("stop", "'stop' strings must not be empty");
  }
  if (auto it = j.find("stop_token_ids"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Bad("stop_token_ids", "'stop_token_ids' must be an array of token ids");
    for (const auto& x : *it) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= ctx.model->config().n_vocab) {
        return Bad("stop_token_ids", "'stop_token_ids' must hold token ids of this model");
      }
      p.stop_token_ids.push_back(x.get<int32_t>());
    }
  }
  if (chat) {
    if ((err = Bool(j, "logprobs", r.logprobs))) return *err;
    int64_t top = 0;
    if ((err = Integer(j, "top_logprobs", 0, 20, top))) return *err;
    if (top > 0 && !r.logprobs) return Bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.top_logprobs = static_cast<int32_t>(top);
  } else {
    int64_t lp = -1;
    if ((err = Integer(j, "logprobs", 0, 20, lp))) return *err;
    r.logprobs = lp >= 0;
    r.top_logprobs = static_cast<int32_t>(std::max<int64_t>(lp, 0));
    bool echo = false;
    if ((err = Bool(j, "echo", echo))) return *err;
    if (echo) return Bad("echo", "'echo' is not supported");
  }
  p.logprobs = r.logprobs ? r.top_logprobs : -1;

  auto prompt = chat ? ChatPrompt(j, ctx) : CompletionPrompt(j, ctx);
  if (auto* e = std::get_if<ApiError>(&prompt)) return *e;
  r.request.prompt = std::move(std::get<std::vector<int32_t>>(prompt));
  const int64_t n_prompt = static_cast<int64_t>(r.request.prompt.size());
  const char* prompt_param = chat ? "messages" : "prompt";
  if (n_prompt == 0) return Bad(prompt_param, "the prompt is empty (no tokens)");
  if (n_prompt >= ctx.max_seq_len) {
    ApiError e = Bad(prompt_param, fmt::format("This model's maximum context length is {} tokens. However, your prompt has {} tokens.",
                                               ctx.max_seq_len, n_prompt));
    e.code = "context_length_exceeded";
    return e;
  }
  if (max_tokens < 0) {
    max_tokens = ctx.max_seq_len - n_prompt;
  } else if (n_prompt + max_tokens > ctx.max_seq_len) {
    ApiError e = Bad("max_tokens", fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                                               "({} in the prompt, {} for the completion).",
                                               ctx.max_seq_len, n_prompt + max_tokens, n_prompt, max_tokens));
    e.code = "context_length_exceeded";
    return e;
  }
  p.max_tokens = static_cast<int32_t>(max_tokens);
  if (Status st = p.Validate(); !st.ok()) return Bad("", st.message());
  return r;
}

// ---- responses ----

ResponseBuilder::ResponseBuilder(const ApiRequest& req, std::string model_name, const Tokenizer& tokenizer)
    : req_(req), model_name_(std::move(model_name)), tok_(tokenizer),
      id_(RandomId(req.chat ? "chatcmpl-" : "cmpl-")),
      created_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()),
      choices_(req.request.params.n) {
  prompt_tokens_ = static_cast<int32_t>(req.request.prompt.size());
}

json ResponseBuilder::LogprobEntry(const serve::StreamEvent& e, size_t text_offset) const {
  const std::string piece = tok_.TokenToPiece(e.token);
  if (req_.chat) {
    json top = json::array();
    for (const auto& t : e.logprobs.top) {
      const std::string tp = tok_.TokenToPiece(t.token);
      top.push_back({{"token", tp}, {"logprob", t.logprob}, {"bytes", Bytes(tp)}});
    }
    return {{"token", piece}, {"logprob", e.logprobs.logprob}, {"bytes", Bytes(piece)}, {"top_logprobs", top}};
  }
  json top = json::object();
  for (const auto& t : e.logprobs.top) top[tok_.TokenToPiece(t.token)] = t.logprob;
  return {{"token", piece}, {"logprob", e.logprobs.logprob}, {"top", top}, {"offset", text_offset}};
}

void ResponseBuilder::AddLogprobs(Choice& c, const json& entry) const {
  if (req_.chat) {
    if (c.logprobs.is_null()) c.logprobs = {{"content", json::array()}};
    c.logprobs["content"].push_back(entry);
    return;
  }
  if (c.logprobs.is_null()) {
    c.logprobs = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
                  {"text_offset", json::array()}};
  }
  c.logprobs["tokens"].push_back(entry["token"]);
  c.logprobs["token_logprobs"].push_back(entry["logprob"]);
  c.logprobs["top_logprobs"].push_back(entry["top"]);
  c.logprobs["text_offset"].push_back(entry["offset"]);
}

void ResponseBuilder::OnEvent(const serve::StreamEvent& e) {
  if (e.index < 0 || e.index >= static_cast<int32_t>(choices_.size())) return;
  Choice& c = choices_[e.index];
  if (e.token >= 0 && e.has_logprobs) AddLogprobs(c, LogprobEntry(e, c.text.size()));
  c.text += e.text;
  if (!e.finish_reason.empty()) {
    c.finish_reason = e.finish_reason;
    c.completion_tokens = e.completion_tokens;
    prompt_tokens_ = e.prompt_tokens;
    cached_tokens_ = e.cached_prompt_tokens;
    if (e.finish_reason == "error" && !error_) error_ = e.error;
  }
}

json ResponseBuilder::Usage() const {
  int32_t completion = 0;
  for (const auto& c : choices_) completion += c.completion_tokens;
  return {{"prompt_tokens", prompt_tokens_},
          {"completion_tokens", completion},
          {"total_tokens", prompt_tokens_ + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens_}}}};
}

std::string ResponseBuilder::Json() const {
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    json ch = {{"index", i}, {"logprobs", c.logprobs}, {"finish_reason", c.finish_reason}};
    if (req_.chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      ch["text"] = c.text;
    }
    choices.push_back(std::move(ch));
  }
  json r = {{"id", id_},
            {"object", req_.chat ? "chat.completion" : "text_completion"},
            {"created", created_},
            {"model", model_name_},
            {"system_fingerprint", "lmstation"},
            {"choices", choices},
            {"usage", Usage()}};
  return Dump(r);
}

json ResponseBuilder::ChunkEnvelope() const {
  return {{"id", id_},
          {"object", req_.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", model_name_},
          {"system_fingerprint", "lmstation"}};
}

std::vector<std::string> ResponseBuilder::OnStreamEvent(const serve::StreamEvent& e) {
  std::vector<std::string> out;
  if (e.index < 0 || e.index >= static_cast<int32_t>(choices_.size())) return out;
  Choice& c = choices_[e.index];
  if (!e.finish_reason.empty()) {
    c.completion_tokens = e.completion_tokens;
    prompt_tokens_ = e.prompt_tokens;
    cached_tokens_ = e.cached_prompt_tokens;
  }
  if (e.finish_reason == "error") {
    if (!error_) error_ = e.error;
    ApiError err;
    err.http_status = 500;
    err.type = "server_error";
    err.message = e.error;
    out.push_back(ErrorJson(err));
    return out;
  }
  json logprobs = nullptr;
  if (e.token >= 0 && e.has_logprobs) {
    const json entry = LogprobEntry(e, c.text.size());
    if (req_.chat) {
      logprobs = {{"content", json::array({entry})}};
    } else {
      logprobs = {{"tokens", {entry["token"]}}, {"token_logprobs", {entry["logprob"]}},
                  {"top_logprobs", {entry["top"]}}, {"text_offset", {entry["offset"]}}};
    }
  }
  c.text += e.text;
  auto chunk = [&](json delta_or_text, json lp, json finish) {
    json j = ChunkEnvelope();
    json ch = {{"index", e.index}, {"logprobs", std::move(lp)}, {"finish_reason", std::move(finish)}};
    if (req_.chat) {
      ch["delta"] = std::move(delta_or_text);
    } else {
      ch["text"] = std::move(delta_or_text);
    }
    j["choices"] = json::array({ch});
    return Dump(j);
  };
  if (req_.chat && !c.role_sent) {
    c.role_sent = true;
    out.push_back(chunk({{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
  }
  const bool has_content = !e.text.empty() || !logprobs.is_null();
  if (has_content) {
    out.push_back(req_.chat ? chunk({{"content", e.text}}, logprobs, nullptr) : chunk(e.text, logprobs, nullptr));
  }
  if (!e.finish_reason.empty()) {
    out.push_back(req_.chat ? chunk(json::object(), nullptr, e.finish_reason) : chunk("", nullptr, e.finish_reason));
  }
  return out;
}

std::string ResponseBuilder::UsageChunk() const {
  json j = ChunkEnvelope();
  j["choices"] = json::array();
  j["usage"] = Usage();
  return Dump(j);
}

// ---- Prometheus ----

std::string PrometheusText(const serve::EngineMetrics& m) {
  std::string s;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    s += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
  };
  auto histogram = [&](const char* name, const char* help, const serve::Histogram& h) {
    s += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cum += h.counts[i];
      s += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i], cum);
    }
    s += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, h.count, name, h.sum, name, h.count);
  };
  metric("lmstation_requests_running", "gauge", "Sequences running in the engine.", m.running);
  metric("lmstation_requests_waiting", "gauge", "Sequences waiting to run (new or preempted).", m.waiting);
  metric("lmstation_kv_cache_usage_ratio", "gauge", "Fraction of KV blocks referenced by a sequence.", m.kv_usage());
  metric("lmstation_kv_blocks_total", "gauge", "KV blocks in the pool.", m.kv_blocks_total);
  metric("lmstation_kv_blocks_used", "gauge", "KV blocks referenced by a sequence.", m.kv_blocks_used);
  metric("lmstation_kv_tokens_held", "gauge", "Tokens with K/V in the KV blocks in use (shared blocks counted once).",
         static_cast<double>(m.kv_tokens_held));
  metric("lmstation_kv_fill_ratio", "gauge", "Tokens held / capacity of the KV blocks in use (0 when none is in use).",
         m.kv_fill());
  metric("lmstation_kv_blocks_cached", "gauge", "KV blocks findable in the prefix cache.", m.kv_blocks_cached);
  metric("lmstation_prefix_cache_hit_rate", "gauge", "Prompt tokens found in the prefix cache / prompt tokens looked up.",
         m.prefix_hit_rate());
  metric("lmstation_prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.",
         static_cast<double>(m.prefix_query_tokens));
  metric("lmstation_prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.",
         static_cast<double>(m.prefix_hit_tokens));
  metric("lmstation_prompt_tokens_total", "counter", "Prompt tokens of received requests.", static_cast<double>(m.prompt_tokens));
  metric("lmstation_generation_tokens_total", "counter", "Generated tokens.", static_cast<double>(m.generation_tokens));
  metric("lmstation_computed_tokens_total", "counter", "Tokens run through the model (prefill, decode, recompute).",
         static_cast<double>(m.computed_tokens));
  metric("lmstation_requests_received_total", "counter", "Requests accepted by the engine.", static_cast<double>(m.requests_received));
  metric("lmstation_requests_finished_total", "counter", "Requests finished (cancelled included).",
         static_cast<double>(m.requests_finished));
  metric("lmstation_requests_cancelled_total", "counter", "Requests cancelled.", static_cast<double>(m.requests_cancelled));
  metric("lmstation_preemptions_total", "counter", "Sequences preempted for recomputation.", static_cast<double>(m.preemptions));
  metric("lmstation_engine_steps_total", "counter", "Engine steps (forward passes).", static_cast<double>(m.steps));
  metric("lmstation_engine_greedy_id_steps_total", "counter",
         "Engine steps whose choices were all plain greedy, so only token ids left the backend.",
         static_cast<double>(m.greedy_id_steps));
  histogram("lmstation_time_to_first_token_seconds", "Time from arrival to the first generated token.", m.ttft_s);
  histogram("lmstation_time_per_output_token_seconds", "Mean time between generated tokens of a request.", m.tpot_s);
  return s;
}

}  // namespace lms::app
