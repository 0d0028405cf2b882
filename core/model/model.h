// A loaded model: the mapped GGUF file, its hyper-parameters, weights on a backend, and its
// tokenizer and chat template.
#pragma once

#include <memory>
#include <string>

#include "core/backend/backend.h"
#include "core/model/gguf.h"
#include "core/model/model_config.h"
#include "core/model/weights.h"
#include "core/tokenizer/tokenizer.h"

namespace lms {

class Model {
 public:
  // Opens and validates `path`, reads the config and tokenizer, and hands the weights to the
  // backend. Errors name the file and what was wrong.
  static Result<std::unique_ptr<Model>> Load(const std::string& path, Backend& backend);

  const gguf::GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // tokenizer.chat_template from the file, or empty when the file has none.
  const std::string& chat_template() const { return chat_template_; }

 private:
  Model() = default;
  std::unique_ptr<gguf::GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string chat_template_;
};

}  // namespace lms
