// Subcommands of `lmstation`. Each Add*Command registers its options on the parser and returns
// the function that runs it when chosen (exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "core/backend/backend.h"
#include "core/model/model.h"
#include "core/store/store.h"

namespace lms::app {

using CommandFn = std::function<int()>;

CommandFn AddPullCommand(CLI::App& cli);
CommandFn AddInfoCommand(CLI::App& cli);
CommandFn AddTokenizeCommand(CLI::App& cli);
CommandFn AddRunCommand(CLI::App& cli);
CommandFn AddChatCommand(CLI::App& cli);
CommandFn AddPerplexityCommand(CLI::App& cli);
CommandFn AddQuantizeCommand(CLI::App& cli);
CommandFn AddBenchCommand(CLI::App& cli);
CommandFn AddTrainCommand(CLI::App& cli);
CommandFn AddPlanCommand(CLI::App& cli);
CommandFn AddLeaderboardCommand(CLI::App& cli);
CommandFn AddAgreementCommand(CLI::App& cli);
CommandFn AddDbCommand(CLI::App& cli);
CommandFn AddAnswerCommand(CLI::App& cli);
CommandFn AddJudgeCommand(CLI::App& cli);
CommandFn AddArenaCommand(CLI::App& cli);
CommandFn AddServeCommand(CLI::App& cli);

// A backend and a model loaded on it, for the commands that compute.
struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
};
// `device`: "cpu" (the default), "cuda" or "cuda:N" (see core/backend/registry.h).
Result<LoadedModel> LoadModel(const std::string& name_or_path, int threads, const std::string& device = "cpu");
// Help text of the --device flag.
inline constexpr const char* kDeviceFlagHelp = "Compute device: cpu, cuda or cuda:N (see 'info --devices')";

// The results database at `db_flag`, or the default path when it is empty.
Result<std::unique_ptr<store::Store>> OpenStore(const std::string& db_flag);

// Prints "error: <message>" to stderr and returns exit code 1.
int Fail(const Status& status);

}  // namespace lms::app
