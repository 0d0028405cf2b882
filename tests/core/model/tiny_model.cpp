#include "tests/core/model/tiny_model.h"

#include <cmath>
#include <random>
#include <utility>

#include "core/tensor/quant.h"

namespace lms::test {
namespace {

void AddMatrix(gguf::GgufWriter& w, std::mt19937_64& rng, const std::string& name, int rows, int cols,
               TensorType type, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> data(static_cast<size_t>(rows) * cols);
  for (auto& v : data) v = dist(rng);
  std::vector<uint8_t> bytes(RowBytes(type, cols) * rows);
  for (int r = 0; r < rows; ++r) {
    Status s = QuantizeRow(type, data.data() + static_cast<size_t>(r) * cols, bytes.data() + r * RowBytes(type, cols), cols);
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }
  Status s = w.AddTensor(name, type, {cols, rows}, bytes.data(), bytes.size());
  if (!s.ok()) throw std::runtime_error(s.ToString());
}

void AddVector(gguf::GgufWriter& w, std::mt19937_64& rng, const std::string& name, int n) {
  std::uniform_real_distribution<float> dist(0.8f, 1.2f);
  std::vector<float> data(n);
  for (auto& v : data) v = dist(rng);
  Status s = w.AddTensor(name, TensorType::kF32, {n}, data.data(), data.size() * sizeof(float));
  if (!s.ok()) throw std::runtime_error(s.ToString());
}

std::vector<double> Dequant(const gguf::GgufFile& f, const std::string& name) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  if (!t) throw std::runtime_error("missing " + name);
  std::vector<float> tmp(t->n_elements);
  const int64_t cols = t->dims[0];
  for (int64_t r = 0; r < t->rows(); ++r) {
    DequantizeRow(t->type, f.TensorData(*t) + r * RowBytes(t->type, cols), tmp.data() + r * cols, cols);
  }
  return std::vector<double>(tmp.begin(), tmp.end());
}

// y[n] = sum_k W[n][k] x[k]
std::vector<double> MatVec(const std::vector<double>& W, const std::vector<double>& x, int n) {
  const size_t k = x.size();
  std::vector<double> y(n, 0.0);
  for (int i = 0; i < n; ++i) {
    for (size_t j = 0; j < k; ++j) y[i] += W[i * k + j] * x[j];
  }
  return y;
}

std::vector<double> RmsNorm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w[i];
  return y;
}

void Rope(std::vector<double>& v, int n_heads, int hd, int pos, double theta, bool neox) {
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      const double freq = std::pow(theta, -2.0 * i / hd);
      const double a = pos * freq, c = std::cos(a), s = std::sin(a);
      const int i0 = h * hd + (neox ? i : 2 * i), i1 = h * hd + (neox ? i + hd / 2 : 2 * i + 1);
      const double x0 = v[i0], x1 = v[i1];
      v[i0] = x0 * c - x1 * s;
      v[i1] = x0 * s + x1 * c;
    }
  }
}

}  // namespace

std::vector<uint8_t> MakeTinyModel(const TinySpec& s) {
  std::mt19937_64 rng(s.seed);
  gguf::GgufWriter w;
  const std::string a = s.arch;
  w.SetString("general.architecture", a);
  w.SetString("general.name", "tiny-test");
  w.SetUint32(a + ".block_count", s.n_layers);
  w.SetUint32(a + ".context_length", 256);
  w.SetUint32(a + ".embedding_length", s.d_model);
  w.SetUint32(a + ".feed_forward_length", s.d_ff);
  w.SetUint32(a + ".attention.head_count", s.n_heads);
  w.SetUint32(a + ".attention.head_count_kv", s.n_kv_heads);
  w.SetFloat32(a + ".rope.freq_base", s.rope_theta);
  w.SetFloat32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  // A byte-level vocabulary: one token per printable ASCII character, "ab", then specials.
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int i = 0; i < s.n_vocab - 3; ++i) {
    std::string token(1, static_cast<char>('!' + i % 90));
    if (i >= 90) token += std::to_string(i);
    tokens.push_back(std::move(token));
    types.push_back(1);
  }
  tokens.push_back("ab");  // the one merge: "a" + "b"
  types.push_back(1);
  tokens.push_back("<|bos|>");
  types.push_back(3);
  tokens.push_back("<|eos|>");
  types.push_back(3);
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetString("tokenizer.ggml.pre", "default");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetInt32Array("tokenizer.ggml.token_type", types);
  w.SetStringArray("tokenizer.ggml.merges", {"a b"});
  w.SetUint32("tokenizer.ggml.bos_token_id", s.n_vocab - 2);
  w.SetUint32("tokenizer.ggml.eos_token_id", s.n_vocab - 1);

  const int hd = s.d_model / s.n_heads, kv = s.n_kv_heads * hd;
  const float sc = 1.0f / std::sqrt(static_cast<float>(s.d_model));
  AddMatrix(w, rng, "token_embd.weight", s.n_vocab, s.d_model, s.matrix_type, 1.0f);
  AddVector(w, rng, "output_norm.weight", s.d_model);
  if (!s.tied) AddMatrix(w, rng, "output.weight", s.n_vocab, s.d_model, s.matrix_type, sc);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    AddVector(w, rng, b + "attn_norm.weight", s.d_model);
    AddMatrix(w, rng, b + "attn_q.weight", s.d_model, s.d_model, s.matrix_type, sc);
    AddMatrix(w, rng, b + "attn_k.weight", kv, s.d_model, s.matrix_type, sc);
    AddMatrix(w, rng, b + "attn_v.weight", kv, s.d_model, s.matrix_type, sc);
    AddMatrix(w, rng, b + "attn_output.weight", s.d_model, s.d_model, s.matrix_type, sc);
    AddVector(w, rng, b + "ffn_norm.weight", s.d_model);
    AddMatrix(w, rng, b + "ffn_gate.weight", s.d_ff, s.d_model, s.matrix_type, sc);
    AddMatrix(w, rng, b + "ffn_up.weight", s.d_ff, s.d_model, s.matrix_type, sc);
    AddMatrix(w, rng, b + "ffn_down.weight", s.d_model, s.d_ff, s.matrix_type, 1.0f / std::sqrt(static_cast<float>(s.d_ff)));
  }
  return w.Serialize();
}

