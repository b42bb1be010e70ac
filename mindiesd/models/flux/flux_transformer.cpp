#include "mindiesd/models/flux/flux_transformer.h"

#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/embedding.h"
#include "mindiesd/layer/linear.h"
#include "mindiesd/layer/norm.h"
#include "mindiesd/layer/rope.h"
#include "mindiesd/models/weights.h"

namespace mindiesd::models {

namespace {

// Every norm of the model: AdaLayerNormZero(-Single) / norm2 / AdaLayerNormContinuous
// (eps=1e-6) and FluxAttention's QK RMSNorms (FluxTransformerBlock's default eps, and the
// single block's explicit one).
constexpr float kEps = 1e-6f;
// FluxPosEmbed(theta=10000).
constexpr double kRopeTheta = 10000.0;
// FluxSingleTransformerBlock(mlp_ratio=4.0) and FeedForward(mult=4).
constexpr int64_t kMlpRatio = 4;

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

using Lin = layer::Linear;

}  // namespace

// The bound tensors. Linear weights are (out, in) as stored; QK RMSNorm weights are f32 copies
// of the model-dtype values (torch.nn.RMSNorm multiplies in f32 and rounds once).
struct FluxTransformer2DModel::Weights {
  struct Double {
    Lin norm1, norm1_context;  // AdaLayerNormZero.linear: (6N, N)
    Lin to_q, to_k, to_v, to_out, add_q, add_k, add_v, to_add_out;
    Tensor norm_q, norm_k, norm_added_q, norm_added_k;
    Lin ff_in, ff_out, ff_context_in, ff_context_out;  // FeedForward net.0.proj / net.2
  };
  struct Single {
    Lin norm;  // AdaLayerNormZeroSingle.linear: (3N, N)
    Lin to_q, to_k, to_v;
    Tensor norm_q, norm_k;
    Lin proj_mlp, proj_out;  // proj_out: (N, N + 4N) over cat([attention, mlp])
  };
  Lin x_embedder, context_embedder, norm_out, proj_out;
  std::shared_ptr<const std::map<std::string, Tensor>> time_text_embed;
  std::vector<Double> doubles;
  std::vector<Single> singles;
};

namespace {

using Weights = FluxTransformer2DModel::Weights;

// Binds tensors through BoundWeights (which records every problem for one error) and counts
// the parameters bound.
class Binder {
 public:
  explicit Binder(BoundWeights& bw) : bw_(bw) {}

  Tensor take(const std::string& name, const Shape& shape) {
    Tensor t = bw_.take(name, shape);
    if (t.defined()) params_ += t.numel();
    return t;
  }
  Lin linear(const std::string& p, int64_t out, int64_t in) {
    Lin l = bw_.linear(p, out, in);
    params_ += out * in + out;
    return l;
  }
  // torch.nn.RMSNorm weight: the model-dtype value (as diffusers' .to(dtype) rounds it), kept
  // in f32 so that layer::rms_norm computes norm(x) * weight in f32 with a single rounding.
  Tensor rms_weight(const std::string& name, int64_t d) {
    Tensor t = take(name, {d});
    return t.defined() ? t.to(DType::f32) : t;
  }
  int64_t params() const { return params_; }

