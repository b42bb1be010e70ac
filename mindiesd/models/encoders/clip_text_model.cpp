#include "mindiesd/models/encoders/clip_text_model.h"

#include <array>
#include <cmath>
#include <numbers>
#include <optional>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/linear.h"
#include "mindiesd/layer/norm.h"
#include "mindiesd/models/encoders/clip_encoder.h"
#include "mindiesd/models/weights.h"

namespace mindiesd::models {

// ---- shared by the transformers text encoders ----

void mark_transformers_config_keys(io::ConfigReader& reader) {
  // PreTrainedConfig's own fields (transformers 5) and those transformers 4 wrote into every
  // config.json (generation defaults, TF/torchscript flags), plus the dropout / init settings
  // that only matter for training.
  // clang-format off
  static constexpr std::array<const char*, 62> kGeneric = {
      "architectures", "dtype", "torch_dtype", "transformers_version", "model_type",
      "return_dict", "output_hidden_states", "output_attentions", "torchscript",
      "use_bfloat16", "tf_legacy_loss", "pruned_heads", "tie_word_embeddings",
      "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder",
      "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "max_length",
      "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups",
      "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
      "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
      "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
      "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
      "suppress_tokens", "begin_suppress_tokens", "finetuning_task", "id2label", "label2id",
      "tokenizer_class", "prefix", "sep_token_id", "decoder_start_token_id",
      "task_specific_params", "problem_type", "gradient_checkpointing", "use_cache",
      "output_past", "initializer_range", "initializer_factor", "dropout", "attention_dropout",
      "dropout_rate", "classifier_dropout"};
  // clang-format on
  for (const char* k : kGeneric) reader.mark_used(k);
}

namespace {
constexpr std::array<const char*, 7> kActivations = {
    "gelu", "gelu_new", "gelu_pytorch_tanh", "quick_gelu", "relu", "silu", "swish"};
}  // namespace

std::string transformers_activation_names() {
  std::string names;
  for (const char* a : kActivations) names += str_cat(names.empty() ? "" : ", ", a);
  return names;
}

bool is_supported_transformers_activation(std::string_view name) {
  for (const char* a : kActivations)
    if (name == a) return true;
  return false;
}

Tensor transformers_activation(std::string_view name, const Tensor& x) {
  if (name == "gelu") return ops::gelu(x);  // nn.functional.gelu: one op
  if (name == "gelu_pytorch_tanh") return ops::gelu(x, /*tanh_approx=*/true);
  if (name == "relu") return ops::relu(x);
  if (name == "silu" || name == "swish") return ops::silu(x);
  if (name == "quick_gelu") {
    // QuickGELUActivation: input * torch.sigmoid(1.702 * input), three roundings.
    return ops::mul(x, ops::sigmoid(ops::affine(x, 1.702f, 0.0f)));
  }
  if (name == "gelu_new") {
    // NewGELUActivation: 0.5 * input * (1.0 + torch.tanh(sqrt(2 / pi) * (input + 0.044715 *
    // torch.pow(input, 3.0)))), op by op. torch.pow(x, 3) is x * x * x in bf16 and f32 (two
    // roundings) but one powf in f16 (PowKernel.cpp's optimized path skips Half).
    const Tensor cube = x.dtype() == DType::f16 ? ops::unary(x, UnaryKind::pow_scalar, 3.0f)
                                                : ops::mul(ops::mul(x, x), x);
    const float k = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));
    const Tensor inner = ops::affine(ops::add(x, ops::affine(cube, 0.044715f, 0.0f)), k, 0.0f);
    return ops::mul(ops::affine(x, 0.5f, 0.0f), ops::affine(ops::tanh(inner), 1.0f, 1.0f));
  }
  MINDIESD_THROW(Unsupported, "activation '", name, "' is not supported (",
                 transformers_activation_names(), ")");
}

namespace {
// The GEMM epilogue computing `act` in f32 (equal to PyTorch's f32 op sequence to within f32
// rounding), when there is one.
std::optional<UnaryKind> epilogue_of(std::string_view act) {
  if (act == "gelu") return UnaryKind::gelu;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return UnaryKind::gelu_tanh;
  if (act == "relu") return UnaryKind::relu;
  if (act == "silu" || act == "swish") return UnaryKind::silu;
  return std::nullopt;
}
}  // namespace

Tensor transformers_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                           std::string_view act) {
  if (x.dtype() == DType::f32) {
    if (const auto e = epilogue_of(act)) {
      layer::LinearEpilogue ep;
      ep.activation = e;
      return layer::linear(x, weight, bias, ep);
    }
  }
  return transformers_activation(act, layer::linear(x, weight, bias));
}

