// `lmstation db import-judgments` and `lmstation db export-judgments`: FastChat's llm_judge
// answer and judgment files in and out of the record (see core/eval/fastchat_judgments.h).
#pragma once

#include <string>
#include <vector>

#include "app/commands.h"

namespace lms::app {

struct FastChatDbOptions {
  std::string file, questions, judge, mode = "pairwise", out;
  std::vector<std::string> answers;
  CLI::App* import_cmd = nullptr;
  CLI::App* export_cmd = nullptr;
};

void AddFastChatDbSubcommands(CLI::App* db, FastChatDbOptions* o);
// Runs whichever of the two subcommands was given; -1 when neither was.
int RunFastChatDbSubcommand(store::Store& st, const FastChatDbOptions& o);

}  // namespace lms::app
