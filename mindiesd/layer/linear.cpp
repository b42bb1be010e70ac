#include "mindiesd/layer/linear.h"

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/activation.h"

namespace mindiesd::layer {

namespace {
// The GEMM (+ bias + activation epilogue) into a tensor of `out_dtype`.
Tensor gemm(const Tensor& x, const Tensor& weight, const Tensor& bias,
            std::optional<UnaryKind> activation, DType out_dtype) {
  MINDIESD_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1),
                 InvalidArgument, "linear: input ", x.shape().str(), " and weight ",
                 weight.shape().str(), " (expected (out, ", x.dim() ? x.size(-1) : 0, "))");
  if (bias.defined())
    MINDIESD_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), InvalidArgument,
                   "linear: bias ", bias.shape().str(), " for weight ", weight.shape().str());
  if (activation) {
    const UnaryKind a = *activation;
    MINDIESD_CHECK(a == UnaryKind::gelu || a == UnaryKind::gelu_tanh || a == UnaryKind::silu ||
                       a == UnaryKind::relu,
                   InvalidArgument, "linear: epilogue activation must be gelu, gelu_tanh, silu or relu");
  }
  // (..., in) -> (rows, in) view where possible; the GEMM sees W^T as a strided view.
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = weight.size(0);
  const Tensor x2 = x.reshape({-1, x.size(-1)});
  const Tensor wt = weight.transpose(0, 1);
  Tensor y = Tensor::empty({x2.size(0), weight.size(0)}, out_dtype, x.device());
  MatmulParams p;
  if (activation) {
    p.has_activation = true;
    p.activation = *activation;
  }
  if (y.numel() > 0) {
    const Tensor in[] = {x2, wt, bias};
    dispatch(OpId::matmul, std::span<const Tensor>(in, bias.defined() ? 3 : 2), {&y, 1}, &p);
  }
  return y.view(out_shape);
}

// The impl's GEMM on x (..., in).
Tensor impl_gemm(const Tensor& x, const LinearImpl& impl, std::optional<UnaryKind> activation,
                 DType out_dtype, const Context& ctx) {
  MINDIESD_CHECK(x.dim() >= 1 && x.size(-1) == impl.in_features(), InvalidArgument, "linear: input ",
                 x.shape().str(), " for a layer of ", impl.in_features(), " inputs (", impl.describe(), ")");
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = impl.out_features();
  if (x.numel() == 0) return Tensor::empty(out_shape, out_dtype, x.device());
  return impl.forward(x.reshape({-1, x.size(-1)}), activation, out_dtype, ctx).view(out_shape);
}

// With a gate or residual the GEMM result stays f32 until the one rounding at the end, as a
// fully fused epilogue would keep it (a bf16 intermediate loses the small difference between
// residual and the gated update).
template <typename Gemm>
Tensor with_epilogue(const Tensor& x, const LinearEpilogue& e, const Gemm& gemm_to) {
  if (!e.gate.defined() && !e.residual.defined()) return gemm_to(x.dtype());
  const Tensor y = gemm_to(DType::f32);
  Tensor out;
  if (e.gate.defined() && e.residual.defined()) out = ops::fma(e.gate, y, e.residual);
  else if (e.gate.defined()) out = ops::mul(y, e.gate);
  else out = ops::add(y, e.residual);
  return out.to(x.dtype());
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const LinearEpilogue& e) {
  return with_epilogue(x, e, [&](DType t) { return gemm(x, weight, bias, e.activation, t); });
}

Tensor linear(const Tensor& x, const Linear& l, const Context& ctx, const LinearEpilogue& e) {
  if (ctx.linear_observer) ctx.linear_observer->observe(l.name, x, ctx);
  if (!l.impl) return linear(x, l.weight, l.bias, e);
  return with_epilogue(x, e, [&](DType t) { return impl_gemm(x, *l.impl, e.activation, t, ctx); });
}

Linear Linear::to(Device device) const {
  Linear l = *this;
  if (l.weight.defined()) l.weight = l.weight.to(device);
  if (l.bias.defined()) l.bias = l.bias.to(device);
  if (l.impl) l.impl = l.impl->to(device);
  return l;
}

Tensor gated_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, UnaryKind act) {
  // The projection stays f32 through the gating; one rounding at the end.
  const Tensor proj = gemm(x, weight, bias, std::nullopt, DType::f32);
  return gated_activation(proj, [act](const Tensor& g) { return ops::unary(g, act); }).to(x.dtype());
}

}  // namespace mindiesd::layer
