// Tensor element types, numbered as in GGUF files (ggml's type ids), with their block layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace lms {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct TensorTypeInfo {
  TensorType type;
  std::string_view name;     // "Q4_K"
  uint32_t block_elems;      // elements per block (1 for plain types)
  uint32_t block_bytes;      // bytes per block
  bool computable;           // lmstation has dequantize + dot kernels for it
};

// Layout of a known type id, or nullopt for an id we do not know (a file using it is rejected).
std::optional<TensorTypeInfo> GetTensorTypeInfo(uint32_t type_id);
const TensorTypeInfo& TypeInfo(TensorType t);  // REQUIRES: t is a known type
std::string_view TensorTypeName(TensorType t);
// Parse "q4_1", "Q8_0", "f16"… (case-insensitive).
std::optional<TensorType> ParseTensorType(std::string_view name);

// Bytes of a row of n elements. REQUIRES: n % block_elems == 0.
inline size_t RowBytes(TensorType t, int64_t n) {
  const auto& ti = TypeInfo(t);
  return static_cast<size_t>(n / ti.block_elems) * ti.block_bytes;
}

}  // namespace lms
