// Serve: start and stop the OpenAI-compatible HTTP server (app/http_server.h) on a model, host
// and port, with live plots of output tokens/s, running and waiting requests, KV usage and the
// prefix-cache hit rate, sampled from the engine's metrics by a monitor thread.
#pragma once

#include <memory>
#include <string>

#include "app/http_server.h"
#include "app/serve_monitor.h"
#include "ui/background_job.h"
#include "ui/panels/panel.h"

namespace lms::ui {

class ServePanel : public Panel {
 public:
  ServePanel();
  ~ServePanel() override;
  const char* Name() const override { return "Serve"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;
  bool Busy() const override;

  // Test hook: start serving `model` on `port` at once; the panel stays busy until `requests`
  // requests have been answered and sampled.
  void Script(std::string model, int port, int requests);

 private:
  void StartServer();
  void StopServer();

  app::HttpServerOptions options_;
  std::shared_ptr<app::HttpServer> server_;
  std::unique_ptr<app::ServeMonitor> monitor_;
  BackgroundJob<std::shared_ptr<app::HttpServer>> start_;
  BackgroundJob<bool> stop_;
  app::ServeSeries series_;  // the monitor's latest snapshot, taken once per frame
  std::string error_;
  bool script_ = false;
  int script_requests_ = 1;
  int64_t samples_at_answers_ = -1;  // the sample count when script_requests_ had been answered
};

}  // namespace lms::ui
