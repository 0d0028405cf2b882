// The fused ops' defaults: the basic ops in sequence (see backend.h).
#include "core/backend/backend.h"

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

}  // namespace lms
