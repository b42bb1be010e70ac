#include "mindiesd/layer/norm.h"

#include <cmath>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::layer {

namespace {

bool is_norm_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

void check_float(const Tensor& t, const char* fn, const char* arg) {
  MINDIESD_CHECK(is_norm_dtype(t.dtype()), InvalidArgument, fn, ": ", arg,
                 " must be f32, bf16 or f16, got ", dtype_name(t.dtype()), " ", t.shape().str());
}

void check_eps(float eps, const char* fn) {
  MINDIESD_CHECK(std::isfinite(eps) && eps > 0.0f, InvalidArgument, fn,
                 ": eps must be a positive finite number, got ", eps);
}

// weight / bias: undefined, or a vector of the normalised dim's length.
void check_channel(const Tensor& t, int64_t c, const char* fn, const char* arg, const Tensor& x) {
  if (!t.defined()) return;
  check_float(t, fn, arg);
  MINDIESD_CHECK(t.dim() == 1 && t.size(0) == c, InvalidArgument, fn, ": ", arg, " of shape ",
                 t.shape().str(), " for input ", x.shape().str(), " (expected (", c, "))");
  MINDIESD_CHECK(t.device() == x.device(), InvalidArgument, fn, ": ", arg, " on ", t.device().str(),
                 ", input on ", x.device().str());
}

// The x-shaped broadcast view of a scale / shift tensor (see norm.h for the rules).
Tensor modulation_view(const Tensor& m, const Tensor& x, const char* fn, const char* arg) {
  check_float(m, fn, arg);
  const int64_t c = x.size(-1);
  MINDIESD_CHECK(m.dim() >= 1 && m.size(-1) == c, InvalidArgument, fn, ": ", arg, " of shape ",
                 m.shape().str(), " for input ", x.shape().str(), " (its last dim must be ", c,
                 ")");
  Tensor v = m;
  if (m.dim() == 2 && x.dim() >= 3) {  // (B, C): per sample, as diffusers' scale[:, None]
    MINDIESD_CHECK(m.size(0) == x.size(0) || m.size(0) == 1, InvalidArgument, fn, ": ", arg,
                   " of shape ", m.shape().str(), " is (batch, C) but input ", x.shape().str(),
                   " has batch ", x.size(0));
    while (v.dim() < x.dim()) v = v.unsqueeze(1);
  }
  MINDIESD_CHECK(v.dim() <= x.dim(), InvalidArgument, fn, ": ", arg, " of shape ", m.shape().str(),
                 " has more dims than input ", x.shape().str());
  for (int i = 0; i < v.dim(); ++i) {
    const int64_t dv = v.size(v.dim() - 1 - i), dx = x.size(x.dim() - 1 - i);
    MINDIESD_CHECK(dv == dx || dv == 1, InvalidArgument, fn, ": ", arg, " of shape ",
                   m.shape().str(), " does not broadcast to input ", x.shape().str());
  }
  MINDIESD_CHECK(m.device() == x.device(), InvalidArgument, fn, ": ", arg, " on ", m.device().str(),
                 ", input on ", x.device().str());
  return v.expand(x.shape());
}

struct RowNorm {
  NormKind kind = NormKind::layer;
  float eps = 1e-5f;
  Tensor weight, bias, scale, shift, residual;
  bool round_normed = false;
  DType out_dtype = DType::f32;
};

// Checks and dispatches a last-dim norm; returns (sum or undefined, y).
AddNormResult run_row_norm(const Tensor& x_in, RowNorm a, const char* fn) {
  check_float(x_in, fn, "x");
  check_eps(a.eps, fn);
  MINDIESD_CHECK(x_in.dim() >= 1, InvalidArgument, fn, ": x must have at least 1 dim, got ",
                 x_in.shape().str());
  const int64_t c = x_in.size(-1);
  check_channel(a.weight, c, fn, "weight", x_in);
  check_channel(a.bias, c, fn, "bias", x_in);
  MINDIESD_CHECK(a.scale.defined() == a.shift.defined(), InvalidArgument, fn,
                 ": scale and shift go together (got only ", a.scale.defined() ? "scale" : "shift",
                 ")");
  Tensor scale, shift;
  if (a.scale.defined()) {
    scale = modulation_view(a.scale, x_in, fn, "scale");
    shift = modulation_view(a.shift, x_in, fn, "shift");
  }
  Tensor residual;
  DType sum_dtype = x_in.dtype();
  if (a.residual.defined()) {
    check_float(a.residual, fn, "residual");
    MINDIESD_CHECK(a.residual.shape() == x_in.shape(), InvalidArgument, fn, ": residual of shape ",
                   a.residual.shape().str(), " for x of shape ", x_in.shape().str(),
                   " (they must match)");
    residual = a.residual;
    sum_dtype = ops::promote_types(x_in.dtype(), residual.dtype());
  }
  AddNormResult r;
  r.normed = Tensor::empty(x_in.shape(), a.out_dtype, x_in.device());
  NormParams p;
  p.kind = a.kind;
  p.eps = a.eps;
  p.round_normed = a.round_normed;
  const Tensor in[] = {x_in, a.weight, a.bias, scale, shift, residual};
  if (residual.defined()) {
    r.sum = Tensor::empty(x_in.shape(), sum_dtype, x_in.device());
    const Tensor out[] = {r.normed, r.sum};
    dispatch(OpId::norm, in, out, &p);
  } else {
    dispatch(OpId::norm, in, {&r.normed, 1}, &p);
  }
  return r;
}

DType modulated_dtype(DType t, const Tensor& scale, const Tensor& shift) {
  if (scale.defined()) t = ops::promote_types(t, scale.dtype());
  if (shift.defined()) t = ops::promote_types(t, shift.dtype());
  return t;
}

// diffusers RMSNorm's output dtype and whether it rounds norm(x) before the weight.
void rms_dtypes(DType x, const Tensor& weight, RowNorm* a) {
  a->out_dtype = x;
  if (weight.defined() && is_norm_dtype(weight.dtype())) {
    // `hidden_states.to(self.weight.dtype) * self.weight` for a half weight; an f32 weight
    // multiplies the f32 hidden states, so the output is f32.
    a->out_dtype = weight.dtype();
    a->round_normed = weight.dtype() != DType::f32;
  }
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  RowNorm a;
  a.kind = NormKind::layer;
  a.eps = eps;
  a.weight = weight;
  a.bias = bias;
  a.out_dtype = x.dtype();
  return run_row_norm(x, a, "layer_norm").normed;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& bias) {
  MINDIESD_CHECK(!bias.defined() || weight.defined(), InvalidArgument,
                 "rms_norm: a bias needs a weight (diffusers RMSNorm adds it after the weight)");
  RowNorm a;
  a.kind = NormKind::rms;
  a.eps = eps;
  a.weight = weight;
  a.bias = bias;
  rms_dtypes(x.dtype(), weight, &a);
  return run_row_norm(x, a, "rms_norm").normed;
}

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                  float eps) {
  const char* fn = "group_norm";
  check_float(x, fn, "x");
  check_eps(eps, fn);
  MINDIESD_CHECK(x.dim() >= 2, InvalidArgument, fn, ": x must be (N, C, *spatial), got ",
                 x.shape().str());
  const int64_t c = x.size(1);
  MINDIESD_CHECK(groups > 0 && c % groups == 0, InvalidArgument, fn, ": groups ", groups,
                 " must be positive and divide the ", c, " channels of x ", x.shape().str());
  check_channel(weight, c, fn, "weight", x);
  check_channel(bias, c, fn, "bias", x);
  // The kernel walks (N, C, S); spatial dims that do not merge into one strided dim (a
  // cropped view, say) are copied once.
  const Shape ncs{x.size(0), c, x.numel() / std::max<int64_t>(1, x.size(0) * c)};
  const Tensor x3 = x.numel() == 0 ? Tensor::empty(ncs, x.dtype(), x.device())
                                   : (x.can_view(ncs) ? x.view(ncs) : x.reshape(ncs));
  Tensor y = Tensor::empty(ncs, x.dtype(), x.device());
  NormParams p;
  p.kind = NormKind::group;
  p.eps = eps;
  p.groups = groups;
  const Tensor in[] = {x3, weight, bias};
  dispatch(OpId::norm, in, {&y, 1}, &p);
  return y.view(x.shape());
}

