// A local contestant as the Evaluate and Arena panels edit it, and the rows that edit a list of
// them (name, model file, temperature, remove; an Add button).
#pragma once

#include <string>
#include <vector>

namespace lms::ui {

struct LocalContestant {
  std::string name, model;
  float temperature = 0.7f;
};

// Draws the editor; new rows are named `<prefix><n>` and start on `default_model`.
void EditContestants(std::vector<LocalContestant>& list, const std::string& default_model, const char* prefix);

}  // namespace lms::ui
