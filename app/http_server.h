// The OpenAI-compatible HTTP server on the serving engine, as an object: Start() loads the model,
// starts the engine, binds the port and listens on a thread of its own; Stop() (or the
// destructor) closes the port and stops the engine. `lmstation serve` and the desktop app's
// Serve panel both use it.
//
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
// GET /metrics (Prometheus). Handler threads only parse, submit and wait on their request's
// channel; the engine thread owns the model and KV cache.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/serve/metrics.h"
#include "core/util/status.h"

namespace lms::app {

struct HttpServerOptions {
  std::string model;  // GGUF file or known model name
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see HttpServer::port())
  std::string api_key;  // non-empty: required as 'Authorization: Bearer KEY'
  std::string chat_template;  // Jinja file instead of the model's template
  std::string served_name;    // model id of the API (default: from `model`)
  std::string kv_type = "f16";
  std::string device = "cpu";
  int threads = 0, kv_block = 16, max_running = 16, token_budget = 256, ctx = 4096;
  int max_waiting = 256, http_threads = 128;
  double kv_mem_mib = 0;  // 0: max_running full contexts, at most 1 GiB
  size_t max_body = 8u << 20;
  bool prefix_cache = true;
};

class HttpServer {
 public:
  // Returns once the port accepts connections. Thread-safe to call Stop() from any thread after.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options);
  ~HttpServer();

  // Closes the port and waits for the listening thread; idempotent.
  void Stop();
  // Asks the server to stop without waiting (safe from a signal-handling thread).
  void RequestStop();
  // Blocks until the server stopped (after RequestStop from another thread, or Stop).
  void Wait();

  bool listening() const;
  int port() const;
  const std::string& host() const;
  const std::string& served_name() const;
  serve::EngineMetrics Metrics() const;  // the engine's latest snapshot; thread-safe

 private:
  HttpServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lms::app
