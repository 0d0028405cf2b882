#include "ui/panels/contestant_editor.h"

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

namespace lms::ui {

void EditContestants(std::vector<LocalContestant>& list, const std::string& default_model, const char* prefix) {
  int remove = -1;
  for (int i = 0; i < static_cast<int>(list.size()); ++i) {
    auto& c = list[i];
    ImGui::PushID(i);
    ImGui::SetNextItemWidth(120);
    ImGui::InputText("##name", &c.name);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(380);
    ImGui::InputText("##model", &c.model);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(100);
    ImGui::SliderFloat("temperature", &c.temperature, 0.0f, 2.0f, "%.2f");
    ImGui::SameLine();
    if (ImGui::SmallButton("remove")) remove = i;
    ImGui::PopID();
  }
  if (remove >= 0) list.erase(list.begin() + remove);
  if (ImGui::Button("Add contestant")) list.push_back({fmt::format("{}{}", prefix, list.size() + 1), default_model, 0.7f});
}

}  // namespace lms::ui
