#include "app/http_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "app/client_socket.h"
#include "app/commands.h"
#include "app/generation_options.h"
#include "app/openai_api.h"
#include "core/serve/engine.h"
#include "core/util/log.h"

namespace lms::app {
namespace {

using nlohmann::json;

void Reply(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  res.set_content(ErrorJson(e), "application/json");
}

ApiError FromStatus(const Status& s, bool chat) {
  ApiError e;
  e.message = s.message();
  switch (s.code()) {
    case StatusCode::kResourceExhausted:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "queue_full";
      break;
    case StatusCode::kOutOfRange:
      e.param = chat ? "messages" : "prompt";
      e.code = "context_length_exceeded";
      break;
    case StatusCode::kInvalidArgument:
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
  }
  return e;
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  LoadedModel lm;
  std::unique_ptr<ChatTemplate> chat_template;
  std::unique_ptr<serve::Engine> engine;
  ApiContext ctx;
  std::string name;
  int port = -1;
  httplib::Server svr;
  std::thread listener;
  std::atomic<bool> listen_ended{false};
  std::mutex join_mu;

  void AddRoutes();
};

void HttpServer::Impl::AddRoutes() {
  const HttpServerOptions& o = options;
  serve::Engine& eng = *engine;
  const Model& model = *lm.model;
  const int pool = std::max(4, o.http_threads);
  svr.new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
  svr.set_payload_max_length(o.max_body);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  svr.set_pre_routing_handler([key = o.api_key](const httplib::Request& req, httplib::Response& res) {
    if (key.empty() || req.get_header_value("Authorization") == "Bearer " + key) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    ApiError e;
    e.http_status = 401;
    e.message = req.has_header("Authorization") ? "Incorrect API key provided." : "Missing API key: send 'Authorization: Bearer KEY'.";
    e.code = "invalid_api_key";
    Reply(res, e);
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib raises itself (unknown route, body too large…) get OpenAI's shape too.
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.http_status = res.status;
    e.message = res.status == 413 ? "the request body is too large" : fmt::format("HTTP error {}", res.status);
    if (res.status == 404) e.message = "no such route";
    e.type = res.status >= 500 ? "server_error" : "invalid_request_error";
    res.set_content(ErrorJson(e), "application/json");
  });

  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  svr.Get("/metrics", [&eng = eng](const httplib::Request&, httplib::Response& res) {
    res.set_content(PrometheusText(eng.Metrics()), "text/plain; version=0.0.4");
  });
  svr.Get("/v1/models", [&name = name](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "lmstation"}};
    res.set_content(Dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  auto complete = [&eng = eng, &ctx = ctx, &name = name, &model = model](const httplib::Request& req, httplib::Response& res, bool chat) {
    auto parsed = ParseApiRequest(req.body, chat, ctx);
    if (auto* e = std::get_if<ApiError>(&parsed)) return Reply(res, *e);
    const ApiRequest& ar = std::get<ApiRequest>(parsed);
    auto ch = eng.Submit(ar.request);
    if (!ch.ok()) return Reply(res, FromStatus(ch.status(), chat));
    auto channel = *ch;
    auto builder = std::make_shared<ResponseBuilder>(ar, name, model.tokenizer());
    if (!ar.stream) {
      // Nothing is written until the answer is complete, so the connection is watched for
      // the client's close instead: a client that went away has its request cancelled.
      const int fd = FindConnectedSocket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
      auto last_check = std::chrono::steady_clock::now();
      bool gone = false;
      serve::StreamEvent e;
      while (!channel->done()) {
        if (channel->Next(e, std::chrono::milliseconds(50))) builder->OnEvent(e);
        const auto now = std::chrono::steady_clock::now();
        if (!gone && fd >= 0 && now - last_check >= std::chrono::milliseconds(50)) {
          last_check = now;
          if (PeerClosed(fd)) {
            gone = true;
            channel->Cancel();  // its blocks are freed within one engine step
          }
        }
      }
      if (builder->error()) {
        ApiError err;
        err.http_status = 500;
        err.type = "server_error";
        err.message = *builder->error();
        return Reply(res, err);
      }
      res.set_content(builder->Json(), "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    const bool usage = ar.include_usage;
    res.set_chunked_content_provider(
        "text/event-stream",
        [channel, builder, usage, idle = 0](size_t, httplib::DataSink& sink) mutable {
          if (!sink.is_writable()) {
            channel->Cancel();
            return false;
          }
          std::string out;
          serve::StreamEvent e;
          if (channel->Next(e, std::chrono::milliseconds(200))) {
            idle = 0;
            do {
              for (const auto& payload : builder->OnStreamEvent(e)) out += "data: " + payload + "\n\n";
            } while (channel->Next(e, std::chrono::milliseconds(0)));
          } else if (++idle % 5 == 0) {
            // An SSE comment about once a second while queued: writing is how a client that
            // went away is noticed (and its request cancelled) before it produces tokens.
            out = ": waiting\n\n";
          }
          const bool done = channel->done();
          if (done) {
            if (usage) out += "data: " + builder->UsageChunk() + "\n\n";
            out += "data: [DONE]\n\n";
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            channel->Cancel();  // the client went away: free its blocks
            return false;
          }
          if (done) sink.done();
          return true;
        },
        [channel](bool success) {
          if (!success) channel->Cancel();
        });
  };
  svr.Post("/v1/chat/completions", [complete](const httplib::Request& req, httplib::Response& res) { complete(req, res, true); });
  svr.Post("/v1/completions", [complete](const httplib::Request& req, httplib::Response& res) { complete(req, res, false); });

}

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  Impl& s = *server->impl_;
  s.options = options;
  const HttpServerOptions& o = s.options;
  LMS_ASSIGN_OR_RETURN(s.lm, LoadModel(o.model, o.threads, o.device));
  LMS_ASSIGN_OR_RETURN(ChatTemplate tmpl, LoadChatTemplate(*s.lm.model, o.chat_template));
  s.chat_template = std::make_unique<ChatTemplate>(std::move(tmpl));
  serve::EngineOptions eo;
  eo.block_size = o.kv_block;
  eo.kv_type = KvCacheType(o.kv_type);
  eo.kv_bytes = static_cast<int64_t>(o.kv_mem_mib * 1048576.0);
  eo.n_ctx = o.ctx;
  eo.max_running = o.max_running;
  eo.token_budget = o.token_budget;
  eo.max_waiting = o.max_waiting;
  eo.prefix_caching = o.prefix_cache;
  LMS_ASSIGN_OR_RETURN(s.engine, serve::Engine::Start(*s.lm.model, *s.lm.backend, eo));
  s.name = o.served_name;
  if (s.name.empty()) {
    s.name = o.model.find('/') == std::string::npos && o.model.find(".gguf") == std::string::npos
                 ? o.model
                 : std::filesystem::path(o.model).stem().string();
  }
  s.ctx = ApiContext{s.lm.model.get(), s.chat_template.get(), s.engine->max_seq_len()};
  s.AddRoutes();

  if (o.port == 0) {
    s.port = s.svr.bind_to_any_port(o.host);
  } else if (s.svr.bind_to_port(o.host, o.port)) {
    s.port = o.port;
  }
  if (s.port < 0) return Status::IoError(fmt::format("cannot listen on {}:{}", o.host, o.port));
  s.listener = std::thread([&s] {
    s.svr.listen_after_bind();
    s.listen_ended = true;
  });
  // The port is bound and listening already; waiting for the accept loop makes Stop() effective.
  while (!s.svr.is_running() && !s.listen_ended) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!s.svr.is_running()) {
    s.listener.join();
    return Status::IoError(fmt::format("the server on {}:{} stopped at start", o.host, s.port));
  }
  LogInfo(fmt::format("serving {} on http://{}:{} (OpenAI API under /v1)", s.name, o.host, s.port));
  return server;
}

void HttpServer::RequestStop() {
  if (impl_->svr.is_running()) impl_->svr.stop();
}

void HttpServer::Wait() {
  std::lock_guard<std::mutex> lock(impl_->join_mu);
  if (impl_->listener.joinable()) {
    impl_->listener.join();
    LogInfo("server stopped");
  }
}

void HttpServer::Stop() {
  RequestStop();
  Wait();
}

bool HttpServer::listening() const { return impl_->svr.is_running(); }
int HttpServer::port() const { return impl_->port; }
const std::string& HttpServer::host() const { return impl_->options.host; }
const std::string& HttpServer::served_name() const { return impl_->name; }
serve::EngineMetrics HttpServer::Metrics() const { return impl_->engine->Metrics(); }

}  // namespace lms::app
