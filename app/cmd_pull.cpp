// lmstation pull NAME — fetch a known model into the cache, verified by SHA-256.
#include <cstdio>

#include "app/commands.h"
#include "app/model_cache.h"

namespace lms::app {

CommandFn AddPullCommand(CLI::App& cli) {
  auto* sub = cli.add_subcommand("pull", "Fetch a known model into the model cache (checked by SHA-256)");
  auto name = std::make_shared<std::string>("smollm2");
  auto force = std::make_shared<bool>(false);
  auto list = std::make_shared<bool>(false);
  sub->add_option("name", *name, "Model name")->capture_default_str();
  sub->add_flag("--force", *force, "Download again even if the cached file verifies");
  sub->add_flag("--list", *list, "List the known models and the cache directory");
  return [=]() {
    if (*list) {
      std::printf("cache: %s\n", ModelCacheDir().c_str());
      for (const auto& m : KnownModels()) std::printf("%-10s %s\n", m.name.c_str(), m.description.c_str());
      return 0;
    }
    auto path = PullModel(*name, *force);
    if (!path.ok()) return Fail(path.status());
    std::printf("%s\n", path->c_str());
    return 0;
  };
}

}  // namespace lms::app