 private:
  BoundWeights& bw_;
  int64_t params_ = 0;
};

void check_config(const io::FluxTransformer2DModelConfig& c) {
  const char* what = "FluxTransformer2DModel";
  MINDIESD_CHECK(c.patch_size > 0 && c.in_channels > 0 && c.out_channels > 0 &&
                     c.attention_head_dim > 0 && c.num_attention_heads > 0 &&
                     c.joint_attention_dim > 0 && c.pooled_projection_dim > 0,
                 InvalidArgument, what, ": sizes in the config must be positive");
  MINDIESD_CHECK(c.num_layers >= 0 && c.num_single_layers >= 0, InvalidArgument, what,
                 ": num_layers ", c.num_layers, " and num_single_layers ", c.num_single_layers,
                 " must not be negative");
  MINDIESD_CHECK(!c.axes_dims_rope.empty(), InvalidArgument, what, ": axes_dims_rope is empty");
  int64_t sum = 0;
  for (int64_t a : c.axes_dims_rope) {
    MINDIESD_CHECK(a > 0 && a % 2 == 0, InvalidArgument, what,
                   ": axes_dims_rope entries must be positive and even, got ", a);
    sum += a;
  }
  MINDIESD_CHECK(sum == c.attention_head_dim, InvalidArgument, what, ": axes_dims_rope sum to ",
                 sum, " but attention_head_dim is ", c.attention_head_dim);
}

// Epilogue `residual + gate.unsqueeze(1) * y` for a (B, C) gate chunk of a modulation.
layer::LinearEpilogue gated_residual(const Tensor& gate, const Tensor& residual) {
  layer::LinearEpilogue e;
  e.gate = gate.unsqueeze(1);
  e.residual = residual;
  return e;
}

// nn.GELU(approximate="tanh") after the projection (FeedForward "gelu-approximate", act_mlp).
layer::LinearEpilogue gelu_tanh() {
  layer::LinearEpilogue e;
  e.activation = UnaryKind::gelu_tanh;
  return e;
}

// (B,) values (a single value broadcast to the batch) cast to `dtype`.
Tensor batch_values(const Tensor& t, int64_t batch, DType dtype, const char* name) {
  MINDIESD_CHECK(t.numel() == batch || t.numel() == 1, InvalidArgument,
                 "FluxTransformer2DModel: ", name, " ", t.shape().str(),
                 " must hold one value per ", "sample (batch ", batch, ") or one value for all");
  MINDIESD_CHECK(t.dim() <= 1 || t.numel() == 1, InvalidArgument, "FluxTransformer2DModel: ", name,
                 " must be 1-d (batch), got ", t.shape().str());
  Tensor v = t.reshape({t.numel()});
  if (v.numel() != batch) v = v.expand({batch});
  return v.to(dtype);
}

// Position ids as (S, n_axes) f32; the deprecated 3-d form (1, S, n) drops its batch dim, as
// diffusers does (with a warning there).
Tensor position_ids(const Tensor& ids, int64_t seq, int64_t axes, const char* name) {
  MINDIESD_CHECK(ids.defined(), InvalidArgument, "FluxTransformer2DModel: ", name, " is missing");
  Tensor t = ids.dim() == 3 ? ids.select(0, 0) : ids;
  MINDIESD_CHECK(t.dim() == 2 && t.size(0) == seq && t.size(1) == axes, InvalidArgument,
                 "FluxTransformer2DModel: ", name, " ", ids.shape().str(), " must be (", seq, ", ",
                 axes, ") for ", seq, " tokens and ", axes, " RoPE axes");
  MINDIESD_CHECK(t.dtype() != DType::boolean, InvalidArgument, "FluxTransformer2DModel: ", name,
                 " must hold numbers, got ", dtype_name(t.dtype()));
  return t.to(DType::f32);
}

// FluxAttention's head split: projections are viewed as (B, S, heads, head_dim).
struct Heads {
  int64_t heads, head_dim;
};

// RMSNorm'd q or k heads of one projection, rounded once to the stream dtype (torch.nn.RMSNorm).
Tensor normed_heads(const Tensor& x, const Lin& proj, const Tensor& norm, Heads h,
                    const Context& ctx) {
  const Tensor p = layer::linear(x, proj, ctx);
  return layer::rms_norm(p.view({p.size(0), p.size(1), h.heads, h.head_dim}), norm, kEps);
}

// FluxAttnProcessor's joint q / k / v: cat([text projection, image projection], dim=1) as
// (B, S_txt + S_img, heads, head_dim) in `dtype`, each part RMSNorm'd with its own weight when
// given. The concatenation is the copy of each part into place (rounding from f32 on the way).
Tensor joint_heads(const Tensor& txt, const Lin& txt_proj, const Tensor& txt_norm,
                   const Tensor& img, const Lin& img_proj, const Tensor& img_norm, Heads h,
                   DType dtype, const Context& ctx) {
  const int64_t b = img.size(0), st = txt.size(1), si = img.size(1);
  Tensor out = Tensor::empty({b, st + si, h.heads, h.head_dim}, dtype, img.device());
  auto put = [&](const Tensor& x, const Lin& proj, const Tensor& norm, int64_t at, int64_t len) {
    if (len == 0) return;
    const Tensor p = norm.defined()
                         ? normed_heads(x, proj, norm, h, ctx)
                         : layer::linear(x, proj, ctx).view({b, len, h.heads, h.head_dim});
    out.narrow(1, at, len).copy_(p);
  };
  put(txt, txt_proj, txt_norm, 0, st);
  put(img, img_proj, img_norm, st, si);
  return out;
}

void apply_rope(const Tensor& x, const layer::RopeTables& rope) {
  layer::rotary_position_embedding_(x, rope.cos, rope.sin, "rotated_interleaved", "BSND");
}

// diffusers clips half-precision block outputs to the f16 range.
Tensor clip_f16(const Tensor& x) {
  return x.dtype() == DType::f16 ? ops::clamp(x, -65504.0f, 65504.0f) : x;
}

// FluxTransformerBlock.forward. Returns (encoder_hidden_states, hidden_states).
std::pair<Tensor, Tensor> double_block(const Weights::Double& w, const Tensor& hidden,
                                       const Tensor& context, const Tensor& silu_temb,
                                       const layer::RopeTables& rope, Heads h,
                                       const Context& ctx, int64_t index) {
  const DType dt = hidden.dtype();
  // AdaLayerNormZero: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
  const Tensor emb = layer::linear(silu_temb, w.norm1, ctx);
  const Tensor cemb = layer::linear(silu_temb, w.norm1_context, ctx);
  const std::vector<Tensor> m = ops::chunk(emb, 6, 1), cm = ops::chunk(cemb, 6, 1);
  const Tensor nx = layer::layernorm_scale_shift(hidden, m[1], m[0], kEps);
  const Tensor nc = layer::layernorm_scale_shift(context, cm[1], cm[0], kEps);

  // Joint attention over [text, image] (before the output projections).
  const Tensor a = ctx.cached_attention(index, [&] {
    const Tensor q = joint_heads(nc, w.add_q, w.norm_added_q, nx, w.to_q, w.norm_q, h, dt, ctx);
    const Tensor k = joint_heads(nc, w.add_k, w.norm_added_k, nx, w.to_k, w.norm_k, h, dt, ctx);
    const Tensor v = joint_heads(nc, w.add_v, Tensor(), nx, w.to_v, Tensor(), h, dt, ctx);
    apply_rope(q, rope);
    apply_rope(k, rope);
    return layer::attention_forward(q, k, v, ctx).flatten(2, 3);
  });
  const int64_t st = context.size(1), si = hidden.size(1);
  const Tensor a_txt = a.narrow(1, 0, st), a_img = a.narrow(1, st, si);

  // Image stream: x + gate_msa * to_out(attn); x + gate_mlp * ff(norm2(x) * (1 + scale) + shift).
  Tensor x = layer::linear(a_img, w.to_out, ctx, gated_residual(m[2], hidden));
  {
    const Tensor n2 = layer::layernorm_scale_shift(x, m[4], m[3], kEps);
    const Tensor ff = layer::linear(n2, w.ff_in, ctx, gelu_tanh());
    x = layer::linear(ff, w.ff_out, ctx, gated_residual(m[5], x));
  }
  // Text stream, the same with the *_context weights and to_add_out.
  Tensor c = layer::linear(a_txt, w.to_add_out, ctx, gated_residual(cm[2], context));
  {
    const Tensor n2 = layer::layernorm_scale_shift(c, cm[4], cm[3], kEps);
    const Tensor ff = layer::linear(n2, w.ff_context_in, ctx, gelu_tanh());
    c = layer::linear(ff, w.ff_context_out, ctx, gated_residual(cm[5], c));
  }
  return {clip_f16(c), x};
}

// FluxSingleTransformerBlock.forward on the joint [text, image] stream (diffusers concatenates
// and splits it around every block; the split is a view here).
Tensor single_block(const Weights::Single& w, const Tensor& joint, const Tensor& silu_temb,
                    const layer::RopeTables& rope, Heads h, const Context& ctx, int64_t index) {
  const DType dt = joint.dtype();
  const int64_t b = joint.size(0), s = joint.size(1);
  // AdaLayerNormZeroSingle: shift, scale, gate.
  const Tensor emb = layer::linear(silu_temb, w.norm, ctx);
  const std::vector<Tensor> m = ops::chunk(emb, 3, 1);
  const Tensor nx = layer::layernorm_scale_shift(joint, m[1], m[0], kEps);

  Tensor attn_mlp;
  {
    const Tensor mlp = layer::linear(nx, w.proj_mlp, ctx, gelu_tanh());
    const Tensor a = ctx.cached_attention(index, [&] {
      // rms_norm with the f32 weight is f32; round it to the stream dtype before RoPE, as
      // torch.nn.RMSNorm's output is.
      Tensor q = normed_heads(nx, w.to_q, w.norm_q, h, ctx);
      Tensor k = normed_heads(nx, w.to_k, w.norm_k, h, ctx);
      if (q.dtype() != dt) q = q.to(dt);
      if (k.dtype() != dt) k = k.to(dt);
      apply_rope(q, rope);
      apply_rope(k, rope);
      const Tensor v = layer::linear(nx, w.to_v, ctx).view({b, s, h.heads, h.head_dim});
      return layer::attention_forward(q, k, v, ctx).flatten(2, 3);
    });
    const Tensor parts[] = {a, mlp};
    attn_mlp = ops::cat(parts, 2);
  }
  const Tensor out =
      layer::linear(attn_mlp, w.proj_out, ctx, gated_residual(m[2], joint));
  return clip_f16(out);
}

}  // namespace

FluxTransformer2DModel::FluxTransformer2DModel(io::FluxTransformer2DModelConfig config, DType dtype,
                                               std::shared_ptr<const Weights> weights,
                                               int64_t num_params)
    : config_(std::move(config)),
      dtype_(dtype),
      weights_(std::move(weights)),
      num_params_(num_params) {}

FluxTransformer2DModel FluxTransformer2DModel::load(const io::Component& component, DType dtype) {
  io::ConfigReader reader = component.config_reader();
  io::FluxTransformer2DModelConfig config = io::FluxTransformer2DModelConfig::read(reader);
  return from_weights(std::move(config), component.open_weights(), dtype);
}

FluxTransformer2DModel FluxTransformer2DModel::from_weights(io::FluxTransformer2DModelConfig c,
                                                            io::WeightStore store, DType dtype,
    LinearLoader quantized) {
  MINDIESD_CHECK(is_float(dtype), InvalidArgument,
                 "FluxTransformer2DModel: compute dtype must be f32, bf16 or f16, got ",
                 dtype_name(dtype));
  check_config(c);
  const int64_t n = c.num_attention_heads * c.attention_head_dim, d = c.attention_head_dim;
  const int64_t mlp = kMlpRatio * n;
  BoundWeights bw(std::move(store), dtype, "FluxTransformer2DModel");
  bw.set_linear_loader(std::move(quantized));
  Binder bind(bw);
  auto w = std::make_shared<Weights>();

  w->x_embedder = bind.linear("x_embedder", n, c.in_channels);
  w->context_embedder = bind.linear("context_embedder", n, c.joint_attention_dim);
  {
    // CombinedTimestep[Guidance]TextProjEmbeddings, looked up by name by the layer function.
    auto tte = std::make_shared<std::map<std::string, Tensor>>();
    auto put = [&](const std::string& p, int64_t out, int64_t in) {
      const Lin l = bind.linear("time_text_embed." + p, out, in);
      (*tte)["time_text_embed." + p + ".weight"] = l.weight;
      (*tte)["time_text_embed." + p + ".bias"] = l.bias;
    };
    put("timestep_embedder.linear_1", n, 256);
    put("timestep_embedder.linear_2", n, n);
    if (c.guidance_embeds) {
      put("guidance_embedder.linear_1", n, 256);
      put("guidance_embedder.linear_2", n, n);
    }
    put("text_embedder.linear_1", n, c.pooled_projection_dim);
    put("text_embedder.linear_2", n, n);
    w->time_text_embed = std::move(tte);
  }
  w->doubles.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = str_cat("transformer_blocks.", i, ".");
    Weights::Double& b = w->doubles[i];
    b.norm1 = bind.linear(p + "norm1.linear", 6 * n, n);
    b.norm1_context = bind.linear(p + "norm1_context.linear", 6 * n, n);
    b.to_q = bind.linear(p + "attn.to_q", n, n);
    b.to_k = bind.linear(p + "attn.to_k", n, n);
    b.to_v = bind.linear(p + "attn.to_v", n, n);
    b.to_out = bind.linear(p + "attn.to_out.0", n, n);
    b.add_q = bind.linear(p + "attn.add_q_proj", n, n);
    b.add_k = bind.linear(p + "attn.add_k_proj", n, n);
    b.add_v = bind.linear(p + "attn.add_v_proj", n, n);
    b.to_add_out = bind.linear(p + "attn.to_add_out", n, n);
    b.norm_q = bind.rms_weight(p + "attn.norm_q.weight", d);
    b.norm_k = bind.rms_weight(p + "attn.norm_k.weight", d);
    b.norm_added_q = bind.rms_weight(p + "attn.norm_added_q.weight", d);
    b.norm_added_k = bind.rms_weight(p + "attn.norm_added_k.weight", d);
    b.ff_in = bind.linear(p + "ff.net.0.proj", mlp, n);
    b.ff_out = bind.linear(p + "ff.net.2", n, mlp);
    b.ff_context_in = bind.linear(p + "ff_context.net.0.proj", mlp, n);
    b.ff_context_out = bind.linear(p + "ff_context.net.2", n, mlp);
  }
  w->singles.resize(c.num_single_layers);
  for (int64_t i = 0; i < c.num_single_layers; ++i) {
    const std::string p = str_cat("single_transformer_blocks.", i, ".");
    Weights::Single& b = w->singles[i];
    b.norm = bind.linear(p + "norm.linear", 3 * n, n);
    b.to_q = bind.linear(p + "attn.to_q", n, n);
    b.to_k = bind.linear(p + "attn.to_k", n, n);
    b.to_v = bind.linear(p + "attn.to_v", n, n);
    b.norm_q = bind.rms_weight(p + "attn.norm_q.weight", d);
    b.norm_k = bind.rms_weight(p + "attn.norm_k.weight", d);
    b.proj_mlp = bind.linear(p + "proj_mlp", mlp, n);
    b.proj_out = bind.linear(p + "proj_out", n, n + mlp);
  }
  w->norm_out = bind.linear("norm_out.linear", 2 * n, n);
  w->proj_out = bind.linear("proj_out", c.patch_size * c.patch_size * c.out_channels, n);
  bw.finish();
  const int64_t params = bind.params();
  return FluxTransformer2DModel(std::move(c), dtype, std::move(w), params);
}

