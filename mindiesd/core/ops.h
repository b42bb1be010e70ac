// The op front ends: argument checks, broadcasting, dtype promotion and output allocation,
// then dispatch to a backend kernel. Names and semantics follow PyTorch where one exists.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::ops {

// ---- creation ----
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
// Philox noise (see RandomParams); element i uses counter offset + i.
Tensor randn(const Shape& shape, uint64_t seed, uint64_t offset = 0, DType dtype = DType::f32,
             Device device = Device::cpu());
Tensor rand(const Shape& shape, uint64_t seed, uint64_t offset = 0, float low = 0.0f,
            float high = 1.0f, DType dtype = DType::f32, Device device = Device::cpu());

// ---- elementwise ----
DType promote_types(DType a, DType b);
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what = "broadcast");

Tensor unary(const Tensor& x, UnaryKind kind, float alpha = 1.0f, float beta = 0.0f);
inline Tensor neg(const Tensor& x) { return unary(x, UnaryKind::neg); }
inline Tensor abs(const Tensor& x) { return unary(x, UnaryKind::abs); }
inline Tensor exp(const Tensor& x) { return unary(x, UnaryKind::exp); }
inline Tensor log(const Tensor& x) { return unary(x, UnaryKind::log); }
inline Tensor sqrt(const Tensor& x) { return unary(x, UnaryKind::sqrt); }
inline Tensor rsqrt(const Tensor& x) { return unary(x, UnaryKind::rsqrt); }
inline Tensor sin(const Tensor& x) { return unary(x, UnaryKind::sin); }
inline Tensor cos(const Tensor& x) { return unary(x, UnaryKind::cos); }
inline Tensor tanh(const Tensor& x) { return unary(x, UnaryKind::tanh); }
inline Tensor sigmoid(const Tensor& x) { return unary(x, UnaryKind::sigmoid); }
inline Tensor silu(const Tensor& x) { return unary(x, UnaryKind::silu); }
inline Tensor gelu(const Tensor& x, bool tanh_approx = false) {
  return unary(x, tanh_approx ? UnaryKind::gelu_tanh : UnaryKind::gelu);
}
inline Tensor relu(const Tensor& x) { return unary(x, UnaryKind::relu); }
inline Tensor square(const Tensor& x) { return unary(x, UnaryKind::square); }
inline Tensor affine(const Tensor& x, float alpha, float beta) {
  return unary(x, UnaryKind::affine, alpha, beta);
}
inline Tensor clamp(const Tensor& x, float lo, float hi) {
  return unary(x, UnaryKind::clamp, lo, hi);
}

Tensor binary(const Tensor& a, const Tensor& b, BinaryKind kind);
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryKind::add); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryKind::sub); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryKind::mul); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryKind::div); }
inline Tensor maximum(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryKind::maximum); }
inline Tensor minimum(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryKind::minimum); }

Tensor ternary(const Tensor& a, const Tensor& b, const Tensor& c, TernaryKind kind);
inline Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return ternary(cond, a, b, TernaryKind::where);
}
inline Tensor fma(const Tensor& a, const Tensor& b, const Tensor& c) {
  return ternary(a, b, c, TernaryKind::fma);
}
inline Tensor lerp(const Tensor& a, const Tensor& b, const Tensor& w) {
  return ternary(a, b, w, TernaryKind::lerp);
}

// ---- reductions (dims may be negative; empty dims = all) ----
Tensor reduce(const Tensor& x, std::span<const int> dims, ReduceKind kind, bool keepdim = false,
              int correction = 1);
inline Tensor sum(const Tensor& x, std::initializer_list<int> dims, bool keepdim = false) {
  return reduce(x, {dims.begin(), dims.size()}, ReduceKind::sum, keepdim);
}
inline Tensor mean(const Tensor& x, std::initializer_list<int> dims, bool keepdim = false) {
  return reduce(x, {dims.begin(), dims.size()}, ReduceKind::mean, keepdim);
}
inline Tensor max(const Tensor& x, std::initializer_list<int> dims, bool keepdim = false) {
  return reduce(x, {dims.begin(), dims.size()}, ReduceKind::max, keepdim);
}
inline Tensor var(const Tensor& x, std::initializer_list<int> dims, int correction = 1,
                  bool keepdim = false) {
  return reduce(x, {dims.begin(), dims.size()}, ReduceKind::var, keepdim, correction);
}
Tensor softmax(const Tensor& x, int dim);

// ---- linear algebra ----
// a (..., M, K) @ b (..., K, N) [+ bias (N)]; batch dims broadcast; f32 accumulation. The
// result has a's dtype unless out_dtype is given. Transposed views are used without copies.
Tensor matmul(const Tensor& a, const Tensor& b, const Tensor& bias = Tensor(),
              std::optional<DType> out_dtype = std::nullopt);
// x (..., in) @ weight (out, in)^T + bias, as torch.nn.functional.linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// The grouped GEMM of mixture-of-experts layers (torch._grouped_mm with offsets):
// out[r] = x[r] @ w[e]^T for the rows r in [offsets[e], offsets[e+1]) of each group e, one
// call for all groups. x (R, K) and w (E, N, K) float of one dtype; offsets (E + 1) i32/i64 on
// x's device, non-decreasing in [0, R]. Rows outside every group are zero. The result has x's
// dtype unless out_dtype is given; f32 accumulation. The CPU checks the offsets; the CUDA
// kernels read them on the device (no host sync) and clamp each into [previous end, R].
Tensor grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& offsets,
                      std::optional<DType> out_dtype = std::nullopt);

// ---- layout ----
Tensor cat(std::span<const Tensor> xs, int dim);
std::vector<Tensor> split(const Tensor& x, std::span<const int64_t> sizes, int dim);  // views
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim);                       // views
// pads: (before, after) pairs starting from the LAST dim, as torch.nn.functional.pad.
Tensor pad(const Tensor& x, std::span<const int64_t> pads, PadMode mode = PadMode::constant,
           float value = 0.0f);
Tensor repeat(const Tensor& x, std::span<const int64_t> repeats);  // torch.Tensor.repeat
Tensor index_select(const Tensor& x, int dim, const Tensor& index);
Tensor gather(const Tensor& x, int dim, const Tensor& index);

// ---- convolution and resampling ----
struct ConvOptions {
  std::vector<int64_t> stride, padding, dilation;  // one value or one per spatial dim
  int64_t groups = 1;
};
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const ConvOptions& options = {});
Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const ConvOptions& options = {});
// NCHW resize to (out_h, out_w); scale_* as in InterpolateParams.
Tensor interpolate(const Tensor& x, int64_t out_h, int64_t out_w, InterpolateMode mode,
                   bool align_corners = false, double scale_factor_h = 0.0,
                   double scale_factor_w = 0.0);

}  // namespace mindiesd::ops
