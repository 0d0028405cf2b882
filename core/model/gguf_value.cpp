// gguf::Value helpers: type names, array sizes and the one-line descriptions `lmstation info` shows.
#include <charconv>
#include <cstdio>
#include <string>

#include "core/model/gguf.h"

namespace lms::gguf {

std::string_view ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "unknown";
}

namespace {

bool IsSigned(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}
bool IsUnsigned(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64 || t == ValueType::kBool;
}
bool IsFloat(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

// Shortest text that reads back to the same float32 / float64.
std::string FormatFloat(double v, ValueType t) {
  char buf[64];
  std::to_chars_result r = (t == ValueType::kFloat32)
                               ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(v))
                               : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Quoted, control bytes escaped, cut after `max_chars` bytes (a chat template can be 4 KB).
std::string QuoteString(const std::string& s, size_t max_chars = 60) {
  std::string out = "\"";
  size_t n = s.size() < max_chars ? s.size() : max_chars;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\x%02x", c);
          out += esc;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  if (n < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string DescribeScalar(const Value& v) {
  if (v.type == ValueType::kBool) return v.u ? "true" : "false";
  if (IsSigned(v.type)) return std::to_string(v.i);
  if (IsUnsigned(v.type)) return std::to_string(v.u);
  if (IsFloat(v.type)) return FormatFloat(v.f, v.type);
  if (v.type == ValueType::kString) return QuoteString(v.str);
  return "?";
}

std::string DescribeElement(const Value& v, size_t i, size_t max_items) {
  ValueType t = v.elem_type;
  if (t == ValueType::kString) return QuoteString(v.strings[i], 40);
  if (t == ValueType::kBool) return v.uints[i] ? "true" : "false";
  if (IsSigned(t)) return std::to_string(v.ints[i]);
  if (IsUnsigned(t)) return std::to_string(v.uints[i]);
  if (IsFloat(t)) return FormatFloat(v.floats[i], t);
  if (t == ValueType::kArray) return v.arrays[i].Describe(max_items);
  return "?";
}

}  // namespace

size_t Value::array_size() const {
  if (type != ValueType::kArray) return 0;
  if (elem_type == ValueType::kString) return strings.size();
  if (elem_type == ValueType::kArray) return arrays.size();
  if (IsSigned(elem_type)) return ints.size();
  if (IsUnsigned(elem_type)) return uints.size();
  if (IsFloat(elem_type)) return floats.size();
  return 0;
}

std::string Value::Describe(size_t max_items) const {
  if (!is_array()) return DescribeScalar(*this);
  size_t n = array_size();
  std::string out = std::to_string(n) + " x " + std::string(ValueTypeName(elem_type));
  if (max_items == 0 || n == 0) return out;
  out += " [";
  size_t shown = n < max_items ? n : max_items;
  for (size_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    // Nested arrays show fewer items so one line stays readable.
    out += DescribeElement(*this, i, max_items > 2 ? max_items / 2 : 1);
  }
  if (shown < n) out += ", ...";
  out += "]";
  return out;
}

}  // namespace lms::gguf
