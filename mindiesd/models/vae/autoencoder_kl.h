// diffusers AutoencoderKL (diffusers 0.42, models/autoencoders/autoencoder_kl.py): the image VAE
// of SD 1.x/2.x/XL, SD3 and FLUX, built from its config.json and bound to its safetensors by the
// diffusers state-dict names.
//
//   Encoder  conv_in -> DownEncoderBlock2D x N (layers_per_block ResnetBlock2D, Downsample2D with
//            padding 0 except in the last block) -> UNetMidBlock2D (resnet, [attention], resnet)
//            -> GroupNorm -> SiLU -> conv_out (2 * latent_channels) [-> quant_conv]
//   Decoder  [post_quant_conv ->] conv_in -> UNetMidBlock2D -> UpDecoderBlock2D x N
//            (layers_per_block + 1 resnets, nearest x2 Upsample2D except in the last block)
//            -> GroupNorm -> SiLU -> conv_out
// Every GroupNorm has eps 1e-6 and norm_num_groups groups; the mid-block attention
// (mid_block_add_attention) has one head of block_out_channels[-1] channels.
//
// Memory: stages run one after another and each intermediate is released as soon as the next
// one exists, so a decode holds a few full-resolution activations at a time (the widest is
// block_out_channels[1] channels after the last upsampler). Tiling (set_tiling, diffusers'
// enable_tiling) bounds that by the tile size for large images.
//
// Weights are bound through models::BoundWeights under diffusers' names and shapes (a bad
// checkpoint lists every missing / mis-shaped / unexpected tensor in one InvalidArgument);
// tensors stored in the compute dtype are used in place. Checkpoints with the deprecated
// attention names (query / key / value / proj_attn, which diffusers renames on load) bind too.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"

namespace mindiesd::models {

// diffusers AutoencoderKL.enable_tiling() and its tile attributes.
struct VaeTiling {
  bool enabled = false;
  // Tile edge in pixels; 0: config.sample_size (diffusers' tile_sample_min_size). The latent
  // tile edge is tile_sample_min_size / scale_factor() (diffusers' tile_latent_min_size).
  int64_t tile_sample_min_size = 0;
  // Fraction of a tile shared with its neighbour; in [0, 1).
  double tile_overlap_factor = 0.25;
};

class AutoencoderKL {
 public:
  // Reads the component's config.json and binds its weights in `dtype` (f32, bf16 or f16).
  static AutoencoderKL load(const io::Component& component, DType dtype);
  // Unsupported for block types other than DownEncoderBlock2D / UpDecoderBlock2D and act_fn
  // other than silu / swish; InvalidArgument for inconsistent configs and bad weights.
  static AutoencoderKL from_weights(io::AutoencoderKLConfig config, io::WeightStore weights,
                                    DType dtype);

  const io::AutoencoderKLConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  // The model with its weights on `device` (uploaded once); decode and encode then run there
  // and return their results on the device their input came from.
  AutoencoderKL to(Device device) const;
  Device device() const { return device_; }
  // 2^(len(block_out_channels) - 1): diffusers pipelines' vae_scale_factor.
  int64_t scale_factor() const { return int64_t{1} << (config_.block_out_channels.size() - 1); }

  // Latents (B, latent_channels, h, w), already un-normalised by the caller (see
  // denormalize_latents), of any float dtype -> image (B, out_channels, h * s, w * s) in about
  // [-1, 1], in dtype(). With tiling enabled and h or w above the latent tile size, diffusers'
  // tiled_decode.
  Tensor decode(const Tensor& z) const;
  // Image (B, in_channels, H, W) in [-1, 1] -> {mean, logvar} of diffusers'
  // DiagonalGaussianDistribution (logvar clamped to [-30, 20]), each (B, latent_channels, ...).
  // With tiling enabled and H or W above the tile size, diffusers' _tiled_encode.
  std::pair<Tensor, Tensor> encode(const Tensor& image) const;

  // InvalidArgument for a tile size or overlap that leaves no stride between tiles.
  void set_tiling(VaeTiling tiling);
  const VaeTiling& tiling() const { return tiling_; }

  // Pipelines' latent scaling, in the order and roundings the diffusers pipelines use:
  //   normalize:   (z - shift_factor) * scaling_factor         (FLUX / SD3 encode; SD: z * sf)
  //   denormalize: z / scaling_factor + shift_factor           (FLUX / SD3 decode; SD: z / sf)
  // With latents_mean and latents_std in the config (SDXL-style), per channel:
  //   normalize:   (z - mean) * scaling_factor / std
  //   denormalize: z * std / scaling_factor + mean
  // The result has z's dtype.
  Tensor normalize_latents(const Tensor& z) const;
  Tensor denormalize_latents(const Tensor& z) const;

 private:
  using WeightMap = std::map<std::string, Tensor>;

  AutoencoderKL(io::AutoencoderKLConfig config, DType dtype,
                std::shared_ptr<const WeightMap> weights);

  Tensor decode_tile(const Tensor& z) const;  // post_quant_conv + Decoder
  Tensor encode_tile(const Tensor& x) const;  // Encoder + quant_conv: the moments
  Tensor tiled_decode(const Tensor& z) const;
  Tensor tiled_encode(const Tensor& x) const;
  int64_t tile_sample_size() const;
  int64_t tile_latent_size() const;

  Tensor run_mid_block(const Tensor& x, const std::string& prefix) const;
  Tensor run_resnet(const Tensor& x, const std::string& prefix) const;
  Tensor run_conv(const Tensor& x, const std::string& prefix) const;
  Tensor run_norm_act_conv_out(const Tensor& x, const std::string& prefix) const;

  io::AutoencoderKLConfig config_;
  DType dtype_ = DType::f32;
  std::shared_ptr<const WeightMap> weights_;
  Device device_ = Device::cpu();
  VaeTiling tiling_;
};

}  // namespace mindiesd::models
