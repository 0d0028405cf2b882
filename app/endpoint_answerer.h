// An eval::Answerer that calls an OpenAI-compatible chat completions endpoint
// (POST {base_url}/chat/completions), one request at a time. The API key is read from an
// environment variable so it never lands in the record.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/eval/answerer.h"

namespace lms::app {

struct EndpointOptions {
  std::string base_url;     // e.g. http://127.0.0.1:8080/v1
  std::string model;        // the endpoint's model name
  std::string api_key_env;  // name of the environment variable holding the key ("" = none)
  double temperature = 0.0;
  int max_tokens = 256;
  std::optional<uint64_t> seed;
  int timeout_s = 600;
  int parallel = 1;  // requests in flight at once
};

class EndpointAnswerer : public eval::Answerer {
 public:
  static Result<std::unique_ptr<EndpointAnswerer>> Create(const EndpointOptions& options);
  Result<eval::AnswerText> Reply(const std::vector<eval::ChatMessage>& conversation) override;
  int concurrency() const override { return o_.parallel; }
  // Settings as stored for the contestant (no key).
  nlohmann::json Config() const;

 private:
  EndpointOptions o_;
  std::string scheme_host_port_, path_prefix_, api_key_;
};

}  // namespace lms::app
