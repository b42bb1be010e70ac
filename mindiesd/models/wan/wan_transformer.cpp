#include "mindiesd/models/wan/wan_transformer.h"

#include <array>
#include <map>
#include <string>
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

constexpr const char* kWhat = "WanTransformer3DModel";
// WanImageEmbedding's FP32LayerNorm(in_features) / (out_features): nn.LayerNorm's default eps.
constexpr float kImageNormEps = 1e-5f;
// WanAttnProcessor: with add_k_proj, the last 512 context tokens are the text.
constexpr int64_t kI2vTextTokens = 512;

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

using Lin = layer::Linear;

}  // namespace

// The bound tensors. Linear weights are (out, in) as stored (the patch embedding's Conv3d
// weight (N, C, pt, ph, pw)); RMSNorm weights are f32 copies of the model-dtype values;
// time_embedder, scale_shift_table and FP32LayerNorm weights are f32 (_keep_in_fp32_modules).
struct WanTransformer3DModel::Weights {
  struct Attn {
    Lin to_q, to_k, to_v, to_out;
    Tensor norm_q, norm_k;
    Lin add_k, add_v;  // I2V cross-attention only
    Tensor norm_added_k;
  };
  struct Block {
    Attn attn1, attn2;
    Tensor norm2_w, norm2_b;   // undefined without cross_attn_norm
    Lin ffn_in, ffn_out;       // FeedForward net.0.proj / net.2
    Tensor scale_shift_table;  // (1, 6, N) f32
  };
  Tensor patch_w, patch_b;
  Lin time_1, time_2, time_proj, text_1, text_2;
  // WanImageEmbedding (I2V).
  Tensor img_norm1_w, img_norm1_b, img_norm2_w, img_norm2_b, img_pos_embed;
  Lin img_ff_in, img_ff_out;
  std::vector<Block> blocks;
  Tensor scale_shift_table;  // (1, 2, N) f32
  Lin proj_out;
};

namespace {

using Weights = WanTransformer3DModel::Weights;

// Binds tensors through BoundWeights (which records every problem for one error) and counts
// the parameters bound.
class Binder {
 public:
  explicit Binder(BoundWeights& bw) : bw_(bw) {}

