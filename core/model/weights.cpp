#include "core/model/weights.h"

#include <fmt/format.h>

#include "core/tensor/matmul.h"

namespace lms {
namespace {

class TensorFinder {
 public:
  TensorFinder(const gguf::GgufFile& f, Backend& b) : file_(f), backend_(b) {}

  // dims in GGUF order: {cols, rows} for matrices, {n} for vectors.
  Result<TensorView> Get(const std::string& name, std::vector<int64_t> dims, bool optional = false) {
    const gguf::TensorInfo* t = file_.FindTensor(name);
    if (!t) {
      if (optional) return TensorView{};
      return Status::InvalidArgument("missing tensor '" + name + "'");
    }
    if (t->dims != dims) {
      auto fmt_dims = [](const std::vector<int64_t>& d) { return fmt::format("[{}]", fmt::join(d, ", ")); };
      return Status::InvalidArgument(fmt::format("tensor '{}' has shape {}, expected {}", name,
                                                 fmt_dims(t->dims), fmt_dims(dims)));
    }
    if (!TypeInfo(t->type).computable) {
      return Status::Unsupported(fmt::format("tensor '{}' has type {}, which lmstation cannot compute with",
                                             name, TensorTypeName(t->type)));
    }
    TensorView host;
    host.data = const_cast<uint8_t*>(file_.TensorData(*t));
    host.type = t->type;
    host.cols = t->dims[0];
    host.rows = t->rows();
    host.row_stride = RowBytes(t->type, host.cols);
    auto adopted = backend_.AdoptWeight(host);
    if (!adopted.ok()) return adopted.status().WithContext("tensor '" + name + "'");
    return adopted;
  }

 private:
  const gguf::GgufFile& file_;
  Backend& backend_;
};

// Matrices used as linear layers must suit the matrix kernels (type and row length).
Status CheckLinear(const TensorView& t, const std::string& name) {
  Status s = ValidateMatMul(t.type, t.cols);
  return s.ok() ? s : s.WithContext("tensor '" + name + "'");
}

Status CheckVectorF32(const TensorView& t, const char* what) {
  if (t.type != TensorType::kF32) {
    return Status::Unsupported(fmt::format("{} must be F32, got {}", what, TensorTypeName(t.type)));
  }
  return Status::Ok();
}

}  // namespace

Result<ModelWeights> LoadWeights(const gguf::GgufFile& file, const ModelConfig& c, Backend& backend) {
  TensorFinder find(file, backend);
  ModelWeights w;
  const int64_t d = c.d_model, q_dim = int64_t{c.n_heads} * c.head_dim,
                kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  LMS_ASSIGN_OR_RETURN(w.token_embd, find.Get("token_embd.weight", {d, c.n_vocab}));
  LMS_ASSIGN_OR_RETURN(w.output_norm, find.Get("output_norm.weight", {d}));
  LMS_RETURN_IF_ERROR(CheckVectorF32(w.output_norm, "output_norm.weight"));
  if (c.tied_output) {
    w.output = w.token_embd;
  } else {
    LMS_ASSIGN_OR_RETURN(w.output, find.Get("output.weight", {d, c.n_vocab}));
  }
  LMS_RETURN_IF_ERROR(CheckLinear(w.output, c.tied_output ? "token_embd.weight" : "output.weight"));
  w.layers.resize(c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    auto& L = w.layers[i];
    const std::string b = fmt::format("blk.{}.", i);
    LMS_ASSIGN_OR_RETURN(L.attn_norm, find.Get(b + "attn_norm.weight", {d}));
    LMS_RETURN_IF_ERROR(CheckVectorF32(L.attn_norm, "attn_norm.weight"));
    LMS_ASSIGN_OR_RETURN(L.wq, find.Get(b + "attn_q.weight", {d, q_dim}));
    LMS_ASSIGN_OR_RETURN(L.wk, find.Get(b + "attn_k.weight", {d, kv_dim}));
    LMS_ASSIGN_OR_RETURN(L.wv, find.Get(b + "attn_v.weight", {d, kv_dim}));
    LMS_ASSIGN_OR_RETURN(L.wo, find.Get(b + "attn_output.weight", {q_dim, d}));
    LMS_ASSIGN_OR_RETURN(L.bq, find.Get(b + "attn_q.bias", {q_dim}, /*optional=*/true));
    LMS_ASSIGN_OR_RETURN(L.bk, find.Get(b + "attn_k.bias", {kv_dim}, true));
    LMS_ASSIGN_OR_RETURN(L.bv, find.Get(b + "attn_v.bias", {kv_dim}, true));
    for (const TensorView* bias : {&L.bq, &L.bk, &L.bv}) {
      if (bias->data) LMS_RETURN_IF_ERROR(CheckVectorF32(*bias, "attention bias"));
    }
    LMS_ASSIGN_OR_RETURN(L.ffn_norm, find.Get(b + "ffn_norm.weight", {d}));
    LMS_RETURN_IF_ERROR(CheckVectorF32(L.ffn_norm, "ffn_norm.weight"));
    LMS_ASSIGN_OR_RETURN(L.w_gate, find.Get(b + "ffn_gate.weight", {d, c.d_ff}));
    LMS_ASSIGN_OR_RETURN(L.w_up, find.Get(b + "ffn_up.weight", {d, c.d_ff}));
    LMS_ASSIGN_OR_RETURN(L.w_down, find.Get(b + "ffn_down.weight", {c.d_ff, d}));
    const std::pair<const TensorView*, const char*> linears[] = {
        {&L.wq, "attn_q"}, {&L.wk, "attn_k"}, {&L.wv, "attn_v"}, {&L.wo, "attn_output"},
        {&L.w_gate, "ffn_gate"}, {&L.w_up, "ffn_up"}, {&L.w_down, "ffn_down"}};
    for (const auto& [t, n] : linears) LMS_RETURN_IF_ERROR(CheckLinear(*t, b + n + ".weight"));
  }
  return w;
}

}  // namespace lms