namespace {
// Every linear layer of the model, in module order.
template <typename W, typename F>
void each_linear(W& w, F&& f) {
  f(w.x_embedder);
  f(w.context_embedder);
  for (auto& b : w.doubles)
    for (auto* l : {&b.norm1, &b.norm1_context, &b.to_q, &b.to_k, &b.to_v, &b.to_out, &b.add_q,
                    &b.add_k, &b.add_v, &b.to_add_out, &b.ff_in, &b.ff_out, &b.ff_context_in,
                    &b.ff_context_out})
      f(*l);
  for (auto& b : w.singles)
    for (auto* l : {&b.norm, &b.to_q, &b.to_k, &b.to_v, &b.proj_mlp, &b.proj_out}) f(*l);
  f(w.norm_out);
  f(w.proj_out);
}
}  // namespace

FluxTransformer2DModel FluxTransformer2DModel::to(Device device) const {
  if (device == device_) return *this;
  auto w = std::make_shared<Weights>(*weights_);
  each_linear(*w, [device](Lin& l) { l = l.to(device); });
  w->time_text_embed = weights_on(w->time_text_embed, device);
  for (Weights::Double& b : w->doubles)
    move_tensors({&b.norm_q, &b.norm_k, &b.norm_added_q, &b.norm_added_k}, device);
  for (Weights::Single& b : w->singles) move_tensors({&b.norm_q, &b.norm_k}, device);
  FluxTransformer2DModel m(config_, dtype_, std::move(w), num_params_);
  m.device_ = device;
  return m;
}