  Tensor take(const std::string& name, const Shape& shape) { return count(bw_.take(name, shape)); }
  Tensor take_f32(const std::string& name, const Shape& shape) {
    return count(bw_.take(name, shape, DType::f32));
  }
  Lin linear(const std::string& p, int64_t out, int64_t in) { return linear(p, out, in, bw_.dtype()); }
  Lin linear_f32(const std::string& p, int64_t out, int64_t in) { return linear(p, out, in, DType::f32); }
  Lin linear(const std::string& p, int64_t out, int64_t in, DType dtype) {
    Lin l = bw_.linear(p, out, in, dtype);
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
  Tensor count(Tensor t) {
    if (t.defined()) params_ += t.numel();
    return t;
  }
  BoundWeights& bw_;
  int64_t params_ = 0;
};

std::array<int64_t, 3> patch_of(const io::WanTransformer3DModelConfig& c) {
  return {c.patch_size[0], c.patch_size[1], c.patch_size[2]};
}

void check_config(const io::WanTransformer3DModelConfig& c) {
  MINDIESD_CHECK(c.patch_size.size() == 3, InvalidArgument, kWhat,
                 ": patch_size must have 3 entries (t, h, w), got ", c.patch_size.size());
  for (int64_t p : c.patch_size)
    MINDIESD_CHECK(p > 0, InvalidArgument, kWhat, ": patch_size entries must be positive");
  MINDIESD_CHECK(c.num_attention_heads > 0 && c.attention_head_dim > 0 && c.in_channels > 0 &&
                     c.out_channels > 0 && c.text_dim > 0 && c.freq_dim > 0 && c.ffn_dim > 0 &&
                     c.rope_max_seq_len > 0,
                 InvalidArgument, kWhat, ": sizes in the config must be positive");
  MINDIESD_CHECK(c.num_layers >= 0, InvalidArgument, kWhat, ": num_layers ", c.num_layers,
                 " must not be negative");
  MINDIESD_CHECK(c.attention_head_dim % 2 == 0 && c.attention_head_dim >= 6, InvalidArgument, kWhat,
                 ": attention_head_dim ", c.attention_head_dim,
                 " must be even and at least 6 (RoPE over frames, height and width)");
  MINDIESD_CHECK(c.eps > 0, InvalidArgument, kWhat, ": eps must be positive, got ", c.eps);
  MINDIESD_CHECK(c.image_dim.has_value() == c.added_kv_proj_dim.has_value(), InvalidArgument, kWhat,
                 ": image_dim and added_kv_proj_dim must be both set (I2V) or both null");
  if (c.image_dim)
    MINDIESD_CHECK(*c.image_dim > 0 && *c.added_kv_proj_dim > 0, InvalidArgument, kWhat,
                   ": image_dim and added_kv_proj_dim must be positive");
  if (c.pos_embed_seq_len) {
    MINDIESD_CHECK(c.image_dim.has_value(), InvalidArgument, kWhat,
                   ": pos_embed_seq_len needs image_dim");
    MINDIESD_CHECK(*c.pos_embed_seq_len > 0 && *c.pos_embed_seq_len % 2 == 0, InvalidArgument,
                   kWhat, ": pos_embed_seq_len must be positive and even, got ",
                   *c.pos_embed_seq_len);
  }
}

// Epilogue `residual + gate * y` for a (B, 1, N) f32 gate chunk of a modulation.
layer::LinearEpilogue gated_residual(const Tensor& gate, const Tensor& residual) {
  layer::LinearEpilogue e;
  e.gate = gate;
  e.residual = residual;
  return e;
}

layer::LinearEpilogue residual_add(const Tensor& residual) {
  layer::LinearEpilogue e;
  e.residual = residual;
  return e;
}

layer::LinearEpilogue activation(UnaryKind kind) {
  layer::LinearEpilogue e;
  e.activation = kind;
  return e;
}

// `(norm(x.float()) * (1 + scale) + shift).type_as(x)` with f32 scale / shift.
Tensor modulated_norm(const Tensor& x, const Tensor& scale, const Tensor& shift, float eps) {
  Tensor y = layer::layernorm_scale_shift(x, scale, shift, eps);
  return y.dtype() == x.dtype() ? y : y.to(x.dtype());
}

// attn.norm_{q,k}(proj(x)) (RMSNorm across heads, rounded once to x's dtype) as
// (B, S, heads, head_dim).
Tensor normed_heads(const Tensor& x, const Lin& proj, const Tensor& norm, int64_t heads,
                    float eps, const Context& ctx) {
  Tensor p = layer::rms_norm(layer::linear(x, proj, ctx), norm, eps);
  if (p.dtype() != x.dtype()) p = p.to(x.dtype());
  return p.view({p.size(0), p.size(1), heads, p.size(2) / heads});
}

Tensor heads_of(const Tensor& x, const Lin& proj, int64_t heads, const Context& ctx) {
  const Tensor p = layer::linear(x, proj, ctx);
  return p.view({p.size(0), p.size(1), heads, p.size(2) / heads});
}

struct BlockArgs {
  const Tensor& timestep_proj;  // (B, 6, N) in the model dtype
  const layer::RopeTables& rope;
  const Tensor& context;      // text (B, L, N)
  const Tensor& context_img;  // I2V image tokens (B, L_img, N), else undefined
  int64_t heads;
  float eps;
};

// WanTransformerBlock.forward.
Tensor block_forward(const Weights::Block& w, const Tensor& hidden, const BlockArgs& a,
                     const Context& ctx, int64_t index) {
  // (scale_shift_table + temb.float()).chunk(6, dim=1): (B, 1, N) f32 each.
  const Tensor mod = ops::add(w.scale_shift_table, a.timestep_proj.to(DType::f32));
  const std::vector<Tensor> m = ops::chunk(mod, 6, 1);
  const Tensor &shift_msa = m[0], &scale_msa = m[1], &gate_msa = m[2];
  const Tensor &c_shift = m[3], &c_scale = m[4], &c_gate = m[5];

  // Self-attention with RoPE; hidden = (hidden.float() + attn * gate).type_as(hidden).
  Tensor x;
  {
    const Tensor nx = modulated_norm(hidden, scale_msa, shift_msa, a.eps);
    const Tensor o = ctx.cached_attention(index, [&] {
      const Tensor q = normed_heads(nx, w.attn1.to_q, w.attn1.norm_q, a.heads, a.eps, ctx);
      const Tensor k = normed_heads(nx, w.attn1.to_k, w.attn1.norm_k, a.heads, a.eps, ctx);
      const Tensor v = heads_of(nx, w.attn1.to_v, a.heads, ctx);
      layer::rotary_position_embedding_(q, a.rope.cos, a.rope.sin, "rotated_interleaved", "BSND");
      layer::rotary_position_embedding_(k, a.rope.cos, a.rope.sin, "rotated_interleaved", "BSND");
      return layer::attention_forward(q, k, v, ctx).flatten(2, 3);
    });
    x = layer::linear(o, w.attn1.to_out, ctx, gated_residual(gate_msa, hidden));
  }
  // Cross-attention: hidden = hidden + attn2(norm2(hidden), context).
  {
    const Tensor n2 = w.norm2_w.defined() ? layer::layer_norm(x, w.norm2_w, w.norm2_b, a.eps) : x;
    const Tensor q = normed_heads(n2, w.attn2.to_q, w.attn2.norm_q, a.heads, a.eps, ctx);
    const Tensor k = normed_heads(a.context, w.attn2.to_k, w.attn2.norm_k, a.heads, a.eps, ctx);
    const Tensor v = heads_of(a.context, w.attn2.to_v, a.heads, ctx);
    Tensor o = layer::attention_forward(q, k, v, ctx).flatten(2, 3);
    if (a.context_img.defined()) {
      const Tensor ki =
          normed_heads(a.context_img, w.attn2.add_k, w.attn2.norm_added_k, a.heads, a.eps, ctx);
      const Tensor vi = heads_of(a.context_img, w.attn2.add_v, a.heads, ctx);
      const Tensor oi = layer::attention_forward(q, ki, vi, ctx).flatten(2, 3);
      o = ops::add(o, oi);  // hidden_states + hidden_states_img, in the model dtype
    }
    x = layer::linear(o, w.attn2.to_out, ctx, residual_add(x));
  }
  // FFN: hidden = (hidden.float() + ffn(norm3 modulated).float() * c_gate).type_as(hidden).
  {
    const Tensor n3 = modulated_norm(x, c_scale, c_shift, a.eps);
    const Tensor f = layer::linear(n3, w.ffn_in, ctx, activation(UnaryKind::gelu_tanh));
    x = layer::linear(f, w.ffn_out, ctx, gated_residual(c_gate, x));
  }
  return x;
}

// (B,) values (a single value broadcast to the batch), as diffusers' Timesteps reads them.
Tensor batch_timesteps(const Tensor& t, int64_t batch) {
  MINDIESD_CHECK(t.defined(), InvalidArgument, kWhat, ": timestep is missing");
  MINDIESD_CHECK(t.dtype() != DType::boolean, InvalidArgument, kWhat,
                 ": timestep must hold numbers, got ", dtype_name(t.dtype()));
  MINDIESD_CHECK(t.dim() <= 1 || t.numel() == 1, InvalidArgument, kWhat,
                 ": timestep must be 1-d (batch), got ", t.shape().str(),
                 " (per-token 2-d timesteps, Wan 2.2 TI2V, are not supported)");
  MINDIESD_CHECK(t.numel() == batch || t.numel() == 1, InvalidArgument, kWhat, ": timestep ",
                 t.shape().str(), " must hold one value per sample (batch ", batch,
                 ") or one value for all");
  Tensor v = t.reshape({t.numel()});
  if (v.numel() != batch) v = v.expand({batch});
  return v.contiguous();
}

}  // namespace

WanTransformer3DModel::WanTransformer3DModel(io::WanTransformer3DModelConfig config, DType dtype,
                                             std::shared_ptr<const Weights> weights,
                                             int64_t num_params)
    : config_(std::move(config)),
      dtype_(dtype),
      weights_(std::move(weights)),
      num_params_(num_params),
      rope_(std::make_shared<layer::RopeCache>()) {}

WanTransformer3DModel WanTransformer3DModel::load(const io::Component& component, DType dtype) {
  io::ConfigReader reader = component.config_reader();
  io::WanTransformer3DModelConfig config = io::WanTransformer3DModelConfig::read(reader);
  return from_weights(std::move(config), component.open_weights(), dtype);
}

WanTransformer3DModel WanTransformer3DModel::from_weights(io::WanTransformer3DModelConfig c,
                                                          io::WeightStore store, DType dtype,
    LinearLoader quantized) {
  MINDIESD_CHECK(is_float(dtype), InvalidArgument, kWhat,
                 ": compute dtype must be f32, bf16 or f16, got ", dtype_name(dtype));
  check_config(c);
  const int64_t n = c.num_attention_heads * c.attention_head_dim;
  const auto [pt, ph, pw] = patch_of(c);
  BoundWeights bw(std::move(store), dtype, kWhat);
  bw.set_linear_loader(std::move(quantized));
  Binder bind(bw);
  auto w = std::make_shared<Weights>();

  w->patch_w = bind.take("patch_embedding.weight", {n, c.in_channels, pt, ph, pw});
  w->patch_b = bind.take("patch_embedding.bias", {n});
  const std::string ce = "condition_embedder.";
  w->time_1 = bind.linear_f32(ce + "time_embedder.linear_1", n, c.freq_dim);
  w->time_2 = bind.linear_f32(ce + "time_embedder.linear_2", n, n);
  w->time_proj = bind.linear(ce + "time_proj", 6 * n, n);
  w->text_1 = bind.linear(ce + "text_embedder.linear_1", n, c.text_dim);
  w->text_2 = bind.linear(ce + "text_embedder.linear_2", n, n);
  if (c.image_dim) {
    const int64_t d = *c.image_dim;
    const std::string ie = ce + "image_embedder.";
    w->img_norm1_w = bind.take_f32(ie + "norm1.weight", {d});
    w->img_norm1_b = bind.take_f32(ie + "norm1.bias", {d});
    w->img_ff_in = bind.linear(ie + "ff.net.0.proj", d, d);
    w->img_ff_out = bind.linear(ie + "ff.net.2", n, d);
    w->img_norm2_w = bind.take_f32(ie + "norm2.weight", {n});
    w->img_norm2_b = bind.take_f32(ie + "norm2.bias", {n});
    if (c.pos_embed_seq_len)
      w->img_pos_embed = bind.take(ie + "pos_embed", {1, *c.pos_embed_seq_len, d});
  }
  w->blocks.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = str_cat("blocks.", i, ".");
    Weights::Block& b = w->blocks[i];
    for (auto [attn, name] : {std::pair{&b.attn1, "attn1."}, std::pair{&b.attn2, "attn2."}}) {
      const std::string a = p + name;
      attn->to_q = bind.linear(a + "to_q", n, n);
      attn->to_k = bind.linear(a + "to_k", n, n);
      attn->to_v = bind.linear(a + "to_v", n, n);
      attn->to_out = bind.linear(a + "to_out.0", n, n);
      attn->norm_q = bind.rms_weight(a + "norm_q.weight", n);
      attn->norm_k = bind.rms_weight(a + "norm_k.weight", n);
    }
    if (c.added_kv_proj_dim) {
      b.attn2.add_k = bind.linear(p + "attn2.add_k_proj", n, *c.added_kv_proj_dim);
      b.attn2.add_v = bind.linear(p + "attn2.add_v_proj", n, *c.added_kv_proj_dim);
      b.attn2.norm_added_k = bind.rms_weight(p + "attn2.norm_added_k.weight", n);
    }
    // Old checkpoints carry an unused norm_added_q (_keys_to_ignore_on_load_unexpected).
    bw.ignore(p + "attn2.norm_added_q.weight");
    if (c.cross_attn_norm) {
      b.norm2_w = bind.take_f32(p + "norm2.weight", {n});
      b.norm2_b = bind.take_f32(p + "norm2.bias", {n});
    }
    b.ffn_in = bind.linear(p + "ffn.net.0.proj", c.ffn_dim, n);
    b.ffn_out = bind.linear(p + "ffn.net.2", n, c.ffn_dim);
    b.scale_shift_table = bind.take_f32(p + "scale_shift_table", {1, 6, n});
  }
  w->scale_shift_table = bind.take_f32("scale_shift_table", {1, 2, n});
  w->proj_out = bind.linear("proj_out", c.out_channels * pt * ph * pw, n);
  bw.finish();
  const int64_t params = bind.params();
  return WanTransformer3DModel(std::move(c), dtype, std::move(w), params);
}

