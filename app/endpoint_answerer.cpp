#include "app/endpoint_answerer.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <cstdlib>

namespace lms::app {

Result<std::unique_ptr<EndpointAnswerer>> EndpointAnswerer::Create(const EndpointOptions& o) {
  std::unique_ptr<EndpointAnswerer> a(new EndpointAnswerer());
  a->o_ = o;
  const std::string& url = o.base_url;
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos || url.substr(0, scheme_end) != "http") {
    return Status::InvalidArgument(fmt::format("endpoint URL '{}' must start with http:// (no TLS in this build)", url));
  }
  const size_t path_start = url.find('/', scheme_end + 3);
  a->scheme_host_port_ = path_start == std::string::npos ? url : url.substr(0, path_start);
  a->path_prefix_ = path_start == std::string::npos ? "" : url.substr(path_start);
  while (!a->path_prefix_.empty() && a->path_prefix_.back() == '/') a->path_prefix_.pop_back();
  if (o.model.empty()) return Status::InvalidArgument("an endpoint contestant needs a model name");
  if (!o.api_key_env.empty()) {
    const char* key = std::getenv(o.api_key_env.c_str());
    if (!key || !*key) return Status::InvalidArgument(fmt::format("environment variable {} (the API key) is not set", o.api_key_env));
    a->api_key_ = key;
  }
  return a;
}

nlohmann::json EndpointAnswerer::Config() const {
  nlohmann::json j = {{"endpoint", o_.base_url}, {"model", o_.model}, {"api_key_env", o_.api_key_env},
                      {"temperature", o_.temperature}, {"max_tokens", o_.max_tokens}};
  if (o_.seed) j["seed"] = *o_.seed;
  return j;
}

Result<eval::AnswerText> EndpointAnswerer::Reply(const std::vector<eval::ChatMessage>& conversation) {
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json body = {{"model", o_.model}, {"temperature", o_.temperature}, {"max_tokens", o_.max_tokens}, {"stream", false}};
  if (o_.seed) body["seed"] = *o_.seed;
  body["messages"] = nlohmann::json::array();
  for (const auto& m : conversation) body["messages"].push_back({{"role", m.role}, {"content", m.content}});
  httplib::Client client(scheme_host_port_);
  client.set_connection_timeout(30);
  client.set_read_timeout(o_.timeout_s);
  httplib::Headers headers;
  if (!api_key_.empty()) headers.emplace("Authorization", "Bearer " + api_key_);
  auto res = client.Post(path_prefix_ + "/chat/completions", headers, body.dump(), "application/json");
  if (!res) return Status::IoError(fmt::format("{}: request failed ({})", o_.base_url, httplib::to_string(res.error())));
  if (res->status != 200) {
    return Status::IoError(fmt::format("{}: HTTP {}: {}", o_.base_url, res->status, res->body.substr(0, 300)));
  }
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
      !j["choices"][0].contains("message") || !j["choices"][0]["message"].contains("content") ||
      !j["choices"][0]["message"]["content"].is_string()) {
    return Status::InvalidArgument(fmt::format("{}: the response has no choices[0].message.content", o_.base_url));
  }
  eval::AnswerText out;
  out.text = j["choices"][0]["message"]["content"].get<std::string>();
  if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("completion_tokens") && j["usage"]["completion_tokens"].is_number()) {
    out.tokens = j["usage"]["completion_tokens"].get<int64_t>();
  }
  out.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace lms::app