FluxTransformer2DModel FluxTransformer2DModel::map_linears(
    const std::function<void(layer::Linear&)>& f) const {
  auto w = std::make_shared<Weights>(*weights_);
  each_linear(*w, f);
  FluxTransformer2DModel m(config_, dtype_, std::move(w), num_params_);
  m.device_ = device_;
  return m;
}

void FluxTransformer2DModel::for_each_linear(const std::function<void(const layer::Linear&)>& f) const {
  each_linear(*weights_, f);
}

Tensor FluxTransformer2DModel::forward(const FluxForwardInputs& in, const Context& ctx,
                                       FluxTrace* trace) const {
  return forward(prepare(in), ctx, trace);
}

namespace {
// {1, rows, cols} when ids (S, 3) are (0, i / cols, i % cols) for every token i, else {0, 0, 0}.
std::array<int64_t, 3> raster_grid(const Tensor& ids) {
  const Tensor h = ids.to(Device::cpu()).to(DType::f32).contiguous();
  if (h.dim() != 2 || h.size(1) < 3 || h.size(0) == 0) return {};
  const float* p = h.data<float>();
  const int64_t s = h.size(0), stride = h.size(1);
  int64_t cols = 0;
  while (cols < s && p[cols * stride + 1] == 0.0f) ++cols;
  if (cols == 0 || s % cols != 0) return {};
  for (int64_t i = 0; i < s; ++i) {
    const float* r = p + i * stride;
    if (r[1] != static_cast<float>(i / cols) || r[2] != static_cast<float>(i % cols)) return {};
  }
  return {1, s / cols, cols};
}
}  // namespace

