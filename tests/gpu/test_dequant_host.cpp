// The kernels' dequantization, run on the host (no GPU needed), equals core's DequantizeRow bit
// for bit for every type: the chunk mapping of the K-quants' sub-blocks and the element-wise
// path of the embedding and GEMM kernels.
#include <catch2/catch.hpp>

#include <cstring>

#include "core/tensor/quant.h"
#include "gpu/ops/ops.h"
#include "tests/gpu/gpu_test_support.h"

namespace lms::test {

TEST_CASE("gpu dequant (host side): chunks and elements equal DequantizeRow", "[gpu][dequant]") {
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ4_0,
                          TensorType::kQ4_1, TensorType::kQ4_K, TensorType::kQ6_K}) {
    for (int64_t n : {256, 768, 1536}) {
      CAPTURE(TensorTypeName(type), n);
      const auto values = RandomFloats(n, 100 + n, 0.7f);
      const auto row = Encode(type, values, 1, n);
      std::vector<float> want(n), chunks(n), elems(n);
      DequantizeRow(type, row.data(), want.data(), n);
      REQUIRE(gpu::DequantizeRowHostChunks(type, row.data(), n, chunks.data()));
      REQUIRE(gpu::DequantizeRowHostElements(type, row.data(), n, elems.data()));
      CHECK(std::memcmp(want.data(), chunks.data(), n * sizeof(float)) == 0);
      CHECK(std::memcmp(want.data(), elems.data(), n * sizeof(float)) == 0);
    }
  }
}

}  // namespace lms::test
