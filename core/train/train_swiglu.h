// Vectorised SwiGLU element loops (AVX2+FMA, chosen at run time by the training ops).
// exp is a degree-6 polynomial after range reduction (≤ 2 ulp over the range used here), so
// results differ from the scalar loops in the last bits, but are fixed for a given CPU path.
#pragma once

#include <cstdint>

namespace lms::train::avx2 {

// out[i] = silu(gate[i]) * up[i] for i in [i0, i1)
void SwiGluForward(float* out, const float* gate, const float* up, int64_t i0, int64_t i1);
// dup = dout · silu(gate), dgate = dout · up · σ(g)(1 + g(1 − σ(g))) for i in [i0, i1)
void SwiGluBackward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                    int64_t i0, int64_t i1);

}  // namespace lms::train::avx2
