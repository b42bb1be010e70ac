// The one table of test tolerances: |got - ref| <= atol + rtol * |ref| per element, by the
// dtype the op computes and stores in and by how much error the op can accumulate.
#pragma once

#include "mindiesd/core/dtype.h"

namespace mindiesd::test {

struct Tolerance {
  double atol;
  double rtol;
};

enum class OpClass {
  exact,          // copies, layout, comparisons: bit-exact after the output dtype's rounding
  elementwise,    // one rounding of a simple expression
  transcendental, // exp/tanh/erf/... with our vectorised approximations
  reduction,      // sums over many terms (accumulated in f64 or f32)
  matmul,         // dot products of length K (f32 accumulation)
  attention,      // softmax(q.k) @ v, the weights rounded to the input dtype before P @ V
};

inline Tolerance tolerance(DType t, OpClass c) {
  // Output rounding: half an ulp at 1.0 for the storage type.
  double r = 0.0;
  switch (t) {
    case DType::f32: r = 6e-8; break;
    case DType::f16: r = 4.9e-4; break;
    case DType::bf16: r = 3.9e-3; break;
    case DType::f8_e4m3: r = 6.25e-2; break;
    case DType::f8_e5m2: r = 1.25e-1; break;
    default: r = 0.0; break;
  }
  switch (c) {
    case OpClass::exact: return {0.0, r};
    case OpClass::elementwise: return {1e-7, 2 * r + 1e-7};
    case OpClass::transcendental: return {2e-6, 2 * r + 2e-6};
    case OpClass::reduction: return {1e-5, 2 * r + 1e-5};
    case OpClass::matmul:
      // bf16 GEMMs on bf16 hardware may round the f32 sum's products; inputs are already
      // bf16-exact so the budget is the output rounding plus f32 accumulation noise.
      return {t == DType::f32 ? 1e-4 : 1e-3, 2 * r + 1e-5};
    case OpClass::attention:
      // Tensor-core attention (FlashAttention-2, PyTorch's SDPA) rounds the softmax weights P
      // to the 16-bit input dtype for the P @ V product: each weight is off by up to half an
      // ulp of itself, so the output is off by up to half an ulp of max |v| (the values are
      // N(0, 1) here, |v| < 4) however small the output is. Measured on an H200: 0.0076 (bf16).
      return {t == DType::f32 ? 1e-4 : 4 * r, 2 * r + 1e-5};
  }
  return {0, 0};
}

}  // namespace mindiesd::test
