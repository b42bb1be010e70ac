// transformers T5EncoderModel (transformers 5.24, models/t5/modeling_t5.py): the T5 v1.1 encoder
// FLUX ("text_encoder_2", google t5-v1_1-xxl), SD3 and PixArt use, built from its config.json and
// bound to its safetensors by the transformers state-dict names; and UMT5EncoderModel
// (models/umt5/modeling_umt5.py), Wan's text encoder (google/umt5-xxl), which is the same network
// except that every block has its own relative_attention_bias table (config model_type "umt5").
//
//   embed        shared(ids)                                        (no position embedding)
//   block i      x += o(attn(layer_norm(x), bias))                   T5LayerSelfAttention
//                x += wo(act(wi_0(n)) * wi_1(n)), n = layer_norm(x)  T5LayerFF, gated
//                   (or wo(act(wi(n))) for non-gated feed_forward_proj such as "relu")
//   output       final_layer_norm(x)
// Attention is bidirectional with no 1/sqrt(d) scaling: the logits are q.k + bias, where bias
// (1, heads, L, L) is the relative position bias of block 0 (relative_attention_bias, looked up
// by T5's log-spaced bidirectional buckets) shared by every block; in UMT5 block i looks up its
// own table (encoder.block.i.layer.0.SelfAttention.relative_attention_bias.weight) with the same
// buckets. An attention_mask (B, L) hides the keys where it is 0 as transformers' SDPA path does:
// the bias of a hidden key is replaced by finfo(dtype).min (so a fully masked row attends
// uniformly to every key, as in PyTorch). layer_norm is T5LayerNorm
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

// transformers T5Config and UMT5Config; members as the Python classes, defaults as T5Config (a
// default-constructed T5Config) or UMT5Config (T5Config::umt5()).
struct T5Config {
  // "t5" or "umt5": UMT5 gives every block its own relative_attention_bias.
  std::string model_type = "t5";
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

  // UMT5Config's defaults: vocab_size 250112, d_ff 1024, num_layers 8, num_heads 6,
  // feed_forward_proj "gated-gelu" (dense_act_fn gelu_new, gated), model_type "umt5".
  static T5Config umt5();
  bool per_layer_bias() const { return model_type == "umt5"; }

  // Reads the fields (the defaults of T5Config, or of UMT5Config when model_type is "umt5", for
  // absent keys), marks the generic transformers keys and the known T5 keys the encoder does not
  // use (dropout_rate, num_decoder_layers, pad/eos/decoder_start_token_id, umt5-xxl's
  // scalable_attention, ...) as consumed, and validates. A config without model_type is read as
  // `default_model_type`.
  static T5Config read(io::ConfigReader& reader, std::string_view default_model_type = "t5");
  // InvalidArgument naming the field (and `source` when given): sizes out of range (>= 1, at
  // most 2^20 per dim, 2^26 vocab entries, 1000 layers, num_buckets <= 2^16), a non-positive
  // epsilon, a feed_forward_proj not of the form "<act>" / "gated-<act>", an unsupported
  // dense_act_fn, is_decoder true, or a model_type other than t5 / umt5.
  void validate(std::string_view source = "") const;
};

// T5Attention._relative_position_bucket for one relative position (memory - query), computed in
// the same f32 steps as the PyTorch code so bucket boundaries agree.
int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance);

class T5EncoderModel {
 public:
  // Reads the component's config.json and binds its weights in `dtype` (f32, bf16 or f16).
  // InvalidArgument when the component's class is not T5EncoderModel / UMT5EncoderModel, or does
  // not match the config's model_type (a config without one takes the class's).
  static T5EncoderModel load(const io::Component& component, DType dtype);
  // InvalidArgument for an invalid config or a compute dtype that is not f32/bf16/f16, and (from
  // BoundWeights) one InvalidArgument listing every missing, mis-shaped and unexpected tensor.
  static T5EncoderModel from_weights(T5Config config, io::WeightStore weights, DType dtype);

  const T5Config& config() const { return config_; }
  DType dtype() const { return dtype_; }
  // The model with its weights on `device` (uploaded once); forward then runs there and its
  // results stay there (token ids are read on the host).
  T5EncoderModel to(Device device) const;
  Device device() const { return device_; }

  // input_ids (B, L) i64 or i32, L >= 1, ids in [0, vocab_size) (InvalidArgument naming the
  // offending id otherwise) -> last_hidden_state (B, L, d_model) in dtype().
  // attention_mask: undefined, or (B, L) of any integer, bool or float dtype, nonzero = attend
  // (transformers' 2-d mask); InvalidArgument when its shape differs from input_ids'. A mask
  // with no zero is the same as none.
  Tensor forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor()) const;

  // T5Attention.compute_bias(L, L) of block `layer` (UMT5; T5's blocks all use block 0's):
  // (1, num_heads, L, L), in the dtype of the bias table unless `dtype` asks for another.
  Tensor position_bias(int64_t seq_len, std::optional<DType> dtype = std::nullopt,
                       int64_t layer = 0) const;

 private:
  struct Layer {
    Tensor ln_attn, q, k, v, o;
    Tensor ln_ff, wi_0, wi_1, wo;    // wi_0 is `wi` for non-gated feed-forwards
    Tensor relative_attention_bias;  // block 0 in T5, every block in UMT5; else undefined
  };
  T5EncoderModel(T5Config config, DType dtype) : config_(std::move(config)), dtype_(dtype) {}

  T5Config config_;
  DType dtype_;
  Tensor embedding_, final_ln_;
  std::vector<Layer> layers_;
  Device device_ = Device::cpu();
};

// The names Wan's pipeline and transformers use for the UMT5 flavour.
using UMT5Config = T5Config;
using UMT5EncoderModel = T5EncoderModel;

// diffusers WanPipeline._get_t5_prompt_embeds after tokenization: last_hidden_state of
// model.forward(input_ids, attention_mask), each row cut at its length n = the number of
// positive mask entries (the tokenizer pads on the right) and padded back with zeros to
// (B, max_sequence_length, d_model), in model.dtype(). attention_mask is required (i64, i32,
// bool or float, shape of input_ids); InvalidArgument when a row's n exceeds max_sequence_length.
Tensor umt5_prompt_embeds(const T5EncoderModel& model, const Tensor& input_ids,
                          const Tensor& attention_mask, int64_t max_sequence_length);

}  // namespace mindiesd::models
