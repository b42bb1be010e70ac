// diffusers AutoencoderKLWan (diffusers 0.42, models/autoencoders/autoencoder_kl_wan.py): the
// causal 3-D video VAE of Wan 2.1 (8x spatial, 4x temporal compression), built from its
// config.json and bound to its safetensors by diffusers' state-dict names.
//
//   Encoder  conv_in -> per stage: num_res_blocks WanResidualBlock [+ WanAttentionBlock at the
//            attn_scales] and, except after the last, a WanResample (downsample2d, or
//            downsample3d where temperal_downsample says so) -> WanMidBlock -> RMS norm -> SiLU
//            -> conv_out (2 * z_dim) -> quant_conv
//   Decoder  post_quant_conv -> conv_in -> WanMidBlock -> per stage num_res_blocks + 1 residual
//            blocks and, except after the last, a WanResample (upsample3d / upsample2d, the
//            temporal flags reversed) -> RMS norm -> SiLU -> conv_out, clamped to [-1, 1]
// Every 3x3x3 conv is causal in time (two zero frames in front, none behind). The norms are
// WanRMS_norm: F.normalize over channels * sqrt(C) * gamma (in f32 for 16-bit inputs).
//
// Temporal chunking, as diffusers: the decoder runs one latent frame at a time and the encoder
// one frame, then four at a time; every causal conv keeps the last two input frames of the
// previous chunk (its feature cache) so that the chunks' outputs together equal the output for
// the whole video. Activations are therefore bounded by one chunk (four output frames) whatever
// the video length; the decoded frames are written into one preallocated output.
//
// Unsupported: Wan 2.2's VAE (is_residual, patch_size), named in the error.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"

namespace mindiesd::models {

class AutoencoderKLWan {
 public:
  // Reads the component's config.json and binds its weights in `dtype` (f32, bf16 or f16).
  static AutoencoderKLWan load(const io::Component& component, DType dtype);
  static AutoencoderKLWan from_weights(io::AutoencoderKLWanConfig config, io::WeightStore weights,
                                       DType dtype);

  const io::AutoencoderKLWanConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  // The model with its weights on `device` (uploaded once); decode and encode then run there
  // and return their results on the device their input came from.
  AutoencoderKLWan to(Device device) const;
  Device device() const { return device_; }
  // 2^(number of spatial downsamplers) and 2^(number of temporal ones): 8 and 4 for Wan 2.1.
  int64_t spatial_scale() const;
  int64_t temporal_scale() const;
  // Frames of video for `latent_frames` latent frames: 1 + (latent_frames - 1) * temporal_scale.
  int64_t video_frames(int64_t latent_frames) const;

  // Latents (B, z_dim, T, h, w), already denormalised (see denormalize_latents), any float
  // dtype -> video (B, out_channels, 1 + (T - 1) * temporal_scale, h * s, w * s) in [-1, 1], in
  // dtype().
  Tensor decode(const Tensor& z) const;
  // Video (B, in_channels, F, H, W) in [-1, 1] with F = 1 + k * temporal_scale and H, W
  // multiples of spatial_scale -> {mean, logvar} of diffusers' DiagonalGaussianDistribution
  // (logvar clamped to [-30, 20]), each (B, z_dim, 1 + k, H / s, W / s).
  std::pair<Tensor, Tensor> encode(const Tensor& video) const;

  // WanPipeline's latent scaling: denormalize is `z / (1 / std) + mean` per channel (the
  // pipeline's exact expression, f32 reciprocals), normalize `(z - mean) * (1 / std)`
  // (WanImageToVideoPipeline). The result has z's dtype.
  Tensor normalize_latents(const Tensor& z) const;
  Tensor denormalize_latents(const Tensor& z) const;

 private:
  using WeightMap = std::map<std::string, Tensor>;
  struct Chunks;  // the feature caches of one chunked pass
  // encoder.down_blocks is one flat ModuleList in diffusers; what each index holds.
  struct EncoderLayer {
    enum class Kind { residual, attention, downsample2d, downsample3d } kind;
    std::string prefix;
  };

  AutoencoderKLWan(io::AutoencoderKLWanConfig config, DType dtype,
                   std::shared_ptr<const WeightMap> weights);

  Tensor decode_chunk(const Tensor& x, Chunks& st) const;
  Tensor encode_chunk(const Tensor& x, Chunks& st) const;
  Tensor residual_block(const Tensor& x, const std::string& p, Chunks& st) const;
  Tensor attention_block(const Tensor& x, const std::string& p) const;
  Tensor mid_block(const Tensor& x, const std::string& p, Chunks& st) const;
  Tensor head(const Tensor& x, const std::string& p, Chunks& st) const;  // norm, SiLU, conv_out
  Tensor upsample(const Tensor& x, const std::string& p, bool temporal, Chunks& st) const;
  Tensor downsample(const Tensor& x, const std::string& p, bool temporal, Chunks& st) const;
  Tensor cached_conv(const Tensor& x, const std::string& p, Chunks& st) const;
  Tensor rms_norm(const Tensor& x, const std::string& p) const;

  io::AutoencoderKLWanConfig config_;
  DType dtype_ = DType::f32;
  std::shared_ptr<const WeightMap> weights_;
  Device device_ = Device::cpu();
  std::vector<EncoderLayer> encoder_layers_;
};

}  // namespace mindiesd::models
