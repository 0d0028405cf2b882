// GGUF files (versions 2 and 3): a validating reader over an mmap'd file, and a writer.
//
// The reader checks everything before anything is used: magic, version, counts, string and
// array lengths, tensor dims and byte sizes (overflow-safe), known tensor types, offsets and
// alignment inside the file. A malformed or truncated file yields a Status naming the problem.
// Limits beyond the spec: arrays nest at most 8 deep; general.alignment is a power of two
// <= 2^31; keys and tensor names are non-empty; bools are 0 or 1; duplicate keys, duplicate
// tensor names and overlapping tensor data are rejected. Errors are kInvalidArgument, except an
// unsupported version / byte order / tensor type (kUnsupported) and I/O problems in Open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor/types.h"
#include "core/util/status.h"

namespace lms {
class MappedFile;
}

namespace lms::gguf {

inline constexpr uint64_t kDefaultAlignment = 32;  // when general.alignment is absent

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view ValueTypeName(ValueType t);

// One metadata value. Scalars keep their GGUF type; integers are widened into `i` (signed
// types) or `u` (unsigned and bool), floats into `f`. Arrays hold their elements in the
// vector matching the element type: strings in `strings`, integers in `ints`/`uints`,
// floats in `floats`, nested arrays in `arrays`.
struct Value {
  ValueType type = ValueType::kUint8;
  ValueType elem_type = ValueType::kUint8;  // meaningful when type == kArray
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0.0;
  std::string str;
  std::vector<std::string> strings;
  std::vector<int64_t> ints;
  std::vector<uint64_t> uints;
  std::vector<double> floats;
  std::vector<Value> arrays;

  bool is_array() const { return type == ValueType::kArray; }
  size_t array_size() const;
  // "49152 x string", "7", "\"llama\"" — for `lmstation info`.
  std::string Describe(size_t max_items = 8) const;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  TensorType type = TensorType::kF32;
  std::vector<int64_t> dims;  // GGUF/ggml order: dims[0] is the contiguous (row) dimension
  uint64_t offset = 0;        // from the start of the tensor data section
  uint64_t n_bytes = 0;
  int64_t n_elements = 0;

  int64_t rows() const;       // product of dims[1..]
};

class GgufFile {
 public:
  // Maps the file read-only and validates it.
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Validates an in-memory image (the fuzzer and tests use this); the bytes are kept alive.
  static Result<std::unique_ptr<GgufFile>> FromBytes(std::vector<uint8_t> bytes);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }

  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const Value* Find(std::string_view key) const;
  // Typed getters: nullopt when the key is absent or of an incompatible type.
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<int64_t> GetInt(std::string_view key) const;     // any integer type, range-checked
  std::optional<double> GetFloat(std::string_view key) const;    // any numeric type
  std::optional<bool> GetBool(std::string_view key) const;
  const std::vector<std::string>* GetStringArray(std::string_view key) const;
  std::optional<std::vector<double>> GetFloatArray(std::string_view key) const;  // numeric array
  std::optional<std::vector<int64_t>> GetIntArray(std::string_view key) const;   // integer array

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;
  // Pointer to a tensor's bytes inside the mapping; valid while this object lives.
  const uint8_t* TensorData(const TensorInfo& t) const { return data_ + data_offset_ + t.offset; }
  uint64_t data_offset() const { return data_offset_; }

 private:
  GgufFile() = default;
  Status Parse();

  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::unique_ptr<MappedFile> mapping_;  // set when mmap'd by Open
  std::vector<uint8_t> owned_;    // used by FromBytes
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::vector<size_t> tensor_order_;  // tensor indices sorted by name, for FindTensor
};

// Builds a GGUF v3 file. Tensor data is copied in at AddTensor time.
class GgufWriter {
 public:
  void SetValue(std::string key, Value value);  // replaces an existing key, keeps order
  void SetString(std::string key, std::string v);
  void SetUint32(std::string key, uint32_t v);
  void SetInt32(std::string key, int32_t v);
  void SetUint64(std::string key, uint64_t v);
  void SetFloat32(std::string key, float v);
  void SetBool(std::string key, bool v);
  void SetStringArray(std::string key, std::vector<std::string> v);
  void SetFloat32Array(std::string key, const std::vector<float>& v);
  void SetInt32Array(std::string key, const std::vector<int32_t>& v);
  // Writes general.alignment when not 32. REQUIRES: a power of two <= 2^31 (also when the key
  // is set through SetValue, which keeps the layout in step with it).
  void SetAlignment(uint32_t alignment);

  // dims in GGUF order (dims[0] contiguous). InvalidArgument (naming the tensor) for an empty or
  // duplicate name, dims outside 1..4 or negative, dims[0] not a multiple of the type's block,
  // or bytes != the size the type and dims imply.
  Status AddTensor(std::string name, TensorType type, std::vector<int64_t> dims,
                   const void* data, size_t bytes);

  // Writes to "<path>.tmp.<pid>", fsyncs, renames into place, fsyncs the directory; streams the
  // tensors rather than building the image. The file ends at the last tensor's last byte.
  Status WriteFile(const std::string& path) const;
  // The whole file image in memory (tests, fuzz seeds).
  std::vector<uint8_t> Serialize() const;

 private:
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> data;
  };
  std::vector<uint8_t> SerializeHeader() const;  // everything before the data section, padded
  std::vector<uint64_t> TensorOffsets() const;    // each tensor's offset in the data section

  std::vector<KeyValue> metadata_;
  std::vector<PendingTensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace lms::gguf
