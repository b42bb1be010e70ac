// The comparison the layer parity tests share: a mindiesd output against a PyTorch golden.
//   f32: both sides compute in f32 and differ by summation order: max |diff| <= 2e-5.
//   bf16: PyTorch rounds to bf16 after every op, mindiesd once at the end of a fused op, so a
//         few bf16 ulps: <= 4 ulps of max(|want|, 1) (bf16 keeps 8 significant bits).
// Cosine >= 0.9999999 (f32) / 0.9999 (bf16) guards against errors hidden in small values.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "compare.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::test {

inline void expect_parity(const Tensor& got, const Tensor& want, const std::string& name,
                          DType dt) {
  ASSERT_EQ(got.shape(), want.shape()) << name;
  EXPECT_EQ(got.dtype(), dt) << name;
  const Diff d = diff(got, want);
  std::printf("  %-34s max |diff| %.3g (%.2f bf16 ulps), cosine %.8f\n", name.c_str(), d.max_abs,
              d.max_ulps, d.cosine);
  EXPECT_EQ(d.nonfinite, 0) << name << ": first non-finite value at flat index "
                            << d.first_nonfinite;
  if (dt == DType::f32)
    EXPECT_LE(d.max_abs, 2e-5) << name;
  else
    EXPECT_LE(d.max_ulps, 4.0) << name;
  EXPECT_GE(d.cosine, dt == DType::f32 ? 0.9999999 : 0.9999) << name;
}

// Model-level parity with bounds stated by the test: max |diff| and cosine similarity, both
// printed so a test log records how close the port is.
inline void expect_close(const Tensor& got, const Tensor& want, double max_abs, double min_cos,
                         const std::string& name) {
  ASSERT_EQ(got.shape(), want.shape()) << name;
  const Diff d = diff(got, want);
  std::printf("  %-40s max |diff| %.3g, cosine %.9f\n", name.c_str(), d.max_abs, d.cosine);
  EXPECT_EQ(d.nonfinite, 0) << name << ": first non-finite value at flat index "
                            << d.first_nonfinite;
  EXPECT_LE(d.max_abs, max_abs) << name << " (cosine " << d.cosine << ")";
  EXPECT_GE(d.cosine, min_cos) << name << " (max |diff| " << d.max_abs << ")";
}

// A bf16 result against diffusers' bf16 result of the same inputs, bounded by diffusers' own
// bf16 error: gap = max |diffusers bf16 - f32| (f32: diffusers' f32 result, or ours where that
// matches it to f32 precision). Each bf16 run rounds in its own places, so ours may sit on the
// other side of the f32 result: within `factor` gaps of diffusers' bf16 and of f32.
// Returns the three differences for further checks (cosines, say).
struct Bf16Diffs {
  Diff gap, to_bf16, to_f32;
};

inline Bf16Diffs expect_bf16_like_diffusers(const Tensor& ours, const Tensor& diffusers_bf16,
                                            const Tensor& f32, const std::string& name,
                                            double factor = 2.0) {
  EXPECT_EQ(ours.shape(), diffusers_bf16.shape()) << name;
  const Diff gap = diff(diffusers_bf16, f32);
  const Diff to_bf16 = diff(ours, diffusers_bf16);
  const Diff to_f32 = diff(ours, f32);
  std::printf("  %-34s diffusers bf16 vs f32 %.3g; ours vs diffusers bf16 %.3g (%.2f gaps), "
              "vs f32 %.3g (%.2f gaps)\n",
              name.c_str(), gap.max_abs, to_bf16.max_abs, to_bf16.max_abs / gap.max_abs,
              to_f32.max_abs, to_f32.max_abs / gap.max_abs);
  EXPECT_EQ(gap.nonfinite + to_bf16.nonfinite + to_f32.nonfinite, 0) << name;
  EXPECT_LE(to_bf16.max_abs, factor * gap.max_abs) << name << " vs diffusers bf16";
  EXPECT_LE(to_f32.max_abs, factor * gap.max_abs) << name << " vs f32";
  return {gap, to_bf16, to_f32};
}

}  // namespace mindiesd::test
