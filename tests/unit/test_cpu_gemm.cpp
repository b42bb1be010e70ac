// mindiesd's own CPU GEMM (the matmul / conv kernels of builds without oneDNN), called directly
// so every build checks it against a float64 product: edge tiles, several K slices and column
// panels, strided and transposed operands in every float dtype, alpha and accumulation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cpu/gemm.h"

namespace mindiesd::cpu {
namespace {

GemmOperand operand(const Tensor& t) {
  return {t.data_ptr(), t.dtype(), t.stride(0), t.stride(1)};
}

// c = alpha * a @ b (+ c0 when accumulating) in float64, from the operands' rounded values.
std::vector<double> reference(const Tensor& a, const Tensor& b, float alpha,
                              const std::vector<float>& c0) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const std::vector<float> av = a.to_vector(), bv = b.to_vector();
  std::vector<double> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += static_cast<double>(av[i * k + p]) * bv[p * n + j];
      c[i * n + j] = alpha * s + (c0.empty() ? 0.0 : c0[i * n + j]);
    }
  return c;
}

void expect_gemm(int64_t m, int64_t n, int64_t k, DType dt, bool a_transposed, bool b_transposed,
                 float alpha = 1.0f, bool accumulate = false) {
  SCOPED_TRACE(testing::Message() << m << "x" << n << "x" << k << " " << dtype_name(dt)
                                  << (a_transposed ? " A^T" : "") << (b_transposed ? " B^T" : "")
                                  << " alpha " << alpha << (accumulate ? " +=" : ""));
  // Transposed operands are views of a (cols, rows) tensor: unit row stride.
  const Tensor a = a_transposed ? ops::randn({k, m}, 1).to(dt).transpose(0, 1)
                                : ops::randn({m, k}, 1).to(dt);
  const Tensor b = b_transposed ? ops::randn({n, k}, 2).to(dt).transpose(0, 1)
                                : ops::randn({k, n}, 2).to(dt);
  const int64_t ldc = n + 3;  // a padded output row
  std::vector<float> c(static_cast<size_t>(m * ldc), 0.5f), c0;
  if (accumulate)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c0.push_back(c[i * ldc + j] = std::sin(i * 7.0f + j));
  gemm_f32(m, n, k, alpha, operand(a), operand(b), c.data(), ldc, accumulate);
  const std::vector<double> want = reference(a, b, alpha, c0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      // f32 accumulation of k products of N(0,1) values: error ~ eps * sqrt(k) * |terms|.
      const double tol = 1e-5 * (1.0 + std::sqrt(static_cast<double>(k))) * std::abs(alpha) * 4;
      ASSERT_NEAR(c[i * ldc + j], want[i * n + j], tol + 1e-6 * std::abs(want[i * n + j]))
          << "at (" << i << ", " << j << ")";
    }
    for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], 0.5f) << "padding touched";
  }
}

TEST(CpuGemm, MatchesFloat64OnEdgeTilesAndBlockBoundaries) {
  for (auto [m, n, k] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {1, 17, 5}, {7, 1, 3}, {6, 16, 256}, {13, 33, 257}, {97, 20, 600},
           {5, 3100, 9}}) {  // 3100 columns: two column panels
    expect_gemm(m, n, k, DType::f32, false, false);
  }
}

TEST(CpuGemm, ReadsStridedOperandsOfEveryFloatDtype) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    expect_gemm(19, 40, 70, dt, false, true);  // x @ W^T, as linear layers call it
    expect_gemm(19, 40, 70, dt, true, false);
    expect_gemm(8, 24, 300, dt, true, true);
  }
}

TEST(CpuGemm, ScalesAndAccumulates) {
  expect_gemm(11, 29, 513, DType::f32, false, false, 0.25f, false);
  expect_gemm(11, 29, 513, DType::f32, false, true, -2.0f, true);  // += over three K slices
}

TEST(CpuGemm, EmptyInnerDimensionGivesZerosOrLeavesCAlone) {
  std::vector<float> c(6, 3.0f);
  const float one = 1.0f;
  const GemmOperand x{&one, DType::f32, 1, 1};
  gemm_f32(2, 3, 0, 1.0f, x, x, c.data(), 3, true);
  EXPECT_EQ(c, std::vector<float>(6, 3.0f));
  gemm_f32(2, 3, 0, 1.0f, x, x, c.data(), 3, false);
  EXPECT_EQ(c, std::vector<float>(6, 0.0f));
}

}  // namespace
}  // namespace mindiesd::cpu
