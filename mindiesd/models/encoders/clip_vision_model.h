// transformers CLIPVisionModel (transformers 5.24, models/clip/modeling_clip.py): the CLIP ViT
// image tower, as Wan 2.1 I2V uses it ("image_encoder", laion CLIP ViT-H/14), built from its
// config.json and bound to its safetensors by the transformers state-dict names.
//
//   embeddings   patch_embedding (conv, stride = patch, no bias) flattened to tokens, the class
//                embedding in front, + position_embedding(0..N)
//   pre_layrnorm (transformers' spelling), then the CLIPEncoder layers (clip_encoder.h), with
//                bidirectional attention
//   outputs      hidden_states[k] = the residual stream after k layers (0: after pre_layrnorm);
//                last_hidden_state = hidden_states[-1]; pooler_output = post_layernorm of the
//                class token
// Wan's pipeline takes hidden_states[-2]; hidden_state(pixels, -2) runs only the layers needed.
//
// Weights: transformers 5 checkpoints (no prefix) and transformers 4 ones ("vision_model."
// prefix, as Wan2.1-I2V's image_encoder ships) both bind; a stored position_ids buffer is ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/encoders/clip_encoder.h"

namespace mindiesd::models {

// transformers CLIPVisionConfig; members and defaults as the Python class.
struct CLIPVisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t projection_dim = 512;  // unused by CLIPVisionModel
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;

  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }

  // InvalidArgument naming the field for non-positive or absurd sizes, heads not dividing
  // hidden_size, image_size not a multiple of patch_size, an unsupported hidden_act, or a
  // model_type other than clip_vision_model.
  static CLIPVisionConfig read(io::ConfigReader& reader);
  void validate(std::string_view source = "") const;
};

class CLIPVisionModel {
 public:
  static CLIPVisionModel load(const io::Component& component, DType dtype);
  static CLIPVisionModel from_weights(CLIPVisionConfig config, io::WeightStore weights,
                                      DType dtype);

  const CLIPVisionConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  // The model with its weights on `device` (uploaded once); it then runs there and its results
  // stay there, whatever device the pixels come from.
  CLIPVisionModel to(Device device) const;
  Device device() const { return device_; }

  // pixel_values (B, num_channels, image_size, image_size), any float dtype (cast to dtype() as
  // transformers does) -> hidden_states[index] (B, num_patches + 1, hidden_size) in dtype();
  // index in [-(layers + 1), layers]. InvalidArgument for other shapes or indices.
  Tensor hidden_state(const Tensor& pixel_values, int64_t index) const;
  // last_hidden_state.
  Tensor forward(const Tensor& pixel_values) const {
    return hidden_state(pixel_values, config_.num_hidden_layers);
  }

 private:
  CLIPVisionModel(CLIPVisionConfig config, DType dtype)
      : config_(std::move(config)), dtype_(dtype) {}

  CLIPVisionConfig config_;
  DType dtype_;
  Tensor class_embedding_, patch_embedding_, position_embedding_, pre_ln_w_, pre_ln_b_;
  std::vector<ClipEncoderLayer> layers_;
  Device device_ = Device::cpu();
};

}  // namespace mindiesd::models
