// transformers T5EncoderModel (transformers 5.24, models/t5/modeling_t5.py): the T5 v1.1 encoder
// FLUX ("text_encoder_2", google t5-v1_1-xxl), SD3 and PixArt use, built from its config.json and
// bound to its safetensors by the transformers state-dict names.
//
//   embed        shared(ids)                                        (no position embedding)
//   block i      x += o(attn(layer_norm(x), bias))                   T5LayerSelfAttention
//                x += wo(act(wi_0(n)) * wi_1(n)), n = layer_norm(x)  T5LayerFF, gated
//                   (or wo(act(wi(n))) for non-gated feed_forward_proj such as "relu")
//   output       final_layer_norm(x)
// Attention is bidirectional with no 1/sqrt(d) scaling: the logits are q.k + bias, where bias
// (1, heads, L, L) is the relative position bias of block 0 (relative_attention_bias, looked up
// by T5's log-spaced bidirectional buckets) shared by every block. layer_norm is T5LayerNorm
// (RMS norm without mean: variance in f32, normalised value cast to the weight's dtype when that
// is bf16/f16, then multiplied by the weight).
//
// Dtypes follow transformers 5.24 exactly:
//   * `_keep_in_fp32_modules = ["wo"]` applies to float16 only (PreTrainedModel._get_dtype_plan):
//     in f16 the wo weights are f32, the gated product is cast to f32 before wo, and the residual
//     stream is f32 from the first feed-forward on (f16 + f32 promotes); the f16-only clamp of
//     T5Block (to +-(65504 - 1000) when an inf appeared) is applied where the stream is f16.
//     In bf16 everything, wo included, is bf16.
//   * dense_act_fn is evaluated op by op as transformers writes it (gelu_new: seven roundings
//     in bf16/f16); in f32 it runs in the GEMM's epilogue.
//
// Weights: the embedding is "shared.weight" (what transformers 5 saves) or
// "encoder.embed_tokens.weight" (tied to it; checkpoints such as FLUX.1-dev's text_encoder_2 store
// both, which is fine, and shared.weight is used, as transformers' tying does). A full
// T5ForConditionalGeneration checkpoint binds too: its decoder.* tensors are ignored as
// T5EncoderModel's _keys_to_ignore_on_load_unexpected does, and so is lm_head.weight. Tensors
// stored in the compute dtype are used in place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"

namespace mindiesd::models {

// transformers T5Config; members and defaults as the Python class.
struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_layers = 6;
  int64_t num_heads = 8;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;
  // "relu" (original T5) or "gated-<act>" ("gated-gelu" for T5 v1.1). read() derives
  // dense_act_fn and is_gated_act from it as T5Config.__post_init__ does ("gated-gelu" ->
  // gelu_new); explicit dense_act_fn / is_gated_act keys in config.json then override them, as
  // they do in transformers 5.24.
  std::string feed_forward_proj = "relu";
  std::string dense_act_fn = "relu";
  bool is_gated_act = false;
  bool is_decoder = false;  // must stay false for the encoder

  // Reads the fields (transformers' defaults for absent keys), marks the generic transformers
  // keys and the known T5 keys the encoder does not use (dropout_rate, num_decoder_layers,
  // pad/eos/decoder_start_token_id, ...) as consumed, and validates.
  static T5Config read(io::ConfigReader& reader);
  // InvalidArgument naming the field (and `source` when given): sizes out of range (>= 1, at
  // most 2^20 per dim, 2^26 vocab entries, 1000 layers, num_buckets <= 2^16), a non-positive
  // epsilon, a feed_forward_proj not of the form "<act>" / "gated-<act>", an unsupported
  // dense_act_fn, is_decoder true, or a model_type other than t5.
  void validate(std::string_view source = "") const;
};

// T5Attention._relative_position_bucket for one relative position (memory - query), computed in
// the same f32 steps as the PyTorch code so bucket boundaries agree.
int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance);

class T5EncoderModel {
 public:
  // Reads the component's config.json and binds its weights in `dtype` (f32, bf16 or f16).
  // InvalidArgument when the component's class is not T5EncoderModel.
  static T5EncoderModel load(const io::Component& component, DType dtype);
  // InvalidArgument for an invalid config or a compute dtype that is not f32/bf16/f16, and (from
  // BoundWeights) one InvalidArgument listing every missing, mis-shaped and unexpected tensor.
  static T5EncoderModel from_weights(T5Config config, io::WeightStore weights, DType dtype);

  const T5Config& config() const { return config_; }
  DType dtype() const { return dtype_; }

  // input_ids (B, L) i64 or i32, L >= 1, ids in [0, vocab_size) (InvalidArgument naming the
  // offending id otherwise) -> last_hidden_state (B, L, d_model) in dtype().
  Tensor forward(const Tensor& input_ids) const;

  // T5Attention.compute_bias(L, L): (1, num_heads, L, L), in the dtype of the bias table unless
  // `dtype` asks for another.
  Tensor position_bias(int64_t seq_len, std::optional<DType> dtype = std::nullopt) const;

 private:
  struct Layer {
    Tensor ln_attn, q, k, v, o;
    Tensor ln_ff, wi_0, wi_1, wo;  // wi_0 is `wi` for non-gated feed-forwards
  };
  T5EncoderModel(T5Config config, DType dtype) : config_(std::move(config)), dtype_(dtype) {}

  T5Config config_;
  DType dtype_;
  Tensor embedding_, relative_attention_bias_, final_ln_;
  std::vector<Layer> layers_;
};

}  // namespace mindiesd::models
