#include "ui/panels/history_panel.h"

#include <imgui.h>

#include <algorithm>

namespace lms::ui {

void HistoryPanel::Draw(UiShared& shared) {
  if (auto r = load_.Take()) {
    loaded_once_ = true;
    if (r->ok()) {
      runs_ = std::move((*r)->runs);
      chats_ = std::move((*r)->chats);
      if (selected_ < 0 && !runs_.empty()) selected_ = 0;
      std::sort(runs_.begin(), runs_.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
      error_.clear();
    } else {
      error_ = r->status().message();
    }
  }
  const std::string db = shared.db_path.empty() ? store::DefaultDatabasePath() : shared.db_path;
  if (!started_ || (ImGui::Button("Refresh") && !load_.Running())) {
    started_ = true;
    load_.Start("reading " + db, [db](const auto&) -> Result<Loaded> {
      LMS_ASSIGN_OR_RETURN(auto st, store::Store::Open(db));
      Loaded out;
      LMS_ASSIGN_OR_RETURN(out.runs, st->ListRuns());
      for (const auto& r : out.runs) {
        if (r.kind != "chat") continue;
        LMS_ASSIGN_OR_RETURN(out.chats[r.id], st->ListChatTurns(r.id));
      }
      return out;
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
    const auto& run = runs_[selected_];
    ImGui::Text("run %lld configuration:", static_cast<long long>(run.id));
    ImGui::TextWrapped("%s", run.config.c_str());
    auto chat = chats_.find(run.id);
    if (chat != chats_.end()) {
      ImGui::Separator();
      ImGui::Text("conversation (%zu turns):", chat->second.size());
      ImGui::BeginChild("conversation", ImVec2(0, 0), true);
      for (const auto& t : chat->second) {
        const bool user = t.role == "user";
        ImGui::TextColored(user ? ImVec4(0.5f, 0.8f, 1, 1) : ImVec4(0.6f, 1, 0.6f, 1), "%s", t.role.c_str());
        ImGui::TextWrapped("%s", t.content.c_str());
      }
      ImGui::EndChild();
    }
  }
}

nlohmann::json HistoryPanel::Report() const {
  nlohmann::json j;
  j["runs"] = nlohmann::json::array();
  for (const auto& r : runs_) {
    nlohmann::json row = {{"id", r.id}, {"kind", r.kind}, {"name", r.name}, {"status", r.status}};
    if (auto c = chats_.find(r.id); c != chats_.end()) {
      row["turns"] = nlohmann::json::array();
      for (const auto& t : c->second) row["turns"].push_back({{"role", t.role}, {"content", t.content}});
    }
    j["runs"].push_back(std::move(row));
  }
  if (selected_ >= 0 && selected_ < static_cast<int>(runs_.size())) j["selected"] = runs_[selected_].id;
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