FluxDeviceInputs FluxTransformer2DModel::prepare(const FluxForwardInputs& in) const {
  const io::FluxTransformer2DModelConfig& c = config_;
  const char* what = "FluxTransformer2DModel";

  auto float_input = [&](const Tensor& t, const char* name) {
    MINDIESD_CHECK(t.defined(), InvalidArgument, what, ": ", name, " is missing");
    MINDIESD_CHECK(is_float(t.dtype()), InvalidArgument, what, ": ", name,
                   " must be f32, bf16 or f16, got ", dtype_name(t.dtype()));
    const Tensor d = t.device() == device_ ? t : t.to(device_);
    return d.dtype() == dtype_ ? d : d.to(dtype_);
  };
  FluxDeviceInputs out;
  out.hidden_states = float_input(in.hidden_states, "hidden_states");
  out.encoder_hidden_states = float_input(in.encoder_hidden_states, "encoder_hidden_states");
  out.pooled_projections = float_input(in.pooled_projections, "pooled_projections");
  const Tensor& hs = out.hidden_states;
  const Tensor& ehs = out.encoder_hidden_states;
  const Tensor& pooled = out.pooled_projections;
  MINDIESD_CHECK(hs.dim() == 3 && hs.size(2) == c.in_channels, InvalidArgument, what,
                 ": hidden_states ", hs.shape().str(), " must be (batch, image tokens, ",
                 c.in_channels, ")");
  const int64_t batch = hs.size(0), s_img = hs.size(1);
  MINDIESD_CHECK(ehs.dim() == 3 && ehs.size(0) == batch && ehs.size(2) == c.joint_attention_dim,
                 InvalidArgument, what, ": encoder_hidden_states ", ehs.shape().str(), " must be (",
                 batch, ", text tokens, ", c.joint_attention_dim, ") for hidden_states ",
                 hs.shape().str());
  const int64_t s_txt = ehs.size(1);
  MINDIESD_CHECK(
      pooled.dim() == 2 && pooled.size(0) == batch && pooled.size(1) == c.pooled_projection_dim,
      InvalidArgument, what, ": pooled_projections ", pooled.shape().str(), " must be (", batch,
      ", ", c.pooled_projection_dim, ")");
  MINDIESD_CHECK(batch > 0 && s_img > 0, InvalidArgument, what, ": hidden_states ",
                 hs.shape().str(), " is empty");
  MINDIESD_CHECK(in.timestep.defined(), InvalidArgument, what, ": timestep is missing");
  if (c.guidance_embeds)
    MINDIESD_CHECK(in.guidance.defined(), InvalidArgument, what,
                   ": guidance is required (the config has guidance_embeds=true)");
  else
    MINDIESD_CHECK(!in.guidance.defined(), InvalidArgument, what,
                   ": guidance given, but the model has no guidance embedder "
                   "(guidance_embeds=false)");
  const int64_t axes = static_cast<int64_t>(c.axes_dims_rope.size());
  // Position ids stay where they were given (normally the host: the RoPE tables are built
  // there and uploaded once per forward).
  const Tensor txt_ids = position_ids(in.txt_ids, s_txt, axes, "txt_ids");
  const Tensor img_ids = position_ids(in.img_ids, s_img, axes, "img_ids").to(txt_ids.device());
  out.token_grid = raster_grid(img_ids);
  // Timestep and guidance stay on (or come to) the host: their sinusoidal embeddings are built
  // there and uploaded, so the forward never waits for the device.
  // `timestep.to(hidden_states.dtype) * 1000`, the product rounded to the model dtype, then
  // Timesteps(256) cast to the model dtype as diffusers casts it before the embedders.
  auto proj = [&](const Tensor& v, const char* name) {
    const Tensor scaled =
        ops::affine(batch_values(v.to(Device::cpu()), batch, dtype_, name), 1000.0f, 0.0f);
    return layer::timestep_proj_256(scaled).to(dtype_).to(device_);
  };
  out.timestep_proj = proj(in.timestep, "timestep");
  if (c.guidance_embeds) out.guidance_proj = proj(in.guidance, "guidance");
  // FluxPosEmbed(cat(txt_ids, img_ids)): one (S_txt + S_img, head_dim) table pair per forward,
  // shared by every block.
  const Tensor id_parts[] = {txt_ids, img_ids};
  const layer::RopeTables rope =
      layer::flux_rope(ops::cat(id_parts, 0), c.axes_dims_rope, kRopeTheta);
  out.rope_cos = rope.cos.to(device_);
  out.rope_sin = rope.sin.to(device_);
  return out;
}

