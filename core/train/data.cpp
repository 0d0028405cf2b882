#include "core/train/data.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/tokenizer/utf8.h"
#include "core/train/fileio.h"

namespace lms::train {

VocabData ByteLevelVocab() {
  VocabData v;
  v.model = "gpt2";
  v.pre = "default";
  v.general_name = "byte-level";
  const auto& b2u = tok::ByteToUnicode();
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(b2u[b]);
    v.token_types.push_back(1);  // normal
  }
  // GGUF byte-level BPE readers require a merge list: one merge, two spaces into one token.
  v.tokens.push_back(b2u[' '] + b2u[' ']);
  v.token_types.push_back(1);
  v.merges = {b2u[' '] + " " + b2u[' ']};
  v.tokens.push_back("<|endoftext|>");
  v.token_types.push_back(3);  // control
  v.bos_id = 257;
  v.eos_id = 257;
  v.add_bos = false;
  v.add_eos = false;
  return v;
}

Result<std::vector<int32_t>> TokenizeFiles(const std::vector<std::string>& paths, const Tokenizer& tok) {
  if (paths.empty()) return Status::InvalidArgument("no training text files given");
  std::vector<int32_t> all;
  for (size_t i = 0; i < paths.size(); ++i) {
    std::ifstream in(paths[i], std::ios::binary);
    if (!in) return Status::NotFound("cannot open text file '" + paths[i] + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    std::vector<int32_t> ids = tok.Encode(ss.str(), true, false);
    all.insert(all.end(), ids.begin(), ids.end());
    if (i + 1 < paths.size() && tok.eos_id() >= 0) all.push_back(tok.eos_id());
  }
  return all;
}

Status WriteShard(const std::string& path, const std::vector<int32_t>& tokens) {
  std::vector<uint8_t> bytes(16 + tokens.size() * 4);
  std::memcpy(bytes.data(), "LMSTOK01", 8);
  const uint64_t n = tokens.size();
  std::memcpy(bytes.data() + 8, &n, 8);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const uint32_t t = static_cast<uint32_t>(tokens[i]);
    std::memcpy(bytes.data() + 16 + 4 * i, &t, 4);
  }
  return WriteFileAtomic(path, bytes);
}

Result<std::vector<int32_t>> ReadShard(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadWholeFile(path));
  if (bytes.size() < 16 || std::memcmp(bytes.data(), "LMSTOK01", 8) != 0) {
    return Status::InvalidArgument("'" + path + "' is not a token shard (bad magic)");
  }
  uint64_t n = 0;
  std::memcpy(&n, bytes.data() + 8, 8);
  if (n > (bytes.size() - 16) / 4 || bytes.size() != 16 + n * 4) {
    return Status::InvalidArgument(fmt::format("token shard '{}' is truncated or has trailing bytes", path));
  }
  std::vector<int32_t> t(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + 16 + 4 * i, 4);
    t[i] = static_cast<int32_t>(v);
  }
  return t;
}

BatchLoader::BatchLoader(std::vector<int32_t> tokens, int32_t seq_len) : tokens_(std::move(tokens)), T_(seq_len) {}

void BatchLoader::Next(int batch, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  const int64_t T = T_, n = size();
  inputs.resize(static_cast<size_t>(batch * T));
  targets.resize(inputs.size());
  for (int b = 0; b < batch; ++b) {
    if (pos_ + T + 1 > n) pos_ = 0;
    std::copy_n(tokens_.begin() + pos_, T, inputs.begin() + b * T);
    std::copy_n(tokens_.begin() + pos_ + 1, T, targets.begin() + b * T);
    pos_ += T;
  }
}

}  // namespace lms::train
