// Subcommands of `lmstation`. Each Add*Command registers its options on the parser and returns
// the function that runs it when chosen (exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "core/backend/backend.h"
#include "core/model/model.h"

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
CommandFn AddServeCommand(CLI::App& cli);

// A backend and a model loaded on it, for the commands that compute.
struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
};
Result<LoadedModel> LoadModel(const std::string& name_or_path, int threads);

// Prints "error: <message>" to stderr and returns exit code 1.
int Fail(const Status& status);

}  // namespace lms::app
