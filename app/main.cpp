#include "app/cli.h"
#ifdef LMS_HAVE_GUI
#include "ui/desktop.h"
#endif

int main(int argc, char** argv) {
#ifdef LMS_HAVE_GUI
  lms::app::SetDesktopApp(&lms::ui::RunDesktop);
#endif
  return lms::app::RunCli(argc, argv);
}
