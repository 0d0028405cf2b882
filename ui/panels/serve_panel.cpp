#include "ui/panels/serve_panel.h"

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cfloat>

namespace lms::ui {

namespace {
constexpr auto kSamplePeriod = std::chrono::milliseconds(250);
}

ServePanel::ServePanel() {
  options_.port = 8080;
  options_.kv_mem_mib = 256;
  options_.max_running = 8;
}

ServePanel::~ServePanel() {
  monitor_.reset();  // stops sampling before the server goes
  if (server_) server_->Stop();
}

void ServePanel::Script(std::string model, int port, int requests) {
  options_.model = std::move(model);
  options_.port = port;
  script_requests_ = std::max(1, requests);
  script_ = true;
}

bool ServePanel::Busy() const {
  if (start_.Running() || stop_.Running()) return true;
  if (!script_ || !error_.empty()) return false;
  // Scripted: until the requests were answered and at least two samples followed.
  return samples_at_answers_ < 0 || series_.samples < samples_at_answers_ + 2;
}

void ServePanel::StartServer() {
  error_.clear();
  series_ = app::ServeSeries{};
  samples_at_answers_ = -1;
  const app::HttpServerOptions o = options_;
  start_.Start(fmt::format("loading {} and binding {}:{}...", o.model, o.host, o.port),
               [o](const auto&) -> Result<std::shared_ptr<app::HttpServer>> {
                 LMS_ASSIGN_OR_RETURN(auto s, app::HttpServer::Start(o));
                 return std::shared_ptr<app::HttpServer>(std::move(s));
               });
}

void ServePanel::StopServer() {
  monitor_.reset();
  // Closing the port waits for open requests: off the UI thread.
  stop_.Start("stopping the server...", [s = std::move(server_)](const auto&) -> Result<bool> {
    s->Stop();
    return true;
  });
  server_.reset();
}

void ServePanel::Draw(UiShared& shared) {
  if (auto r = start_.Take()) {
    if (r->ok()) {
      server_ = std::move(**r);
      std::shared_ptr<app::HttpServer> s = server_;
      monitor_ = std::make_unique<app::ServeMonitor>([s] { return s->Metrics(); }, kSamplePeriod);
    } else {
      error_ = r->status().message();
    }
  }
  if (auto r = stop_.Take(); r && !r->ok()) error_ = r->status().message();
  if (options_.model.empty()) options_.model = shared.selected_model;
  if (script_ && !server_ && !start_.Running() && error_.empty() && series_.samples == 0) StartServer();
  if (monitor_) {
    series_ = monitor_->Snapshot();
    if (samples_at_answers_ < 0 && series_.latest.requests_finished >= static_cast<uint64_t>(script_requests_)) {
      samples_at_answers_ = series_.samples;
    }
  }

  const bool idle = !server_ && !start_.Running() && !stop_.Running();
  ImGui::BeginDisabled(!idle);
  ImGui::SetNextItemWidth(480);
  ImGui::InputText("model", &options_.model);
  ImGui::SetNextItemWidth(160);
  ImGui::InputText("host", &options_.host);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(120);
  ImGui::InputInt("port", &options_.port);
  options_.port = std::clamp(options_.port, 0, 65535);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(120);
  ImGui::InputDouble("KV MiB", &options_.kv_mem_mib, 16, 128, "%.0f");
  options_.kv_mem_mib = std::clamp(options_.kv_mem_mib, 1.0, 65536.0);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(100);
  ImGui::InputInt("max running", &options_.max_running);
  options_.max_running = std::clamp(options_.max_running, 1, 256);
  ImGui::EndDisabled();

  if (start_.Running()) {
    ImGui::TextDisabled("%s", start_.Status().c_str());
  } else if (stop_.Running()) {
    ImGui::TextDisabled("%s", stop_.Status().c_str());
  } else if (server_) {
    if (ImGui::Button("Stop")) StopServer();
  } else if (ImGui::Button("Start")) {
    StartServer();
  }
  if (server_) {
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(0.6f, 1, 0.6f, 1), "listening on http://%s:%d/v1 as '%s'", server_->host().c_str(), server_->port(),
                       server_->served_name().c_str());
    const serve::EngineMetrics& m = series_.latest;
    ImGui::Text("requests %llu received, %llu finished (%llu cancelled) | %llu tokens generated | %lld KV blocks of %lld tokens",
                static_cast<unsigned long long>(m.requests_received), static_cast<unsigned long long>(m.requests_finished),
                static_cast<unsigned long long>(m.requests_cancelled), static_cast<unsigned long long>(m.generation_tokens),
                static_cast<long long>(m.kv_blocks_total), static_cast<long long>(m.kv_block_size));
  } else if (!start_.Running()) {
    ImGui::SameLine();
    ImGui::TextDisabled("stopped");
  }
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());
  ImGui::Separator();

  struct Plot {
    const char* label;
    const std::vector<float>* v;
    const char* unit;
    float max;
  };
  const Plot plots[] = {{"output tokens/s", &series_.output_tok_s, "tok/s", FLT_MAX},
                        {"running requests", &series_.running, "", FLT_MAX},
                        {"waiting requests", &series_.waiting, "", FLT_MAX},
                        {"KV usage", &series_.kv_usage_pct, "%", 100.0f},
                        {"prefix-cache hit rate", &series_.prefix_hit_pct, "%", 100.0f}};
  const float h = std::max(50.0f, (ImGui::GetContentRegionAvail().y - 5 * ImGui::GetStyle().ItemSpacing.y) / 5);
  for (const Plot& p : plots) {
    const std::vector<float>& v = *p.v;
    const float last = v.empty() ? 0.0f : v.back();
    const float peak = v.empty() ? 0.0f : *std::max_element(v.begin(), v.end());
    const std::string overlay = fmt::format("{}: {:.1f} {} (peak {:.1f})", p.label, last, p.unit, peak);
    float hi = p.max;
    if (hi == FLT_MAX) hi = std::max(1.0f, peak * 1.1f);
    ImGui::PlotLines(fmt::format("##{}", p.label).c_str(), v.data(), static_cast<int>(v.size()), 0, overlay.c_str(), 0.0f, hi,
                     ImVec2(ImGui::GetContentRegionAvail().x, h));
  }
}

nlohmann::json ServePanel::Report() const {
  nlohmann::json j;
  j["listening"] = server_ && server_->listening();
  j["port"] = server_ ? server_->port() : options_.port;
  j["host"] = options_.host;
  j["model"] = options_.model;
  if (server_) j["served_name"] = server_->served_name();
  j["samples"] = series_.samples;
  j["period_s"] = std::chrono::duration<double>(kSamplePeriod).count();
  j["series"] = {{"t_s", series_.t_s},
                 {"output_tok_s", series_.output_tok_s},
                 {"running", series_.running},
                 {"waiting", series_.waiting},
                 {"kv_usage_pct", series_.kv_usage_pct},
                 {"prefix_hit_pct", series_.prefix_hit_pct}};
  const serve::EngineMetrics& m = series_.latest;
  j["requests_finished"] = m.requests_finished;
  j["generation_tokens"] = m.generation_tokens;
  j["kv_blocks_total"] = m.kv_blocks_total;
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
