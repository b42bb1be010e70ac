// The one measure of how far a computed result is from the wanted one, for every test that
// bounds a difference. A NaN or an infinity on either side makes max_abs (and max_ulps) +inf,
// so any `EXPECT_LE(d.max_abs, bound)` fails on it: a hand-rolled std::max over |a - b| skips
// NaN (std::max(m, NaN) is m), which lets an all-NaN output pass a tolerance check.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/ref/ref.h"

namespace mindiesd::test {

struct Diff {
  double max_abs = 0;   // max |got - want|; +inf when any element is not finite
  double max_ulps = 0;  // max |got - want| in bf16 ulps of max(|want|, 1); +inf likewise
  double cosine = 1;    // of the two as vectors; 1 when both are zero
  int64_t count = 0;
  int64_t nonfinite = 0;         // elements where got or want is NaN or infinite
  int64_t first_nonfinite = -1;  // flat index of the first of them
};

// Element by element over the common length; a length mismatch is a test failure.
template <typename G, typename W>
Diff diff_values(std::span<const G> got, std::span<const W> want) {
  EXPECT_EQ(got.size(), want.size()) << "compared sequences differ in length";
  constexpr double kInf = std::numeric_limits<double>::infinity();
  Diff d;
  double gw = 0, gg = 0, ww = 0;
  const size_t n = std::min(got.size(), want.size());
  for (size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    if (!std::isfinite(g) || !std::isfinite(w)) {
      if (d.nonfinite++ == 0) d.first_nonfinite = static_cast<int64_t>(i);
      d.max_abs = d.max_ulps = kInf;
      continue;
    }
    const double e = std::fabs(g - w);
    d.max_abs = std::max(d.max_abs, e);
    // bf16 keeps 8 significant bits: its ulp at |w| >= 1 is 2^(exponent - 7); below 1 the
    // error is measured against 1 (cancelling terms carry their terms' rounding, not theirs).
    const double ulp = std::ldexp(1.0, std::ilogb(std::max(1.0, std::fabs(w))) - 7);
    d.max_ulps = std::max(d.max_ulps, e / ulp);
    gw += g * w;
    gg += g * g;
    ww += w * w;
  }
  d.count = static_cast<int64_t>(n);
  if (d.nonfinite > 0) {
    d.cosine = std::numeric_limits<double>::quiet_NaN();
  } else {
    d.cosine = gg * ww > 0 ? gw / std::sqrt(gg * ww) : (gg == ww ? 1.0 : 0.0);
  }
  return d;
}

template <typename G, typename W>
Diff diff_values(const std::vector<G>& got, const std::vector<W>& want) {
  return diff_values(std::span<const G>(got), std::span<const W>(want));
}

// Tensors of any dtype and layout (compared as f32 values); shapes must agree.
inline Diff diff(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  return diff_values(got.to_vector(), want.to_vector());
}

inline Diff diff(const Tensor& got, const ref::Array& want) {
  const ref::Array g = ref::from_tensor(got);
  EXPECT_EQ(g.shape, want.shape);
  return diff_values(g.v, want.v);
}

inline double max_abs_diff(const Tensor& got, const Tensor& want) {
  return diff(got, want).max_abs;
}
inline double max_abs_diff(const Tensor& got, const ref::Array& want) {
  return diff(got, want).max_abs;
}

// PSNR (dB) of two outputs in [0, 1] (images, videos); +inf when identical, NaN when either holds
// a non-finite value.
inline double psnr01(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double se = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return NAN;
    se += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
  }
  return se == 0 ? INFINITY : 10.0 * std::log10(static_cast<double>(x.size()) / se);
}

}  // namespace mindiesd::test
