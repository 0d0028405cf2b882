#include "ui/panels/train_panel.h"

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/assets_dir.h"

namespace lms::ui {

namespace fs = std::filesystem;

TrainPanel::TrainPanel() {
  config_path_ = (fs::path(app::AssetsDir()) / "examples" / "train_tiny.toml").string();
  LoadFile();
}

TrainPanel::~TrainPanel() {
  if (job_) job_->Cancel();  // the background job stops at the next step and is joined
}

void TrainPanel::Script(int steps, std::string out) {
  steps_override_ = steps;
  if (!out.empty()) out_dir_ = std::move(out);
  script_ = true;
}

void TrainPanel::LoadFile() {
  std::ifstream in(config_path_, std::ios::binary);
  if (!in) {
    error_ = "cannot read " + config_path_;
    return;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  config_text_ = ss.str();
  error_.clear();
}

void TrainPanel::Run(const UiShared& shared) {
  // The text is parsed as if it were the file, so relative data paths stay relative to it.
  auto cfg = app::ParseTrainConfig(config_text_, config_path_);
  if (!cfg.ok()) {
    error_ = cfg.status().message();
    return;
  }
  app::TrainRunConfig c = std::move(*cfg);
  if (steps_override_ > 0) c.steps = steps_override_;
  if (!out_dir_.empty()) c.out = out_dir_;
  app::TrainJobOptions o;
  o.config_path = config_path_;
  o.db = shared.db_path;
  error_.clear();
  summary_.reset();
  progress_ = app::TrainProgress{};
  job_ = std::make_shared<app::TrainJob>();
  run_.Start("training...", [job = job_, c, o](const auto&) { return job->Run(c, o); });
}

void TrainPanel::Draw(UiShared& shared) {
  if (auto r = run_.Take()) {
    if (r->ok()) {
      summary_ = **r;
    } else {
      error_ = r->status().message();
    }
    script_ = false;
  }
  if (script_ && !run_.Running() && !job_) {
    Run(shared);
    if (!error_.empty()) script_ = false;
  }
  if (job_) progress_ = job_->Snapshot();
  const bool running = run_.Running();

  ImGui::SetNextItemWidth(420);
  ImGui::InputText("config file", &config_path_);
  ImGui::SameLine();
  if (ImGui::Button("Load") && !running) LoadFile();
  ImGui::SameLine();
  ImGui::SetNextItemWidth(200);
  ImGui::InputText("output", &out_dir_);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(100);
  ImGui::InputInt("steps (0: file's)", &steps_override_);
  steps_override_ = std::max(0, steps_override_);
  ImGui::SameLine();
  if (running) {
    if (ImGui::Button("Stop")) job_->Cancel();
  } else if (ImGui::Button("Run")) {
    Run(shared);
  }

  const app::TrainProgress& p = progress_;
  if (job_) {
    std::string line = fmt::format("{} | step {}/{}", p.phase, p.step, p.total_steps);
    if (!p.loss.empty()) {
      line += fmt::format(" | loss {:.4f} | lr {:.2e} | {:.0f} tok/s | bubble {:.2f} | ETA {:.0f} s", p.loss.back(), p.lr.back(),
                          p.tokens_per_s, p.bubble, p.eta_s);
    }
    if (summary_ && !summary_->cancelled) line += fmt::format(" | val loss {:.4f} | exported {}", summary_->val_loss, summary_->model);
    ImGui::TextUnformatted(line.c_str());
    if (!p.model_summary.empty()) {
      ImGui::TextDisabled("%s; %s, %d micro-batch(es); %s%s", p.model_summary.c_str(), p.schedule.c_str(), p.microbatches,
                          p.plan_note.c_str(), p.record_path.empty() ? "" : fmt::format("; recorded as run {}", p.record_run_id).c_str());
    }
  } else {
    ImGui::TextDisabled("not started");
  }
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());
  ImGui::Separator();

  const ImVec2 avail = ImGui::GetContentRegionAvail();
  ImGui::BeginChild("config", ImVec2(avail.x * 0.36f, 0), false);
  ImGui::BeginDisabled(running);
  ImGui::InputTextMultiline("##toml", &config_text_, ImVec2(-1, -1));
  ImGui::EndDisabled();
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("progress", ImVec2(0, 0), false);
  const float w = ImGui::GetContentRegionAvail().x;
  const float loss_hi = p.loss.empty() ? 1.0f : *std::max_element(p.loss.begin(), p.loss.end());
  const std::string loss_label = p.loss.empty() ? "loss" : fmt::format("loss {:.4f}", p.loss.back());
  ImGui::PlotLines("##loss", p.loss.data(), static_cast<int>(p.loss.size()), 0, loss_label.c_str(), 0.0f, loss_hi * 1.05f,
                   ImVec2(w, 130));
  const float lr_hi = p.lr.empty() ? 1.0f : *std::max_element(p.lr.begin(), p.lr.end());
  const std::string lr_label = p.lr.empty() ? "learning rate" : fmt::format("learning rate {:.2e}", p.lr.back());
  ImGui::PlotLines("##lr", p.lr.data(), static_cast<int>(p.lr.size()), 0, lr_label.c_str(), 0.0f, lr_hi * 1.05f, ImVec2(w, 80));
  DrawPlan();
  DrawTimeline();
  ImGui::EndChild();
}

void TrainPanel::DrawPlan() {
  ImGui::TextUnformatted("plan");
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders | ImGuiTableFlags_SizingStretchSame;
  if (ImGui::BeginTable("plan", 3, flags)) {
    for (const char* h : {"stage", "layers", "device"}) ImGui::TableSetupColumn(h);
    ImGui::TableHeadersRow();
    for (const auto& row : progress_.plan) {
      ImGui::TableNextRow();
      ImGui::TableSetColumnIndex(0);
      ImGui::Text("%d", row.stage);
      ImGui::TableSetColumnIndex(1);
      ImGui::Text("%d-%d (%d)", row.first_layer, row.end_layer - 1, row.end_layer - row.first_layer);
      ImGui::TableSetColumnIndex(2);
      ImGui::Text("cpu, %d thread%s", row.threads, row.threads == 1 ? "" : "s");
    }
    ImGui::EndTable();
  }
}

void TrainPanel::DrawTimeline() {
  const app::TrainProgress& p = progress_;
  timeline_boxes_ = 0;
  int stages = 0;  // the plan has a row per chunk (several per stage under the interleaved schedule)
  for (const auto& row : p.plan) stages = std::max(stages, row.stage + 1);
  ImGui::Text("pipeline timeline of step %lld (%.1f ms): forward", static_cast<long long>(p.step), 1e3 * p.timeline_wall_s);
  const ImU32 kForward = IM_COL32(79, 156, 245, 255), kBackward = IM_COL32(245, 160, 79, 255);
  ImGui::SameLine();
  ImGui::ColorButton("##f", ImColor(kForward), ImGuiColorEditFlags_NoTooltip, ImVec2(12, 12));
  ImGui::SameLine();
  ImGui::TextUnformatted("backward");
  ImGui::SameLine();
  ImGui::ColorButton("##b", ImColor(kBackward), ImGuiColorEditFlags_NoTooltip, ImVec2(12, 12));
  if (stages == 0 || p.timeline.empty()) return;
  double span = p.timeline_wall_s;
  for (const auto& e : p.timeline) span = std::max(span, e.end_s);
  if (span <= 0) return;
  const float label_w = 70, row_h = 24;
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float width = std::max(100.0f, ImGui::GetContentRegionAvail().x - label_w);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  for (int s = 0; s < stages; ++s) {
    const float y = origin.y + s * row_h;
    dl->AddText(ImVec2(origin.x, y + 4), IM_COL32(220, 220, 220, 255), fmt::format("stage {}", s).c_str());
    dl->AddRectFilled(ImVec2(origin.x + label_w, y + 1), ImVec2(origin.x + label_w + width, y + row_h - 1), IM_COL32(40, 44, 56, 255));
  }
  for (const auto& e : p.timeline) {
    if (e.stage < 0 || e.stage >= stages) continue;
    const float x0 = origin.x + label_w + static_cast<float>(e.start_s / span) * width;
    const float x1 = std::max(x0 + 1.0f, origin.x + label_w + static_cast<float>(e.end_s / span) * width);
    const float y = origin.y + e.stage * row_h;
    dl->AddRectFilled(ImVec2(x0, y + 3), ImVec2(x1, y + row_h - 3), e.forward ? kForward : kBackward);
    dl->AddRect(ImVec2(x0, y + 3), ImVec2(x1, y + row_h - 3), IM_COL32(20, 20, 20, 255));
    if (ImGui::IsMouseHoveringRect(ImVec2(x0, y + 3), ImVec2(x1, y + row_h - 3))) {
      ImGui::SetTooltip("stage %d, chunk %d, micro-batch %d, %s: %.1f to %.1f ms", e.stage, e.chunk, e.microbatch,
                        e.forward ? "forward" : "backward", 1e3 * e.start_s, 1e3 * e.end_s);
    }
    // Under the interleaved schedule a box says micro-batch.chunk.
    const bool interleaved = static_cast<int>(p.plan.size()) > stages;
    const std::string mb = interleaved ? fmt::format("{}.{}", e.microbatch, e.chunk) : std::to_string(e.microbatch);
    if (x1 - x0 > ImGui::CalcTextSize(mb.c_str()).x + 4) dl->AddText(ImVec2(x0 + 3, y + 5), IM_COL32(10, 10, 10, 255), mb.c_str());
    ++timeline_boxes_;
  }
  ImGui::Dummy(ImVec2(label_w + width, stages * row_h));
}

nlohmann::json TrainPanel::Report() const {
  const app::TrainProgress& p = progress_;
  nlohmann::json j;
  j["config"] = config_path_;
  j["phase"] = job_ ? p.phase : "idle";
  j["step"] = p.step;
  j["total_steps"] = p.total_steps;
  j["loss"] = p.loss;
  j["lr"] = p.lr;
  j["microbatches"] = p.microbatches;
  j["schedule"] = p.schedule;
  j["plan"] = nlohmann::json::array();
  for (const auto& r : p.plan) {
    j["plan"].push_back({{"stage", r.stage}, {"first_layer", r.first_layer}, {"end_layer", r.end_layer}, {"threads", r.threads}});
  }
  j["timeline_events"] = p.timeline.size();
  j["timeline_boxes"] = timeline_boxes_;
  if (summary_) {
    j["val_loss"] = summary_->val_loss;
    j["model"] = summary_->model;
  }
  if (!p.record_path.empty()) j["record_run_id"] = p.record_run_id;
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
