// Normalisation layers: the op-level API of the suite mindiesd mirrors (API.md, layer:
// `RMSNorm`, `fast_layernorm`, `layernorm_scale_shift`) with diffusers' semantics, and the
// DiT fusions in one pass over memory (kernel: op `norm`, NormParams in core/op_params.h).
//
// Dtypes: f32 / bf16 / f16, mixed freely; statistics are f32/f64 whatever the input, and the
// output is rounded once.
//   layer_norm / group_norm: output in x's dtype, as torch.nn.LayerNorm / GroupNorm on CPU
//     (which accept f32 weights with a half-precision input). Modulated norms: x's dtype
//     promoted with scale's and shift's (norm(x) * (1 + scale) + shift in PyTorch).
//   rms_norm: as diffusers RMSNorm.forward: without a weight the output has x's dtype; with a
//     bf16/f16 weight, norm(x) is cast to the weight's dtype and then multiplied (two roundings,
//     reproduced exactly); with an f32 weight the output is f32.
//
// Modulation (adaLN): y = norm(x) * (1 + scale) + shift. scale / shift of rank 2 (B, C) with an
// x of rank >= 3 are per sample, expanded over the middle dims as diffusers'
// `scale[:, None]`; any other shape broadcasts to x's shape the numpy way ((B, 1, C),
// (1, S, C) for per-token modulation, (C), ...). The last dim must be C. Chunks of a projected
// embedding (`ops::chunk(emb, 6, 1)`) are used in place.
//
// Argument errors (weight not (C), modulation that does not broadcast, groups not dividing C,
// eps <= 0, non-float dtypes) are InvalidArgument naming the argument and the shapes.
#pragma once

#include <cstdint>

#include "mindiesd/core/tensor.h"

namespace mindiesd::layer {

// torch.nn.functional.layer_norm over the last dim; weight / bias (C) optional.
Tensor layer_norm(const Tensor& x, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  float eps = 1e-5f);
// The suite's name for the same fused kernel.
inline Tensor fast_layernorm(const Tensor& x, const Tensor& weight = Tensor(),
                             const Tensor& bias = Tensor(), float eps = 1e-5f) {
  return layer_norm(x, weight, bias, eps);
}

// diffusers RMSNorm (elementwise_affine when weight is given). The optional bias
// (RMSNorm(bias=True)) is added in the weight's FMA, one rounding fewer than diffusers' separate
// add in half precision.
Tensor rms_norm(const Tensor& x, const Tensor& weight = Tensor(), float eps = 1e-6f,
                const Tensor& bias = Tensor());

// torch.nn.functional.group_norm: x (N, C, *spatial), statistics per (sample, group).
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), float eps = 1e-5f);

// adaLN: layer_norm(x, weight, bias, eps) * (1 + scale) + shift in one pass. With weight and
// bias absent and eps 1e-6 this is diffusers AdaLayerNormZero(-Single) / FLUX norm1 after its
// projection: `emb.chunk(6, 1)` gives shift, scale, ... in that order. AdaLayerNormContinuous
// (FLUX norm_out, elementwise_affine=False) chunks scale first: `scale, shift = emb.chunk(2, 1)`.
Tensor layernorm_scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift,
                             float eps = 1e-6f, const Tensor& weight = Tensor(),
                             const Tensor& bias = Tensor());
// The RMSNorm variant (AdaLayerNormContinuous with norm_type="rms_norm"): rms_norm(x, weight,
// eps) * (1 + scale) + shift, the modulation applied in f32 before the one output rounding; the
// output dtype is rms_norm's promoted with scale's and shift's.
Tensor rmsnorm_scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift,
                           float eps = 1e-6f, const Tensor& weight = Tensor());

// Residual add + norm in one pass: sum = x + residual (written, in the promoted dtype) and
// normed = layer_norm(sum, ...) [* (1 + scale) + shift]. scale / shift optional (both or
// neither), as in layernorm_scale_shift.
struct AddNormResult {
  Tensor sum;
  Tensor normed;
};
AddNormResult add_layer_norm(const Tensor& x, const Tensor& residual,
                             const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                             float eps = 1e-5f, const Tensor& scale = Tensor(),
                             const Tensor& shift = Tensor());
AddNormResult add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight = Tensor(),
                           float eps = 1e-6f);

// Module-style holders for model code: the parameters and eps of one layer.
struct LayerNorm {
  Tensor weight, bias;  // undefined when elementwise_affine=False
  float eps = 1e-5f;
  Tensor operator()(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }
};
struct RMSNorm {
  Tensor weight;  // undefined when elementwise_affine=False
  float eps = 1e-6f;
  Tensor operator()(const Tensor& x) const { return rms_norm(x, weight, eps); }
};
struct GroupNorm {
  int64_t groups = 32;
  Tensor weight, bias;
  float eps = 1e-5f;
  Tensor operator()(const Tensor& x) const { return group_norm(x, groups, weight, bias, eps); }
};

}  // namespace mindiesd::layer
