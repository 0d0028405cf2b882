#include "core/train/checkpoint.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "core/train/fileio.h"

namespace lms::train {
namespace {

constexpr char kMagic[8] = {'L', 'M', 'S', 'C', 'K', 'P', 'T', '1'};

nlohmann::json ShapeJson(const ModelShape& s) {
  return {{"n_layers", s.n_layers}, {"d_model", s.d_model}, {"n_heads", s.n_heads},
          {"n_kv_heads", s.n_kv_heads}, {"d_ff", s.d_ff}, {"n_vocab", s.n_vocab},
          {"seq_len", s.seq_len}, {"rope_theta", s.rope_theta}, {"rope_neox", s.rope_neox},
          {"rms_eps", s.rms_eps}, {"tied", s.tied}};
}

}  // namespace

Status SaveCheckpoint(const std::string& path, const Checkpoint& c) {
  if (c.m.size() != c.params.size() || c.v.size() != c.params.size()) {
    return Status::InvalidArgument("checkpoint: optimizer state and parameters differ in size");
  }
  nlohmann::json h = {{"shape", ShapeJson(c.shape)}, {"step", c.step}, {"data_position", c.data_position},
                      {"rng", c.rng_state}, {"n_params", c.params.size()}};
  const std::string hs = h.dump();
  const size_t nf = c.params.size();
  std::vector<uint8_t> bytes(16 + hs.size() + 3 * nf * sizeof(float));
  std::memcpy(bytes.data(), kMagic, 8);
  const uint64_t hl = hs.size();
  std::memcpy(bytes.data() + 8, &hl, 8);
  std::memcpy(bytes.data() + 16, hs.data(), hs.size());
  uint8_t* at = bytes.data() + 16 + hs.size();
  for (const auto* vec : {&c.params, &c.m, &c.v}) {
    std::memcpy(at, vec->data(), nf * sizeof(float));
    at += nf * sizeof(float);
  }
  return WriteFileAtomic(path, bytes);
}

Result<Checkpoint> LoadCheckpoint(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadWholeFile(path));
  auto bad = [&](const std::string& m) { return Status::InvalidArgument("checkpoint '" + path + "': " + m); };
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic, 8) != 0) return bad("not a checkpoint (bad magic)");
  uint64_t hl = 0;
  std::memcpy(&hl, bytes.data() + 8, 8);
  if (hl > bytes.size() - 16) return bad("header runs past the end of the file");
  Checkpoint c;
  try {
    const auto h = nlohmann::json::parse(bytes.begin() + 16, bytes.begin() + 16 + static_cast<int64_t>(hl));
    const auto& s = h.at("shape");
    c.shape.n_layers = s.at("n_layers");
    c.shape.d_model = s.at("d_model");
    c.shape.n_heads = s.at("n_heads");
    c.shape.n_kv_heads = s.at("n_kv_heads");
    c.shape.d_ff = s.at("d_ff");
    c.shape.n_vocab = s.at("n_vocab");
    c.shape.seq_len = s.at("seq_len");
    c.shape.rope_theta = s.at("rope_theta");
    c.shape.rope_neox = s.at("rope_neox");
    c.shape.rms_eps = s.at("rms_eps");
    c.shape.tied = s.at("tied");
    c.step = h.at("step");
    c.data_position = h.at("data_position");
    c.rng_state = h.at("rng");
    const uint64_t n = h.at("n_params");
    if (bytes.size() != 16 + hl + 3 * n * sizeof(float)) return bad("size does not match its header (truncated?)");
    if (static_cast<int64_t>(n) != ParamLayout::For(c.shape).total) return bad("parameter count does not match its shape");
    const uint8_t* at = bytes.data() + 16 + hl;
    for (auto* vec : {&c.params, &c.m, &c.v}) {
      vec->resize(n);
      std::memcpy(vec->data(), at, n * sizeof(float));
      at += n * sizeof(float);
    }
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("malformed header: ") + e.what());
  }
  LMS_RETURN_IF_ERROR(c.shape.Validate().WithContext("checkpoint '" + path + "'"));
  return c;
}

}  // namespace lms::train
