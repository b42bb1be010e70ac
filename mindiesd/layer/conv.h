// Convolution blocks of VAEs and UNets, as functions over weights bound to diffusers'
// state-dict names (ModuleWeights, layer/embedding.h):
//   conv2d                 nn.Conv2d ("weight", "bias")
//   CausalConv3d           diffusers WanCausalConv3d + the AutoencoderKLWan feature cache
//   upsample2d             diffusers Upsample2D (nearest x2 or bilinear x2, then "conv")
//   downsample2d           diffusers Downsample2D(padding=0): pad (0,1,0,1), stride-2 "conv"
//   resnet_block2d         diffusers ResnetBlock2D without time embedding
//   spatial_attention_block diffusers Attention as used in the VAE mid-block
// Weights of another float dtype than x are cast to x's dtype (diffusers runs the module in one
// dtype; a model loaded in bf16 passes bf16 weights and no cast happens).
//
// Argument errors (wrong rank, channels not matching the weight, groups/heads not dividing the
// channels, chunk caches of another shape) are InvalidArgument naming the module prefix and the
// shapes.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "mindiesd/core/tensor.h"
#include "mindiesd/layer/embedding.h"

namespace mindiesd::layer {

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = -1;  // -1: kernel_size / 2 ("same" for odd kernels, stride 1)
  int64_t groups = 1;
};

// nn.Conv2d: x (N, C, H, W) with w.weight (O, C / groups, kh, kw) and the optional w.bias (O).
Tensor conv2d(const Tensor& x, const ModuleWeights& w, const Conv2dOptions& options = {});

// ---- causal 3-d convolution (Wan VAE) ----

// Frames of input that AutoencoderKLWan keeps per causal conv between temporal chunks.
inline constexpr int64_t kCausalCacheFrames = 2;

// diffusers WanCausalConv3d.forward(x, cache_x): x (N, C, T, H, W), weight (O, C, kt, kh, kw).
// Spatial padding is symmetric (padding[1], padding[2]); time is padded by 2 * padding[0] frames
// on the front only. cache_x (N, C, Tc, H, W), when given, is prepended to x and replaces Tc of
// those zero frames (diffusers' `padding[4] -= cache_x.shape[2]`).
Tensor causal_conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                     std::array<int64_t, 3> stride, std::array<int64_t, 3> padding,
                     const Tensor& cache_x = Tensor(), const char* what = "causal_conv3d");

// A WanCausalConv3d with its feature cache, for decoding a video in temporal chunks (as
// AutoencoderKLWan's _decode with feat_cache): each call convolves one chunk, using the cached
// last input frames of the previous chunk in place of zero padding, then keeps the last
// kCausalCacheFrames input frames (one from the old cache when the chunk has one frame).
// With stride 1 in time and 2 * padding[0] <= kCausalCacheFrames (kernel 3 / padding 1, or
// kernel 1), concatenating the chunks' outputs equals the output for the whole video.
class CausalConv3d {
 public:
  CausalConv3d() = default;
  CausalConv3d(const ModuleWeights& w, std::array<int64_t, 3> stride = {1, 1, 1},
               std::array<int64_t, 3> padding = {1, 1, 1});

  // Stateless: diffusers' forward(x, cache_x).
  Tensor forward(const Tensor& x, const Tensor& cache_x = Tensor()) const;
  // Chunked: uses and updates the cache.
  Tensor operator()(const Tensor& x);
  void reset_cache() { cache_ = Tensor(); }
  const Tensor& cache() const { return cache_; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Tensor weight_, bias_;
  std::array<int64_t, 3> stride_{1, 1, 1}, padding_{1, 1, 1};
  std::string name_;
  Tensor cache_;
};

// ---- resampling ----

enum class UpsampleMode { nearest, bilinear };

// diffusers Upsample2D(use_conv=True) without output_size: x2 interpolation (nearest, or
// bilinear with align_corners=False), then the 3x3 "conv" (padding 1) when w has conv.weight.
Tensor upsample2d(const Tensor& x, const ModuleWeights& w,
                  UpsampleMode mode = UpsampleMode::nearest);

// diffusers Downsample2D(use_conv=True, padding=0): F.pad(x, (0, 1, 0, 1)), then "conv" with
// stride 2 and no padding. Any H, W >= 2.
Tensor downsample2d(const Tensor& x, const ModuleWeights& w);

// ---- blocks ----

struct ResnetBlockOptions {
  int64_t groups = 32;     // norm1
  int64_t groups_out = 0;  // norm2; 0 = groups
  float eps = 1e-6f;
  float output_scale_factor = 1.0f;
};

// diffusers ResnetBlock2D with temb=None, dropout off, non_linearity silu:
//   h = conv2(silu(norm2(conv1(silu(norm1(x)))))), skip = conv_shortcut(x) if present else x,
//   y = (skip + h) / output_scale_factor.
// Weights: norm1.{weight,bias}, conv1.*, norm2.*, conv2.*, conv_shortcut.* (optional, 1x1 or
// 3x3 with the matching "same" padding).
Tensor resnet_block2d(const Tensor& x, const ModuleWeights& w,
                      const ResnetBlockOptions& options = {});

struct SpatialAttentionOptions {
  int64_t groups = 32;
  float eps = 1e-6f;
  int64_t heads = 1;  // AutoencoderKL: attention_head_dim = channels, so one head
  float rescale_output_factor = 1.0f;
};

// diffusers Attention(query_dim=C, residual_connection=True, bias=True, upcast_softmax=True,
// _from_deprecated_attn_block=True) on a 4-d input, as in UNetMidBlock2D of the VAE:
//   h = group_norm(x) viewed as tokens (B, H*W, C); q/k/v = to_q/to_k/to_v(h);
//   o = to_out.0(softmax(q k^T / sqrt(C / heads)) v); y = (o as (B, C, H, W) + x) / rescale.
// Weights: group_norm.*, to_q.*, to_k.*, to_v.*, to_out.0.* (linear, (C, C) and (C)).
Tensor spatial_attention_block(const Tensor& x, const ModuleWeights& w,
                               const SpatialAttentionOptions& options = {});

}  // namespace mindiesd::layer
