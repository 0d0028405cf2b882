// The desktop app lives in ui/ (which depends on app, not the other way round): the program's
// main() registers it here when the GUI was built, and `lmstation` with no subcommand runs it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lms::app {

struct DesktopOptions {
  std::string db;          // results database (empty: the default)
  std::string panel;       // panel to show first (models, chat, history, log, …)
  std::string screenshot;  // test hook: save the window as PNG after `frames` frames, then exit
  int frames = 30;
  std::string chat_prompt;  // test hook: the Chat panel sends this at start (greedy)
  std::string arena_prompt;  // test hook: the Arena panel holds a battle on this prompt…
  std::string arena_vote = "a";  // …and votes this (a, b, tie, both_bad) when both are done
  bool evaluate_now = false;  // test hook: the Evaluate panel runs a one-question evaluation at start
  std::vector<int64_t> history_select;  // test hook: the History panel selects this run (and compares it with a second)
  bool serve_now = false;     // test hook: the Serve panel starts the server at once…
  int serve_port = 0;         // …on this port (0: any free one)…
  int serve_requests = 1;     // …and the screenshot waits until this many requests were answered
  bool train_now = false;     // test hook: the Train panel runs its config at start…
  int train_steps = 0;        // …for this many steps (0: the config's)
  std::string train_out;      // …into this directory (empty: the panel's default)
  std::string icon_png;       // write the application icon (256 px PNG) here and exit
};

using DesktopFn = int (*)(const DesktopOptions&);
void SetDesktopApp(DesktopFn fn);
DesktopFn GetDesktopApp();

}  // namespace lms::app
