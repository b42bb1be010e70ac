// The comparison the layer parity tests share: a mindiesd output against a PyTorch golden.
//   f32: both sides compute in f32 and differ by summation order: max |diff| <= 2e-5.
//   bf16: PyTorch rounds to bf16 after every op, mindiesd once at the end of a fused op, so a
//         few bf16 ulps: <= 4 ulps of max(|want|, 1) (bf16 keeps 8 significant bits).
// Cosine >= 0.9999999 (f32) / 0.9999 (bf16) guards against errors hidden in small values.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "mindiesd/core/tensor.h"

namespace mindiesd::test {

inline void expect_parity(const Tensor& got, const Tensor& want, const std::string& name,
                          DType dt) {
  ASSERT_EQ(got.shape(), want.shape()) << name;
  EXPECT_EQ(got.dtype(), dt) << name;
  const std::vector<float> g = got.to_vector(), w = want.to_vector();
  double worst = 0, worst_ulps = 0, gw = 0, gg = 0, ww = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double d = std::fabs(g[i] - w[i]);
    worst = std::max(worst, d);
    worst_ulps =
        std::max(worst_ulps, d / (std::ldexp(1.0, -7) * std::max(1.0, std::fabs(double(w[i])))));
    gw += double(g[i]) * w[i];
    gg += double(g[i]) * g[i];
    ww += double(w[i]) * w[i];
  }
  const double cosine = gw / std::sqrt(gg * ww);
  std::printf("  %-34s max |diff| %.3g (%.2f bf16 ulps), cosine %.8f\n", name.c_str(), worst,
              worst_ulps, cosine);
  if (dt == DType::f32)
    EXPECT_LE(worst, 2e-5) << name;
  else
    EXPECT_LE(worst_ulps, 4.0) << name;
  EXPECT_GE(cosine, dt == DType::f32 ? 0.9999999 : 0.9999) << name;
}

// Max |diff| and cosine similarity of two tensors of the same shape (any dtypes).
struct Diff {
  double max_abs = 0;
  double cosine = 1;
};

inline Diff compare_tensors(const Tensor& got, const Tensor& want) {
  const std::vector<float> g = got.to_vector(), w = want.to_vector();
  Diff d;
  double gw = 0, gg = 0, ww = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    d.max_abs = std::max(d.max_abs, std::fabs(double(g[i]) - w[i]));
    gw += double(g[i]) * w[i];
    gg += double(g[i]) * g[i];
    ww += double(w[i]) * w[i];
  }
  d.cosine = gg * ww > 0 ? gw / std::sqrt(gg * ww) : (gg == ww ? 1.0 : 0.0);
  return d;
}

// Model-level parity with bounds stated by the test: max |diff| and cosine similarity, both
// printed so a test log records how close the port is.
inline void expect_close(const Tensor& got, const Tensor& want, double max_abs, double min_cos,
                         const std::string& name) {
  ASSERT_EQ(got.shape(), want.shape()) << name;
  const Diff d = compare_tensors(got, want);
  std::printf("  %-40s max |diff| %.3g, cosine %.9f\n", name.c_str(), d.max_abs, d.cosine);
  EXPECT_LE(d.max_abs, max_abs) << name << " (cosine " << d.cosine << ")";
  EXPECT_GE(d.cosine, min_cos) << name << " (max |diff| " << d.max_abs << ")";
}

}  // namespace mindiesd::test
