// Tiny Llama-shaped models with random weights, written with our GGUF writer, for fast tests
// of the forward pass; plus a plain double-precision reference forward to check it against.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/model/gguf.h"

namespace lms::test {

struct TinySpec {
  int n_layers = 2;
  int d_model = 64;
  int n_heads = 4;
  int n_kv_heads = 2;
  int d_ff = 96;
  int n_vocab = 64;
  float rope_theta = 10000.0f;
  std::string arch = "llama";
  TensorType matrix_type = TensorType::kF32;
  uint64_t seed = 1;
  bool tied = true;
};

// A GGUF image with random weights (matrices in spec.matrix_type, vectors F32) and a byte-level
// vocabulary, so a Tokenizer can be built from it.
std::vector<uint8_t> MakeTinyModel(const TinySpec& spec);

// Reference logits for every position of `tokens` (one sequence from position 0), computed in
// double precision from the weights in `file` (dequantised).
std::vector<std::vector<double>> ReferenceLogits(const gguf::GgufFile& file, const TinySpec& spec,
                                                 const std::vector<int32_t>& tokens);

}  // namespace lms::test
