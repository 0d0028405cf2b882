#include "app/cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <vector>

#include "app/commands.h"
#include "app/model_cache.h"
#include "core/backend/registry.h"
#include "core/util/log.h"
#if LMS_HAVE_CUDA
#include "gpu/cuda_backend.h"
#endif

namespace lms::app {

int Fail(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

Result<LoadedModel> LoadModel(const std::string& name_or_path, int threads, const std::string& device) {
  LMS_ASSIGN_OR_RETURN(DeviceSpec spec, ParseDeviceSpec(device));
  LMS_ASSIGN_OR_RETURN(std::string path, ResolveModel(name_or_path));
  LoadedModel lm;
  CpuBackendOptions o;
  o.threads = threads;
  LMS_ASSIGN_OR_RETURN(lm.backend, MakeBackend(spec, o));
  if (spec.kind != "cpu") LogInfo("computing on " + lm.backend->Name());
  LMS_ASSIGN_OR_RETURN(lm.model, Model::Load(path, *lm.backend));
  LogDebug("loaded " + path + ": " + lm.model->config().Summary());
  return lm;
}

static void InstallLogging(int verbosity) {
  auto logger = spdlog::stderr_color_mt("lmstation");
  logger->set_pattern("%^[%l]%$ %v");
  spdlog::set_default_logger(logger);
  LogLevel level = verbosity > 0 ? LogLevel::kDebug : (verbosity < 0 ? LogLevel::kWarn : LogLevel::kInfo);
  spdlog::set_level(verbosity > 0 ? spdlog::level::debug : spdlog::level::info);
  SetLogLevel(level);
  SetLogCallback([](LogLevel l, std::string_view m) {
    switch (l) {
      case LogLevel::kDebug: spdlog::debug("{}", m); break;
      case LogLevel::kInfo: spdlog::info("{}", m); break;
      case LogLevel::kWarn: spdlog::warn("{}", m); break;
      case LogLevel::kError: spdlog::error("{}", m); break;
    }
  });
}

int RunCli(int argc, char** argv) {
#if LMS_HAVE_CUDA
  gpu::RegisterCudaBackend();
#endif
  CLI::App cli{"lmstation: train, serve and evaluate language models on one workstation"};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", "lmstation 0.1.0");
  bool verbose = false, quiet = false;
  cli.add_flag("-v,--verbose", verbose, "Log debug messages to stderr");
  cli.add_flag("-q,--quiet", quiet, "Log only warnings and errors");
  std::vector<std::pair<CLI::App*, CommandFn>> commands;
  // Each Add*Command adds one subcommand: remember it with its function.
  auto add = [&](CommandFn fn) {
    CLI::App* newest = nullptr;
    for (CLI::App* sub : cli.get_subcommands([](CLI::App*) { return true; })) newest = sub;
    commands.emplace_back(newest, std::move(fn));
  };
  add(AddPullCommand(cli));
  add(AddInfoCommand(cli));
  add(AddTokenizeCommand(cli));
  add(AddRunCommand(cli));
  add(AddChatCommand(cli));
  add(AddPerplexityCommand(cli));
  add(AddQuantizeCommand(cli));
  add(AddBenchCommand(cli));
  add(AddTrainCommand(cli));
  add(AddPlanCommand(cli));
  add(AddLeaderboardCommand(cli));
  add(AddAgreementCommand(cli));
  add(AddDbCommand(cli));
  add(AddAnswerCommand(cli));
  add(AddJudgeCommand(cli));
  add(AddArenaCommand(cli));
  add(AddServeCommand(cli));
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  InstallLogging(verbose ? 1 : (quiet ? -1 : 0));
  for (auto& [sub, fn] : commands) {
    if (sub->parsed()) return fn();
  }
  return 0;
}

}  // namespace lms::app
