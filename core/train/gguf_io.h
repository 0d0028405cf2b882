// Between training checkpoints and GGUF files: import a model (dequantized to fp32 master
// weights) to fine-tune it, and export trained weights with tokenizer and chat template so the
// serving commands load the result unchanged.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/model/gguf.h"
#include "core/tensor/types.h"
#include "core/tokenizer/vocab.h"
#include "core/train/train_model.h"

namespace lms::train {

struct ImportedModel {
  ModelShape shape;
  std::vector<float> params;                 // ParamLayout::For(shape)
  std::vector<gguf::KeyValue> tokenizer_kv;  // every tokenizer.* key of the file, verbatim
  std::string name;
  int32_t context_length = 0;                // the base model's training context
};

// Reads a Llama-family GGUF (any type DequantizeRow handles). seq_len sets the training
// sequence length. Unsupported: q/k/v biases, partial rotary dimensions, scaled rotary.
Result<ImportedModel> ImportGguf(const std::string& path, int32_t seq_len);

// tokenizer.* metadata for a vocabulary built in memory (the byte-level one), with a chat
// template (may be empty).
std::vector<gguf::KeyValue> VocabMetadata(const VocabData& v, const std::string& chat_template);

struct ExportOptions {
  std::string name = "lmstation-trained";
  TensorType matrix_type = TensorType::kF32;  // norms stay F32; Q4/Q6 keep token_embd Q8_0
  int32_t context_length = 0;                 // 0: the training sequence length
};
Status ExportGguf(const std::string& path, const ModelShape& shape, const std::vector<float>& params,
                  const std::vector<gguf::KeyValue>& tokenizer_kv, const ExportOptions& opt);

}  // namespace lms::train
