#include "mindiesd/layer/conv.h"

#include <cmath>
#include <string>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/norm.h"

namespace mindiesd::layer {

namespace {

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// A weight in x's dtype (undefined stays undefined).
Tensor as_dtype(const Tensor& t, DType dtype) {
  if (!t.defined() || t.dtype() == dtype) return t;
  return t.to(dtype);
}

void check_input(const Tensor& x, int rank, const std::string& what) {
  MINDIESD_CHECK(x.defined(), InvalidArgument, what, ": input is undefined");
  MINDIESD_CHECK(x.dim() == rank, InvalidArgument, what, ": input must have rank ", rank,
                 ", got shape ", x.shape().str());
  MINDIESD_CHECK(is_float(x.dtype()), InvalidArgument, what, ": input must be f32/bf16/f16, got ",
                 dtype_name(x.dtype()));
}

// weight (O, C / groups, k...) against x (N, C, ...) and bias (O).
void check_conv_weight(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                       const std::string& what) {
  MINDIESD_CHECK(w.dim() == x.dim(), InvalidArgument, what, ": weight of shape ", w.shape().str(),
                 " does not fit input of shape ", x.shape().str());
  MINDIESD_CHECK(groups >= 1 && x.size(1) % groups == 0 && w.size(1) * groups == x.size(1),
                 InvalidArgument, what, ": input has ", x.size(1), " channels (shape ",
                 x.shape().str(), ") but weight of shape ", w.shape().str(), " with groups ",
                 groups, " expects ", w.size(1) * groups);
  MINDIESD_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), InvalidArgument, what,
                 ": bias of shape ", b.shape().str(), " does not match weight of shape ",
                 w.shape().str());
}

std::string name_of(const ModuleWeights& w, const char* fallback) {
  if (w.prefix.empty()) return fallback;
  std::string p = w.prefix;
  if (p.back() == '.') p.pop_back();
  return p;
}

}  // namespace

Tensor conv2d(const Tensor& x, const ModuleWeights& w, const Conv2dOptions& o) {
  const std::string what = name_of(w, "conv2d");
  check_input(x, 4, what);
  const Tensor weight = as_dtype(w.get("weight"), x.dtype());
  const Tensor bias = as_dtype(w.get_optional("bias"), x.dtype());
  check_conv_weight(x, weight, bias, o.groups, what);
  MINDIESD_CHECK(o.stride >= 1, InvalidArgument, what, ": stride must be >= 1, got ", o.stride);
  const int64_t ph = o.padding >= 0 ? o.padding : weight.size(2) / 2;
  const int64_t pw = o.padding >= 0 ? o.padding : weight.size(3) / 2;
  MINDIESD_CHECK(x.size(2) + 2 * ph >= weight.size(2) && x.size(3) + 2 * pw >= weight.size(3),
                 InvalidArgument, what, ": input of shape ", x.shape().str(),
                 " is smaller than the kernel of weight ", weight.shape().str(), " with padding ",
                 ph);
  return ops::conv2d(x, weight, bias, {{o.stride}, {ph, pw}, {1}, o.groups});
}

// ---- causal conv3d ----

Tensor causal_conv3d(const Tensor& x, const Tensor& weight_in, const Tensor& bias_in,
                     std::array<int64_t, 3> stride, std::array<int64_t, 3> padding,
                     const Tensor& cache_x, const char* what) {
  check_input(x, 5, what);
  const Tensor weight = as_dtype(weight_in, x.dtype());
  const Tensor bias = as_dtype(bias_in, x.dtype());
  check_conv_weight(x, weight, bias, 1, what);
  for (int i = 0; i < 3; ++i) {
    MINDIESD_CHECK(stride[i] >= 1 && padding[i] >= 0, InvalidArgument, what,
                   ": stride must be >= 1 and padding >= 0");
  }
  Tensor in = x;
  int64_t front = 2 * padding[0];
  if (cache_x.defined() && front > 0) {
    MINDIESD_CHECK(cache_x.dim() == 5 && cache_x.size(0) == x.size(0) &&
                       cache_x.size(1) == x.size(1) && cache_x.size(3) == x.size(3) &&
                       cache_x.size(4) == x.size(4),
                   InvalidArgument, what, ": cache of shape ", cache_x.shape().str(),
                   " does not match input of shape ", x.shape().str());
    const Tensor parts[] = {as_dtype(cache_x, x.dtype()), x};
    in = ops::cat(parts, 2);
    front = std::max<int64_t>(0, front - cache_x.size(2));  // diffusers: padding[4] -= Tc
  }
  if (front > 0) {
    const int64_t pads[] = {0, 0, 0, 0, front, 0};
    in = ops::pad(in, pads);
  }
  MINDIESD_CHECK(in.size(2) >= weight.size(2), InvalidArgument, what, ": input of shape ",
                 x.shape().str(), " has too few frames for weight ", weight.shape().str());
  return ops::conv3d(in, weight, bias,
                     {{stride[0], stride[1], stride[2]}, {0, padding[1], padding[2]}, {1}, 1});
}

