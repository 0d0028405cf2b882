#include "app/cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <vector>

#include "app/batch_runner.h"
#include "app/commands.h"
#include "app/model_cache.h"
#include "core/backend/registry.h"
#include "core/util/log.h"
#if LMS_HAVE_CUDA
#include "gpu/cuda_backend.h"
#include "gpu/train/cuda_train_engine.h"
#endif
#if LMS_APP_NCCL
#include "gpu/comm/nccl_transport.h"
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

std::unique_ptr<CliParser> BuildCliParser() {
  auto p = std::make_unique<CliParser>();
  CLI::App& cli = p->app;
  cli.require_subcommand(0, 1);
  cli.set_version_flag("--version", "lmstation 0.1.0");
  cli.add_flag("-v,--verbose", p->verbose, "Log debug messages to stderr");
  cli.add_flag("-q,--quiet", p->quiet, "Log only warnings and errors");
  cli.add_option("--batch", p->batch, "Run the steps of a job file (TOML) headless; JSON summary on stdout");
  cli.add_flag("--dry-run", p->dry_run, "With --batch: check the job file and print the steps without running them");
  cli.add_option("--db", p->desktop.db, "Desktop app: the results database (default $XDG_DATA_HOME/lmstation/lmstation.db)");
  cli.add_option("--panel", p->desktop.panel, "Desktop app: the panel to open (models, chat, serve, train, evaluate, arena, history, log)");
  cli.add_option("--screenshot", p->desktop.screenshot, "Desktop app: save the window as PNG after --frames frames and exit");
  cli.add_option("--chat-prompt", p->desktop.chat_prompt, "Desktop app: send this message in the Chat panel at start (greedy)");
  cli.add_option("--arena-prompt", p->desktop.arena_prompt, "Desktop app: the Arena panel holds a battle on this prompt at start");
  cli.add_option("--arena-vote", p->desktop.arena_vote, "Desktop app: with --arena-prompt, the vote (a, b, tie, both_bad)")
      ->check(CLI::IsMember({"a", "b", "tie", "both_bad"}));
  cli.add_flag("--evaluate-now", p->desktop.evaluate_now, "Desktop app: the Evaluate panel runs a one-question evaluation at start");
  cli.add_option("--history-select", p->desktop.history_select, "Desktop app: the History panel selects run ID (and compares it with a second ID)")
      ->delimiter(',')
      ->expected(1, 2);
  cli.add_flag("--serve-now", p->desktop.serve_now, "Desktop app: the Serve panel starts the server at start");
  cli.add_option("--serve-requests", p->desktop.serve_requests, "Desktop app: with --serve-now, answered requests to wait for before the screenshot")->capture_default_str();
  cli.add_option("--serve-port", p->desktop.serve_port, "Desktop app: with --serve-now, the port (0: any free one)");
  cli.add_flag("--train-now", p->desktop.train_now, "Desktop app: the Train panel runs its config at start");
  cli.add_option("--train-steps", p->desktop.train_steps, "Desktop app: with --train-now, the steps to run (default: the config's)");
  cli.add_option("--train-out", p->desktop.train_out, "Desktop app: with --train-now, the output directory");
  cli.add_option("--icon-png", p->desktop.icon_png, "Desktop app: write the application icon (256 px PNG) to this file and exit");
  cli.add_option("--frames", p->desktop.frames, "Desktop app: frames to draw before --screenshot")->capture_default_str();
  // Each Add*Command adds one subcommand: remember it with its function.
  auto add = [&](CommandFn fn) {
    CLI::App* newest = nullptr;
    for (CLI::App* sub : cli.get_subcommands([](CLI::App*) { return true; })) newest = sub;
    p->commands.emplace_back(newest, std::move(fn));
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
  return p;
}

int RunCli(int argc, char** argv) {
#if LMS_HAVE_CUDA
  gpu::RegisterCudaBackend();
  gpu::train::RegisterCudaTrainEngine();
#endif
#if LMS_APP_NCCL
  gpu::UseNcclForTraining(true);
#endif
  auto p = BuildCliParser();
  try {
    p->app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return p->app.exit(e);
  }
  InstallLogging(p->verbose ? 1 : (p->quiet ? -1 : 0));
  if (!p->batch.empty()) {
    for (auto& [sub, fn] : p->commands) {
      if (sub->parsed()) {
        std::fprintf(stderr, "error: --batch runs a job file; do not also name a subcommand (%s)\n", sub->get_name().c_str());
        return 2;
      }
    }
    return RunBatch(p->batch, p->dry_run, p->verbose ? 1 : (p->quiet ? -1 : 0));
  }
  if (p->dry_run) {
    std::fprintf(stderr, "error: --dry-run goes with --batch JOB.toml\n");
    return 2;
  }
  for (auto& [sub, fn] : p->commands) {
    if (sub->parsed()) return fn();
  }
  // No subcommand: the desktop app.
  if (DesktopFn desktop = GetDesktopApp()) return desktop(p->desktop);
  std::fprintf(stderr, "%s\n", p->app.help().c_str());
  std::fprintf(stderr,
               "error: this lmstation was built without the desktop app (it needs libimgui-dev and "
               "libglfw3-dev at build time); name a subcommand (above) or --batch JOB.toml\n");
  return 1;
}

}  // namespace lms::app
