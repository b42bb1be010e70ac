#include "mindiesd/models/encoders/clip_vision_model.h"

#include <cmath>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/norm.h"
#include "mindiesd/models/encoders/clip_text_model.h"
#include "mindiesd/models/weights.h"

namespace mindiesd::models {

void CLIPVisionConfig::validate(std::string_view source) const {
  const std::string who = source.empty() ? "CLIPVisionConfig" : std::string(source);
  auto dim = [&](const char* f, int64_t v, int64_t hi) {
    MINDIESD_CHECK(v >= 1 && v <= hi, InvalidArgument, who, ": field '", f, "' = ", v,
                   " is out of range [1, ", hi, "]");
  };
  constexpr int64_t kMaxDim = int64_t{1} << 20;
  dim("hidden_size", hidden_size, kMaxDim);
  dim("intermediate_size", intermediate_size, kMaxDim);
  dim("projection_dim", projection_dim, kMaxDim);
  dim("num_hidden_layers", num_hidden_layers, 1000);
  dim("num_attention_heads", num_attention_heads, hidden_size);
  dim("num_channels", num_channels, 64);
  dim("image_size", image_size, 16384);
  dim("patch_size", patch_size, image_size);
  MINDIESD_CHECK(hidden_size % num_attention_heads == 0, InvalidArgument, who, ": hidden_size ",
                 hidden_size, " is not divisible by num_attention_heads ", num_attention_heads);
  MINDIESD_CHECK(image_size % patch_size == 0, InvalidArgument, who, ": image_size ", image_size,
                 " is not a multiple of patch_size ", patch_size);
  MINDIESD_CHECK(std::isfinite(layer_norm_eps) && layer_norm_eps > 0, InvalidArgument, who,
                 ": field 'layer_norm_eps' = ", layer_norm_eps, " must be positive and finite");
  MINDIESD_CHECK(is_supported_transformers_activation(hidden_act), InvalidArgument, who,
                 ": field 'hidden_act' = '", hidden_act, "' is not supported (",
                 transformers_activation_names(), ")");
}

CLIPVisionConfig CLIPVisionConfig::read(io::ConfigReader& r) {
  mark_transformers_config_keys(r);
  if (r.has("model_type")) {
    const auto type = r.nullable<std::string>("model_type");
    r.check(!type || *type == "clip_vision_model", "model_type",
            str_cat("expected \"clip_vision_model\", got \"", type.value_or(""), "\""));
  }
  CLIPVisionConfig c;
  c.hidden_size = r.optional("hidden_size", c.hidden_size);
  c.intermediate_size = r.optional("intermediate_size", c.intermediate_size);
  c.projection_dim = r.optional("projection_dim", c.projection_dim);
  c.num_hidden_layers = r.optional("num_hidden_layers", c.num_hidden_layers);
  c.num_attention_heads = r.optional("num_attention_heads", c.num_attention_heads);
  c.num_channels = r.optional("num_channels", c.num_channels);
  c.image_size = r.optional("image_size", c.image_size);
  c.patch_size = r.optional("patch_size", c.patch_size);
  c.hidden_act = r.optional("hidden_act", c.hidden_act);
  c.layer_norm_eps = r.optional("layer_norm_eps", c.layer_norm_eps);
  c.validate(r.source());
  return c;
}

CLIPVisionModel CLIPVisionModel::load(const io::Component& component, DType dtype) {
  MINDIESD_CHECK(component.class_name.empty() || component.class_name == "CLIPVisionModel" ||
                     component.class_name == "CLIPVisionModelWithProjection",
                 InvalidArgument, "CLIPVisionModel: component '", component.name, "' is a ",
                 component.class_name);
  io::ConfigReader reader = component.config_reader();
  CLIPVisionConfig config = CLIPVisionConfig::read(reader);
  return from_weights(std::move(config), component.open_weights(), dtype);
}

CLIPVisionModel CLIPVisionModel::from_weights(CLIPVisionConfig c, io::WeightStore weights,
                                              DType dtype) {
  MINDIESD_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16,
                 InvalidArgument, "CLIPVisionModel: compute dtype must be f32, bf16 or f16, got ",
                 dtype_name(dtype));
  c.validate();
  const std::string what =
      weights.valid() ? str_cat("CLIPVisionModel at ", weights.path().string()) : "CLIPVisionModel";
  const std::string prefix =
      weights.valid() && weights.has("vision_model.embeddings.class_embedding") ? "vision_model."
                                                                                : "";
  BoundWeights bw(std::move(weights), dtype, what);
  auto take = [&](const std::string& name, const Shape& shape) {
    return bw.take(prefix + name, shape);
  };
  const int64_t h = c.hidden_size, p = c.patch_size;
  CLIPVisionModel m(c, dtype);
  m.class_embedding_ = take("embeddings.class_embedding", {h});
  m.patch_embedding_ = take("embeddings.patch_embedding.weight", {h, c.num_channels, p, p});
  m.position_embedding_ = take("embeddings.position_embedding.weight", {c.num_patches() + 1, h});
  bw.ignore(prefix + "embeddings.position_ids");
  m.pre_ln_w_ = take("pre_layrnorm.weight", {h});
  m.pre_ln_b_ = take("pre_layrnorm.bias", {h});
  m.layers_ = bind_clip_encoder(take, c.num_hidden_layers, h, c.intermediate_size);
  // Bound so that a checkpoint is checked in full; the hidden states do not use them.
  take("post_layernorm.weight", {h});
  take("post_layernorm.bias", {h});
  bw.finish();
  return m;
}

