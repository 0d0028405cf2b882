// lmstation serve MODEL — an OpenAI-compatible HTTP server on the serving engine:
// POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics.
// Handler threads only parse, submit and wait on their request's channel; the engine thread
// owns the model and KV cache.
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
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

CommandFn AddServeCommand(CLI::App& cli) {
  struct Opts {
    std::string model, host = "127.0.0.1", api_key, chat_template, served_name, kv_type = "f16";
    int port = 8080, threads = 0, kv_block = 16, max_running = 16, token_budget = 256, ctx = 4096;
    int max_waiting = 256, http_threads = 128;
    std::string device = "cpu";
    double kv_mem_mib = 0;
    size_t max_body = 8u << 20;
    bool no_prefix_cache = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  sub->add_option("model", o->model, "GGUF file or known model name (e.g. smollm2)")->required();
  sub->add_option("--host", o->host, "Address to bind")->capture_default_str();
  sub->add_option("--port", o->port, "Port (0: any free port, printed at start)")->capture_default_str();
  sub->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on every route");
  sub->add_option("--kv-mem", o->kv_mem_mib, "KV cache memory in MiB (default: max-running full contexts, at most 1 GiB)");
  sub->add_option("--kv-block", o->kv_block, "Tokens per KV block")->capture_default_str();
  AddKvTypeFlag(sub, &o->kv_type);
  sub->add_option("--max-running", o->max_running, "Sequences running at once, at most")->capture_default_str();
  sub->add_option("--token-budget", o->token_budget, "Tokens per engine step (prompt chunks + decodes)")->capture_default_str();
  sub->add_option("--max-waiting", o->max_waiting, "Queued sequences before answering 503")->capture_default_str();
  sub->add_option("-c,--ctx", o->ctx, "Tokens per sequence (prompt + output), at most")->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Compute threads (default: the cores available)");
  sub->add_option("--device", o->device, kDeviceFlagHelp)->capture_default_str();
  sub->add_option("--http-threads", o->http_threads, "HTTP handler threads (one per open request)")->capture_default_str();
  sub->add_option("--max-body", o->max_body, "Request body limit in bytes")->capture_default_str();
  sub->add_flag("--no-prefix-cache", o->no_prefix_cache, "Do not reuse KV blocks of earlier prompts");
  sub->add_option("--chat-template", o->chat_template, "Jinja chat template file to use instead of the model's");
  sub->add_option("--served-model-name", o->served_name, "Model id reported by the API (default: from MODEL)");
  return [o]() {
    // Signals are taken by one thread with sigwait, so every other thread is created with them blocked.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    auto lm = LoadModel(o->model, o->threads, o->device);
    if (!lm.ok()) return Fail(lm.status());
    const Model& model = *lm->model;
    auto tmpl = LoadChatTemplate(model, o->chat_template);
    if (!tmpl.ok()) return Fail(tmpl.status());
    serve::EngineOptions eo;
    eo.block_size = o->kv_block;
    eo.kv_type = KvCacheType(o->kv_type);
    eo.kv_bytes = static_cast<int64_t>(o->kv_mem_mib * 1048576.0);
    eo.n_ctx = o->ctx;
    eo.max_running = o->max_running;
    eo.token_budget = o->token_budget;
    eo.max_waiting = o->max_waiting;
    eo.prefix_caching = !o->no_prefix_cache;
    auto engine = serve::Engine::Start(model, *lm->backend, eo);
    if (!engine.ok()) return Fail(engine.status());
    serve::Engine& eng = **engine;
    std::string name = o->served_name;
    if (name.empty()) {
      name = o->model.find('/') == std::string::npos && o->model.find(".gguf") == std::string::npos
                 ? o->model
                 : std::filesystem::path(o->model).stem().string();
    }
    ApiContext ctx{&model, &*tmpl, eng.max_seq_len()};

    httplib::Server svr;
    const int pool = std::max(4, o->http_threads);
    svr.new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
    svr.set_payload_max_length(o->max_body);
    svr.set_read_timeout(30, 0);
    svr.set_write_timeout(30, 0);
    svr.set_pre_routing_handler([o](const httplib::Request& req, httplib::Response& res) {
      if (o->api_key.empty() || req.get_header_value("Authorization") == "Bearer " + o->api_key) {
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
    svr.Get("/metrics", [&eng](const httplib::Request&, httplib::Response& res) {
      res.set_content(PrometheusText(eng.Metrics()), "text/plain; version=0.0.4");
    });
    svr.Get("/v1/models", [&name](const httplib::Request&, httplib::Response& res) {
      json m = {{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "lmstation"}};
      res.set_content(Dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
    });
    auto complete = [&eng, &ctx, &name, &model](const httplib::Request& req, httplib::Response& res, bool chat) {
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

    int port = o->port;
    if (port == 0) {
      port = svr.bind_to_any_port(o->host);
    } else if (!svr.bind_to_port(o->host, port)) {
      port = -1;
    }
    if (port < 0) return Fail(Status::IoError(fmt::format("cannot listen on {}:{}", o->host, o->port)));
    std::thread signals([&svr, sigs] {
      int sig = 0;
      sigwait(&sigs, &sig);
      // A signal that comes before the server has started listening must still stop it:
      // stop() only acts on a running server, so wait for it to run.
      while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      svr.stop();
    });
    signals.detach();
    LogInfo(fmt::format("serving {} on http://{}:{} (OpenAI API under /v1)", name, o->host, port));
    svr.listen_after_bind();
    LogInfo("server stopped");
    return 0;
  };
}

}  // namespace lms::app
