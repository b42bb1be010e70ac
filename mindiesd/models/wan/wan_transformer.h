// diffusers WanTransformer3DModel (diffusers 0.42, models/transformers/transformer_wan.py): the
// Wan 2.1 denoiser (T2V, and I2V with image_dim / added_kv_proj_dim), built from its
// config.json and bound to its safetensors by the diffusers state-dict names.
//
//   patch_embedding (Conv3d, kernel = stride = patch: patchify + linear) of (B, C, F, H, W)
//   condition_embedder: Timesteps(freq_dim, flip_sin_to_cos) -> time_embedder (f32) -> temb;
//     time_proj(SiLU(temb)) -> timestep_proj (B, 6, N); text_embedder (gelu-tanh projection);
//     I2V: image_embedder (FP32LayerNorm, GELU FeedForward, FP32LayerNorm) of the CLIP image
//     tokens, placed before the text tokens
//   -> num_layers WanTransformerBlock: modulation = scale_shift_table + timestep_proj in f32;
//      self-attention (QK RMSNorm across heads, Wan 3-d RoPE) with a gated f32 residual;
//      cross-attention to the text (I2V: plus an attention to the image tokens through
//      add_k_proj / add_v_proj, added before to_out) with the optional affine norm2; GELU-tanh
//      FFN with a gated f32 residual
//   -> norm_out modulated by scale_shift_table + temb (f32) -> proj_out -> unpatchify.
//
// Numerics follow diffusers' dtype behaviour for a model loaded with
// from_pretrained(torch_dtype=...), which keeps _keep_in_fp32_modules in float32: the timestep
// embedder, both scale_shift_tables and the FP32LayerNorms' weights are bound in f32 whatever
// the compute dtype; modulated norms compute `norm(x.float()) * (1 + scale) + shift` in f32 and
// round once; QK RMSNorm multiplies by its weight in f32 and rounds once (torch.nn.RMSNorm);
// RoPE tables are built in float64 (WanRotaryPosEmbed) and applied in f32. In bf16/f16 the
// fused linear epilogues (gate * y + residual, GEMM + GELU) round once at the end where
// PyTorch also rounds the GEMM output first (the text / image embedders, run once per
// forward, apply their GELU after the rounding as PyTorch does).
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


namespace mindiesd::layer {
class RopeCache;
}

namespace mindiesd::models {

struct WanForwardInputs {
  Tensor hidden_states;  // (B, in_channels, F, H, W) latents; F, H, W multiples of patch_size
  // (B) (or one value for all) denoising timesteps as WanPipeline passes them: int64 (any
  // integer or float dtype is accepted and read as .float(), as diffusers' Timesteps does).
  Tensor timestep;
  Tensor encoder_hidden_states;  // (B, L, text_dim) UMT5 embeddings
  // I2V only (config().image_dim set): (B, L_img, image_dim) CLIP image embeddings; with
  // pos_embed_seq_len P (FLF2V) (2 * B, P / 2, image_dim), each sample's first- and last-frame
  // tokens as consecutive entries, as WanImageToVideoPipeline repeats them. Diffusers'
  // attention takes the last 512 context tokens as text, so encoder_hidden_states must then
  // hold 512 tokens.
  Tensor encoder_hidden_states_image;
};

// What one forward reads once its host part is done (checks, the timestep sinusoids, the RoPE
// tables), on the model's device: forward() of these queues device work only, so a CUDA graph
// can capture it (kernel/cuda/cuda_graph.h) and replay it after new values were copied in.
struct WanDeviceInputs {
  Tensor hidden_states, encoder_hidden_states;  // in dtype()
  Tensor encoder_hidden_states_image;           // I2V only
  Tensor timestep_freq;                         // (B, freq_dim) f32 Timesteps(freq_dim) sinusoids
  Tensor rope_cos, rope_sin;

  std::array<Tensor*, 6> fields() {
    return {&hidden_states, &encoder_hidden_states, &encoder_hidden_states_image, &timestep_freq,
            &rope_cos, &rope_sin};
  }
};

// Per-block outputs of one forward, for tests and debugging.
struct WanTrace {
  Tensor timestep_proj;        // condition_embedder's timestep_proj (B, 6 * N) in dtype()
  Tensor text_emb;             // the projected text (B, L, N)
  std::vector<Tensor> blocks;  // blocks[i] output (B, tokens, N)
};

class WanTransformer3DModel {
 public:
  // Reads the component's config.json and binds its weights in `dtype` (f32, bf16 or f16).
  static WanTransformer3DModel load(const io::Component& component, DType dtype);
  // InvalidArgument for an inconsistent config or weights that do not match it (one error
  // listing every missing, mis-shaped and unexpected tensor). `quantized` supplies the linear
  // layers a quantized checkpoint holds (quant/quant_format.h).
  static WanTransformer3DModel from_weights(io::WanTransformer3DModelConfig config,
                                            io::WeightStore weights, DType dtype,
                                            LinearLoader quantized = {});

  const io::WanTransformer3DModelConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  int64_t inner_dim() const { return config_.num_attention_heads * config_.attention_head_dim; }
  bool is_i2v() const { return config_.image_dim.has_value(); }

  // The noise (flow) prediction (B, out_channels, F, H, W) in dtype(). Float inputs of another
  // dtype are cast to dtype() first. InvalidArgument for inputs whose shapes disagree with
  // each other or with the config.
  // `ctx`: the call's step, CFG branch and step cache (core/context.h).
  Tensor forward(const WanForwardInputs& in, const Context& ctx = {},
                 WanTrace* trace = nullptr) const;
  // The two halves of the above: the host part (argument checks, sinusoids, RoPE tables,
  // uploads) and the device part.
  WanDeviceInputs prepare(const WanForwardInputs& in) const;
  Tensor forward(const WanDeviceInputs& in, const Context& ctx = {},
                 WanTrace* trace = nullptr) const;

  int64_t num_params() const { return num_params_; }

  // The device the weights live on; forward() moves its inputs there and returns its result
  // there.
  Device device() const { return device_; }
  // A copy of the model with every weight on `device` (uploaded once; the copy shares nothing
  // with this model's weights unless the device is the same).
  WanTransformer3DModel to(Device device) const;
  // The same model with f applied to a copy of each linear layer (quantization replaces them
  // through it: mindiesd/quant/quantize.h); for_each_linear reads them.
  WanTransformer3DModel map_linears(const std::function<void(layer::Linear&)>& f) const;
  void for_each_linear(const std::function<void(const layer::Linear&)>& f) const;

  struct Weights;  // the bound tensors, per block (defined in the .cpp)

 private:
  WanTransformer3DModel(io::WanTransformer3DModelConfig config, DType dtype,
                        std::shared_ptr<const Weights> weights, int64_t num_params);

  io::WanTransformer3DModelConfig config_;
  DType dtype_ = DType::f32;
  std::shared_ptr<const Weights> weights_;
  int64_t num_params_ = 0;
  // RoPE tables per latent grid (a denoising loop asks for the same one every step); shared
  // by copies of the model.
  std::shared_ptr<layer::RopeCache> rope_;
  Device device_ = Device::cpu();
};

}  // namespace mindiesd::models
