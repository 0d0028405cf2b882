// GGUF reader: parses and validates the whole header before anything is handed out.
//
// Layout (v2/v3, little-endian): "GGUF" u32 version, u64 n_tensors, u64 n_kv, n_kv key/value
// pairs, n_tensors tensor infos (name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset),
// padding to `alignment`, then the tensor data section. Every length and count is checked
// against the bytes that remain before it is used, and all size arithmetic is overflow-checked,
// so a hostile file can at worst produce an error message.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "core/model/gguf.h"
#include "core/util/mmap_file.h"

namespace lms::gguf {
namespace {

constexpr uint32_t kMaxDims = 4;
// The spec stores general.alignment as a uint32; a page (4096) is the largest seen in practice.
constexpr uint64_t kMaxAlignment = uint64_t{1} << 31;
// Arrays of arrays are legal; bound the nesting so recursion depth stays small.
constexpr int kMaxArrayDepth = 8;
// Smallest possible encodings, used to bound counts by the bytes left in the file.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;          // key length, 1-byte key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name len+1, n_dims, 1 dim, type, offset

bool IsKnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }
bool IsSignedType(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}
bool IsUnsignedType(ValueType t) {  // bool excluded: it is not a number for the getters
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64;
}
bool IsFloatType(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

// Bytes of one encoded scalar; 0 for string and array (variable length).
uint64_t ScalarBytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    case ValueType::kString: case ValueType::kArray: return 0;
  }
  return 0;
}

// Lower bound on the encoded size of one array element of type t.
uint64_t MinElementBytes(ValueType t) {
  if (t == ValueType::kString) return 8;   // length
  if (t == ValueType::kArray) return 12;   // element type + count
  return ScalarBytes(t);
}

// Decimal text of a 128-bit value: offsets in error messages may not fit 64 bits.
std::string U128ToString(unsigned __int128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v > 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

std::string Quote(std::string_view s) {
  // Names come from the file: keep messages printable and short.
  std::string out = "'";
  size_t n = std::min<size_t>(s.size(), 80);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (n < s.size()) out += "...";
  out += "'";
  return out;
}

// A bounds-checked little-endian reader over [data, data + size).
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  Status Need(uint64_t n, std::string_view what) const {
    if (n <= remaining()) return Status::Ok();
    return Status::InvalidArgument("at byte " + std::to_string(pos_) + ": " + std::string(what) +
                                   " needs " + std::to_string(n) + " bytes but only " +
                                   std::to_string(remaining()) + " remain (file size " +
                                   std::to_string(size_) + ")");
  }

  template <typename T>
  Status Read(T* out, std::string_view what) {
    LMS_RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(out, data_ + pos_, sizeof(T));  // the host is little-endian (x86-64, arm64)
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string* out, std::string_view what) {
    uint64_t start = pos_;
    uint64_t len = 0;
    LMS_RETURN_IF_ERROR(Read(&len, std::string(what) + " length"));
    if (len > remaining()) {
      return Status::InvalidArgument("at byte " + std::to_string(start) + ": " + std::string(what) +
                                     " length " + std::to_string(len) + " exceeds the " +
                                     std::to_string(remaining()) + " bytes left in the file");
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return Status::Ok();
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

Status CheckBool(uint8_t b, uint64_t at) {
  if (b <= 1) return Status::Ok();
  return Status::InvalidArgument("at byte " + std::to_string(at) + ": bool value " +
                                 std::to_string(b) + " is neither 0 nor 1");
}

// Reads one scalar of type t into the widened fields of `out` (i, u or f).
Status ReadScalar(Cursor& c, ValueType t, int64_t* i, uint64_t* u, double* f) {
  uint64_t at = c.pos();
  switch (t) {
    case ValueType::kUint8: { uint8_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "uint8 value")); *u = v; break; }
    case ValueType::kInt8: { int8_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "int8 value")); *i = v; break; }
    case ValueType::kUint16: { uint16_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "uint16 value")); *u = v; break; }
    case ValueType::kInt16: { int16_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "int16 value")); *i = v; break; }
    case ValueType::kUint32: { uint32_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "uint32 value")); *u = v; break; }
    case ValueType::kInt32: { int32_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "int32 value")); *i = v; break; }
    case ValueType::kUint64: { uint64_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "uint64 value")); *u = v; break; }
    case ValueType::kInt64: { int64_t v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "int64 value")); *i = v; break; }
    case ValueType::kFloat32: { float v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "float32 value")); *f = v; break; }
    case ValueType::kFloat64: { double v{}; LMS_RETURN_IF_ERROR(c.Read(&v, "float64 value")); *f = v; break; }
    case ValueType::kBool: {
      uint8_t v = 0;
      LMS_RETURN_IF_ERROR(c.Read(&v, "bool value"));
      LMS_RETURN_IF_ERROR(CheckBool(v, at));
      *u = v;
      break;
    }
    case ValueType::kString: case ValueType::kArray:
      return Status::Internal("ReadScalar called for a non-scalar type");
  }
  return Status::Ok();
}

