// diffusers FluxTransformer2DModel (diffusers 0.42, models/transformers/transformer_flux.py):
// the FLUX.1 denoiser (dev with guidance_embeds, schnell without), built from its config.json
// and bound to its safetensors by the diffusers state-dict names.
//
//   x_embedder(hidden) | context_embedder(encoder) | time_text_embed(t * 1000, [g * 1000], pooled)
//   -> num_layers FluxTransformerBlock (MMDiT: separate image / text streams, joint attention
//      over [text, image] with per-stream QK RMSNorm and FLUX RoPE, AdaLayerNormZero modulation,
//      gated residual attention and GELU-tanh MLP)
//   -> num_single_layers FluxSingleTransformerBlock (one [text, image] stream:
//      AdaLayerNormZeroSingle, attention and MLP in parallel from the same input, proj_out over
//      their concatenation)
//   -> AdaLayerNormContinuous (norm_out) -> proj_out on the image tokens.
//
// Numerics follow diffusers' dtype behaviour: in bf16/f16 every layer's output is rounded to the
// model dtype as PyTorch's modules round it, except inside the fused epilogues (adaLN
// scale/shift, gate * y + residual, GEMM + GELU) which round once at the end. QK RMSNorm is
// torch.nn.RMSNorm: norm(x) * weight in f32, rounded once.
//
// Memory: weights stored in the compute dtype are the mmapped file (no copy); the only
// per-forward state is the activations of one block at a time plus the RoPE tables.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "mindiesd/core/context.h"
#include "mindiesd/core/dtype.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/weights.h"


namespace mindiesd::models {

struct FluxForwardInputs {
  Tensor hidden_states;          // (B, S_img, in_channels) packed latents
  Tensor encoder_hidden_states;  // (B, S_txt, joint_attention_dim)
  Tensor pooled_projections;     // (B, pooled_projection_dim)
  // (B) (or one value for all) as the pipeline passes it: t / 1000; the model casts it to its
  // dtype and multiplies by 1000, as diffusers does.
  Tensor timestep;
  // (B) (or one value) guidance scale; required when config().guidance_embeds, must be
  // undefined otherwise. Cast to the model dtype and multiplied by 1000 like the timestep.
  Tensor guidance;
  Tensor txt_ids;  // (S_txt, n_axes) position ids, any real dtype (a 3-d (1, S, n) is accepted)
  Tensor img_ids;  // (S_img, n_axes)
};

// What one forward reads once its host part is done (checks, timestep / guidance sinusoids,
// RoPE tables), on the model's device and in its dtype. forward() of these queues device work
// only, with no host <-> device copy and no wait, so a CUDA graph can capture it
// (kernel/cuda/cuda_graph.h) and replay it after new values were copied into these tensors.
struct FluxDeviceInputs {
  Tensor hidden_states, encoder_hidden_states, pooled_projections;
  Tensor timestep_proj, guidance_proj;  // (B, 256) sinusoids of 1000 t and 1000 g (or undefined)
  Tensor rope_cos, rope_sin;            // FluxPosEmbed of cat(txt_ids, img_ids)
  // {1, rows, columns} when img_ids are a raster grid (the pipeline's latent ids), else {0, 0, 0}:
  // the blocks' Context::token_grid (sparse attention tiles by it).
  std::array<int64_t, 3> token_grid{};

  std::array<Tensor*, 7> fields() {
    return {&hidden_states, &encoder_hidden_states, &pooled_projections, &timestep_proj,
            &guidance_proj, &rope_cos, &rope_sin};
  }
};

// Per-block outputs of one forward, for tests and debugging.
struct FluxTrace {
  std::vector<Tensor> double_txt, double_img;  // FluxTransformerBlock i: (encoder, hidden)
  std::vector<Tensor> single_txt, single_img;  // FluxSingleTransformerBlock i, split as diffusers
};

class FluxTransformer2DModel {
 public:
  // Reads the component's config.json and binds its weights in `dtype` (f32, bf16 or f16).
  static FluxTransformer2DModel load(const io::Component& component, DType dtype);
  // InvalidArgument for an inconsistent config or weights that do not match it (one error
  // listing every missing, mis-shaped and unexpected tensor). `quantized` supplies the linear
  // layers a quantized checkpoint holds (quant/quant_format.h).
  static FluxTransformer2DModel from_weights(io::FluxTransformer2DModelConfig config,
                                             io::WeightStore weights, DType dtype,
                                             LinearLoader quantized = {});

  const io::FluxTransformer2DModelConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  int64_t inner_dim() const { return config_.num_attention_heads * config_.attention_head_dim; }

  // The noise prediction (B, S_img, patch_size^2 * out_channels) in dtype(). Float inputs of
  // another dtype are cast to dtype() first. InvalidArgument for inputs whose shapes disagree
  // with each other or with the config. `ctx`: the call's step, CFG branch and step cache
  // (core/context.h); blocks are numbered double-stream first, then single-stream.
  Tensor forward(const FluxForwardInputs& in, const Context& ctx = {},
                 FluxTrace* trace = nullptr) const;
  // The two halves of the above: the host part (argument checks, sinusoids, RoPE tables,
  // uploads) and the device part.
  FluxDeviceInputs prepare(const FluxForwardInputs& in) const;
  Tensor forward(const FluxDeviceInputs& in, const Context& ctx = {},
                 FluxTrace* trace = nullptr) const;

  int64_t num_params() const { return num_params_; }

  // The device the weights live on; forward() moves its inputs there and returns its result
  // there.
  Device device() const { return device_; }
  // A copy of the model with every weight on `device` (uploaded once; the copy shares nothing
  // with this model's weights unless the device is the same).
  FluxTransformer2DModel to(Device device) const;
  // The same model with f applied to a copy of each linear layer (quantization replaces them
  // through it: mindiesd/quant/quantize.h); for_each_linear reads them.
  FluxTransformer2DModel map_linears(const std::function<void(layer::Linear&)>& f) const;
  void for_each_linear(const std::function<void(const layer::Linear&)>& f) const;

  struct Weights;  // the bound tensors, per block (defined in the .cpp)

 private:
  FluxTransformer2DModel(io::FluxTransformer2DModelConfig config, DType dtype,
                         std::shared_ptr<const Weights> weights, int64_t num_params);

  io::FluxTransformer2DModelConfig config_;
  DType dtype_ = DType::f32;
  std::shared_ptr<const Weights> weights_;
  int64_t num_params_ = 0;
  Device device_ = Device::cpu();
};

// diffusers FluxPipeline._prepare_latent_image_ids(h2, w2): (h2 * w2, 3) f32 rows
// [0, row, col] in row-major order over the packed latent grid (h2 = latent height / 2).
Tensor flux_latent_image_ids(int64_t h2, int64_t w2);
// FluxPipeline.encode_prompt's text ids: zeros (s_txt, 3) f32.
Tensor flux_text_ids(int64_t s_txt);

}  // namespace mindiesd::models
