#include "core/model/model.h"

namespace lms {

Result<std::unique_ptr<Model>> Model::Load(const std::string& path, Backend& backend) {
  std::unique_ptr<Model> m(new Model());
  auto file = gguf::GgufFile::Open(path);
  if (!file.ok()) return file.status().WithContext(path);
  m->file_ = std::move(file).value();
  auto config = ReadModelConfig(*m->file_);
  if (!config.ok()) return config.status().WithContext(path);
  m->config_ = std::move(config).value();
  auto tok = Tokenizer::FromGguf(*m->file_);
  if (!tok.ok()) return tok.status().WithContext(path + ": tokenizer");
  m->tokenizer_ = std::move(tok).value();
  auto weights = LoadWeights(*m->file_, m->config_, backend);
  if (!weights.ok()) return weights.status().WithContext(path);
  m->weights_ = std::move(weights).value();
  m->chat_template_ = m->file_->GetString("tokenizer.chat_template").value_or("");
  return m;
}

}  // namespace lms
