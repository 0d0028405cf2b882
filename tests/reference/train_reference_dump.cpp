// Runs lmstation's training forward/backward on weights and tokens given by a reference script
// and writes logits, loss and every gradient, for tests/reference/test_train_vs_autograd.py.
//
//   train_reference_dump DIR   reads  DIR/config.json, DIR/params.f32, DIR/tokens.i32
//                              writes DIR/out_logits.f32, DIR/out_grads.f32, DIR/out.json
// config.json: shape fields, "batch", "stages", "microbatches", "schedule".
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <vector>

#include "core/train/pipeline.h"
#include "core/train/train_model.h"

using namespace lms::train;

template <typename T>
static std::vector<T> ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<T> v(b.size() / sizeof(T));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}

template <typename T>
static void WriteRaw(const std::string& path, const std::vector<T>& v) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: train_reference_dump DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  nlohmann::json c;
  std::ifstream(dir + "/config.json") >> c;
  ModelShape s;
  s.n_layers = c["n_layers"];
  s.d_model = c["d_model"];
  s.n_heads = c["n_heads"];
  s.n_kv_heads = c["n_kv_heads"];
  s.d_ff = c["d_ff"];
  s.n_vocab = c["n_vocab"];
  s.seq_len = c["seq_len"];
  s.rope_theta = c["rope_theta"];
  s.rms_eps = c["rms_eps"];
  s.tied = c["tied"];
  s.rope_neox = c.value("rope_neox", false);
  const int B = c["batch"], S = c.value("stages", 1), M = c.value("microbatches", 1);
  const ParamLayout layout = ParamLayout::For(s);
  std::vector<float> p = ReadRaw<float>(dir + "/params.f32");
  std::vector<int32_t> tok = ReadRaw<int32_t>(dir + "/tokens.i32");  // inputs (B,T) then targets (B,T)
  if (static_cast<int64_t>(p.size()) != layout.total || tok.size() != 2u * B * s.seq_len) {
    std::fprintf(stderr, "params (%zu, want %lld) or tokens (%zu) have the wrong size\n", p.size(),
                 static_cast<long long>(layout.total), tok.size());
    return 1;
  }
  const int32_t* in = tok.data();
  const int32_t* tg = tok.data() + B * s.seq_len;
  int64_t count = 0;
  for (int i = 0; i < B * s.seq_len; ++i) count += tg[i] >= 0;
  // Logits: one single-stage forward over the whole batch.
  lms::ThreadPool pool(1);
  Stage st(s, layout, 0, s.n_layers, true, true, B, &pool);
  st.set_capture_logits(true);
  LossSum ls;
  if (auto e = st.Forward(0, p.data(), in, nullptr, tg, 1.0f, nullptr, &ls); !e.ok()) {
    std::fprintf(stderr, "%s\n", e.ToString().c_str());
    return 1;
  }
  st.Release(0);
  WriteRaw(dir + "/out_logits.f32", st.captured_logits());
  // Gradients: through the pipeline as configured.
  PipelineOptions o;
  o.boundaries = EqualSplit(s.n_layers, S);
  o.microbatches = M;
  o.micro_batch_size = B / M;
  o.schedule = c.value("schedule", std::string("1f1b")) == "gpipe" ? ScheduleKind::kGPipe : ScheduleKind::k1F1B;
  auto pipe = Pipeline::Create(s, layout, o);
  if (!pipe.ok()) {
    std::fprintf(stderr, "%s\n", pipe.status().ToString().c_str());
    return 1;
  }
  std::vector<float> g(p.size(), 0.0f);
  auto rep = (*pipe)->ForwardBackward(p, g, in, tg, 1.0f / static_cast<float>(count));
  if (!rep.ok()) {
    std::fprintf(stderr, "%s\n", rep.status().ToString().c_str());
    return 1;
  }
  WriteRaw(dir + "/out_grads.f32", g);
  nlohmann::json out = {{"loss", rep->loss_sum / static_cast<double>(rep->tokens)},
                        {"single_stage_loss", ls.sum / static_cast<double>(ls.count)}};
  nlohmann::json tensors = nlohmann::json::array();
  for (const ParamTensor* t : layout.All()) {
    tensors.push_back({{"name", t->name}, {"offset", t->offset}, {"rows", t->rows}, {"cols", t->cols}});
  }
  out["tensors"] = tensors;
  std::ofstream(dir + "/out.json") << out.dump();
  return 0;
}
