// Log: what the engines logged (info and above by default), newest at the bottom.
#pragma once

#include "ui/panels/panel.h"

namespace lms::ui {

class LogPanel : public Panel {
 public:
  const char* Name() const override { return "Log"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;

 private:
  bool show_debug_ = false;
  bool follow_ = true;
  std::vector<LogLine> shown_;
};

}  // namespace lms::ui
