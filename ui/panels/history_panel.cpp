#include "ui/panels/history_panel.h"

#include <imgui.h>

#include <algorithm>

namespace lms::ui {

void HistoryPanel::Draw(UiShared& shared) {
  if (auto r = load_.Take()) {
    loaded_once_ = true;
    if (r->ok()) {
      runs_ = std::move(**r);
      std::sort(runs_.begin(), runs_.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
      error_.clear();
    } else {
      error_ = r->status().message();
    }
  }
  const std::string db = shared.db_path.empty() ? store::DefaultDatabasePath() : shared.db_path;
  if (!started_ || (ImGui::Button("Refresh") && !load_.Running())) {
    started_ = true;
    load_.Start("reading " + db, [db](const auto&) -> Result<std::vector<store::RunInfo>> {
      LMS_ASSIGN_OR_RETURN(auto st, store::Store::Open(db));
      return st->ListRuns();
    });
  }
  ImGui::SameLine();
  ImGui::Text("%s: %zu runs", db.c_str(), runs_.size());
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders | ImGuiTableFlags_ScrollY | ImGuiTableFlags_Resizable;
  if (ImGui::BeginTable("runs", 6, flags, ImVec2(0, ImGui::GetContentRegionAvail().y * 0.6f))) {
    ImGui::TableSetupScrollFreeze(0, 1);
    for (const char* h : {"id", "kind", "name", "status", "started", "finished"}) ImGui::TableSetupColumn(h);
    ImGui::TableHeadersRow();
    for (int i = 0; i < static_cast<int>(runs_.size()); ++i) {
      const auto& r = runs_[i];
      ImGui::TableNextRow();
      ImGui::TableSetColumnIndex(0);
      if (ImGui::Selectable(std::to_string(r.id).c_str(), selected_ == i, ImGuiSelectableFlags_SpanAllColumns)) selected_ = i;
      ImGui::TableSetColumnIndex(1);
      ImGui::TextUnformatted(r.kind.c_str());
      ImGui::TableSetColumnIndex(2);
      ImGui::TextUnformatted(r.name.c_str());
      ImGui::TableSetColumnIndex(3);
      const bool bad = r.status == "failed" || r.status == "cancelled";
      ImGui::TextColored(bad ? ImVec4(1, 0.5f, 0.4f, 1) : ImVec4(0.7f, 1, 0.7f, 1), "%s", r.status.c_str());
      ImGui::TableSetColumnIndex(4);
      ImGui::TextUnformatted(r.started_at.c_str());
      ImGui::TableSetColumnIndex(5);
      ImGui::TextUnformatted(r.finished_at.c_str());
    }
    ImGui::EndTable();
  }
  if (selected_ >= 0 && selected_ < static_cast<int>(runs_.size())) {
    ImGui::TextUnformatted("configuration:");
    ImGui::BeginChild("config", ImVec2(0, 0), true);
    ImGui::TextWrapped("%s", runs_[selected_].config.c_str());
    ImGui::EndChild();
  }
}

nlohmann::json HistoryPanel::Report() const {
  nlohmann::json j;
  j["runs"] = nlohmann::json::array();
  for (const auto& r : runs_) j["runs"].push_back({{"id", r.id}, {"kind", r.kind}, {"name", r.name}, {"status", r.status}});
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
