#include "app/desktop_hook.h"

namespace lms::app {
namespace {
DesktopFn g_desktop = nullptr;
}
void SetDesktopApp(DesktopFn fn) { g_desktop = fn; }
DesktopFn GetDesktopApp() { return g_desktop; }
}  // namespace lms::app
