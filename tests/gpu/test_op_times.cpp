// GPU time per op (gpu/op_times.h): the totals' arithmetic on the host, and on a GPU that the
// ops of a CUDA backend made with LMS_CUDA_OP_TIMES=1 are counted.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "gpu/cuda_backend.h"
#include "gpu/op_times.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

TEST_CASE("op times: totals merge by name, most time first, and print as a table", "[gpu][op_times]") {
  std::vector<gpu::OpTimeTotal> all;
  gpu::MergeOpTimes({{"matmul", 4, 2.0}, {"rope", 2, 0.5}}, all);
  gpu::MergeOpTimes({{"rope", 1, 3.0}, {"add", 1, 0.25}}, all);
  REQUIRE(all.size() == 3);
  CHECK(all[0].name == "rope");
  CHECK(all[0].calls == 3);
  CHECK(all[0].ms == 3.5);
  CHECK(all[1].name == "matmul");
  CHECK(all[2].name == "add");
  const std::string table = gpu::OpTimesTable(all);
  CHECK(table.find("rope") < table.find("matmul"));
  CHECK(table.find("all ops") != std::string::npos);
  CHECK(table.find("5.750") != std::string::npos);  // the sum of the totals
}

TEST_CASE("op times: a CUDA backend counts each op it runs", "[gpu][op_times]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  setenv("LMS_CUDA_OP_TIMES", "1", 1);
  BackendPair p;
  unsetenv("LMS_CUDA_OP_TIMES");
  const int d = 576;
  Twin x = p.F32(3, d, RandomFloats(3 * d, 1));
  Twin w = p.Weight(TensorType::kF32, 1, d, Encode(TensorType::kF32, RandomFloats(d, 2), 1, d));
  Twin y = p.F32(3, d, std::vector<float>(3 * d));
  REQUIRE(gpu::CudaOpTimes(p.gpu(), true).ok());  // nothing before this point
  for (int i = 0; i < 5; ++i) REQUIRE(p.gpu().RmsNorm(x.gpu, w.gpu, 1e-5f, y.gpu).ok());
  auto totals = gpu::CudaOpTimes(p.gpu(), true);
  REQUIRE(totals.ok());
  REQUIRE(totals->size() == 1);
  CHECK((*totals)[0].name == "rms_norm");
  CHECK((*totals)[0].calls == 5);
  CHECK((*totals)[0].ms > 0);
  // Reset: nothing left.
  totals = gpu::CudaOpTimes(p.gpu(), false);
  REQUIRE(totals.ok());
  CHECK(totals->empty());
  // A CPU backend has none to give.
  CHECK_FALSE(gpu::CudaOpTimes(p.cpu(), false).ok());
}

}  // namespace
}  // namespace lms::test