CausalConv3d::CausalConv3d(const ModuleWeights& w, std::array<int64_t, 3> stride,
                           std::array<int64_t, 3> padding)
    : weight_(w.get("weight")),
      bias_(w.get_optional("bias")),
      stride_(stride),
      padding_(padding),
      name_(name_of(w, "CausalConv3d")) {
  MINDIESD_CHECK(weight_.dim() == 5, InvalidArgument, name_,
                 ": weight must be (O, C, kt, kh, kw), got ", weight_.shape().str());
}

Tensor CausalConv3d::forward(const Tensor& x, const Tensor& cache_x) const {
  MINDIESD_CHECK(weight_.defined(), InvalidArgument, "CausalConv3d: no weights bound");
  return causal_conv3d(x, weight_, bias_, stride_, padding_, cache_x, name_.c_str());
}

Tensor CausalConv3d::operator()(const Tensor& x) {
  check_input(x, 5, name_);
  // AutoencoderKLWan: cache_x = x[:, :, -CACHE_T:].clone(), with the old cache's last frame in
  // front when the chunk is shorter than CACHE_T.
  const int64_t t = x.size(2);
  Tensor next = x.slice(2, std::max<int64_t>(0, t - kCausalCacheFrames), t).contiguous();
  if (next.size(2) < kCausalCacheFrames && cache_.defined()) {
    const Tensor parts[] = {cache_.slice(2, cache_.size(2) - 1, cache_.size(2)), next};
    next = ops::cat(parts, 2);
  }
  if (next.shares_storage(x)) next = next.clone();
  Tensor y = forward(x, cache_);
  cache_ = next;
  return y;
}

// ---- resampling ----

Tensor upsample2d(const Tensor& x, const ModuleWeights& w, UpsampleMode mode) {
  const std::string what = name_of(w, "upsample2d");
  check_input(x, 4, what);
  const Tensor h = ops::interpolate(
      x, 2 * x.size(2), 2 * x.size(3),
      mode == UpsampleMode::nearest ? InterpolateMode::nearest : InterpolateMode::bilinear,
      /*align_corners=*/false, 2.0, 2.0);
  const ModuleWeights conv = w.child("conv");
  if (!conv.get_optional("weight").defined()) return h;
  return conv2d(h, conv, {1, 1, 1});
}

Tensor downsample2d(const Tensor& x, const ModuleWeights& w) {
  const std::string what = name_of(w, "downsample2d");
  check_input(x, 4, what);
  MINDIESD_CHECK(x.size(2) >= 2 && x.size(3) >= 2, InvalidArgument, what, ": input of shape ",
                 x.shape().str(), " is too small to downsample");
  const int64_t pads[] = {0, 1, 0, 1};
  return conv2d(ops::pad(x, pads), w.child("conv"), {2, 0, 1});
}

// ---- blocks ----

namespace {

Tensor norm(const Tensor& x, const ModuleWeights& w, int64_t groups, float eps,
            const std::string& what) {
  MINDIESD_CHECK(groups >= 1 && x.size(1) % groups == 0, InvalidArgument, what, ": groups ", groups,
                 " do not divide the ", x.size(1), " channels of input shape ", x.shape().str());
  return group_norm(x, groups, w.get_optional("weight"), w.get_optional("bias"), eps);
}

}  // namespace

