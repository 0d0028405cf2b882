// The OpenAI API layer without sockets: request parsing and checks (each error names its
// parameter), response and SSE chunk shapes, Prometheus text.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

#include "app/openai_api.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace lms::app {
namespace {

using nlohmann::json;

struct Api {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<ChatTemplate> tmpl;
  ApiContext ctx;
  Api() {
    test::TinySpec spec;
    spec.n_vocab = 96;
    auto bytes = test::MakeTinyModel(spec);
    const std::string path = test::TempDir() + "/api-tiny.gguf";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    backend = MakeCpuBackend({1});
    auto m = Model::Load(path, *backend);
    REQUIRE(m.ok());
    model = std::move(m).value();
    auto t = ChatTemplate::FromSource(DefaultChatMlTemplate(), "", "");
    REQUIRE(t.ok());
    tmpl = std::make_unique<ChatTemplate>(std::move(t).value());
    ctx = {model.get(), tmpl.get(), 64};
  }
  ApiError Error(const std::string& body, bool chat) {
    auto r = ParseApiRequest(body, chat, ctx);
    REQUIRE(std::holds_alternative<ApiError>(r));
    return std::get<ApiError>(r);
  }
  ApiRequest Ok(const std::string& body, bool chat) {
    auto r = ParseApiRequest(body, chat, ctx);
    if (auto* e = std::get_if<ApiError>(&r)) FAIL(e->message);
    return std::get<ApiRequest>(r);
  }
};

}  // namespace

TEST_CASE("openai api: bad requests are 400s naming the parameter", "[serve][api]") {
  Api api;
  CHECK(api.Error("{not json", true).message.find("not valid JSON") != std::string::npos);
  CHECK(api.Error("[1,2]", true).http_status == 400);
  CHECK(api.Error(R"({"model": "m"})", true).param == "messages");
  CHECK(api.Error(R"({"messages": []})", true).param == "messages");
  CHECK(api.Error(R"({"messages": [{"content": "x"}]})", true).param == "messages[0].role");
  CHECK(api.Error(R"({"messages": [{"role": "user", "content": 5}]})", true).param == "messages[0].content");
  CHECK(api.Error(R"({"prompt": "ab", "temperature": "hot"})", false).param == "temperature");
  CHECK(api.Error(R"({"prompt": "ab", "temperature": 2.5})", false).param == "temperature");
  CHECK(api.Error(R"({"prompt": "ab", "top_p": 0})", false).param == "top_p");
  CHECK(api.Error(R"({"prompt": "ab", "n": 0})", false).param == "n");
  CHECK(api.Error(R"({"prompt": "ab", "max_tokens": 0})", false).param == "max_tokens");
  CHECK(api.Error(R"({"prompt": "ab", "max_tokens": 1.5})", false).param == "max_tokens");
  CHECK(api.Error(R"({"prompt": "ab", "stop": [1]})", false).param == "stop");
  CHECK(api.Error(R"({"prompt": "ab", "stop": ["a","b","c","d","e"]})", false).param == "stop");
  CHECK(api.Error(R"({"prompt": "ab", "stream": "yes"})", false).param == "stream");
  CHECK(api.Error(R"({"prompt": ["a", "b"]})", false).param == "prompt");
  CHECK(api.Error(R"({"prompt": [1, 500]})", false).param == "prompt");
  CHECK(api.Error(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", true).param == "top_logprobs");
  CHECK(api.Error(R"({"prompt": "ab", "model": 3})", false).param == "model");
  // Context: 64 tokens in this test.
  ApiError e = api.Error(json{{"prompt", std::string(100, 'x')}}.dump(), false);
  CHECK(e.code == "context_length_exceeded");
  CHECK(e.param == "prompt");
  CHECK(api.Error(R"({"prompt": "ab", "max_tokens": 64})", false).code == "context_length_exceeded");
  const json err = json::parse(ErrorJson(e));
  CHECK(err["error"]["type"] == "invalid_request_error");
  CHECK(err["error"]["code"] == "context_length_exceeded");
}

TEST_CASE("openai api: parameters reach the engine request", "[serve][api]") {
  Api api;
  ApiRequest r = api.Ok(R"({"prompt": "abc", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "n": 2, "seed": 11,
                            "stop": "zz", "logprobs": 3, "stream": true, "stream_options": {"include_usage": true},
                            "some_unknown_field": {"x": 1}})", false);
  CHECK(r.request.params.max_tokens == 5);
  CHECK(r.request.params.sampling.temperature == Approx(0.5));
  CHECK(r.request.params.sampling.top_p == Approx(0.9));
  CHECK(r.request.params.sampling.top_k == 0);
  CHECK(r.request.params.sampling.seed == 11u);
  CHECK(r.request.params.n == 2);
  CHECK(r.request.params.stop == std::vector<std::string>{"zz"});
  CHECK(r.request.params.logprobs == 3);
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.request.prompt == api.model->tokenizer().Encode("abc", true, false));
  // Defaults: max_tokens fills the context.
  ApiRequest d = api.Ok(R"({"prompt": [1, 2, 3]})", false);
  CHECK(d.request.params.max_tokens == 64 - 3);
  CHECK(d.request.params.sampling.temperature == 1.0f);
  CHECK(d.request.params.logprobs == -1);
  // Chat: the template renders the messages; text parts are joined.
  ApiRequest c = api.Ok(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "logprobs": true})", true);
  const std::string rendered = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
  CHECK(c.request.prompt == api.model->tokenizer().Encode(rendered, false, true));
  CHECK(c.request.params.logprobs == 0);
}

