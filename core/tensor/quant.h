// Row conversion between float and the stored tensor formats (ggml block layouts, bit-exact).
//
// Dequantization follows ggml's reference formulas exactly (same float operations in the same
// order). Quantization of Q8_0, Q4_0 and Q4_1 reproduces ggml's reference quantizers
// (quantize_row_*_ref); Q4_K and Q6_K use a simpler search-free quantizer of our own (valid
// blocks any reader understands, slightly higher error than ggml's iterative one).
#pragma once

#include <cstdint>

#include "core/tensor/types.h"
#include "core/util/status.h"

namespace lms {

// True when DequantizeRow handles the type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K.
bool CanDequantize(TensorType t);
// True when QuantizeRow handles the type (the same set).
bool CanQuantize(TensorType t);

// dst[0..n) = the values of n elements of type t at src.
// REQUIRES: CanDequantize(t), n % block_elems(t) == 0, src holds RowBytes(t, n) bytes.
void DequantizeRow(TensorType t, const void* src, float* dst, int64_t n);

// Writes RowBytes(t, n) bytes at dst. Unsupported for types CanQuantize rejects;
// InvalidArgument when n is not a multiple of the type's block size.
Status QuantizeRow(TensorType t, const float* src, void* dst, int64_t n);

}  // namespace lms
