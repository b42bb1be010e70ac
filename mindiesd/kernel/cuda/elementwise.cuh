// Elementwise math in f32, shared by the elementwise kernels and by fused kernels elsewhere
// (bias + activation, norm + modulation) so that every path computes the same function.
//
// The formulas follow the CPU kernels (kernel/cpu/elementwise.cpp) and op_params.h exactly:
// gelu uses erf, gelu_tanh the tanh form, silu = x * sigmoid(x), rsqrt = 1 / sqrt(x) (not the
// approximate rsqrtf), relu maps NaN to 0, clamp/maximum/minimum propagate NaN as PyTorch
// does. Built without --use_fast_math, so division and sqrt are IEEE-rounded and the
// transcendental functions are within CUDA's documented 1-2 ulp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/dtype.cuh"

namespace mindiesd::cuda {

template <UnaryKind K>
MINDIESD_HD float unary_op(float x, float alpha, float beta) {
  using U = UnaryKind;
  if constexpr (K == U::neg)
    return -x;
  else if constexpr (K == U::abs)
    return fabsf(x);
  else if constexpr (K == U::exp)
    return expf(x);
  else if constexpr (K == U::log)
    return logf(x);
  else if constexpr (K == U::sqrt)
    return sqrtf(x);
  else if constexpr (K == U::rsqrt)
    return 1.0f / sqrtf(x);
  else if constexpr (K == U::sin)
    return sinf(x);
  else if constexpr (K == U::cos)
    return cosf(x);
  else if constexpr (K == U::tanh)
    return tanhf(x);
  else if constexpr (K == U::sigmoid)
    return 1.0f / (1.0f + expf(-x));
  else if constexpr (K == U::silu)
    return x * (1.0f / (1.0f + expf(-x)));
  else if constexpr (K == U::gelu)
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  else if constexpr (K == U::gelu_tanh)
    return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  else if constexpr (K == U::relu)
    return x > 0.0f ? x : 0.0f;
  else if constexpr (K == U::square)
    return x * x;
  else if constexpr (K == U::reciprocal)
    return 1.0f / x;
  else if constexpr (K == U::affine)
    return alpha * x + beta;
  else if constexpr (K == U::pow_scalar)
    return powf(x, alpha);
  else if constexpr (K == U::clamp)
    return x < alpha ? alpha : (x > beta ? beta : x);
  else
    return x;
}

template <BinaryKind K>
MINDIESD_HD float binary_op(float a, float b) {
  using B = BinaryKind;
  if constexpr (K == B::add)
    return a + b;
  else if constexpr (K == B::sub)
    return a - b;
  else if constexpr (K == B::mul)
    return a * b;
  else if constexpr (K == B::div)
    return a / b;
  else if constexpr (K == B::maximum)
    return (a != a || a > b) ? a : b;
  else if constexpr (K == B::minimum)
    return (a != a || a < b) ? a : b;
  else if constexpr (K == B::pow)
    return powf(a, b);
  else if constexpr (K == B::eq)
    return a == b ? 1.0f : 0.0f;
  else if constexpr (K == B::ne)
    return a != b ? 1.0f : 0.0f;
  else if constexpr (K == B::lt)
    return a < b ? 1.0f : 0.0f;
  else if constexpr (K == B::le)
    return a <= b ? 1.0f : 0.0f;
  else if constexpr (K == B::gt)
    return a > b ? 1.0f : 0.0f;
  else if constexpr (K == B::ge)
    return a >= b ? 1.0f : 0.0f;
  else
    return 0.0f;
}

// Integer binary ops, exact in int64 (wrapping on overflow instead of C++'s undefined
// behaviour); div and pow have no integer form (the op front end promotes them to float).
template <BinaryKind K>
MINDIESD_HD int64_t binary_int_op(int64_t a, int64_t b) {
  using B = BinaryKind;
  using U = uint64_t;
  if constexpr (K == B::add)
    return static_cast<int64_t>(static_cast<U>(a) + static_cast<U>(b));
  else if constexpr (K == B::sub)
    return static_cast<int64_t>(static_cast<U>(a) - static_cast<U>(b));
  else if constexpr (K == B::mul)
    return static_cast<int64_t>(static_cast<U>(a) * static_cast<U>(b));
  else if constexpr (K == B::maximum)
    return a > b ? a : b;
  else if constexpr (K == B::minimum)
    return a < b ? a : b;
  else if constexpr (K == B::eq)
    return a == b;
  else if constexpr (K == B::ne)
    return a != b;
  else if constexpr (K == B::lt)
    return a < b;
  else if constexpr (K == B::le)
    return a <= b;
  else if constexpr (K == B::gt)
    return a > b;
  else if constexpr (K == B::ge)
    return a >= b;
  else
    return 0;
}

template <TernaryKind K>
MINDIESD_HD float ternary_op(float a, float b, float c) {
  using T = TernaryKind;
  if constexpr (K == T::where)
    return a != 0.0f ? b : c;
  else if constexpr (K == T::fma)
    return a * b + c;
  else if constexpr (K == T::lerp)
    return a + c * (b - a);
  else
    return 0.0f;
}

// ---- run-time kind -> compile-time kind -----------------------------------------------------

// Calls f(std::integral_constant<Kind, K>{}) for the run-time kind. A kernel does this once,
// outside its element loop, so each loop body is straight-line code for one op.
template <typename F>
MINDIESD_HD void with_unary_kind(UnaryKind k, F&& f) {
  using U = UnaryKind;
#define MINDIESD_CASE(K)                  \
  case U::K:                              \
    f(std::integral_constant<U, U::K>{}); \
    return
  switch (k) {
    MINDIESD_CASE(neg);
    MINDIESD_CASE(abs);
    MINDIESD_CASE(exp);
    MINDIESD_CASE(log);
    MINDIESD_CASE(sqrt);
    MINDIESD_CASE(rsqrt);
    MINDIESD_CASE(sin);
    MINDIESD_CASE(cos);
    MINDIESD_CASE(tanh);
    MINDIESD_CASE(sigmoid);
    MINDIESD_CASE(silu);
    MINDIESD_CASE(gelu);
    MINDIESD_CASE(gelu_tanh);
    MINDIESD_CASE(relu);
    MINDIESD_CASE(square);
    MINDIESD_CASE(reciprocal);
    MINDIESD_CASE(affine);
    MINDIESD_CASE(pow_scalar);
    MINDIESD_CASE(clamp);
  }
#undef MINDIESD_CASE
}

template <typename F>
MINDIESD_HD void with_binary_kind(BinaryKind k, F&& f) {
  using B = BinaryKind;
#define MINDIESD_CASE(K)                  \
  case B::K:                              \
    f(std::integral_constant<B, B::K>{}); \
    return
  switch (k) {
    MINDIESD_CASE(add);
    MINDIESD_CASE(sub);
    MINDIESD_CASE(mul);
    MINDIESD_CASE(div);
    MINDIESD_CASE(maximum);
    MINDIESD_CASE(minimum);
    MINDIESD_CASE(pow);
    MINDIESD_CASE(eq);
    MINDIESD_CASE(ne);
    MINDIESD_CASE(lt);
    MINDIESD_CASE(le);
    MINDIESD_CASE(gt);
    MINDIESD_CASE(ge);
  }
#undef MINDIESD_CASE
}

template <typename F>
MINDIESD_HD void with_ternary_kind(TernaryKind k, F&& f) {
  using T = TernaryKind;
  switch (k) {
    case T::where:
      f(std::integral_constant<T, T::where>{});
      return;
    case T::fma:
      f(std::integral_constant<T, T::fma>{});
      return;
    case T::lerp:
      f(std::integral_constant<T, T::lerp>{});
      return;
  }
}

// Run-time-kind forms, for the strided paths (one switch per element; index math costs more).
MINDIESD_HD float apply_unary(const UnaryParams& p, float x) {
  float y = 0.0f;
  with_unary_kind(p.kind, [&](auto k) { y = unary_op<decltype(k)::value>(x, p.alpha, p.beta); });
  return y;
}
MINDIESD_HD float apply_binary(BinaryKind kind, float a, float b) {
  float y = 0.0f;
  with_binary_kind(kind, [&](auto k) { y = binary_op<decltype(k)::value>(a, b); });
  return y;
}
MINDIESD_HD int64_t apply_binary_int(BinaryKind kind, int64_t a, int64_t b) {
  int64_t y = 0;
  with_binary_kind(kind, [&](auto k) { y = binary_int_op<decltype(k)::value>(a, b); });
  return y;
}
MINDIESD_HD float apply_ternary(TernaryKind kind, float a, float b, float c) {
  float y = 0.0f;
  with_ternary_kind(kind, [&](auto k) { y = ternary_op<decltype(k)::value>(a, b, c); });
  return y;
}

}  // namespace mindiesd::cuda