Tensor resnet_block2d(const Tensor& x, const ModuleWeights& w, const ResnetBlockOptions& o) {
  const std::string what = name_of(w, "resnet_block2d");
  check_input(x, 4, what);
  Tensor h = ops::silu(norm(x, w.child("norm1"), o.groups, o.eps, what + ".norm1"));
  h = conv2d(h, w.child("conv1"));
  h = ops::silu(norm(h, w.child("norm2"), o.groups_out > 0 ? o.groups_out : o.groups, o.eps,
                     what + ".norm2"));
  h = conv2d(h, w.child("conv2"));
  const ModuleWeights sc = w.child("conv_shortcut");
  const Tensor skip = sc.get_optional("weight").defined() ? conv2d(x, sc) : x;
  MINDIESD_CHECK(skip.shape() == h.shape(), InvalidArgument, what, ": residual of shape ",
                 skip.shape().str(), " does not match the block output ", h.shape().str(),
                 " (in_channels != out_channels needs conv_shortcut)");
  Tensor y = ops::add(skip, h);
  if (o.output_scale_factor != 1.0f) y = ops::affine(y, 1.0f / o.output_scale_factor, 0.0f);
  return y;
}

Tensor spatial_attention_block(const Tensor& x, const ModuleWeights& w,
                               const SpatialAttentionOptions& o) {
  const std::string what = name_of(w, "spatial_attention_block");
  check_input(x, 4, what);
  const int64_t b = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  MINDIESD_CHECK(o.heads >= 1 && c % o.heads == 0, InvalidArgument, what, ": heads ", o.heads,
                 " do not divide the ", c, " channels of input shape ", x.shape().str());
  const Tensor normed = norm(x, w.child("group_norm"), o.groups, o.eps, what + ".group_norm");
  // (B, C, H, W) -> tokens (B, HW, C): a transposed view, read in place by the GEMM.
  const Tensor tokens = normed.reshape({b, c, hw}).transpose(1, 2);
  auto proj = [&](const char* name) {
    const ModuleWeights p = w.child(name);
    const Tensor wt = as_dtype(p.get("weight"), x.dtype());
    const Tensor bs = as_dtype(p.get_optional("bias"), x.dtype());
    MINDIESD_CHECK(wt.dim() == 2 && wt.size(1) == c, InvalidArgument, what, ".", name,
                   ": weight of shape ", wt.shape().str(), " does not match ", c, " channels");
    return ops::linear(tokens, wt, bs);
  };
  const int64_t d = c / o.heads;
  const Tensor q = proj("to_q").view({b, hw, o.heads, d});
  const Tensor k = proj("to_k").view({b, hw, o.heads, d});
  const Tensor v = proj("to_v");
  MINDIESD_CHECK(v.size(2) % o.heads == 0, InvalidArgument, what, ".to_v: output width ", v.size(2),
                 " is not a multiple of heads ", o.heads);
  const Tensor attn =
      attention_forward(q, k, v.view({b, hw, o.heads, v.size(2) / o.heads}), Tensor(), "BSND");
  const ModuleWeights out = w.child("to_out").child("0");
  const Tensor ow = as_dtype(out.get("weight"), x.dtype());
  MINDIESD_CHECK(ow.dim() == 2 && ow.size(0) == c && ow.size(1) == v.size(2), InvalidArgument, what,
                 ".to_out.0: weight of shape ", ow.shape().str(), " does not map ", v.size(2),
                 " to ", c, " channels");
  const Tensor o_tok = ops::linear(attn.reshape({b, hw, v.size(2)}), ow,
                                   as_dtype(out.get_optional("bias"), x.dtype()));
  // (B, HW, C) -> (B, C, H, W), then the residual.
  const Tensor o_img = o_tok.transpose(1, 2).reshape(x.shape());
  Tensor y = ops::add(o_img, x);
  if (o.rescale_output_factor != 1.0f) y = ops::affine(y, 1.0f / o.rescale_output_factor, 0.0f);
  return y;
}

}  // namespace mindiesd::layer