namespace {
// Every linear layer of the model, in module order.
template <typename W, typename F>
void each_linear(W& w, F&& f) {
  for (auto* l : {&w.time_1, &w.time_2, &w.time_proj, &w.text_1, &w.text_2, &w.img_ff_in, &w.img_ff_out})
    if (l->defined()) f(*l);
  for (auto& b : w.blocks) {
    for (auto* a : {&b.attn1, &b.attn2})
      for (auto* l : {&a->to_q, &a->to_k, &a->to_v, &a->to_out, &a->add_k, &a->add_v})
        if (l->defined()) f(*l);
    f(b.ffn_in);
    f(b.ffn_out);
  }
  f(w.proj_out);
}
}  // namespace

WanTransformer3DModel WanTransformer3DModel::to(Device device) const {
  if (device == device_) return *this;
  auto w = std::make_shared<Weights>(*weights_);
  each_linear(*w, [device](Lin& l) { l = l.to(device); });
  move_tensors({&w->patch_w, &w->patch_b, &w->img_norm1_w, &w->img_norm1_b, &w->img_norm2_w,
                &w->img_norm2_b, &w->img_pos_embed, &w->scale_shift_table},
               device);
  for (Weights::Block& b : w->blocks) {
    for (Weights::Attn* a : {&b.attn1, &b.attn2})
      move_tensors({&a->norm_q, &a->norm_k, &a->norm_added_k}, device);
    move_tensors({&b.norm2_w, &b.norm2_b, &b.scale_shift_table}, device);
  }
  WanTransformer3DModel m(config_, dtype_, std::move(w), num_params_);
  m.device_ = device;
  return m;
}