CLIPVisionModel CLIPVisionModel::to(Device device) const {
  CLIPVisionModel m = *this;
  move_tensors({&m.class_embedding_, &m.patch_embedding_, &m.position_embedding_, &m.pre_ln_w_,
                &m.pre_ln_b_},
               device);
  move_clip_encoder(m.layers_, device);
  m.device_ = device;
  return m;
}

Tensor CLIPVisionModel::hidden_state(const Tensor& pixel_values, int64_t index) const {
  const CLIPVisionConfig& c = config_;
  MINDIESD_CHECK(pixel_values.defined() && pixel_values.dim() == 4 &&
                     pixel_values.size(1) == c.num_channels &&
                     pixel_values.size(2) == c.image_size && pixel_values.size(3) == c.image_size,
                 InvalidArgument, "CLIPVisionModel: pixel_values must be (B, ", c.num_channels,
                 ", ", c.image_size, ", ", c.image_size, "), got ",
                 pixel_values.defined() ? pixel_values.shape().str() : "undefined");
  const int64_t n = c.num_hidden_layers;
  MINDIESD_CHECK(index >= -(n + 1) && index <= n, InvalidArgument, "CLIPVisionModel: hidden state ",
                 index, " of a model with ", n, " layers (valid: ", -(n + 1), " to ", n, ")");
  const int64_t layers = index < 0 ? n + 1 + index : index;
  const int64_t b = pixel_values.size(0), h = c.hidden_size;

  // CLIPVisionEmbeddings: [class; patches] + positions, one rounding for the sum.
  const Tensor px = pixel_values.to(dtype_).to(device_);
  const Tensor patches = ops::conv2d(px, patch_embedding_, Tensor(), {{c.patch_size}, {0}, {1}, 1})
                             .flatten(2)
                             .transpose(1, 2);  // (B, N, h)
  const Tensor parts[] = {class_embedding_.view({1, 1, h}).expand({b, 1, h}), patches};
  const Tensor x = ops::add(ops::cat(parts, 1), position_embedding_);
  const Tensor normed =
      layer::layer_norm(x, pre_ln_w_, pre_ln_b_, static_cast<float>(c.layer_norm_eps));
  return run_clip_encoder(normed, std::span(layers_).first(static_cast<size_t>(layers)),
                          c.num_attention_heads, c.hidden_act, static_cast<float>(c.layer_norm_eps),
                          /*causal=*/false)
      .hidden;
}

}  // namespace mindiesd::models