Status ReadValue(Cursor& c, ValueType type, Value* out, int depth);

Status ReadArray(Cursor& c, Value* out, int depth) {
  uint64_t at = c.pos();
  uint32_t elem_raw = 0;
  LMS_RETURN_IF_ERROR(c.Read(&elem_raw, "array element type"));
  if (!IsKnownValueType(elem_raw)) {
    return Status::InvalidArgument("at byte " + std::to_string(at) + ": unknown array element type " +
                                   std::to_string(elem_raw));
  }
  ValueType elem = static_cast<ValueType>(elem_raw);
  if (elem == ValueType::kArray && depth + 1 >= kMaxArrayDepth) {
    return Status::InvalidArgument("at byte " + std::to_string(at) + ": arrays nested deeper than " +
                                   std::to_string(kMaxArrayDepth) + " levels");
  }
  uint64_t count = 0;
  LMS_RETURN_IF_ERROR(c.Read(&count, "array length"));
  uint64_t min_bytes = MinElementBytes(elem);
  if (count > c.remaining() / min_bytes) {
    return Status::InvalidArgument(
        "at byte " + std::to_string(at) + ": array of " + std::to_string(count) + " x " +
        std::string(ValueTypeName(elem)) + " needs at least " + U128ToString(static_cast<unsigned __int128>(count) * min_bytes) +
        " bytes but only " + std::to_string(c.remaining()) + " remain");
  }
  out->type = ValueType::kArray;
  out->elem_type = elem;
  size_t n = static_cast<size_t>(count);
  if (elem == ValueType::kString) {
    out->strings.resize(n);
    for (size_t k = 0; k < n; ++k) LMS_RETURN_IF_ERROR(c.ReadString(&out->strings[k], "array string"));
  } else if (elem == ValueType::kArray) {
    out->arrays.resize(n);
    for (size_t k = 0; k < n; ++k) LMS_RETURN_IF_ERROR(ReadValue(c, ValueType::kArray, &out->arrays[k], depth + 1));
  } else {
    // Scalars: the byte count was checked above, so these reads cannot run out.
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    std::vector<int64_t>* ints = IsSignedType(elem) ? &out->ints : nullptr;
    std::vector<double>* floats = IsFloatType(elem) ? &out->floats : nullptr;
    std::vector<uint64_t>* uints = (!ints && !floats) ? &out->uints : nullptr;  // unsigned and bool
    if (ints) ints->reserve(n);
    if (floats) floats->reserve(n);
    if (uints) uints->reserve(n);
    for (size_t k = 0; k < n; ++k) {
      LMS_RETURN_IF_ERROR(ReadScalar(c, elem, &i, &u, &f));
      if (ints) ints->push_back(i);
      else if (floats) floats->push_back(f);
      else uints->push_back(u);
    }
  }
  return Status::Ok();
}

Status ReadValue(Cursor& c, ValueType type, Value* out, int depth) {
  out->type = type;
  if (type == ValueType::kString) return c.ReadString(&out->str, "string value");
  if (type == ValueType::kArray) return ReadArray(c, out, depth);
  return ReadScalar(c, type, &out->i, &out->u, &out->f);
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

Status ParseAlignment(const Value& v, uint64_t* alignment) {
  uint64_t a = 0;
  if (IsUnsignedType(v.type)) {
    a = v.u;
  } else if (IsSignedType(v.type)) {
    if (v.i <= 0) return Status::InvalidArgument("general.alignment must be a nonzero power of two, got " + std::to_string(v.i));
    a = static_cast<uint64_t>(v.i);
  } else {
    return Status::InvalidArgument("general.alignment must be an integer, got a " +
                                   std::string(ValueTypeName(v.type)));
  }
  if (!IsPowerOfTwo(a) || a > kMaxAlignment) {
    return Status::InvalidArgument("general.alignment must be a nonzero power of two no larger than 2^31, got " +
                                   std::to_string(a));
  }
  *alignment = a;
  return Status::Ok();
}

std::string DimsText(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t k = 0; k < dims.size(); ++k) s += (k ? ", " : "") + std::to_string(dims[k]);
  return s + "]";
}

