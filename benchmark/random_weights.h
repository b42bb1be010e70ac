// The diffusers state dicts of a FluxTransformer2DModel and a WanTransformer3DModel with random
// weights, for benchmarks that run the real width without the real checkpoint: every weight and
// bias comes from `draw(shape)`, every QK RMSNorm weight (and Wan's norm2 weight) is 1; in bf16
// on `device`.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "mindiesd/core/ops.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "mindiesd/models/wan/wan_transformer.h"

namespace mindiesd::bench {

inline std::map<std::string, Tensor> random_flux_state_dict(
    const io::FluxTransformer2DModelConfig& c, const std::function<Tensor(const Shape&)>& draw,
    Device device = Device::cpu()) {
  const int64_t n = c.num_attention_heads * c.attention_head_dim, d = c.attention_head_dim;
  std::map<std::string, Tensor> w;
  auto lin = [&](const std::string& name, int64_t out, int64_t in) {
    w[name + ".weight"] = draw({out, in});
    w[name + ".bias"] = draw({out});
  };
  auto norm = [&](const std::string& name) { w[name] = ops::full({d}, 1.0, DType::bf16, device); };
  lin("x_embedder", n, c.in_channels);
  lin("context_embedder", n, c.joint_attention_dim);
  for (const char* e : {"timestep_embedder", "guidance_embedder"}) {
    if (!c.guidance_embeds && std::string(e) == "guidance_embedder") continue;
    lin(std::string("time_text_embed.") + e + ".linear_1", n, 256);
    lin(std::string("time_text_embed.") + e + ".linear_2", n, n);
  }
  lin("time_text_embed.text_embedder.linear_1", n, c.pooled_projection_dim);
  lin("time_text_embed.text_embedder.linear_2", n, n);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "transformer_blocks." + std::to_string(i) + ".";
    lin(p + "norm1.linear", 6 * n, n);
    lin(p + "norm1_context.linear", 6 * n, n);
    for (const char* l : {"to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                          "add_v_proj", "to_add_out"})
      lin(p + "attn." + l, n, n);
    for (const char* l : {"norm_q", "norm_k", "norm_added_q", "norm_added_k"})
      norm(p + "attn." + l + ".weight");
    for (const char* f : {"ff", "ff_context"}) {
      lin(p + f + ".net.0.proj", 4 * n, n);
      lin(p + f + ".net.2", n, 4 * n);
    }
  }
  for (int64_t i = 0; i < c.num_single_layers; ++i) {
    const std::string p = "single_transformer_blocks." + std::to_string(i) + ".";
    lin(p + "norm.linear", 3 * n, n);
    for (const char* l : {"to_q", "to_k", "to_v"}) lin(p + "attn." + l, n, n);
    for (const char* l : {"norm_q", "norm_k"}) norm(p + "attn." + l + ".weight");
    lin(p + "proj_mlp", 4 * n, n);
    lin(p + "proj_out", n, 5 * n);
  }
  lin("norm_out.linear", 2 * n, n);
  lin("proj_out", c.patch_size * c.patch_size * c.in_channels, n);
  return w;
}

inline std::map<std::string, Tensor> random_wan_state_dict(
    const io::WanTransformer3DModelConfig& c, const std::function<Tensor(const Shape&)>& draw,
    Device device = Device::cpu()) {
  const int64_t n = c.num_attention_heads * c.attention_head_dim;
  std::map<std::string, Tensor> w;
  auto lin = [&](const std::string& name, int64_t out, int64_t in) {
    w[name + ".weight"] = draw({out, in});
    w[name + ".bias"] = draw({out});
  };
  auto ones = [&](const std::string& name) { w[name] = ops::full({n}, 1.0, DType::bf16, device); };
  w["patch_embedding.weight"] = draw({n, c.in_channels, 1, 2, 2});
  w["patch_embedding.bias"] = draw({n});
  lin("condition_embedder.time_embedder.linear_1", n, c.freq_dim);
  lin("condition_embedder.time_embedder.linear_2", n, n);
  lin("condition_embedder.time_proj", 6 * n, n);
  lin("condition_embedder.text_embedder.linear_1", n, c.text_dim);
  lin("condition_embedder.text_embedder.linear_2", n, n);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    for (const char* a : {"attn1.", "attn2."}) {
      for (const char* l : {"to_q", "to_k", "to_v", "to_out.0"}) lin(p + a + l, n, n);
      ones(p + a + "norm_q.weight");
      ones(p + a + "norm_k.weight");
    }
    ones(p + "norm2.weight");
    w[p + "norm2.bias"] = draw({n});
    lin(p + "ffn.net.0.proj", c.ffn_dim, n);
    lin(p + "ffn.net.2", n, c.ffn_dim);
    w[p + "scale_shift_table"] = draw({1, 6, n});
  }
  w["scale_shift_table"] = draw({1, 2, n});
  lin("proj_out", c.out_channels * 4, n);
  return w;
}

// N(0, 0.02) bf16 weights, fast: each tensor is its own copy of a window of one pool of noise
// at a pseudo-random offset (drawing every weight's noise took 20 s for FLUX's 0.7 B here).
class RandomWeights {
 public:
  RandomWeights(int64_t pool_size, uint64_t seed)
      : pool_(ops::affine(ops::randn({pool_size}, seed, 0, DType::bf16), 0.02f, 0.0f)) {}
  Tensor operator()(const Shape& shape) {
    const int64_t n = shape.numel(), room = pool_.numel() - n + 1;
    if (room < 1) return ops::affine(ops::randn(shape, 7 + count_++, 0, DType::bf16), 0.02f, 0.0f);
    const int64_t offset = static_cast<int64_t>((count_++ * 2654435761ull) % room);
    return pool_.narrow(0, offset, n).view(shape).clone();
  }

 private:
  Tensor pool_;
  uint64_t count_ = 1;
};

// FLUX.1-dev's transformer at its width with `doubles` + `singles` blocks, N(0, 0.02) weights.
inline models::FluxTransformer2DModel random_flux(int64_t doubles, int64_t singles) {
  io::FluxTransformer2DModelConfig c;  // FLUX.1-dev: 24 x 128 heads, joint 4096, pooled 768
  c.guidance_embeds = true;
  c.num_layers = doubles;
  c.num_single_layers = singles;
  const int64_t n = c.num_attention_heads * c.attention_head_dim;
  RandomWeights rnd(5 * n * n + (1 << 20), 100);  // the largest weight: proj_out, (N, 5 N)
  std::map<std::string, Tensor> w = random_flux_state_dict(c, std::ref(rnd));
  return models::FluxTransformer2DModel::from_weights(
      c, io::WeightStore::from_tensors(std::move(w)), DType::bf16);
}

// Wan2.1-T2V-1.3B's transformer at its width with `layers` blocks, N(0, 0.02) weights.
inline models::WanTransformer3DModel random_wan_1_3b(int64_t layers) {
  io::WanTransformer3DModelConfig c;  // Wan2.1-T2V-1.3B: 12 x 128 heads, FFN 8960
  c.num_attention_heads = 12;
  c.ffn_dim = 8960;
  c.num_layers = layers;
  const int64_t n = c.num_attention_heads * c.attention_head_dim;
  RandomWeights rnd(c.ffn_dim * n + (1 << 20), 500);  // the largest weight: the FFN's
  std::map<std::string, Tensor> w = random_wan_state_dict(c, std::ref(rnd));
  return models::WanTransformer3DModel::from_weights(c, io::WeightStore::from_tensors(std::move(w)),
                                                     DType::bf16);
}

}  // namespace mindiesd::bench
