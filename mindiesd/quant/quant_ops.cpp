#include "mindiesd/quant/quant_ops.h"

#include <cmath>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"

namespace mindiesd::quant {

namespace {

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// x as (M, K) rows with unit column stride, and smooth as a contiguous f32 (K) vector.
Tensor rows_of(const Tensor& x, const char* op) {
  MINDIESD_CHECK(x.dim() == 2 && is_float(x.dtype()), InvalidArgument, op,
                 ": x must be a 2-d float tensor, got ", x.str());
  return x.stride(1) == 1 ? x : x.contiguous();
}

Tensor smooth_of(const Tensor& smooth, int64_t k, const char* op) {
  if (!smooth.defined()) return smooth;
  MINDIESD_CHECK(smooth.dim() == 1 && smooth.size(0) == k, InvalidArgument, op, ": smooth ",
                 smooth.shape().str(), " must be (", k, ")");
  return smooth.to(DType::f32).contiguous();
}

// A (len) f32 / i32 vector argument of quant_matmul, contiguous.
Tensor vector_arg(const Tensor& t, int64_t len, DType dtype, const char* name) {
  if (!t.defined()) return t;
  MINDIESD_CHECK(t.numel() == len && t.dtype() == dtype, InvalidArgument, "quant_matmul: ", name,
                 " ", t.str(), " must be (", len, ") ", dtype_name(dtype));
  return t.reshape({len}).contiguous();
}

}  // namespace

QuantizedRows quantize_per_row(const Tensor& x_in, DType code, const Tensor& smooth) {
  const Tensor x = rows_of(x_in, "quantize_per_row");
  MINDIESD_CHECK(code == DType::i8 || code == DType::f8_e4m3 || code == DType::i4, InvalidArgument,
                 "quantize_per_row: codes must be i8, f8_e4m3 or i4, got ", dtype_name(code));
  MINDIESD_CHECK(code != DType::i4 || x.size(1) % 2 == 0, InvalidArgument,
                 "quantize_per_row: int4 codes need an even row length, got ", x.size(1));
  QuantizedRows r{Tensor::empty(x.shape(), code, x.device()),
                  Tensor::empty({x.size(0)}, DType::f32, x.device())};
  if (x.numel() == 0) return r;
  QuantizeParams p;
  p.kind = QuantizeKind::per_row;
  const Tensor in[] = {x, smooth_of(smooth, x.size(1), "quantize_per_row")};
  const Tensor out[] = {r.codes, r.scale};
  dispatch(OpId::quantize, std::span<const Tensor>(in, in[1].defined() ? 2 : 1), out, &p);
  return r;
}

Tensor quantize_per_tensor(const Tensor& x_in, float scale, float offset, const Tensor& smooth) {
  const Tensor x = rows_of(x_in, "quantize_per_tensor");
  MINDIESD_CHECK(std::isfinite(scale) && scale > 0 && std::isfinite(offset), InvalidArgument,
                 "quantize_per_tensor: scale ", scale, " must be positive and offset ", offset,
                 " finite");
  Tensor q = Tensor::empty(x.shape(), DType::i8, x.device());
  if (x.numel() == 0) return q;
  QuantizeParams p;
  p.kind = QuantizeKind::per_tensor;
  p.scale = scale;
  p.offset = offset;
  const Tensor in[] = {x, smooth_of(smooth, x.size(1), "quantize_per_tensor")};
  dispatch(OpId::quantize, std::span<const Tensor>(in, in[1].defined() ? 2 : 1), {&q, 1}, &p);
  return q;
}

Tensor quant_matmul(const Tensor& xq, const Tensor& wq, const QuantEpilogue& e, DType out_dtype) {
  MINDIESD_CHECK(xq.dim() == 2 && wq.dim() == 2 && xq.size(1) == wq.size(1), InvalidArgument,
                 "quant_matmul: codes ", xq.shape().str(), " and weight ", wq.shape().str(),
                 " (expected (M, K) and (N, K))");
  MINDIESD_CHECK(
      xq.dtype() == wq.dtype() && (xq.dtype() == DType::i8 || xq.dtype() == DType::f8_e4m3),
      InvalidArgument, "quant_matmul: codes must be both i8 or both f8_e4m3, got ",
      dtype_name(xq.dtype()), " and ", dtype_name(wq.dtype()));
  MINDIESD_CHECK(xq.is_contiguous() && wq.is_contiguous(), InvalidArgument,
                 "quant_matmul: codes must be contiguous");
  const int64_t m = xq.size(0), n = wq.size(0);
  const bool raw = out_dtype == DType::i32;
  MINDIESD_CHECK(raw || is_float(out_dtype), InvalidArgument,
                 "quant_matmul: output must be i32 or a float dtype, got ", dtype_name(out_dtype));
  MINDIESD_CHECK(!raw || (!e.row_scale.defined() && !e.col_scale.defined() &&
                          !e.quant_bias.defined() && !e.bias.defined() && !e.activation),
                 InvalidArgument, "quant_matmul: an i32 output takes no epilogue");
  MINDIESD_CHECK(!e.quant_bias.defined() || xq.dtype() == DType::i8, InvalidArgument,
                 "quant_matmul: quant_bias needs int8 codes");
  Tensor out = Tensor::empty({m, n}, out_dtype, xq.device());
  if (out.numel() == 0) return out;
  if (xq.size(1) == 0) MINDIESD_THROW(InvalidArgument, "quant_matmul: K = 0");
  QuantMatmulParams p;
  if (e.activation) {
    const UnaryKind a = *e.activation;
    MINDIESD_CHECK(a == UnaryKind::gelu || a == UnaryKind::gelu_tanh || a == UnaryKind::silu ||
                       a == UnaryKind::relu,
                   InvalidArgument,
                   "quant_matmul: activation must be gelu, gelu_tanh, silu or relu");
    p.has_activation = true;
    p.activation = a;
  }
  const Tensor in[] = {xq,
                       wq,
                       vector_arg(e.row_scale, m, DType::f32, "row_scale"),
                       vector_arg(e.col_scale, n, DType::f32, "col_scale"),
                       vector_arg(e.quant_bias, n, DType::i32, "quant_bias"),
                       vector_arg(e.bias, n, DType::f32, "bias")};
  dispatch(OpId::quant_matmul, in, {&out, 1}, &p);
  return out;
}

Tensor dequantize(const Tensor& wq, const Tensor& scale, const Tensor& offset, DType out_dtype) {
  MINDIESD_CHECK(
      wq.dim() == 2 && wq.is_contiguous() &&
          (wq.dtype() == DType::i8 || wq.dtype() == DType::i4 || wq.dtype() == DType::f8_e4m3),
      InvalidArgument, "dequantize: codes must be contiguous 2-d i8, i4 or f8_e4m3, got ",
      wq.str());
  MINDIESD_CHECK(scale.defined() && scale.dim() == 2 && scale.size(0) == wq.size(0) &&
                     scale.size(1) > 0 && wq.size(1) % scale.size(1) == 0,
                 InvalidArgument, "dequantize: scale ",
                 scale.defined() ? scale.shape().str() : "(none)", " must be (", wq.size(0),
                 ", G) with G dividing ", wq.size(1));
  MINDIESD_CHECK(!offset.defined() || offset.shape() == scale.shape(), InvalidArgument,
                 "dequantize: offset ", offset.defined() ? offset.shape().str() : "",
                 " must match scale ", scale.shape().str());
  MINDIESD_CHECK(is_float(out_dtype), InvalidArgument, "dequantize: output must be a float dtype");
  Tensor out = Tensor::empty(wq.shape(), out_dtype, wq.device());
  if (out.numel() == 0) return out;
  const Tensor in[] = {wq, scale.to(DType::f32).contiguous(),
                       offset.defined() ? offset.to(DType::f32).contiguous() : Tensor()};
  dispatch(OpId::dequantize, std::span<const Tensor>(in, offset.defined() ? 3 : 2), {&out, 1},
           nullptr);
  return out;
}

QuantizedRows quantize_weight(const Tensor& weight, DType code, int64_t group) {
  MINDIESD_CHECK(weight.dim() == 2, InvalidArgument, "quantize_weight: weight ", weight.str(),
                 " must be 2-d (out, in)");
  const int64_t n = weight.size(0), k = weight.size(1);
  const int64_t g = group > 0 ? group : k;
  MINDIESD_CHECK(k % g == 0, InvalidArgument, "quantize_weight: group size ", g,
                 " does not divide the ", k, " input features");
  QuantizedRows r = quantize_per_row(weight.contiguous().reshape({n * (k / g), g}), code);
  r.codes = r.codes.view({n, k});
  r.scale = r.scale.view({n, k / g});
  return r;
}

}  // namespace mindiesd::quant