std::vector<std::vector<double>> ReferenceLogits(const gguf::GgufFile& f, const TinySpec& s,
                                                 const std::vector<int32_t>& tokens) {
  const int d = s.d_model, hd = d / s.n_heads, kvd = s.n_kv_heads * hd, group = s.n_heads / s.n_kv_heads;
  const bool neox = s.arch == "qwen2";
  const auto emb = Dequant(f, "token_embd.weight");
  const auto out_w = s.tied ? emb : Dequant(f, "output.weight");
  const auto out_norm = Dequant(f, "output_norm.weight");
  const int T = static_cast<int>(tokens.size());
  std::vector<std::vector<double>> x(T);
  for (int t = 0; t < T; ++t) x[t].assign(emb.begin() + tokens[t] * d, emb.begin() + (tokens[t] + 1) * d);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const auto an = Dequant(f, b + "attn_norm.weight"), wq = Dequant(f, b + "attn_q.weight"),
               wk = Dequant(f, b + "attn_k.weight"), wv = Dequant(f, b + "attn_v.weight"),
               wo = Dequant(f, b + "attn_output.weight"), fn = Dequant(f, b + "ffn_norm.weight"),
               wg = Dequant(f, b + "ffn_gate.weight"), wu = Dequant(f, b + "ffn_up.weight"),
               wd = Dequant(f, b + "ffn_down.weight");
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      auto xn = RmsNorm(x[t], an, 1e-5);
      q[t] = MatVec(wq, xn, d);
      k[t] = MatVec(wk, xn, kvd);
      v[t] = MatVec(wv, xn, kvd);
      Rope(q[t], s.n_heads, hd, t, s.rope_theta, neox);
      Rope(k[t], s.n_kv_heads, hd, t, s.rope_theta, neox);
    }
    for (int t = 0; t < T; ++t) {
      std::vector<double> att(d, 0.0);
      for (int h = 0; h < s.n_heads; ++h) {
        const int kh = h / group;
        std::vector<double> sc(t + 1);
        double mx = -1e300;
        for (int j = 0; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < hd; ++i) dot += q[t][h * hd + i] * k[j][kh * hd + i];
          sc[j] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (auto& e : sc) sum += (e = std::exp(e - mx));
        for (int j = 0; j <= t; ++j) {
          for (int i = 0; i < hd; ++i) att[h * hd + i] += sc[j] / sum * v[j][kh * hd + i];
        }
      }
      auto o = MatVec(wo, att, d);
      for (int i = 0; i < d; ++i) x[t][i] += o[i];
      auto xn = RmsNorm(x[t], fn, 1e-5);
      auto g = MatVec(wg, xn, s.d_ff), u = MatVec(wu, xn, s.d_ff);
      for (int i = 0; i < s.d_ff; ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      auto dn = MatVec(wd, g, d);
      for (int i = 0; i < d; ++i) x[t][i] += dn[i];
    }
  }
  std::vector<std::vector<double>> logits(T);
  for (int t = 0; t < T; ++t) logits[t] = MatVec(out_w, RmsNorm(x[t], out_norm, 1e-5), s.n_vocab);
  return logits;
}

}  // namespace lms::test
