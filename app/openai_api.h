// The OpenAI-compatible API's JSON: parsing and checking /v1/chat/completions and
// /v1/completions bodies into engine requests, and building responses (whole or as SSE chunks)
// and error objects in OpenAI's shapes. No sockets here: cmd_serve.cpp does the HTTP.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/model/chat_template.h"
#include "core/model/model.h"
#include "core/serve/metrics.h"
#include "core/serve/request.h"

namespace lms::app {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
};
std::string ErrorJson(const ApiError& e);

struct ApiRequest {
  serve::Request request;
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

struct ApiContext {
  const Model* model = nullptr;
  const ChatTemplate* chat_template = nullptr;
  int32_t max_seq_len = 0;
};

// Parses a request body. Errors name the offending parameter (400), or say the prompt does not
// fit the context (400, code context_length_exceeded).
std::variant<ApiRequest, ApiError> ParseApiRequest(const std::string& body, bool chat, const ApiContext& ctx);

// Builds the response of one request from the engine's events.
class ResponseBuilder {
 public:
  ResponseBuilder(const ApiRequest& req, std::string model_name, const Tokenizer& tokenizer);

  // Streaming: the SSE payloads (JSON text, without "data: ") this event produces.
  std::vector<std::string> OnStreamEvent(const serve::StreamEvent& e);
  // Streaming: the usage chunk sent last when stream_options.include_usage is set.
  std::string UsageChunk() const;
  // Whole response: records an event; Json() once every choice finished.
  void OnEvent(const serve::StreamEvent& e);
  std::string Json() const;
  // The first error an event reported, if any.
  const std::optional<std::string>& error() const { return error_; }

 private:
  struct Choice {
    std::string text;
    std::string finish_reason;
    nlohmann::json logprobs = nullptr;  // chat: {"content": [...]}; completions: legacy object
    bool role_sent = false;
    int32_t completion_tokens = 0;
  };
  nlohmann::json LogprobEntry(const serve::StreamEvent& e, size_t text_offset) const;
  void AddLogprobs(Choice& c, const nlohmann::json& entry) const;
  nlohmann::json Usage() const;
  nlohmann::json ChunkEnvelope() const;

  ApiRequest req_;
  std::string model_name_;
  const Tokenizer& tok_;
  std::string id_;
  int64_t created_;
  std::vector<Choice> choices_;
  int32_t prompt_tokens_ = 0;
  int32_t cached_tokens_ = 0;
  std::optional<std::string> error_;
};

// Prometheus text exposition of the engine's metrics.
std::string PrometheusText(const serve::EngineMetrics& m);

// JSON text with invalid UTF-8 replaced (a token can end inside a character).
std::string Dump(const nlohmann::json& j);

}  // namespace lms::app
