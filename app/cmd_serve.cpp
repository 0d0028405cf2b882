// lmstation serve MODEL — the OpenAI-compatible HTTP server (app/http_server.h) until SIGINT or
// SIGTERM.
#include <csignal>
#include <thread>

#include "app/commands.h"
#include "app/generation_options.h"
#include "app/http_server.h"

namespace lms::app {

CommandFn AddServeCommand(CLI::App& cli) {
  auto o = std::make_shared<HttpServerOptions>();
  auto no_prefix_cache = std::make_shared<bool>(false);
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
  sub->add_flag("--no-prefix-cache", *no_prefix_cache, "Do not reuse KV blocks of earlier prompts");
  sub->add_option("--chat-template", o->chat_template, "Jinja chat template file to use instead of the model's");
  sub->add_option("--served-model-name", o->served_name, "Model id reported by the API (default: from MODEL)");
  return [o, no_prefix_cache]() {
    // Signals are taken by one thread with sigwait, so every other thread is created with them blocked.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    o->prefix_cache = !*no_prefix_cache;
    auto server = HttpServer::Start(*o);
    if (!server.ok()) return Fail(server.status());
    HttpServer* s = server->get();
    std::thread signals([s, sigs] {
      int sig = 0;
      sigwait(&sigs, &sig);
      s->RequestStop();
    });
    signals.detach();
    s->Wait();
    return 0;
  };
}

}  // namespace lms::app
