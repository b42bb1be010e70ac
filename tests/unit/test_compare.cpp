// The shared comparison (tests/compare.h) and the checks built on it fail when a result holds
// NaN or infinity, however loose the bound.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "compare.h"
#include "mindiesd/core/ops.h"
#include "parity/parity.h"

namespace mindiesd::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Runs `f` with its gtest failures intercepted (they do not fail this test) and expects at least
// one of them, one mentioning `needle`.
template <typename F>
void expect_fails(F&& f, const std::string& needle) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    f();
  }
  bool named = false;
  for (int i = 0; i < results.size(); ++i) {
    named |= std::string(results.GetTestPartResult(i).message()).find(needle) != std::string::npos;
  }
  EXPECT_GT(results.size(), 0) << "expected a failure mentioning \"" << needle << "\"";
  EXPECT_TRUE(named) << "no failure mentions \"" << needle << "\"";
}

Tensor filled(float v, Shape shape = {2, 3}) {
  return Tensor::from_vector(std::vector<float>(static_cast<size_t>(shape.numel()), v), shape);
}

TEST(Compare, AHandRolledMaxSkipsNaN) {
  // Why the helper exists: std::max(m, NaN) keeps m, so max |a - b| over an all-NaN output is 0.
  double m = 0;
  for (float g : {kNaN, kNaN}) m = std::max(m, static_cast<double>(std::fabs(g - 0.0f)));
  EXPECT_EQ(m, 0.0);
}

TEST(Compare, NonFiniteValuesMakeTheDifferenceInfinite) {
  const std::vector<float> want = {1, 2, 3, 4};
  for (float bad : {kNaN, kInf, -kInf}) {
    std::vector<float> got = want;
    got[2] = bad;
    const Diff d = diff_values(got, want);
    EXPECT_EQ(d.max_abs, std::numeric_limits<double>::infinity()) << bad;
    EXPECT_EQ(d.max_ulps, std::numeric_limits<double>::infinity()) << bad;
    EXPECT_TRUE(std::isnan(d.cosine)) << bad;
    EXPECT_EQ(d.nonfinite, 1);
    EXPECT_EQ(d.first_nonfinite, 2);
    // On the wanted side too, and equal non-finite values on both sides are no excuse.
    EXPECT_EQ(diff_values(want, got).max_abs, std::numeric_limits<double>::infinity());
    EXPECT_EQ(diff_values(got, got).nonfinite, 1);
  }
  const Diff same = diff_values(want, want);
  EXPECT_EQ(same.max_abs, 0.0);
  EXPECT_EQ(same.cosine, 1.0);
  EXPECT_EQ(same.nonfinite, 0);
}

TEST(Compare, MeasuresFiniteDifferences) {
  const Diff d =
      diff_values(std::vector<float>{1.0f, 2.5f, -300.0f}, std::vector<double>{1.0, 2.0, -302.0});
  EXPECT_EQ(d.max_abs, 2.0);
  // bf16's ulp is 2 at 256..512 (1 ulp off) and 1/64 at 2..4 (0.5 off is 32 ulps).
  EXPECT_EQ(d.max_ulps, 32.0);
  EXPECT_EQ(diff_values(std::vector<float>{-300.0f}, std::vector<float>{-302.0f}).max_ulps, 1.0);
  EXPECT_EQ(diff_values(std::vector<float>{0.0f}, std::vector<float>{0.0f}).cosine, 1.0);
  EXPECT_NONFATAL_FAILURE(diff_values(std::vector<float>{1, 2}, std::vector<float>{1}),
                          "differ in length");
}

TEST(Compare, TensorChecksFailOnNaNWhateverTheBound) {
  const Tensor zeros = filled(0.0f);
  const Tensor nan = filled(kNaN);
  EXPECT_EQ(max_abs_diff(nan, zeros), std::numeric_limits<double>::infinity());
  EXPECT_NONFATAL_FAILURE(EXPECT_LE(max_abs_diff(nan, zeros), 1e30), "max_abs_diff");
  expect_fails([&] { expect_close(nan, zeros, 1e30, -1.0, "all NaN"); }, "non-finite");
  expect_fails([&] { expect_parity(nan.to(DType::bf16), zeros, "all NaN", DType::bf16); },
               "non-finite");
  expect_fails([&] { expect_parity(nan, zeros, "all NaN", DType::f32); }, "non-finite");
  // One NaN among good values.
  std::vector<float> v(6, 1.0f);
  v[4] = kNaN;
  const Tensor one_nan = Tensor::from_vector(v, {2, 3});
  expect_fails([&] { expect_close(one_nan, filled(1.0f), 1e30, -1.0, "one NaN"); }, "flat index 4");
  // Against the float64 reference's arrays too.
  ref::Array want({2, 3}, 0.0);
  EXPECT_EQ(max_abs_diff(nan, want), std::numeric_limits<double>::infinity());
  // And the finite case passes.
  expect_close(filled(1.0f), filled(1.0f), 0.0, 1.0, "equal");
}

}  // namespace
}  // namespace mindiesd::test
