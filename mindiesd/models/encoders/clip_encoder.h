// transformers' CLIPEncoder, shared by CLIPTextModel and CLIPVisionModel: pre-norm layers
//   x += out_proj(attn(layer_norm1(x))),  x += fc2(act(fc1(layer_norm2(x))))
// bound under "<prefix>encoder.layers.<i>." and run with the residual add of one block fused
// with the layer norm of the next (the sum is rounded before it is normalised, as PyTorch's two
// ops do).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/tensor.h"

namespace mindiesd::models {

struct ClipEncoderLayer {
  Tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
  Tensor ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

// `take(name, shape)` binds one tensor (BoundWeights::take with the checkpoint's prefix).
std::vector<ClipEncoderLayer> bind_clip_encoder(
    const std::function<Tensor(const std::string&, const Shape&)>& take, int64_t layers,
    int64_t hidden, int64_t intermediate);

// Every tensor of `layers` moved to `device`.
void move_clip_encoder(std::vector<ClipEncoderLayer>& layers, Device device);

struct ClipEncoderOutput {
  Tensor hidden;  // the residual stream after the last layer run
  Tensor normed;  // final_norm(hidden) when final_w was given, else undefined
};

// Runs `layers` on x (B, L, hidden): `heads` heads, ACT2FN[act] in the MLP, layer norms with
// `eps`, causal self-attention when `causal` (the text tower), optionally the final layer norm.
ClipEncoderOutput run_clip_encoder(const Tensor& x, std::span<const ClipEncoderLayer> layers,
                                   int64_t heads, std::string_view act, float eps, bool causal,
                                   const Tensor& final_w = Tensor(),
                                   const Tensor& final_b = Tensor());

}  // namespace mindiesd::models
