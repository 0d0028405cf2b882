// A panel of the desktop app: draws itself inside the current ImGui window each frame and can
// report what it shows (a test hook: the screenshot's companion JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "ui/log_ring.h"

namespace lms::ui {

// What the panels share: where the record is, the engines' log, the model chosen in Models.
struct UiShared {
  std::string db_path;
  LogRing* log = nullptr;
  std::string selected_model;  // path chosen in the Models panel (Chat offers it)
};

class Panel {
 public:
  virtual ~Panel() = default;
  virtual const char* Name() const = 0;   // tab label, also the --panel name (lower case)
  virtual void Draw(UiShared& shared) = 0;
  virtual nlohmann::json Report() const = 0;
  // Work in flight whose result the panel will show (the screenshot hook waits for it).
  virtual bool Busy() const { return false; }
};

}  // namespace lms::ui
