// transformers CLIPTextModel (transformers 5.24, models/clip/modeling_clip.py): the CLIP text
// tower of SD 1.x/2.x/XL and FLUX ("text_encoder"), built from its config.json and bound to its
// safetensors by the transformers state-dict names.
//
//   embeddings   token_embedding(ids) + position_embedding(0..L-1)
//   layers       x += out_proj(attn(layer_norm1(x)))    causal self-attention, 1/sqrt(head_dim)
//                x += fc2(act(fc1(layer_norm2(x))))     act = hidden_act (quick_gelu for CLIP)
//   output       last_hidden_state = final_layer_norm(x)
//                pooler_output = last_hidden_state[b, eos position of row b]
// The eos position follows transformers: with eos_token_id == 2 (configs written before
// transformers PR #24773, e.g. CLIP ViT-L/14 as FLUX.1 ships it) the first position of the largest
// id (the end-of-text token has the largest id of the CLIP vocabulary); otherwise the first
// position holding eos_token_id, or 0 when the row has none (argmax over all-false).
// No padding mask is applied (FLUX and SD pass none; padded positions attend causally like any
// other token, which is what the reference computes).
//
// Dtypes: every op rounds to the compute dtype where PyTorch does (embedding sum, each linear,
// each step of quick_gelu = x * sigmoid(1.702 x), residual adds); layer norms and attention
// compute in f32 inside and round once, as PyTorch's CPU kernels do.
//
// Weights: checkpoints saved by transformers 5 (no prefix) and by transformers 4 (a "text_model."
// prefix, e.g. FLUX.1-dev's text_encoder, which transformers 5 strips on load) both bind; a stored
// embeddings.position_ids buffer is ignored. Tensors stored in the compute dtype are used in place.
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
#include "mindiesd/models/encoders/clip_encoder.h"

namespace mindiesd::models {

// ---- shared by the transformers text encoders ----

// Marks the keys every transformers config.json may carry (PreTrainedConfig's generic fields,
// the generation defaults transformers 4 wrote into model configs, dtype / torch_dtype,
// architectures, dropout and init settings) as consumed, so that they are neither warned about
// nor an error. The model-specific fields are read by each config's read().
void mark_transformers_config_keys(io::ConfigReader& reader);

// transformers ACT2FN[name] evaluated as PyTorch evaluates it in x's dtype, rounding after every
// op the Python code performs (NewGELUActivation's seven, QuickGELUActivation's three, one for
// the single-op activations). Names: gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu,
// silu, swish. Unsupported (listing these) for any other name.
Tensor transformers_activation(std::string_view name, const Tensor& x);
bool is_supported_transformers_activation(std::string_view name);
std::string transformers_activation_names();  // "gelu, gelu_new, ..."
// act(x @ weight^T + bias) as a transformers Linear followed by ACT2FN[act]: in f32 the
// activation runs in the GEMM's epilogue where one exists (equal to PyTorch's f32 op sequence
// to within f32 rounding); in bf16 / f16 the GEMM output is rounded and the activation replays
// transformers' op sequence (transformers_activation), as PyTorch computes it.
Tensor transformers_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                           std::string_view act);

// The ids of a (B, L) i64 / i32 token tensor on the host, row-major, after checking what both
// encoders need: 2-d, 1 <= L, B >= 1 and every id in [0, vocab_size). `model` names the caller
// in the InvalidArgument ("CLIPTextModel: input_ids[1, 5] = 50000 is out of range [0, 49408)").
std::vector<int64_t> checked_input_ids(const Tensor& input_ids, int64_t vocab_size,
                                       std::string_view model);

// ---- CLIP ----

// transformers CLIPTextConfig; members and defaults as the Python class.
struct CLIPTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;  // unused by CLIPTextModel (CLIPTextModelWithProjection's)
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
  std::optional<int64_t> pad_token_id = 1;  // unused by the forward pass
  std::optional<int64_t> bos_token_id = 49406;
  int64_t eos_token_id = 49407;  // selects the pooling rule (see above); must be an integer

  // Reads the fields (transformers' defaults for absent keys), marks the generic transformers
  // keys as consumed and validates: InvalidArgument naming the field for non-positive or absurd
  // sizes (beyond 2^20 per dim, 2^26 vocab entries, 1000 layers), heads not dividing
  // hidden_size, a non-positive eps, an unsupported hidden_act, or a model_type other than
  // clip_text_model.
  static CLIPTextConfig read(io::ConfigReader& reader);
  // The same checks on a config built in code (InvalidArgument naming the field, and `source`,
  // the config file, when given).
  void validate(std::string_view source = "") const;
};

class CLIPTextModel {
 public:
  // Reads the component's config.json and binds its weights in `dtype` (f32, bf16 or f16).
  // InvalidArgument when the component's class is not CLIPTextModel.
  static CLIPTextModel load(const io::Component& component, DType dtype);
  // InvalidArgument for an invalid config or a compute dtype that is not f32/bf16/f16, and (from
  // BoundWeights) one InvalidArgument listing every missing, mis-shaped and unexpected tensor.
  static CLIPTextModel from_weights(CLIPTextConfig config, io::WeightStore weights, DType dtype);

  const CLIPTextConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  // The model with its weights on `device` (uploaded once); forward then runs there and its
  // results stay there (token ids are read on the host).
  CLIPTextModel to(Device device) const;
  Device device() const { return device_; }

  struct Output {
    Tensor last_hidden_state;  // (B, L, hidden_size), dtype()
    Tensor pooler_output;      // (B, hidden_size), dtype()
  };
  // input_ids (B, L) i64 or i32 with 1 <= L <= max_position_embeddings and every id in
  // [0, vocab_size); InvalidArgument naming the offending id / length otherwise.
  Output forward(const Tensor& input_ids) const;

 private:
  CLIPTextModel(CLIPTextConfig config, DType dtype) : config_(std::move(config)), dtype_(dtype) {}

  CLIPTextConfig config_;
  DType dtype_;
  Tensor token_embedding_, position_embedding_, final_ln_w_, final_ln_b_;
  std::vector<ClipEncoderLayer> layers_;
  Device device_ = Device::cpu();
};

}  // namespace mindiesd::models