Tensor FluxTransformer2DModel::forward(const FluxDeviceInputs& in, const Context& call_ctx,
                                       FluxTrace* trace) const {
  Context ctx = call_ctx;
  ctx.token_grid = in.token_grid;
  const io::FluxTransformer2DModelConfig& c = config_;
  const Weights& w = *weights_;
  const Heads h{c.num_attention_heads, c.attention_head_dim};
  const int64_t s_txt = in.encoder_hidden_states.size(1), s_img = in.hidden_states.size(1);

  // ---- embeddings ----
  Tensor hidden = layer::linear(in.hidden_states, w.x_embedder, ctx);
  const layer::ModuleWeights tte = module_weights_of(w.time_text_embed, "time_text_embed.");
  const Tensor temb = c.guidance_embeds
                          ? layer::combined_timestep_guidance_text_proj_from(
                                in.timestep_proj, in.guidance_proj, in.pooled_projections, tte)
                          : layer::combined_timestep_text_proj_from(in.timestep_proj,
                                                                     in.pooled_projections, tte);
  Tensor context =
      layer::linear(in.encoder_hidden_states, w.context_embedder, ctx);
  layer::RopeTables rope;
  rope.cos = in.rope_cos;
  rope.sin = in.rope_sin;
  // Every modulation projection starts from SiLU(temb); computed once.
  const Tensor silu_temb = ops::silu(temb);

  if (trace) *trace = FluxTrace();
  // The double-stream blocks then the single-stream ones, as one loop for the seam: blocks
  // [0, num_layers) are FluxTransformerBlocks on (hidden, context), the rest
  // FluxSingleTransformerBlocks on the joint [context, hidden] stream.
  const int64_t nd = static_cast<int64_t>(w.doubles.size());
  BlockLoop loop;
  loop.num_blocks = nd + static_cast<int64_t>(w.singles.size());
  loop.run = [&](int64_t i, const BlockStreams& s) -> BlockStreams {
    if (i < nd) {
      auto [c, x] = double_block(w.doubles[i], s.hidden, s.encoder, silu_temb, rope, h, ctx, i);
      if (trace) {
        trace->double_txt.push_back(c);
        trace->double_img.push_back(x);
      }
      return {x, c, Tensor()};
    }
    Tensor joint = s.joint;
    if (!joint.defined()) {
      const Tensor streams[] = {s.encoder, s.hidden};
      joint = ops::cat(streams, 1);
    }
    joint = single_block(w.singles[i - nd], joint, silu_temb, rope, h, ctx, i);
    BlockStreams out{joint.narrow(1, s_txt, s_img), joint.narrow(1, 0, s_txt), joint};
    if (trace) {
      trace->single_txt.push_back(out.encoder);
      trace->single_img.push_back(out.hidden);
    }
    return out;
  };
  // TeaCache's indicator: transformer_blocks[0].norm1(hidden, temb)'s modulated image tokens.
  loop.modulated_input = [&](const BlockStreams& input) {
    const Lin& norm = nd > 0 ? w.doubles[0].norm1 : w.singles[0].norm;
    const std::vector<Tensor> m =
        ops::chunk(layer::linear(silu_temb, norm, ctx), nd > 0 ? 6 : 3, 1);
    return layer::layernorm_scale_shift(input.hidden, m[1], m[0], kEps);
  };
  {
    const double b = static_cast<double>(in.hidden_states.size(0)), n = inner_dim();
    const double s = static_cast<double>(s_txt + s_img), n2 = n * n;
    // Per token: double blocks 12 N^2 MACs (q, k, v, out and the 4x MLP, per stream), single
    // blocks 12 N^2 (q, k, v, the MLP and proj_out over 5N); joint attention 2 S^2 N.
    const double attn_core = 2.0 * s * s * n, qkv = 3.0 * s * n2;
    for (int64_t i = 0; i < loop.num_blocks; ++i) {
      const double modulation = (i < nd ? 12.0 : 3.0) * n2;
      loop.block_flops.push_back(2.0 * b * (12.0 * s * n2 + attn_core + modulation));
      loop.attention_flops.push_back(2.0 * b * (qkv + attn_core));
    }
  }
  const BlockStreams out = ctx.run_blocks(loop, {std::move(hidden), std::move(context), Tensor()});
  // AdaLayerNormContinuous(elementwise_affine=False): `scale, shift = emb.chunk(2, 1)`.
  const Tensor emb = layer::linear(silu_temb, w.norm_out, ctx);
  const std::vector<Tensor> m = ops::chunk(emb, 2, 1);
  const Tensor out_norm = layer::layernorm_scale_shift(out.hidden, m[0], m[1], kEps);
  return layer::linear(out_norm, w.proj_out, ctx);
}

Tensor flux_latent_image_ids(int64_t h2, int64_t w2) { return layer::flux_ids(0, h2, w2); }

Tensor flux_text_ids(int64_t s_txt) {
  MINDIESD_CHECK(s_txt >= 0, InvalidArgument, "flux_text_ids: negative length ", s_txt);
  return Tensor::zeros({s_txt, 3}, DType::f32);
}

}  // namespace mindiesd::models
