// Turns a TrainRunConfig into what the trainer needs: the tokenizer and tokens (shards cached in
// the output directory), initial weights (imported from a base GGUF, or none for a seeded
// start), the stage split (equal, or chosen by the planner) and the tokenizer metadata to
// export with the model.
#pragma once

#include <string>
#include <vector>

#include "app/train_config.h"
#include "core/model/gguf.h"
#include "core/train/trainer.h"

namespace lms::app {

struct TrainingSetup {
  train::TrainerConfig trainer;
  std::vector<float> initial_params;
  std::vector<int32_t> train_tokens, val_tokens;
  std::vector<gguf::KeyValue> tokenizer_kv;
  int32_t context_length = 0;  // exported context: the base model's, else the sequence length
  std::string plan_note;   // how the split was chosen, for the log line
};

// reuse_shards: read OUT/train.tok and OUT/val.tok when present instead of tokenizing again.
Result<TrainingSetup> PrepareTraining(const TrainRunConfig& c, bool reuse_shards);

// Per-stage thread counts: stage_threads when given, else `threads` each (0: cores / stages).
std::vector<int> StageThreads(const TrainRunConfig& c);

// The chat template written into byte-level models when the config gives none.
extern const char* const kByteLevelChatTemplate;

}  // namespace lms::app