std::vector<int64_t> checked_input_ids(const Tensor& input_ids, int64_t vocab_size,
                                       std::string_view model) {
  MINDIESD_CHECK(input_ids.defined(), InvalidArgument, model, ": input_ids is undefined");
  MINDIESD_CHECK(input_ids.dim() == 2, InvalidArgument, model,
                 ": input_ids must be 2-d (batch, seq_len), got ", input_ids.shape().str());
  MINDIESD_CHECK(input_ids.dtype() == DType::i64 || input_ids.dtype() == DType::i32,
                 InvalidArgument, model, ": input_ids must be i64 or i32, got ",
                 dtype_name(input_ids.dtype()));
  MINDIESD_CHECK(input_ids.size(0) >= 1 && input_ids.size(1) >= 1, InvalidArgument, model,
                 ": input_ids ", input_ids.shape().str(), " is empty");
  const Tensor host = input_ids.to(Device::cpu()).to(DType::i64).contiguous();
  const int64_t* p = host.data<int64_t>();
  const int64_t n = host.numel(), len = host.size(1);
  std::vector<int64_t> ids(p, p + n);
  for (int64_t i = 0; i < n; ++i) {
    MINDIESD_CHECK(ids[i] >= 0 && ids[i] < vocab_size, InvalidArgument, model, ": input_ids[",
                   i / len, ", ", i % len, "] = ", ids[i], " is out of range [0, ", vocab_size,
                   ")");
  }
  return ids;
}

// ---- CLIPTextConfig ----

namespace {

// Largest sizes a config may ask for: well above any published model, small enough that a typo
// (or a hostile file) cannot make the binder allocate or loop without bound.
constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr int64_t kMaxVocab = int64_t{1} << 26;
constexpr int64_t kMaxLayers = 1000;

// "<source>: CLIPTextConfig" or "CLIPTextConfig" for a config built in code.
std::string config_name(std::string_view source) {
  return source.empty() ? "CLIPTextConfig" : str_cat(source, ": CLIPTextConfig");
}

}  // namespace

void CLIPTextConfig::validate(std::string_view source) const {
  const std::string who = config_name(source);
  auto dim = [&](std::string_view f, int64_t v, int64_t hi) {
    MINDIESD_CHECK(v >= 1 && v <= hi, InvalidArgument, who, ": field '", f, "' = ", v,
                   " is out of range [1, ", hi, "]");
  };
  dim("vocab_size", vocab_size, kMaxVocab);
  dim("hidden_size", hidden_size, kMaxDim);
  dim("intermediate_size", intermediate_size, kMaxDim);
  dim("projection_dim", projection_dim, kMaxDim);
  dim("num_hidden_layers", num_hidden_layers, kMaxLayers);
  dim("num_attention_heads", num_attention_heads, hidden_size);
  dim("max_position_embeddings", max_position_embeddings, kMaxDim);
  MINDIESD_CHECK(hidden_size % num_attention_heads == 0, InvalidArgument, who, ": hidden_size ",
                 hidden_size, " is not divisible by num_attention_heads ", num_attention_heads);
  MINDIESD_CHECK(std::isfinite(layer_norm_eps) && layer_norm_eps > 0, InvalidArgument, who,
                 ": field 'layer_norm_eps' = ", layer_norm_eps, " must be positive and finite");
  MINDIESD_CHECK(is_supported_transformers_activation(hidden_act), InvalidArgument, who,
                 ": field 'hidden_act' = '", hidden_act, "' is not supported (",
                 transformers_activation_names(), ")");
}

CLIPTextConfig CLIPTextConfig::read(io::ConfigReader& r) {
  mark_transformers_config_keys(r);
  if (r.has("model_type")) {
    const auto type = r.nullable<std::string>("model_type");
    r.check(!type || *type == "clip_text_model", "model_type",
            str_cat("expected \"clip_text_model\", got \"", type.value_or(""), "\""));
  }
  CLIPTextConfig c;
  c.vocab_size = r.optional("vocab_size", c.vocab_size);
  c.hidden_size = r.optional("hidden_size", c.hidden_size);
  c.intermediate_size = r.optional("intermediate_size", c.intermediate_size);
  c.projection_dim = r.optional("projection_dim", c.projection_dim);
  c.num_hidden_layers = r.optional("num_hidden_layers", c.num_hidden_layers);
  c.num_attention_heads = r.optional("num_attention_heads", c.num_attention_heads);
  c.max_position_embeddings = r.optional("max_position_embeddings", c.max_position_embeddings);
  c.hidden_act = r.optional("hidden_act", c.hidden_act);
  c.layer_norm_eps = r.optional("layer_norm_eps", c.layer_norm_eps);
  c.pad_token_id = r.nullable("pad_token_id", c.pad_token_id);
  c.bos_token_id = r.nullable("bos_token_id", c.bos_token_id);
  c.eos_token_id = r.optional("eos_token_id", c.eos_token_id);
  c.validate(r.source());
  return c;
}

