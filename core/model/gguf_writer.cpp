// GGUF v3 writer: metadata in insertion order, tensor infos, then the data section with every
// tensor aligned. The file ends right after the last tensor's bytes (no trailing padding), so a
// truncated copy of a written file never parses as valid (when some tensor has data).
#include <cassert>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <unordered_set>

#include "core/model/gguf.h"

namespace lms::gguf {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));  // little-endian host
}

void PutString(std::vector<uint8_t>& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// Writes one scalar of type t from the widened fields (i for signed, u for unsigned/bool, f).
void PutScalar(std::vector<uint8_t>& out, ValueType t, int64_t i, uint64_t u, double f) {
  switch (t) {
    case ValueType::kUint8: Put<uint8_t>(out, static_cast<uint8_t>(u)); break;
    case ValueType::kInt8: Put<int8_t>(out, static_cast<int8_t>(i)); break;
    case ValueType::kUint16: Put<uint16_t>(out, static_cast<uint16_t>(u)); break;
    case ValueType::kInt16: Put<int16_t>(out, static_cast<int16_t>(i)); break;
    case ValueType::kUint32: Put<uint32_t>(out, static_cast<uint32_t>(u)); break;
    case ValueType::kInt32: Put<int32_t>(out, static_cast<int32_t>(i)); break;
    case ValueType::kUint64: Put<uint64_t>(out, u); break;
    case ValueType::kInt64: Put<int64_t>(out, i); break;
    case ValueType::kFloat32: Put<float>(out, static_cast<float>(f)); break;
    case ValueType::kFloat64: Put<double>(out, f); break;
    case ValueType::kBool: Put<uint8_t>(out, u != 0 ? 1 : 0); break;
    case ValueType::kString: case ValueType::kArray: assert(false && "not a scalar"); break;
  }
}

bool IsSigned(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 || t == ValueType::kInt64;
}
bool IsFloat(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

void PutValueBody(std::vector<uint8_t>& out, const Value& v);

void PutArray(std::vector<uint8_t>& out, const Value& v) {
  Put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
  size_t n = v.array_size();
  Put<uint64_t>(out, n);
  ValueType t = v.elem_type;
  for (size_t k = 0; k < n; ++k) {
    if (t == ValueType::kString) {
      PutString(out, v.strings[k]);
    } else if (t == ValueType::kArray) {
      // Nested arrays carry their own element type and count; the outer element type says "array".
      const Value& inner = v.arrays[k];
      assert(inner.is_array() && "elements of an array of arrays must be arrays");
      PutArray(out, inner);
    } else if (IsSigned(t)) {
      PutScalar(out, t, v.ints[k], 0, 0);
    } else if (IsFloat(t)) {
      PutScalar(out, t, 0, 0, v.floats[k]);
    } else {
      PutScalar(out, t, 0, v.uints[k], 0);
    }
  }
}

void PutValueBody(std::vector<uint8_t>& out, const Value& v) {
  if (v.type == ValueType::kString) {
    PutString(out, v.str);
  } else if (v.type == ValueType::kArray) {
    PutArray(out, v);
  } else {
    PutScalar(out, v.type, v.i, v.u, v.f);
  }
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

Status WriteAll(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("writing '" + path + "': " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

}  // namespace

void GgufWriter::SetValue(std::string key, Value value) {
  if (key == "general.alignment") {
    // Keep the layout consistent with what the file will declare.
    bool is_unsigned = value.type == ValueType::kUint32 || value.type == ValueType::kUint64 ||
                       value.type == ValueType::kUint16 || value.type == ValueType::kUint8;
    bool is_signed = value.type == ValueType::kInt32 || value.type == ValueType::kInt64 ||
                     value.type == ValueType::kInt16 || value.type == ValueType::kInt8;
    uint64_t a = is_unsigned ? value.u : (is_signed && value.i > 0 ? static_cast<uint64_t>(value.i) : 0);
    bool valid = IsPowerOfTwo(a) && a <= (1u << 31);
    assert(valid && "general.alignment must be a power of two <= 2^31");
    if (valid) alignment_ = static_cast<uint32_t>(a);
  }
  for (KeyValue& kv : metadata_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  metadata_.push_back({std::move(key), std::move(value)});
}

void GgufWriter::SetString(std::string key, std::string v) {
  Value val;
  val.type = ValueType::kString;
  val.str = std::move(v);
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetUint32(std::string key, uint32_t v) {
  Value val;
  val.type = ValueType::kUint32;
  val.u = v;
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetInt32(std::string key, int32_t v) {
  Value val;
  val.type = ValueType::kInt32;
  val.i = v;
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetUint64(std::string key, uint64_t v) {
  Value val;
  val.type = ValueType::kUint64;
  val.u = v;
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetFloat32(std::string key, float v) {
  Value val;
  val.type = ValueType::kFloat32;
  val.f = v;
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetBool(std::string key, bool v) {
  Value val;
  val.type = ValueType::kBool;
  val.u = v ? 1 : 0;
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetStringArray(std::string key, std::vector<std::string> v) {
  Value val;
  val.type = ValueType::kArray;
  val.elem_type = ValueType::kString;
  val.strings = std::move(v);
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetFloat32Array(std::string key, const std::vector<float>& v) {
  Value val;
  val.type = ValueType::kArray;
  val.elem_type = ValueType::kFloat32;
  val.floats.assign(v.begin(), v.end());
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetInt32Array(std::string key, const std::vector<int32_t>& v) {
  Value val;
  val.type = ValueType::kArray;
  val.elem_type = ValueType::kInt32;
  val.ints.assign(v.begin(), v.end());
  SetValue(std::move(key), std::move(val));
}

void GgufWriter::SetAlignment(uint32_t alignment) {
  assert(IsPowerOfTwo(alignment) && "alignment must be a power of two");
  if (alignment == kDefaultAlignment) {
    alignment_ = alignment;
    std::erase_if(metadata_, [](const KeyValue& kv) { return kv.key == "general.alignment"; });
    return;
  }
  SetUint32("general.alignment", alignment);
}

Status GgufWriter::AddTensor(std::string name, TensorType type, std::vector<int64_t> dims, const void* data,
                             size_t bytes) {
  std::string where = "tensor '" + name + "'";
  if (name.empty()) return Status::InvalidArgument("tensor name is empty");
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return Status::InvalidArgument(where + " was already added");
  }
  if (dims.empty() || dims.size() > 4) {
    return Status::InvalidArgument(where + ": " + std::to_string(dims.size()) + " dims (need 1..4)");
  }
  const TensorTypeInfo& ti = TypeInfo(type);
  // Element and byte counts with 128-bit intermediates, like the reader.
  unsigned __int128 rows = 1;
  constexpr auto kMax = static_cast<unsigned __int128>(INT64_MAX);
  for (size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] < 0) return Status::InvalidArgument(where + ": negative dimension " + std::to_string(dims[k]));
    if (k > 0) {
      rows *= static_cast<uint64_t>(dims[k]);
      if (rows > kMax) return Status::InvalidArgument(where + ": row count overflows");
    }
  }
  if (rows * static_cast<uint64_t>(dims[0]) > kMax) return Status::InvalidArgument(where + ": element count overflows");
  if (dims[0] % ti.block_elems != 0) {
    return Status::InvalidArgument(where + ": row length " + std::to_string(dims[0]) + " is not a multiple of the " +
                                   std::string(ti.name) + " block size " + std::to_string(ti.block_elems));
  }
  unsigned __int128 expected = rows * (static_cast<uint64_t>(dims[0]) / ti.block_elems) * ti.block_bytes;
  if (expected != bytes) {
    return Status::InvalidArgument(where + ": got " + std::to_string(bytes) + " bytes of data, expected " +
                                   std::to_string(static_cast<uint64_t>(expected)));
  }
  if (bytes > 0 && data == nullptr) return Status::InvalidArgument(where + ": data is null");
  PendingTensor t;
  t.name = std::move(name);
  t.type = type;
  t.dims = std::move(dims);
  if (bytes > 0) {
    const auto* p = static_cast<const uint8_t*>(data);
    t.data.assign(p, p + bytes);
  }
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

std::vector<uint64_t> GgufWriter::TensorOffsets() const {
  // Tensors with data are packed in order, each at an aligned offset. Empty tensors get offset
  // 0: it is aligned and inside the file even when nothing follows the header.
  std::vector<uint64_t> offsets;
  uint64_t end = 0;
  for (const PendingTensor& t : tensors_) {
    if (t.data.empty()) {
      offsets.push_back(0);
      continue;
    }
    uint64_t at = AlignUp(end, alignment_);
    offsets.push_back(at);
    end = at + t.data.size();
  }
  return offsets;
}

std::vector<uint8_t> GgufWriter::SerializeHeader() const {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, tensors_.size());
  Put<uint64_t>(out, metadata_.size());
  for (const KeyValue& kv : metadata_) {
    PutString(out, kv.key);
    Put<uint32_t>(out, static_cast<uint32_t>(kv.value.type));
    PutValueBody(out, kv.value);
  }
  std::vector<uint64_t> offsets = TensorOffsets();
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const PendingTensor& t = tensors_[k];
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) Put<uint64_t>(out, static_cast<uint64_t>(d));
    Put<uint32_t>(out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(out, offsets[k]);
  }
  if (!tensors_.empty()) out.resize(AlignUp(out.size(), alignment_), 0);
  return out;
}

std::vector<uint8_t> GgufWriter::Serialize() const {
  std::vector<uint8_t> out = SerializeHeader();
  const uint64_t data_start = out.size();
  std::vector<uint64_t> offsets = TensorOffsets();
  for (size_t k = 0; k < tensors_.size(); ++k) {
    if (tensors_[k].data.empty()) continue;
    out.resize(data_start + offsets[k], 0);  // padding up to the tensor's offset
    out.insert(out.end(), tensors_[k].data.begin(), tensors_[k].data.end());
  }
  return out;
}

Status GgufWriter::WriteFile(const std::string& path) const {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("cannot create '" + tmp + "': " + std::strerror(errno));
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  // Stream the tensors instead of building the whole image: exported models can be gigabytes.
  std::vector<uint8_t> header = SerializeHeader();
  Status s = WriteAll(fd, header.data(), header.size(), tmp);
  if (!s.ok()) return fail(s);
  uint64_t written = 0;  // bytes of the data section so far
  static const uint8_t kZeros[256] = {};
  std::vector<uint64_t> offsets = TensorOffsets();
  for (size_t k = 0; k < tensors_.size(); ++k) {
    if (tensors_[k].data.empty()) continue;
    uint64_t pad = offsets[k] - written;
    while (pad > 0) {
      size_t n = pad < sizeof kZeros ? static_cast<size_t>(pad) : sizeof kZeros;
      s = WriteAll(fd, kZeros, n, tmp);
      if (!s.ok()) return fail(s);
      pad -= n;
    }
    s = WriteAll(fd, tensors_[k].data.data(), tensors_[k].data.size(), tmp);
    if (!s.ok()) return fail(s);
    written = offsets[k] + tensors_[k].data.size();
  }
  if (::fsync(fd) != 0) return fail(Status::IoError("fsync '" + tmp + "': " + std::strerror(errno)));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Status::IoError("closing '" + tmp + "': " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::IoError("renaming '" + tmp + "' to '" + path + "': " + std::strerror(err));
  }
  // Make the rename itself durable.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace lms::gguf
