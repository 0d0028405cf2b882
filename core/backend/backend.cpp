// The fused ops' defaults: the basic ops in sequence (see backend.h).
#include "core/backend/backend.h"

#include <limits>
#include <vector>

namespace lms {

Status Backend::NormLinear(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                           std::span<const TensorView> weights, std::span<const TensorView> biases,
                           std::span<const TensorView> outs) {
  LMS_RETURN_IF_ERROR(RmsNorm(x, norm, eps, xn));
  return Linear(xn, weights, biases, outs);
}

Status Backend::NormLinearSwiGlu(const TensorView& x, const TensorView& norm, float eps, const TensorView& xn,
                                 const TensorView& w_gate, const TensorView& w_up, const TensorView& gate,
                                 const TensorView& up, const TensorView& out) {
  LMS_RETURN_IF_ERROR(RmsNorm(x, norm, eps, xn));
  const TensorView w[] = {w_gate, w_up};
  const TensorView o[] = {gate, up};
  LMS_RETURN_IF_ERROR(Linear(xn, w, {}, o));
  return SwiGlu(gate, up, out);
}

Status Backend::LinearAdd(const TensorView& x, const TensorView& w, const TensorView& y, const TensorView& acc) {
  const TensorView ws[] = {w};
  const TensorView ys[] = {y};
  LMS_RETURN_IF_ERROR(Linear(x, ws, {}, ys));
  return AddInPlace(acc, y);
}

Status Backend::RopeStoreKv(const TensorView& q, const TensorView& k, const TensorView& v, int32_t head_dim,
                            const RopeParams& p, const TensorView& k_cache, const TensorView& v_cache) {
  LMS_RETURN_IF_ERROR(Rope(q, k, head_dim, p));
  return StoreKv(k, v, k_cache, v_cache);
}

int32_t FirstArgMax(const float* row, int64_t n) {
  int32_t best = 0;
  float best_v = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    if (row[i] > best_v) {
      best_v = row[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

Status Backend::ArgMaxRows(const TensorView& x, int32_t* ids) {
  std::vector<float> row(static_cast<size_t>(x.cols));
  for (int64_t r = 0; r < x.rows; ++r) {
    TensorView one = x;
    one.data = x.row(r);
    one.rows = 1;
    LMS_RETURN_IF_ERROR(CopyToHost(one, row.data(), row.size() * sizeof(float)));
    ids[r] = FirstArgMax(row.data(), x.cols);
  }
  return Status::Ok();
}

}  // namespace lms