// ---- CLIPTextModel ----

CLIPTextModel CLIPTextModel::load(const io::Component& component, DType dtype) {
  MINDIESD_CHECK(component.class_name.empty() || component.class_name == "CLIPTextModel",
                 InvalidArgument, "CLIPTextModel: component '", component.name, "' is a ",
                 component.class_name);
  io::ConfigReader reader = component.config_reader();
  CLIPTextConfig config = CLIPTextConfig::read(reader);
  return from_weights(std::move(config), component.open_weights(), dtype);
}

CLIPTextModel CLIPTextModel::from_weights(CLIPTextConfig c, io::WeightStore weights, DType dtype) {
  MINDIESD_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16,
                 InvalidArgument, "CLIPTextModel: compute dtype must be f32, bf16 or f16, got ",
                 dtype_name(dtype));
  c.validate();
  const std::string what =
      weights.valid() ? str_cat("CLIPTextModel at ", weights.path().string()) : "CLIPTextModel";
  // transformers 4 saved the tower under "text_model." (transformers 5 strips it on load).
  const std::string prefix =
      weights.valid() && weights.has("text_model.embeddings.token_embedding.weight") ? "text_model."
                                                                                     : "";
  BoundWeights bw(std::move(weights), dtype, what);
  auto take = [&](const std::string& name, const Shape& shape) {
    return bw.take(prefix + name, shape);
  };
  const int64_t h = c.hidden_size, inter = c.intermediate_size;

  CLIPTextModel m(c, dtype);
  m.token_embedding_ = take("embeddings.token_embedding.weight", {c.vocab_size, h});
  m.position_embedding_ =
      take("embeddings.position_embedding.weight", {c.max_position_embeddings, h});
  bw.ignore(prefix + "embeddings.position_ids");  // a buffer older checkpoints stored
  m.layers_ = bind_clip_encoder(take, c.num_hidden_layers, h, inter);
  m.final_ln_w_ = take("final_layer_norm.weight", {h});
  m.final_ln_b_ = take("final_layer_norm.bias", {h});
  bw.finish();
  return m;
}

CLIPTextModel CLIPTextModel::to(Device device) const {
  CLIPTextModel m = *this;
  move_tensors({&m.token_embedding_, &m.position_embedding_, &m.final_ln_w_, &m.final_ln_b_},
               device);
  move_clip_encoder(m.layers_, device);
  m.device_ = device;
  return m;
}

CLIPTextModel::Output CLIPTextModel::forward(const Tensor& input_ids) const {
  const CLIPTextConfig& c = config_;
  const std::vector<int64_t> ids = checked_input_ids(input_ids, c.vocab_size, "CLIPTextModel");
  const int64_t b = input_ids.size(0), len = input_ids.size(1), h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  MINDIESD_CHECK(len <= c.max_position_embeddings, InvalidArgument,
                 "CLIPTextModel: sequence length ", len, " exceeds max_position_embeddings ",
                 c.max_position_embeddings);
  const auto eps = static_cast<float>(c.layer_norm_eps);

  // CLIPTextEmbeddings: token + position embedding (position_ids 0..L-1), one rounding.
  const Tensor flat_ids = Tensor::from_blob(const_cast<int64_t*>(ids.data()), {b * len}, DType::i64,
                                            Device::cpu(), nullptr)
                              .to(device_);
  Tensor x = ops::add(ops::index_select(token_embedding_, 0, flat_ids).view({b, len, h}),
                      position_embedding_.narrow(0, 0, len));

  const Tensor normed = run_clip_encoder(x, layers_, heads, c.hidden_act, eps, /*causal=*/true,
                                         final_ln_w_, final_ln_b_)
                            .normed;

  // Pooling: the eos position of each row (see the header for transformers' two rules).
  Output out;
  out.last_hidden_state = normed;
  out.pooler_output = Tensor::empty({b, h}, dtype_, device_);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t* row = ids.data() + r * len;
    int64_t pos = 0;
    if (c.eos_token_id == 2) {
      for (int64_t j = 1; j < len; ++j)
        if (row[j] > row[pos]) pos = j;
    } else {
      for (int64_t j = 0; j < len; ++j)
        if (row[j] == c.eos_token_id) {
          pos = j;
          break;
        }
    }
    out.pooler_output.select(0, r).copy_(normed.select(0, r).select(0, pos));
  }
  return out;
}

}  // namespace mindiesd::models
