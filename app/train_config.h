// The TOML file behind `lmstation train` / `lmstation plan`: model shape or base GGUF, data,
// optimizer, steps, pipeline (stages, schedule, micro-batches, devices) and export settings.
#pragma once

#include <string>
#include <vector>

#include "core/train/optimizer.h"
#include "core/train/pipeline.h"
#include "core/train/train_model.h"
#include "core/util/status.h"

namespace lms::app {

struct TrainRunConfig {
  // [model]
  std::string base;                  // GGUF to fine-tune ("" = train from scratch)
  train::ModelShape shape;           // n_vocab comes from the tokenizer
  // [data]
  std::vector<std::string> text;     // text files (paths relative to the config file)
  std::string tokenizer = "byte";    // "byte", or a GGUF whose tokenizer to use ("" with base: the base's)
  double val_fraction = 0.1;
  // [optim]
  train::OptimConfig optim;
  // [train]
  int steps = 100;
  int batch_size = 8;
  int grad_accum = 1;
  uint64_t seed = 1;
  int eval_every = 0;                // 0: only at the end
  int eval_batches = 4;
  int checkpoint_every = 0;          // 0: only at the end
  int threads = 0;                   // worker threads per stage (0: cores / stages)
  std::string device = "cpu";        // cpu | cuda (every local GPU) | cuda:N | cuda:0,1
  std::string precision;             // "" (the device's default: f32 on the CPU, bf16 on CUDA) | f32 | bf16
  // [pipeline]
  int stages = 1;
  std::string schedule = "1f1b";     // gpipe | 1f1b | interleaved
  int chunks = 0;                    // model chunks per stage (interleaved; 0: 2 there, 1 otherwise)
  int microbatches = 1;
  std::string plan = "equal";        // "equal" | "auto"
  std::vector<int> stage_threads;    // per-stage threads (unequal devices); overrides threads
  // [export]
  std::string export_type = "f32";
  std::string export_name = "lmstation-trained";
  std::string chat_template;         // for byte-level models; a simple one by default

  std::string out = "train-out";     // output directory
};

// Parses the file; relative paths become relative to the file's directory.
Result<TrainRunConfig> LoadTrainConfig(const std::string& path);
// The same for `text` read (or edited) from the file at `path`.
Result<TrainRunConfig> ParseTrainConfig(const std::string& text, const std::string& path);

}  // namespace lms::app
