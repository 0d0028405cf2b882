// The desktop app: one window with a tab per panel (Models, Chat, History, Log). Panels read
// snapshots published by background jobs and never block the UI thread on an engine.
#pragma once

#include "app/desktop_hook.h"

namespace lms::ui {

// Opens the window and runs until it is closed (or, with options.screenshot, until the
// screenshot is saved). Returns the process exit code; says clearly why when no window can open.
int RunDesktop(const app::DesktopOptions& options);

}  // namespace lms::ui