// Element count and byte size of a tensor, overflow-checked.
Status ComputeTensorSize(TensorInfo* t) {
  const TensorTypeInfo& ti = TypeInfo(t->type);
  if (t->dims[0] % ti.block_elems != 0) {
    return Status::InvalidArgument("row length " + std::to_string(t->dims[0]) +
                                   " is not a multiple of the " + std::string(ti.name) +
                                   " block size " + std::to_string(ti.block_elems));
  }
  // Each factor is < 2^63 and a running product is kept <= kMax, so nothing wraps in 128 bits.
  // The row count is checked on its own: with dims[0] == 0 the element count is 0 whatever it is.
  constexpr auto kMax = static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max());
  unsigned __int128 rows = 1;
  for (size_t k = 1; k < t->dims.size(); ++k) {
    rows *= static_cast<uint64_t>(t->dims[k]);
    if (rows > kMax) return Status::InvalidArgument("row count of dims " + DimsText(t->dims) + " overflows int64");
  }
  unsigned __int128 elems = rows * static_cast<uint64_t>(t->dims[0]);
  if (elems > kMax) {
    return Status::InvalidArgument("element count of dims " + DimsText(t->dims) + " overflows int64");
  }
  t->n_elements = static_cast<int64_t>(elems);
  unsigned __int128 row_bytes = static_cast<unsigned __int128>(static_cast<uint64_t>(t->dims[0]) / ti.block_elems) * ti.block_bytes;
  unsigned __int128 bytes = row_bytes * rows;
  if (bytes > kMax) {
    return Status::InvalidArgument("byte size of dims " + DimsText(t->dims) + " overflows int64");
  }
  t->n_bytes = static_cast<uint64_t>(bytes);
  return Status::Ok();
}

Status ReadTensorInfo(Cursor& c, size_t index, TensorInfo* t) {
  std::string where = "tensor info #" + std::to_string(index);
  LMS_RETURN_IF_ERROR(c.ReadString(&t->name, "tensor name").WithContext(where));
  if (t->name.empty()) return Status::InvalidArgument(where + " (at byte " + std::to_string(c.pos()) + "): empty tensor name");
  where = "tensor " + Quote(t->name);
  uint64_t at = c.pos();
  uint32_t n_dims = 0;
  LMS_RETURN_IF_ERROR(c.Read(&n_dims, "n_dims").WithContext(where));
  if (n_dims < 1 || n_dims > kMaxDims) {
    return Status::InvalidArgument(where + " (at byte " + std::to_string(at) + "): n_dims " +
                                   std::to_string(n_dims) + " is out of range (1.." + std::to_string(kMaxDims) + ")");
  }
  t->dims.resize(n_dims);
  for (uint32_t k = 0; k < n_dims; ++k) {
    uint64_t d = 0;
    at = c.pos();
    LMS_RETURN_IF_ERROR(c.Read(&d, "dimension").WithContext(where));
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Status::InvalidArgument(where + " (at byte " + std::to_string(at) + "): dimension " +
                                     std::to_string(k) + " is " + std::to_string(d) + ", too large (negative as int64)");
    }
    t->dims[k] = static_cast<int64_t>(d);
  }
  at = c.pos();
  uint32_t type_id = 0;
  LMS_RETURN_IF_ERROR(c.Read(&type_id, "tensor type").WithContext(where));
  std::optional<TensorTypeInfo> ti = GetTensorTypeInfo(type_id);
  if (!ti) {
    return Status::Unsupported(where + " (at byte " + std::to_string(at) + "): unknown tensor type id " +
                               std::to_string(type_id));
  }
  t->type = ti->type;
  LMS_RETURN_IF_ERROR(c.Read(&t->offset, "tensor data offset").WithContext(where));
  return ComputeTensorSize(t).WithContext(where);
}

}  // namespace

int64_t TensorInfo::rows() const {
  int64_t r = 1;
  for (size_t k = 1; k < dims.size(); ++k) r *= dims[k];
  return r;
}

GgufFile::~GgufFile() = default;

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> map, MappedFile::Open(path));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->data_ = map->data();
  f->size_ = map->size();
  f->mapping_ = std::move(map);
  Status s = f->Parse();
  if (!s.ok()) return s.WithContext(path);
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::FromBytes(std::vector<uint8_t> bytes) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->owned_ = std::move(bytes);
  f->data_ = f->owned_.data();
  f->size_ = f->owned_.size();
  LMS_RETURN_IF_ERROR(f->Parse());
  return f;
}

