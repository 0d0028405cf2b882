// Models: the GGUF files in the model cache and any folder the user adds, the metadata of the
// selected one (what `lmstation info` prints), and a button that pulls the default model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ui/background_job.h"
#include "ui/panels/panel.h"

namespace lms::ui {

struct ModelEntry {
  std::string path;
  std::string name;
  uint64_t bytes = 0;
};

struct ModelDetails {
  std::string path;
  std::string summary;                                     // architecture and shape
  std::vector<std::pair<std::string, std::string>> rows;   // label, value
};

class ModelsPanel : public Panel {
 public:
  ModelsPanel();
  const char* Name() const override { return "Models"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;

  void Rescan();
  bool Busy() const override { return describe_.Running() || pull_.Running(); }
  std::string FirstModel() const { return models_.empty() ? std::string() : models_[0].path; }

 private:
  std::vector<std::string> folders_;
  std::string new_folder_;
  std::vector<ModelEntry> models_;
  int selected_ = -1;
  std::optional<ModelDetails> details_;
  std::string error_;
  BackgroundJob<ModelDetails> describe_;
  BackgroundJob<std::string> pull_;
  std::string pull_message_;
};

}  // namespace lms::ui
