// libFuzzer target for the GGUF reader: any byte string must parse or fail cleanly.
//
// For inputs that parse, it also walks everything the reader hands out (metadata descriptions,
// typed getters, the first and last byte of every tensor) and checks the writer agrees with the
// reader: re-serializing the parsed file must give a file that parses, and serializing that
// again must give the same bytes (a fixed point).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/model/gguf.h"

using namespace lms;
using namespace lms::gguf;

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_gguf invariant broken: %s: %s\n", what, detail.c_str());
  std::abort();
}

std::vector<uint8_t> Reserialize(const GgufFile& f) {
  GgufWriter w;
  for (const KeyValue& kv : f.metadata()) w.SetValue(kv.key, kv.value);
  for (const TensorInfo& t : f.tensors()) {
    Status s = w.AddTensor(t.name, t.type, t.dims, f.TensorData(t), t.n_bytes);
    if (!s.ok()) Fail("writer rejected a tensor the reader accepted", s.ToString());
  }
  return w.Serialize();
}

volatile uint8_t g_sink;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = GgufFile::FromBytes(std::vector<uint8_t>(data, data + size));
  if (!r.ok()) {
    if (r.status().message().empty()) Fail("error without a message", r.status().ToString());
    return 0;
  }
  const GgufFile& f = **r;
  if (f.data_offset() > f.file_size()) Fail("data offset past end", std::to_string(f.data_offset()));

  size_t described = 0;
  for (const KeyValue& kv : f.metadata()) {
    described += kv.value.Describe().size() + kv.value.Describe(0).size();
    if (f.Find(kv.key) != &kv.value) Fail("Find returned another entry", kv.key);
    (void)f.GetString(kv.key);
    (void)f.GetInt(kv.key);
    (void)f.GetFloat(kv.key);
    (void)f.GetBool(kv.key);
    (void)f.GetStringArray(kv.key);
    (void)f.GetFloatArray(kv.key);
    (void)f.GetIntArray(kv.key);
  }
  g_sink = static_cast<uint8_t>(described);

  for (const TensorInfo& t : f.tensors()) {
    if (f.FindTensor(t.name) != &t) Fail("FindTensor returned another tensor", t.name);
    if (t.offset % f.alignment() != 0) Fail("misaligned tensor accepted", t.name);
    if (t.n_bytes == 0) continue;
    if (f.data_offset() + t.offset + t.n_bytes > f.file_size()) Fail("tensor past end accepted", t.name);
    const uint8_t* p = f.TensorData(t);
    g_sink = static_cast<uint8_t>(p[0] + p[t.n_bytes - 1]);  // ASan flags any byte outside the image
  }

  std::vector<uint8_t> once = Reserialize(f);
  auto again = GgufFile::FromBytes(once);
  if (!again.ok()) Fail("writer output does not parse", again.status().ToString());
  if ((*again)->metadata().size() != f.metadata().size() || (*again)->tensors().size() != f.tensors().size()) {
    Fail("round trip changed the entry counts", "");
  }
  if (Reserialize(**again) != once) Fail("serialization is not a fixed point", "");
  return 0;
}
