#include "ui/panels/log_panel.h"

#include <imgui.h>

namespace lms::ui {

void LogPanel::Draw(UiShared& shared) {
  ImGui::Checkbox("debug lines", &show_debug_);
  ImGui::SameLine();
  ImGui::Checkbox("follow", &follow_);
  ImGui::SameLine();
  if (ImGui::Button("Clear") && shared.log) shared.log->Clear();
  shown_.clear();
  if (shared.log) {
    for (auto& l : shared.log->Snapshot()) {
      if (l.level > 0 || show_debug_) shown_.push_back(std::move(l));
    }
  }
  ImGui::BeginChild("lines", ImVec2(0, 0), true, ImGuiWindowFlags_HorizontalScrollbar);
  static const ImVec4 kColours[] = {{0.6f, 0.6f, 0.6f, 1}, {0.9f, 0.9f, 0.9f, 1}, {1, 0.8f, 0.3f, 1}, {1, 0.4f, 0.4f, 1}};
  for (const auto& l : shown_) ImGui::TextColored(kColours[l.level & 3], "%s", l.text.c_str());
  if (follow_ && ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - 20) ImGui::SetScrollHereY(1.0f);
  ImGui::EndChild();
}

nlohmann::json LogPanel::Report() const {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& l : shown_) j.push_back(l.text);
  return j;
}

}  // namespace lms::ui