Status GgufFile::Parse() {
  Cursor c(data_, size_);
  if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0) {
    if (size_ < 4) return Status::InvalidArgument("not a GGUF file: only " + std::to_string(size_) + " bytes");
    return Status::InvalidArgument("not a GGUF file: bad magic " + Quote(std::string_view(reinterpret_cast<const char*>(data_), 4)) +
                                   " (expected 'GGUF')");
  }
  uint32_t magic = 0;
  LMS_RETURN_IF_ERROR(c.Read(&magic, "magic"));
  LMS_RETURN_IF_ERROR(c.Read(&version_, "version"));
  if (version_ == 1) return Status::Unsupported("GGUF version 1 is not supported (only versions 2 and 3)");
  if (version_ != 0 && (version_ & 0xffffu) == 0) {
    return Status::Unsupported("GGUF version field " + std::to_string(version_) +
                               " looks byte-swapped: big-endian GGUF files are not supported");
  }
  if (version_ != 2 && version_ != 3) {
    return Status::Unsupported("unsupported GGUF version " + std::to_string(version_) + " (only versions 2 and 3)");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  LMS_RETURN_IF_ERROR(c.Read(&n_tensors, "tensor count"));
  LMS_RETURN_IF_ERROR(c.Read(&n_kv, "metadata count"));
  if (n_kv > c.remaining() / kMinKvBytes) {
    return Status::InvalidArgument("metadata count " + std::to_string(n_kv) + " is impossible: the remaining " +
                                   std::to_string(c.remaining()) + " bytes hold at most " +
                                   std::to_string(c.remaining() / kMinKvBytes) + " entries");
  }
  if (n_tensors > c.remaining() / kMinTensorInfoBytes ||
      n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes > c.remaining()) {
    return Status::InvalidArgument("tensor count " + std::to_string(n_tensors) + " with " + std::to_string(n_kv) +
                                   " metadata entries is impossible: only " + std::to_string(c.remaining()) +
                                   " bytes remain for them");
  }

  // ---- metadata ----
  metadata_.clear();
  alignment_ = kDefaultAlignment;
  for (uint64_t k = 0; k < n_kv; ++k) {
    KeyValue kv;
    std::string where = "metadata entry #" + std::to_string(k);
    LMS_RETURN_IF_ERROR(c.ReadString(&kv.key, "key").WithContext(where));
    if (kv.key.empty()) return Status::InvalidArgument(where + " (ending at byte " + std::to_string(c.pos()) + "): empty key");
    where = "metadata key " + Quote(kv.key);
    uint64_t at = c.pos();
    uint32_t type_raw = 0;
    LMS_RETURN_IF_ERROR(c.Read(&type_raw, "value type").WithContext(where));
    if (!IsKnownValueType(type_raw)) {
      return Status::InvalidArgument(where + " (at byte " + std::to_string(at) + "): unknown value type " +
                                     std::to_string(type_raw));
    }
    LMS_RETURN_IF_ERROR(ReadValue(c, static_cast<ValueType>(type_raw), &kv.value, 0).WithContext(where));
    if (kv.key == "general.alignment") LMS_RETURN_IF_ERROR(ParseAlignment(kv.value, &alignment_));
    metadata_.push_back(std::move(kv));
  }
  {
    std::vector<size_t> order(metadata_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return metadata_[a].key < metadata_[b].key; });
    for (size_t k = 1; k < order.size(); ++k) {
      if (metadata_[order[k]].key == metadata_[order[k - 1]].key) {
        return Status::InvalidArgument("duplicate metadata key " + Quote(metadata_[order[k]].key) + " (entries #" +
                                       std::to_string(order[k - 1]) + " and #" + std::to_string(order[k]) + ")");
      }
    }
  }

  // ---- tensor infos ----
  tensors_.clear();
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorInfo t;
    LMS_RETURN_IF_ERROR(ReadTensorInfo(c, static_cast<size_t>(k), &t));
    tensors_.push_back(std::move(t));
  }
  tensor_order_.resize(tensors_.size());
  for (size_t k = 0; k < tensor_order_.size(); ++k) tensor_order_[k] = k;
  std::stable_sort(tensor_order_.begin(), tensor_order_.end(),
                   [&](size_t a, size_t b) { return tensors_[a].name < tensors_[b].name; });
  for (size_t k = 1; k < tensor_order_.size(); ++k) {
    if (tensors_[tensor_order_[k]].name == tensors_[tensor_order_[k - 1]].name) {
      return Status::InvalidArgument("duplicate tensor name " + Quote(tensors_[tensor_order_[k]].name) +
                                     " (tensor infos #" + std::to_string(tensor_order_[k - 1]) + " and #" +
                                     std::to_string(tensor_order_[k]) + ")");
    }
  }

  // ---- data section ----
  uint64_t rem = c.pos() % alignment_;
  uint64_t pad = rem ? alignment_ - rem : 0;
  if (pad > c.remaining()) {
    if (!tensors_.empty()) {
      return Status::InvalidArgument(
          "tensor data section would start at byte " +
          U128ToString(static_cast<unsigned __int128>(c.pos()) + pad) + " (tensor infos end at byte " +
          std::to_string(c.pos()) + ", aligned to " + std::to_string(alignment_) +
          "), past the end of the file (size " + std::to_string(size_) + ")");
    }
    data_offset_ = size_;  // no tensors: nothing lives in the (absent) data section
  } else {
    data_offset_ = c.pos() + pad;
  }
  const uint64_t data_size = size_ - data_offset_;
  for (const TensorInfo& t : tensors_) {
    std::string where = "tensor " + Quote(t.name);
    if (t.offset % alignment_ != 0) {
      return Status::InvalidArgument(where + ": data offset " + std::to_string(t.offset) +
                                     " is not a multiple of the alignment " + std::to_string(alignment_));
    }
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      unsigned __int128 begin = static_cast<unsigned __int128>(data_offset_) + t.offset;
      return Status::InvalidArgument(where + ": data [" + U128ToString(begin) + ", " + U128ToString(begin + t.n_bytes) +
                                     ") extends past end of file (size " + std::to_string(size_) + ")");
    }
  }
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors_) {
    if (t.n_bytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const TensorInfo* a = by_offset[k - 1];
    const TensorInfo* b = by_offset[k];
    if (a->offset + a->n_bytes > b->offset) {  // both lie inside the file: no overflow
      auto range = [&](const TensorInfo* t) {
        std::string r = "[";
        r += std::to_string(data_offset_ + t->offset);
        r += ", ";
        r += std::to_string(data_offset_ + t->offset + t->n_bytes);
        r += ")";
        return r;
      };
      return Status::InvalidArgument("tensor " + Quote(b->name) + ": data " + range(b) + " overlaps tensor " +
                                     Quote(a->name) + " data " + range(a));
    }
  }
  return Status::Ok();
}

