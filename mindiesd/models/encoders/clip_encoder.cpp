#include "mindiesd/models/encoders/clip_encoder.h"

#include "mindiesd/core/ops.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/linear.h"
#include "mindiesd/layer/norm.h"
#include "mindiesd/models/encoders/clip_text_model.h"
#include "mindiesd/models/weights.h"

namespace mindiesd::models {

std::vector<ClipEncoderLayer> bind_clip_encoder(
    const std::function<Tensor(const std::string&, const Shape&)>& take, int64_t layers, int64_t h,
    int64_t inter) {
  std::vector<ClipEncoderLayer> out(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i) {
    ClipEncoderLayer& l = out[static_cast<size_t>(i)];
    const std::string p = str_cat("encoder.layers.", i, ".");
    l.ln1_w = take(p + "layer_norm1.weight", {h});
    l.ln1_b = take(p + "layer_norm1.bias", {h});
    l.q_w = take(p + "self_attn.q_proj.weight", {h, h});
    l.q_b = take(p + "self_attn.q_proj.bias", {h});
    l.k_w = take(p + "self_attn.k_proj.weight", {h, h});
    l.k_b = take(p + "self_attn.k_proj.bias", {h});
    l.v_w = take(p + "self_attn.v_proj.weight", {h, h});
    l.v_b = take(p + "self_attn.v_proj.bias", {h});
    l.o_w = take(p + "self_attn.out_proj.weight", {h, h});
    l.o_b = take(p + "self_attn.out_proj.bias", {h});
    l.ln2_w = take(p + "layer_norm2.weight", {h});
    l.ln2_b = take(p + "layer_norm2.bias", {h});
    l.fc1_w = take(p + "mlp.fc1.weight", {inter, h});
    l.fc1_b = take(p + "mlp.fc1.bias", {inter});
    l.fc2_w = take(p + "mlp.fc2.weight", {h, inter});
    l.fc2_b = take(p + "mlp.fc2.bias", {h});
  }
  return out;
}

ClipEncoderOutput run_clip_encoder(const Tensor& x_in, std::span<const ClipEncoderLayer> layers,
                                   int64_t heads, std::string_view act, float eps, bool causal,
                                   const Tensor& final_w, const Tensor& final_b) {
  const int64_t b = x_in.size(0), len = x_in.size(1), h = x_in.size(2), head_dim = h / heads;
  ClipEncoderOutput out;
  Tensor x = x_in;
  if (layers.empty()) {
    out.hidden = x;
    if (final_w.defined()) out.normed = layer::layer_norm(x, final_w, final_b, eps);
    return out;
  }
  Tensor normed = layer::layer_norm(x, layers[0].ln1_w, layers[0].ln1_b, eps);
  layer::AttentionOptions attn;
  attn.causal = causal;
  for (size_t i = 0; i < layers.size(); ++i) {
    const ClipEncoderLayer& l = layers[i];
    const Shape heads_shape{b, len, heads, head_dim};
    const Tensor q = layer::linear(normed, l.q_w, l.q_b).view(heads_shape);
    const Tensor k = layer::linear(normed, l.k_w, l.k_b).view(heads_shape);
    const Tensor v = layer::linear(normed, l.v_w, l.v_b).view(heads_shape);
    const Tensor o = layer::attention_forward(q, k, v, Tensor(), "BSND", attn).view({b, len, h});
    auto add_norm = layer::add_layer_norm(x, layer::linear(o, l.o_w, l.o_b), l.ln2_w, l.ln2_b, eps);
    x = std::move(add_norm.sum);
    const Tensor mlp = layer::linear(transformers_linear(add_norm.normed, l.fc1_w, l.fc1_b, act),
                                     l.fc2_w, l.fc2_b);
    const bool last = i + 1 == layers.size();
    if (last && !final_w.defined()) {
      x = ops::add(x, mlp);
      break;
    }
    auto next = layer::add_layer_norm(x, mlp, last ? final_w : layers[i + 1].ln1_w,
                                      last ? final_b : layers[i + 1].ln1_b, eps);
    x = std::move(next.sum);
    normed = std::move(next.normed);
  }
  out.hidden = x;
  if (final_w.defined()) out.normed = normed;
  return out;
}

void move_clip_encoder(std::vector<ClipEncoderLayer>& layers, Device device) {
  for (ClipEncoderLayer& l : layers) {
    move_tensors({&l.ln1_w, &l.ln1_b, &l.q_w, &l.q_b, &l.k_w, &l.k_b, &l.v_w, &l.v_b, &l.o_w,
                  &l.o_b, &l.ln2_w, &l.ln2_b, &l.fc1_w, &l.fc1_b, &l.fc2_w, &l.fc2_b},
                 device);
  }
}

}  // namespace mindiesd::models