TEST_CASE("openai api: response and stream chunk shapes", "[serve][api]") {
  Api api;
  ApiRequest r = api.Ok(R"({"messages": [{"role": "user", "content": "hi"}], "n": 2})", true);
  ResponseBuilder b(r, "tiny", api.model->tokenizer());
  serve::StreamEvent e0;
  e0.index = 0;
  e0.token = 5;
  e0.text = "He";
  auto chunks = b.OnStreamEvent(e0);
  REQUIRE(chunks.size() == 2);  // role first, then content
  json first = json::parse(chunks[0]), second = json::parse(chunks[1]);
  CHECK(first["object"] == "chat.completion.chunk");
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  CHECK(second["choices"][0]["delta"]["content"] == "He");
  CHECK(second["choices"][0]["finish_reason"].is_null());
  serve::StreamEvent fin;
  fin.index = 1;
  fin.finish_reason = "length";
  fin.prompt_tokens = 7;
  fin.completion_tokens = 3;
  auto last = b.OnStreamEvent(fin);
  CHECK(json::parse(last.back())["choices"][0]["finish_reason"] == "length");
  CHECK(json::parse(last.back())["choices"][0]["index"] == 1);
  json usage = json::parse(b.UsageChunk());
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["prompt_tokens"] == 7);

  ResponseBuilder whole(r, "tiny", api.model->tokenizer());
  whole.OnEvent(e0);
  serve::StreamEvent f0 = fin;
  f0.index = 0;
  f0.text = "llo";
  f0.finish_reason = "stop";
  whole.OnEvent(f0);
  whole.OnEvent(fin);
  json j = json::parse(whole.Json());
  CHECK(j["object"] == "chat.completion");
  CHECK(j["model"] == "tiny");
  CHECK(j["choices"][0]["message"]["content"] == "Hello");
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  CHECK(j["choices"][1]["finish_reason"] == "length");
  CHECK(j["usage"]["completion_tokens"] == 6);
  CHECK(j["usage"]["total_tokens"] == 13);
}

TEST_CASE("openai api: Prometheus histograms are cumulative", "[serve][api]") {
  serve::EngineMetrics m;
  m.ttft_s.Observe(0.02);
  m.ttft_s.Observe(0.3);
  m.ttft_s.Observe(100);
  m.kv_blocks_total = 10;
  m.kv_blocks_used = 4;
  m.kv_block_size = 16;
  m.kv_tokens_held = 48;
  const std::string t = PrometheusText(m);
  CHECK(t.find("lmstation_time_to_first_token_seconds_bucket{le=\"0.025\"} 1\n") != std::string::npos);
  CHECK(t.find("lmstation_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n") != std::string::npos);
  CHECK(t.find("lmstation_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(t.find("lmstation_time_to_first_token_seconds_count 3\n") != std::string::npos);
  CHECK(t.find("lmstation_kv_cache_usage_ratio 0.4\n") != std::string::npos);
  CHECK(t.find("lmstation_kv_fill_ratio 0.75\n") != std::string::npos);
  CHECK(t.find("lmstation_kv_tokens_held 48\n") != std::string::npos);
  CHECK(t.find("# TYPE lmstation_generation_tokens_total counter") != std::string::npos);
}

}  // namespace lms::app
