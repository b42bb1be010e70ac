// Embeddings of diffusion transformers: the sinusoidal timestep embedding, patchify /
// unpatchify of 2-d and 3-d latents, and the timestep / guidance / pooled-text embedders,
// each matching the diffusers function or module named in its comment.
//
// Embedders are functions over weights, bound to diffusers' state-dict names through
// ModuleWeights, so a model folder's safetensors can be used as they are:
//   auto w = layer::module_weights(store, "time_text_embed.");
//   Tensor temb = layer::combined_timestep_guidance_text_proj(t * 1000, g * 1000, pooled, w);
#pragma once

#include <array>
#include <functional>
#include <string>
#include <string_view>

#include "mindiesd/core/tensor.h"

namespace mindiesd::io {
class WeightStore;
}

namespace mindiesd::layer {

// ---- sinusoidal timestep embedding ----

// diffusers get_timestep_embedding (and the Timesteps module): timesteps (N) of any real dtype
// (read as .float()) -> (N, dim) f32 on timesteps' device:
//   freq_k = exp(-ln(max_period) * k / (dim/2 - downscale_freq_shift)), k < dim/2
//   emb = [sin(scale * t * freq), cos(scale * t * freq)]   ([cos, sin] if flip_sin_to_cos),
// zero-padded by one column when dim is odd. Each step is rounded to f32 as PyTorch's float32
// arithmetic rounds it, so results agree with diffusers to within its 1-ulp exp/sin/cos
// (|diff| <= 4e-5 at t = 1000, where an ulp of the frequency moves the angle by 3e-5).
// Computed on the host: the tensor is N x dim.
Tensor timestep_embedding(const Tensor& timesteps, int64_t dim, bool flip_sin_to_cos = false,
                          double downscale_freq_shift = 1.0, double scale = 1.0,
                          double max_period = 10000.0);

// ---- patchify / unpatchify ----

// Order of the features inside one token.
enum class PatchOrder : uint8_t {
  // (C, p...) with C outermost: FLUX's _pack_latents, and the flattening of a patch-embedding
  // Conv2d/Conv3d weight (O, C, p...), so patchify + linear == that convolution.
  channels_first,
  // (p..., C) with C innermost: Wan's unpatchify of proj_out (its tokens are (pt, ph, pw, C)).
  channels_last,
};

// (B, C, H, W) -> (B, (H/p) * (W/p), C * p * p), tokens in row-major (h, w) order. With the
// defaults this is FluxPipeline._pack_latents. H and W must be multiples of p.
Tensor patchify_2d(const Tensor& latents, int64_t patch = 2,
                   PatchOrder order = PatchOrder::channels_first);
// The inverse: (B, (H/p) * (W/p), C * p * p) -> (B, C, H, W) for latent height H and width W
// (FluxPipeline._unpack_latents takes pixel sizes; pass them divided by the VAE scale).
Tensor unpatchify_2d(const Tensor& tokens, int64_t height, int64_t width, int64_t patch = 2,
                     PatchOrder order = PatchOrder::channels_first);

// (B, C, F, H, W) -> (B, (F/pt) * (H/ph) * (W/pw), C * pt * ph * pw), tokens in row-major
// (f, h, w) order: the input side of Wan's patch embedding (Conv3d with kernel = stride =
// patch, then flatten(2).transpose(1, 2)).
Tensor patchify_3d(const Tensor& latents, std::array<int64_t, 3> patch,
                   PatchOrder order = PatchOrder::channels_first);
// The inverse: tokens (B, (F/pt) * (H/ph) * (W/pw), C * pt * ph * pw) -> (B, C, F, H, W) for
// latent sizes F, H, W. WanTransformer3DModel's final unpatchify is order = channels_last.
Tensor unpatchify_3d(const Tensor& tokens, int64_t frames, int64_t height, int64_t width,
                     std::array<int64_t, 3> patch, PatchOrder order = PatchOrder::channels_first);

// A patch-embedding convolution (kernel = stride = patch, no padding) as patchify + linear:
// x (B, C, H, W) with weight (O, C, p, p), or x (B, C, F, H, W) with weight (O, C, pt, ph, pw)
// -> tokens (B, N, O). Wan's patch_embedding, SD3 / PixArt PatchEmbed's proj before its
// flatten.
Tensor patch_embed(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- weights by diffusers state-dict name ----

// Returns the tensor stored under a full state-dict name, or an undefined Tensor when absent.
using WeightLookup = std::function<Tensor(const std::string& name)>;

// One module's weights: a lookup and the module's prefix ("time_text_embed.").
struct ModuleWeights {
  WeightLookup lookup;
  std::string prefix;

  // The submodule `name` ("timestep_embedder" -> prefix "time_text_embed.timestep_embedder.").
  ModuleWeights child(std::string_view name) const;
  // prefix + name; NotFound naming the full name when absent.
  Tensor get(std::string_view name) const;
  // prefix + name, or an undefined Tensor when absent (biases of bias=False layers).
  Tensor get_optional(std::string_view name) const;
};

// Weights read from a safetensors store (a model folder's component) under `prefix`.
ModuleWeights module_weights(const io::WeightStore& store, std::string prefix = "");
ModuleWeights module_weights(WeightLookup lookup, std::string prefix = "");

// ---- embedders ----

// diffusers TimestepEmbedding: linear_1 -> act_fn -> linear_2 (weights linear_1.weight / .bias,
// linear_2.weight / .bias; the biases may be absent, sample_proj_bias=False). The input is cast
// to linear_1's weight dtype. cond_proj and post_act are not supported.
Tensor timestep_embedder(const Tensor& sample, const ModuleWeights& w,
                         std::string_view act_fn = "silu");
// diffusers PixArtAlphaTextProjection: linear_1 -> act_1 -> linear_2, act_fn "gelu_tanh"
// (its default), "silu" or "silu_fp32".
Tensor text_projection(const Tensor& caption, const ModuleWeights& w,
                       std::string_view act_fn = "gelu_tanh");
// diffusers CombinedTimestepTextProjEmbeddings (FLUX.1-schnell, SD3's time_text_embed):
// Timesteps(256, flip_sin_to_cos=True, shift 0) -> timestep_embedder, plus
// text_embedder(pooled) with SiLU. Submodules timestep_embedder.*, text_embedder.*.
// `timestep` (N) as the transformer passes it (FLUX scales by 1000 before the embedder), on any
// device: the sinusoids are formed where it is (best the host: no read-back) and moved to
// pooled_projection's device.
Tensor combined_timestep_text_proj(const Tensor& timestep, const Tensor& pooled_projection,
                                   const ModuleWeights& w);
// diffusers CombinedTimestepGuidanceTextProjEmbeddings (FLUX.1-dev): the above plus
// guidance_embedder(Timesteps(guidance)); the projections are cast to pooled_projection's dtype
// before the embedders, as diffusers does.
Tensor combined_timestep_guidance_text_proj(const Tensor& timestep, const Tensor& guidance,
                                            const Tensor& pooled_projection,
                                            const ModuleWeights& w);

// The sinusoids both of the above start from: Timesteps(256, flip_sin_to_cos=True, shift 0),
// (N) -> (N, 256) f32, formed where `timestep` is.
Tensor timestep_proj_256(const Tensor& timestep);
// The two embeddings from those sinusoids, already in pooled_projection's dtype and on its
// device: device work only, so a CUDA graph can capture them (kernel/cuda/cuda_graph.h).
Tensor combined_timestep_text_proj_from(const Tensor& timestep_proj,
                                        const Tensor& pooled_projection, const ModuleWeights& w);
Tensor combined_timestep_guidance_text_proj_from(const Tensor& timestep_proj,
                                                 const Tensor& guidance_proj,
                                                 const Tensor& pooled_projection,
                                                 const ModuleWeights& w);

}  // namespace mindiesd::layer