WanTransformer3DModel WanTransformer3DModel::map_linears(
    const std::function<void(layer::Linear&)>& f) const {
  auto w = std::make_shared<Weights>(*weights_);
  each_linear(*w, f);
  WanTransformer3DModel m(config_, dtype_, std::move(w), num_params_);
  m.device_ = device_;
  return m;
}

void WanTransformer3DModel::for_each_linear(const std::function<void(const layer::Linear&)>& f) const {
  each_linear(*weights_, f);
}

Tensor WanTransformer3DModel::forward(const WanForwardInputs& in, const Context& ctx,
                                      WanTrace* trace) const {
  return forward(prepare(in), ctx, trace);
}

WanDeviceInputs WanTransformer3DModel::prepare(const WanForwardInputs& in) const {
  const io::WanTransformer3DModelConfig& c = config_;
  const auto patch = patch_of(c);

  auto float_input = [&](const Tensor& t, const char* name) {
    MINDIESD_CHECK(t.defined(), InvalidArgument, kWhat, ": ", name, " is missing");
    MINDIESD_CHECK(is_float(t.dtype()), InvalidArgument, kWhat, ": ", name,
                   " must be f32, bf16 or f16, got ", dtype_name(t.dtype()));
    const Tensor d = t.device() == device_ ? t : t.to(device_);
    return d.dtype() == dtype_ ? d : d.to(dtype_);
  };
  const Tensor hs = float_input(in.hidden_states, "hidden_states");
  MINDIESD_CHECK(hs.dim() == 5 && hs.size(1) == c.in_channels, InvalidArgument, kWhat,
                 ": hidden_states ", hs.shape().str(), " must be (batch, ", c.in_channels,
                 ", frames, height, width)");
  const int64_t batch = hs.size(0), frames = hs.size(2), height = hs.size(3), width = hs.size(4);
  MINDIESD_CHECK(batch > 0 && frames > 0 && height > 0 && width > 0, InvalidArgument, kWhat,
                 ": hidden_states ", hs.shape().str(), " is empty");
  MINDIESD_CHECK(frames % patch[0] == 0 && height % patch[1] == 0 && width % patch[2] == 0,
                 InvalidArgument, kWhat, ": hidden_states ", hs.shape().str(),
                 ": frames, height and width must be multiples of patch_size (", patch[0], ", ",
                 patch[1], ", ", patch[2], ")");
  const int64_t ppf = frames / patch[0], pph = height / patch[1], ppw = width / patch[2];
  MINDIESD_CHECK(
      ppf <= c.rope_max_seq_len && pph <= c.rope_max_seq_len && ppw <= c.rope_max_seq_len,
      InvalidArgument, kWhat, ": hidden_states ", hs.shape().str(), " patches to a ", ppf, " x ",
      pph, " x ", ppw, " grid, beyond rope_max_seq_len ", c.rope_max_seq_len);
  const Tensor ehs = float_input(in.encoder_hidden_states, "encoder_hidden_states");
  MINDIESD_CHECK(
      ehs.dim() == 3 && ehs.size(0) == batch && ehs.size(2) == c.text_dim && ehs.size(1) > 0,
      InvalidArgument, kWhat, ": encoder_hidden_states ", ehs.shape().str(), " must be (", batch,
      ", text tokens, ", c.text_dim, ") for hidden_states ", hs.shape().str());
  Tensor img;
  if (is_i2v()) {
    img = float_input(in.encoder_hidden_states_image, "encoder_hidden_states_image");
    if (c.pos_embed_seq_len) {
      // FLF2V: the first- and last-frame image tokens of each sample as consecutive batch
      // entries (the pipeline's (2 * B, P / 2, image_dim)), viewed as (B, P, image_dim).
      const int64_t half = *c.pos_embed_seq_len / 2;
      MINDIESD_CHECK(img.dim() == 3 && img.size(0) == 2 * batch && img.size(1) == half &&
                         img.size(2) == *c.image_dim,
                     InvalidArgument, kWhat, ": encoder_hidden_states_image ", img.shape().str(),
                     " must be (", 2 * batch, ", ", half, ", ", *c.image_dim,
                     "): two images per sample for pos_embed_seq_len ", *c.pos_embed_seq_len);
    } else {
      MINDIESD_CHECK(
          img.dim() == 3 && img.size(0) == batch && img.size(2) == *c.image_dim && img.size(1) > 0,
          InvalidArgument, kWhat, ": encoder_hidden_states_image ", img.shape().str(), " must be (",
          batch, ", image tokens, ", *c.image_dim, ")");
    }
    MINDIESD_CHECK(ehs.size(1) == kI2vTextTokens, InvalidArgument, kWhat,
                   ": an I2V model's attention takes the last ", kI2vTextTokens,
                   " context tokens as text, so encoder_hidden_states must hold ", kI2vTextTokens,
                   " tokens, got ", ehs.shape().str());
  } else {
    MINDIESD_CHECK(!in.encoder_hidden_states_image.defined(), InvalidArgument, kWhat,
                   ": encoder_hidden_states_image given, but the model has no image embedder "
                   "(image_dim is null)");
  }
  // Timesteps stay on (or come to) the host: the sinusoidal embedding is built there.
  const Tensor timestep =
      batch_timesteps(in.timestep.defined() ? in.timestep.to(Device::cpu()) : in.timestep, batch);
  WanDeviceInputs out;
  out.hidden_states = hs;
  out.encoder_hidden_states = ehs;
  out.encoder_hidden_states_image = img;
  // WanTimeTextImageEmbedding: Timesteps(freq_dim, flip_sin_to_cos=True, shift 0) in f32.
  out.timestep_freq = layer::timestep_embedding(timestep, c.freq_dim, true, 0.0).to(device_);
  const layer::RopeTables rope = rope_->rope_3d(ppf, pph, ppw, c.attention_head_dim, {}, device_);
  out.rope_cos = rope.cos;
  out.rope_sin = rope.sin;
  return out;
}

