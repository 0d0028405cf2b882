// The small model and engine specs the CUDA training tests share (lms_gpu_tests and
// lms_nccl_tests): 4 layers, d 64, GQA 4/2 heads, vocab 300, sequences of 16 tokens.
#pragma once

#include <string>

#include "core/train/pipeline.h"
#include "core/train/train_engine.h"

namespace lms::test {

inline lms::train::ModelShape EngineTestShape() {
  lms::train::ModelShape s;
  s.n_layers = 4;
  s.d_model = 64;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.d_ff = 96;
  s.n_vocab = 300;
  s.seq_len = 16;
  return s;
}

// `stages`·`chunks` equal layer ranges, M micro-batches of `mbs` sequences.
inline lms::train::TrainEngineSpec EngineTestSpec(const std::string& device, const std::string& precision, int stages,
                                                  int M, int mbs,
                                                  lms::train::ScheduleKind k = lms::train::ScheduleKind::k1F1B,
                                                  int chunks = 1) {
  lms::train::TrainEngineSpec sp;
  sp.shape = EngineTestShape();
  sp.optim.lr = 3e-3f;
  sp.optim.warmup_steps = 2;
  sp.optim.total_steps = 10;
  sp.pipeline.schedule = k;
  sp.pipeline.chunks = chunks;
  sp.pipeline.boundaries = lms::train::EqualSplit(sp.shape.n_layers, stages * chunks);
  sp.pipeline.microbatches = M;
  sp.pipeline.micro_batch_size = mbs;
  sp.device = device;
  sp.precision = precision;
  return sp;
}

}  // namespace lms::test