Tensor layernorm_scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift, float eps,
                             const Tensor& weight, const Tensor& bias) {
  MINDIESD_CHECK(scale.defined() && shift.defined(), InvalidArgument,
                 "layernorm_scale_shift: scale and shift are required");
  RowNorm a;
  a.kind = NormKind::layer;
  a.eps = eps;
  a.weight = weight;
  a.bias = bias;
  a.scale = scale;
  a.shift = shift;
  a.out_dtype = modulated_dtype(x.dtype(), scale, shift);
  return run_row_norm(x, a, "layernorm_scale_shift").normed;
}

Tensor rmsnorm_scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift, float eps,
                           const Tensor& weight) {
  MINDIESD_CHECK(scale.defined() && shift.defined(), InvalidArgument,
                 "rmsnorm_scale_shift: scale and shift are required");
  RowNorm a;
  a.kind = NormKind::rms;
  a.eps = eps;
  a.weight = weight;
  a.scale = scale;
  a.shift = shift;
  rms_dtypes(x.dtype(), weight, &a);
  a.out_dtype = modulated_dtype(a.out_dtype, scale, shift);
  // Only a half-precision output can reproduce the weight-dtype cast.
  a.round_normed = a.round_normed && a.out_dtype == weight.dtype();
  return run_row_norm(x, a, "rmsnorm_scale_shift").normed;
}

AddNormResult add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                             const Tensor& bias, float eps, const Tensor& scale,
                             const Tensor& shift) {
  MINDIESD_CHECK(residual.defined(), InvalidArgument, "add_layer_norm: residual is required");
  check_float(x, "add_layer_norm", "x");
  check_float(residual, "add_layer_norm", "residual");
  RowNorm a;
  a.kind = NormKind::layer;
  a.eps = eps;
  a.weight = weight;
  a.bias = bias;
  a.scale = scale;
  a.shift = shift;
  a.residual = residual;
  a.out_dtype = modulated_dtype(ops::promote_types(x.dtype(), residual.dtype()), scale, shift);
  return run_row_norm(x, a, "add_layer_norm");
}

AddNormResult add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                           float eps) {
  MINDIESD_CHECK(residual.defined(), InvalidArgument, "add_rms_norm: residual is required");
  check_float(x, "add_rms_norm", "x");
  check_float(residual, "add_rms_norm", "residual");
  RowNorm a;
  a.kind = NormKind::rms;
  a.eps = eps;
  a.weight = weight;
  a.residual = residual;
  rms_dtypes(ops::promote_types(x.dtype(), residual.dtype()), weight, &a);
  return run_row_norm(x, a, "add_rms_norm");
}

}  // namespace mindiesd::layer