Tensor WanTransformer3DModel::forward(const WanDeviceInputs& in, const Context& call_ctx,
                                      WanTrace* trace) const {
  const io::WanTransformer3DModelConfig& c = config_;
  const Weights& w = *weights_;
  const int64_t n = inner_dim();
  const auto patch = patch_of(c);
  const Tensor& hs = in.hidden_states;
  const Tensor& ehs = in.encoder_hidden_states;
  const Tensor& img = in.encoder_hidden_states_image;
  const int64_t batch = hs.size(0), frames = hs.size(2), height = hs.size(3), width = hs.size(4);
  Context ctx = call_ctx;
  ctx.token_grid = {frames / patch[0], height / patch[1], width / patch[2]};
  layer::RopeTables rope;
  rope.cos = in.rope_cos;
  rope.sin = in.rope_sin;

  // ---- embeddings ----
  Tensor hidden = layer::patch_embed(hs, w.patch_w, w.patch_b);
  // The f32 time_embedder on the sinusoids -> .type_as(encoder_hidden_states).
  const Tensor& t_freq = in.timestep_freq;
  Tensor temb = layer::linear(t_freq, w.time_1, ctx, activation(UnaryKind::silu));
  temb = layer::linear(temb, w.time_2, ctx).to(dtype_);
  const Tensor timestep_proj =
      layer::linear(ops::silu(temb), w.time_proj, ctx).view({batch, 6, n});
  // The embedders run once per forward: their activations are applied to the rounded GEMM
  // output as PyTorch does (not in the GEMM epilogue), which makes the text embedding
  // bit-identical to diffusers' in bf16.
  Tensor context = ops::gelu(layer::linear(ehs, w.text_1, ctx), /*tanh_approx=*/true);
  context = layer::linear(context, w.text_2, ctx);
  Tensor context_img;
  if (is_i2v()) {
    // WanImageEmbedding: [pos_embed], FP32LayerNorm, FeedForward(gelu), FP32LayerNorm.
    Tensor x = img;
    if (w.img_pos_embed.defined())
      x = ops::add(x.reshape({-1, 2 * img.size(1), img.size(2)}), w.img_pos_embed);
    x = layer::layer_norm(x, w.img_norm1_w, w.img_norm1_b, kImageNormEps);
    x = ops::gelu(layer::linear(x, w.img_ff_in, ctx));
    x = layer::linear(x, w.img_ff_out, ctx);
    context_img = layer::layer_norm(x, w.img_norm2_w, w.img_norm2_b, kImageNormEps);
  }
  if (trace) {
    *trace = WanTrace();
    trace->timestep_proj = timestep_proj.view({batch, 6 * n});
    trace->text_emb = context;
  }

  const BlockArgs args{
      timestep_proj, rope, context, context_img, c.num_attention_heads, static_cast<float>(c.eps)};
  BlockLoop loop;
  loop.num_blocks = static_cast<int64_t>(w.blocks.size());
  loop.run = [&](int64_t i, const BlockStreams& s) -> BlockStreams {
    Tensor x = block_forward(w.blocks[i], s.hidden, args, ctx, i);
    if (trace) trace->blocks.push_back(x);
    return {x, Tensor(), Tensor()};
  };
  loop.timestep_embedding = temb;
  loop.timestep_proj = timestep_proj;
  {
    // Per token: self-attention projections 4 N^2, cross-attention q / out 2 N^2, the FFN
    // 2 N ffn_dim MACs; attention 2 S^2 N; the text (and image) keys and values once per block.
    const double b = static_cast<double>(batch), d = static_cast<double>(n);
    const double s = static_cast<double>(hidden.size(1)), n2 = d * d;
    const double l = static_cast<double>(context.size(1)) +
                     (context_img.defined() ? static_cast<double>(context_img.size(1)) : 0.0);
    const double attn_core = 2.0 * s * s * d, qkv = 3.0 * s * n2;
    const double per_block = s * (6.0 * n2 + 2.0 * d * static_cast<double>(c.ffn_dim)) +
                             attn_core + 2.0 * l * n2 + 2.0 * s * l * d;
    loop.block_flops.assign(loop.num_blocks, 2.0 * b * per_block);
    loop.attention_flops.assign(loop.num_blocks, 2.0 * b * (qkv + attn_core));
  }
  hidden = ctx.run_blocks(loop, {std::move(hidden), Tensor(), Tensor()}).hidden;

  // (scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1): shift, scale (B, 1, N) f32.
  const Tensor mod = ops::add(w.scale_shift_table, temb.unsqueeze(1).to(DType::f32));
  const std::vector<Tensor> m = ops::chunk(mod, 2, 1);
  const Tensor out_norm = modulated_norm(hidden, m[1], m[0], static_cast<float>(c.eps));
  const Tensor tokens = layer::linear(out_norm, w.proj_out, ctx);
  return layer::unpatchify_3d(tokens, frames, height, width, patch,
                              layer::PatchOrder::channels_last);
}

}  // namespace mindiesd::models