const Value* GgufFile::Find(std::string_view key) const {
  for (const KeyValue& kv : metadata_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (!v || v->type != ValueType::kString) return std::nullopt;
  return v->str;
}

std::optional<int64_t> GgufFile::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  if (!v) return std::nullopt;
  if (IsSignedType(v->type)) return v->i;
  if (IsUnsignedType(v->type) && v->u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(v->u);
  }
  return std::nullopt;
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  if (!v) return std::nullopt;
  if (IsFloatType(v->type)) return v->f;
  if (IsSignedType(v->type)) return static_cast<double>(v->i);
  if (IsUnsignedType(v->type)) return static_cast<double>(v->u);
  return std::nullopt;
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (!v || v->type != ValueType::kBool) return std::nullopt;
  return v->u != 0;
}

const std::vector<std::string>* GgufFile::GetStringArray(std::string_view key) const {
  const Value* v = Find(key);
  if (!v || !v->is_array() || v->elem_type != ValueType::kString) return nullptr;
  return &v->strings;
}

std::optional<std::vector<double>> GgufFile::GetFloatArray(std::string_view key) const {
  const Value* v = Find(key);
  if (!v || !v->is_array()) return std::nullopt;
  if (IsFloatType(v->elem_type)) return v->floats;
  if (IsSignedType(v->elem_type)) return std::vector<double>(v->ints.begin(), v->ints.end());
  if (IsUnsignedType(v->elem_type)) return std::vector<double>(v->uints.begin(), v->uints.end());
  return std::nullopt;
}

std::optional<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  const Value* v = Find(key);
  if (!v || !v->is_array()) return std::nullopt;
  if (IsSignedType(v->elem_type)) return v->ints;
  if (!IsUnsignedType(v->elem_type)) return std::nullopt;
  std::vector<int64_t> out;
  out.reserve(v->uints.size());
  for (uint64_t u : v->uints) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    out.push_back(static_cast<int64_t>(u));
  }
  return out;
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = std::lower_bound(tensor_order_.begin(), tensor_order_.end(), name,
                             [&](size_t idx, std::string_view n) { return tensors_[idx].name < n; });
  if (it == tensor_order_.end() || tensors_[*it].name != name) return nullptr;
  return &tensors_[*it];
}

}  // namespace lms::gguf
