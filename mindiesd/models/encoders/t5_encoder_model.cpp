#include "mindiesd/models/encoders/t5_encoder_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/linear.h"
#include "mindiesd/layer/norm.h"
#include "mindiesd/models/encoders/clip_text_model.h"
#include "mindiesd/models/weights.h"

namespace mindiesd::models {

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr int64_t kMaxVocab = int64_t{1} << 26;
constexpr int64_t kMaxLayers = 1000;
constexpr int64_t kMaxBuckets = int64_t{1} << 16;

std::string config_name(std::string_view source) {
  return source.empty() ? "T5Config" : str_cat(source, ": T5Config");
}

bool known_model_type(std::string_view type) { return type == "t5" || type == "umt5"; }

// T5Config.__post_init__: "gated-<act>" or "<act>"; the activation is the last part and
// "gated-gelu" means gelu_new. False for any other shape ("a-b-c", "relu-gelu").
bool parse_feed_forward_proj(const std::string& proj, std::string* act, bool* gated) {
  const size_t dash = proj.find('-');
  if (dash == std::string::npos) {
    *act = proj;
    *gated = false;
  } else {
    if (proj.substr(0, dash) != "gated" || proj.find('-', dash + 1) != std::string::npos)
      return false;
    *act = proj.substr(dash + 1);
    *gated = true;
  }
  if (proj == "gated-gelu") *act = "gelu_new";
  return true;
}

// T5Block's float16 clamp: when the hidden state is f16 and holds an inf, every value is clamped
// to +-(f16 max - 1000); otherwise the clamp to +-f16 max changes nothing finite.
Tensor clamp_f16(const Tensor& x) {
  const Tensor c = x.to(Device::cpu()).contiguous();
  const uint16_t* p = c.data<uint16_t>();
  bool inf = false;
  for (int64_t i = 0; i < c.numel() && !inf; ++i) inf = (p[i] & 0x7fffu) == 0x7c00u;
  if (!inf) return x;
  constexpr float kMax = 65504.0f - 1000.0f;
  return ops::clamp(x, -kMax, kMax);
}

// torch.finfo(dtype).min of the compute dtypes.
double finfo_min(DType dtype) {
  switch (dtype) {
    case DType::f16:
      return -65504.0;
    case DType::bf16:
      return -3.3895313892515355e38;
    default:
      return -static_cast<double>(std::numeric_limits<float>::max());
  }
}

// T5Attention.compute_bias(L, L) from one relative_attention_bias table, on the CPU, in `dt`.
Tensor relative_bias_cpu(const Tensor& table, const T5Config& c, int64_t n, DType dt) {
  MINDIESD_CHECK(n >= 1 && n <= kMaxDim, InvalidArgument, "T5EncoderModel: sequence length ", n,
                 " is out of range [1, ", kMaxDim, "]");
  const int64_t rels = 2 * n - 1;
  // The bias depends on memory - query only. per_head (H, 2L-1) holds the value of every
  // relative position r - (L-1); row i of head h is then per_head[h, L-1-i : 2L-1-i], one copy.
  Tensor buckets = Tensor::empty({rels}, DType::i64);
  for (int64_t r = 0; r < rels; ++r) {
    buckets.data<int64_t>()[r] = t5_relative_position_bucket(r - (n - 1), /*bidirectional=*/true,
                                                             c.relative_attention_num_buckets,
                                                             c.relative_attention_max_distance);
  }
  const Tensor per_head =
      ops::index_select(table.to(Device::cpu()), 0, buckets).transpose(0, 1).to(dt).contiguous();
  Tensor bias = Tensor::empty({1, c.num_heads, n, n}, dt);
  const int64_t es = dtype_bits(dt) / 8;
  const auto* src = static_cast<const char*>(per_head.data_ptr());
  auto* dst = static_cast<char*>(bias.data_ptr());
  for (int64_t h = 0; h < c.num_heads; ++h)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(dst + (h * n + i) * n * es, src + (h * rels + n - 1 - i) * es,
                  static_cast<size_t>(n * es));
  return bias;
}

// transformers' 2-d attention_mask (B, L) as keep flags (nonzero = attend, as .bool() reads it),
// or nothing when the mask is undefined or hides no key (create_bidirectional_mask then gives
// no mask at all).
std::vector<uint8_t> mask_keep_flags(const Tensor& mask, int64_t batch, int64_t len,
                                     std::string_view who) {
  if (!mask.defined()) return {};
  MINDIESD_CHECK(mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == len, InvalidArgument,
                 who, ": attention_mask ", mask.shape().str(), " does not match input_ids (", batch,
                 ", ", len, ")");
  const Tensor host = mask.to(Device::cpu()).to(DType::f32).contiguous();
  const float* p = host.data<float>();
  std::vector<uint8_t> keep(static_cast<size_t>(batch * len));
  bool hides = false;
  for (size_t i = 0; i < keep.size(); ++i) {
    keep[i] = p[i] != 0.0f;  // NaN counts as nonzero, as in PyTorch
    hides |= keep[i] == 0;
  }
  if (!hides) keep.clear();
  return keep;
}

// sdpa_attention_forward's create_position_bias_mask: the (1, H, L, L) bias broadcast to
// (B, H, L, L) with the keys row b hides set to `lowest` (torch.where(mask, bias, min)).
Tensor hide_keys(const Tensor& bias, const std::vector<uint8_t>& keep, int64_t batch,
                 double lowest) {
  const int64_t heads = bias.size(1), n = bias.size(2);
  const DType dt = bias.dtype();
  const int64_t es = dtype_bits(dt) / 8;
  const Tensor low = ops::full({1}, lowest, dt);
  const auto* lo = static_cast<const char*>(low.data_ptr());
  Tensor out = Tensor::empty({batch, heads, n, n}, dt);
  const auto* src = static_cast<const char*>(bias.data_ptr());
  auto* dst = static_cast<char*>(out.data_ptr());
  const auto row_bytes = static_cast<size_t>(n * es);
  for (int64_t b = 0; b < batch; ++b) {
    const uint8_t* k = keep.data() + b * n;
    for (int64_t r = 0; r < heads * n; ++r) {
      char* d = dst + (b * heads * n + r) * n * es;
      std::memcpy(d, src + r * n * es, row_bytes);
      for (int64_t j = 0; j < n; ++j)
        if (!k[j]) std::memcpy(d + j * es, lo, static_cast<size_t>(es));
    }
  }
  return out;
}

}  // namespace

// ---- T5Config ----

void T5Config::validate(std::string_view source) const {
  const std::string who = config_name(source);
  MINDIESD_CHECK(known_model_type(model_type), InvalidArgument, who, ": field 'model_type' = '",
                 model_type, "' is not \"t5\" or \"umt5\"");
  auto dim = [&](std::string_view f, int64_t v, int64_t lo, int64_t hi) {
    MINDIESD_CHECK(v >= lo && v <= hi, InvalidArgument, who, ": field '", f, "' = ", v,
                   " is out of range [", lo, ", ", hi, "]");
  };
  dim("vocab_size", vocab_size, 1, kMaxVocab);
  dim("d_model", d_model, 1, kMaxDim);
  dim("d_kv", d_kv, 1, kMaxDim);
  dim("d_ff", d_ff, 1, kMaxDim);
  dim("num_layers", num_layers, 1, kMaxLayers);
  dim("num_heads", num_heads, 1, kMaxDim);
  MINDIESD_CHECK(num_heads * d_kv <= kMaxDim, InvalidArgument, who,
                 ": num_heads * d_kv = ", num_heads * d_kv, " exceeds ", kMaxDim);
  // Bidirectional buckets: half per direction, half of those exact; at least one exact bucket
  // and a max_distance beyond the exact range keep the log-spaced formula defined.
  dim("relative_attention_num_buckets", relative_attention_num_buckets, 4, kMaxBuckets);
  dim("relative_attention_max_distance", relative_attention_max_distance,
      relative_attention_num_buckets / 4 + 1, kMaxVocab);
  MINDIESD_CHECK(std::isfinite(layer_norm_epsilon) && layer_norm_epsilon > 0, InvalidArgument, who,
                 ": field 'layer_norm_epsilon' = ", layer_norm_epsilon,
                 " must be positive and finite");
  std::string act;
  bool gated = false;
  MINDIESD_CHECK(parse_feed_forward_proj(feed_forward_proj, &act, &gated), InvalidArgument, who,
                 ": field 'feed_forward_proj' = '", feed_forward_proj,
                 "' is not of the form 'gated-<act>' or '<act>'");
  MINDIESD_CHECK(is_supported_transformers_activation(dense_act_fn), InvalidArgument, who,
                 ": field 'dense_act_fn' = '", dense_act_fn, "' is not supported (",
                 transformers_activation_names(), ")");
  MINDIESD_CHECK(!is_decoder, InvalidArgument, who,
                 ": field 'is_decoder' is true; T5EncoderModel is the encoder stack");
}

T5Config T5Config::umt5() {
  T5Config c;
  c.model_type = "umt5";
  c.vocab_size = 250112;
  c.d_ff = 1024;
  c.num_layers = 8;
  c.num_heads = 6;
  c.feed_forward_proj = "gated-gelu";
  c.dense_act_fn = "gelu_new";
  c.is_gated_act = true;
  return c;
}

T5Config T5Config::read(io::ConfigReader& r, std::string_view default_model_type) {
  mark_transformers_config_keys(r);
  // scalable_attention: google/umt5-xxl's config carries it; transformers ignores it.
  for (const char* k : {"num_decoder_layers", "pad_token_id", "eos_token_id", "n_positions",
                        "scale_decoder_outputs", "scalable_attention"})
    r.mark_used(k);
  std::string type(default_model_type);
  if (r.has("model_type")) type = r.nullable<std::string>("model_type").value_or(type);
  r.check(known_model_type(type), "model_type",
          str_cat("expected \"t5\" or \"umt5\", got \"", type, "\""));
  T5Config c = type == "umt5" ? umt5() : T5Config();
  c.vocab_size = r.optional("vocab_size", c.vocab_size);
  c.d_model = r.optional("d_model", c.d_model);
  c.d_kv = r.optional("d_kv", c.d_kv);
  c.d_ff = r.optional("d_ff", c.d_ff);
  c.num_layers = r.optional("num_layers", c.num_layers);
  c.num_heads = r.optional("num_heads", c.num_heads);
  c.relative_attention_num_buckets =
      r.optional("relative_attention_num_buckets", c.relative_attention_num_buckets);
  c.relative_attention_max_distance =
      r.optional("relative_attention_max_distance", c.relative_attention_max_distance);
  c.layer_norm_epsilon = r.optional("layer_norm_epsilon", c.layer_norm_epsilon);
  c.feed_forward_proj = r.optional("feed_forward_proj", c.feed_forward_proj);
  r.check(parse_feed_forward_proj(c.feed_forward_proj, &c.dense_act_fn, &c.is_gated_act),
          "feed_forward_proj",
          str_cat("'", c.feed_forward_proj, "' is not of the form 'gated-<act>' or '<act>'"));
  c.dense_act_fn = r.optional("dense_act_fn", c.dense_act_fn);
  c.is_gated_act = r.optional("is_gated_act", c.is_gated_act);
  c.is_decoder = r.optional("is_decoder", c.is_decoder);
  c.validate(r.source());
  return c;
}

int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance) {
  int64_t ret = 0, n = 0;
  if (bidirectional) {
    num_buckets /= 2;
    if (relative_position > 0) ret += num_buckets;
    n = relative_position < 0 ? -relative_position : relative_position;
  } else {
    n = relative_position < 0 ? -relative_position : 0;
  }
  const int64_t max_exact = num_buckets / 2;
  MINDIESD_CHECK(max_exact >= 1 && max_distance > max_exact, InvalidArgument,
                 "t5_relative_position_bucket: num_buckets ", num_buckets, " / max_distance ",
                 max_distance, " leave no log-spaced range");
  if (n < max_exact) return ret + n;
  // max_exact + (log(n.float() / max_exact) / math.log(max_distance / max_exact)
  //              * (num_buckets - max_exact)).to(long), each step an f32 op.
  float v = static_cast<float>(n) / static_cast<float>(max_exact);
  v = std::log(v);
  v = v / static_cast<float>(
              std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  v = v * static_cast<float>(num_buckets - max_exact);
  const int64_t large = std::min(max_exact + static_cast<int64_t>(v), num_buckets - 1);
  return ret + large;
}

// ---- T5EncoderModel ----

T5EncoderModel T5EncoderModel::load(const io::Component& component, DType dtype) {
  const std::string& cls = component.class_name;
  MINDIESD_CHECK(cls.empty() || cls == "T5EncoderModel" || cls == "UMT5EncoderModel",
                 InvalidArgument, "T5EncoderModel: component '", component.name, "' is a ", cls,
                 ", not a T5EncoderModel or UMT5EncoderModel");
  const std::string_view class_type = cls == "UMT5EncoderModel" ? "umt5" : "t5";
  io::ConfigReader reader = component.config_reader();
  T5Config config = T5Config::read(reader, class_type);
  MINDIESD_CHECK(cls.empty() || config.model_type == class_type, InvalidArgument,
                 "T5EncoderModel: component '", component.name, "' is a ", cls,
                 " but its config has model_type \"", config.model_type, "\"");
  return from_weights(std::move(config), component.open_weights(), dtype);
}

T5EncoderModel T5EncoderModel::from_weights(T5Config c, io::WeightStore weights, DType dtype) {
  MINDIESD_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16,
                 InvalidArgument, "T5EncoderModel: compute dtype must be f32, bf16 or f16, got ",
                 dtype_name(dtype));
  c.validate();
  const std::string what =
      weights.valid() ? str_cat("T5EncoderModel at ", weights.path().string()) : "T5EncoderModel";
  BoundWeights bw(std::move(weights), dtype, what);
  const int64_t d = c.d_model, inner = c.num_heads * c.d_kv, ff = c.d_ff;
  // transformers keeps wo in f32 when the model is loaded in float16 only.
  const DType wo_dtype = dtype == DType::f16 ? DType::f32 : dtype;

  T5EncoderModel m(c, dtype);
  // shared.weight, or its tied copy encoder.embed_tokens.weight; with both, shared wins and the
  // copy is only shape-checked (taken in its stored dtype: no conversion).
  const io::WeightStore& store = bw.store();
  const bool has_shared = store.has("shared.weight");
  const bool has_embed = store.has("encoder.embed_tokens.weight");
  const Shape emb_shape{c.vocab_size, d};
  if (has_shared || !has_embed) m.embedding_ = bw.take("shared.weight", emb_shape);
  if (has_embed) {
    const char* name = "encoder.embed_tokens.weight";
    if (has_shared)
      bw.take(name, emb_shape, store.info(name).dtype.value_or(dtype));
    else
      m.embedding_ = bw.take(name, emb_shape);
  }
  for (const std::string& n : store.names())
    if (n.starts_with("decoder.") || n == "lm_head.weight") bw.ignore(n);

  m.layers_.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Layer& l = m.layers_[static_cast<size_t>(i)];
    const std::string a = str_cat("encoder.block.", i, ".layer.0.");
    const std::string f = str_cat("encoder.block.", i, ".layer.1.");
    l.ln_attn = bw.take(a + "layer_norm.weight", {d});
    l.q = bw.take(a + "SelfAttention.q.weight", {inner, d});
    l.k = bw.take(a + "SelfAttention.k.weight", {inner, d});
    l.v = bw.take(a + "SelfAttention.v.weight", {inner, d});
    l.o = bw.take(a + "SelfAttention.o.weight", {d, inner});
    if (i == 0 || c.per_layer_bias()) {
      l.relative_attention_bias = bw.take(a + "SelfAttention.relative_attention_bias.weight",
                                          {c.relative_attention_num_buckets, c.num_heads});
    }
    l.ln_ff = bw.take(f + "layer_norm.weight", {d});
    if (c.is_gated_act) {
      l.wi_0 = bw.take(f + "DenseReluDense.wi_0.weight", {ff, d});
      l.wi_1 = bw.take(f + "DenseReluDense.wi_1.weight", {ff, d});
    } else {
      l.wi_0 = bw.take(f + "DenseReluDense.wi.weight", {ff, d});
    }
    l.wo = bw.take(f + "DenseReluDense.wo.weight", {d, ff}, wo_dtype);
  }
  m.final_ln_ = bw.take("encoder.final_layer_norm.weight", {d});
  bw.finish();
  return m;
}

Tensor T5EncoderModel::position_bias(int64_t seq_len, std::optional<DType> dtype,
                                     int64_t layer) const {
  MINDIESD_CHECK(layer >= 0 && layer < config_.num_layers, InvalidArgument,
                 "T5EncoderModel: layer ", layer, " is out of range [0, ", config_.num_layers, ")");
  const Tensor& table =
      layers_[static_cast<size_t>(config_.per_layer_bias() ? layer : 0)].relative_attention_bias;
  return relative_bias_cpu(table, config_, seq_len, dtype.value_or(table.dtype()))
      .to(table.device());
}

T5EncoderModel T5EncoderModel::to(Device device) const {
  T5EncoderModel m = *this;
  move_tensors({&m.embedding_, &m.final_ln_}, device);
  for (Layer& l : m.layers_) {
    move_tensors({&l.ln_attn, &l.q, &l.k, &l.v, &l.o, &l.ln_ff, &l.wi_0, &l.wi_1, &l.wo,
                  &l.relative_attention_bias},
                 device);
  }
  m.device_ = device;
  return m;
}

Tensor T5EncoderModel::forward(const Tensor& input_ids, const Tensor& attention_mask) const {
  const T5Config& c = config_;
  const char* who = c.per_layer_bias() ? "UMT5EncoderModel" : "T5EncoderModel";
  const std::vector<int64_t> ids = checked_input_ids(input_ids, c.vocab_size, who);
  const int64_t b = input_ids.size(0), len = input_ids.size(1), d = c.d_model;
  const int64_t heads = c.num_heads, inner = heads * c.d_kv;
  const auto eps = static_cast<float>(c.layer_norm_epsilon);

  const Tensor flat_ids = Tensor::from_blob(const_cast<int64_t*>(ids.data()), {b * len}, DType::i64,
                                            Device::cpu(), nullptr)
                              .to(device_);
  const std::vector<uint8_t> keep = mask_keep_flags(attention_mask, b, len, who);
  Tensor x = ops::index_select(embedding_, 0, flat_ids).view({b, len, d});
  // The attention kernel reads an f32 mask faster than a bf16 / f16 one, and adds it in f32
  // either way (as PyTorch's SDPA does), so the table's values go in exactly, as f32, unless
  // that would take more than 512 MiB. With a mask that hides keys, each batch row has its own.
  const Tensor& table0 = layers_[0].relative_attention_bias;
  const int64_t bias_rows = keep.empty() ? 1 : b;
  const DType bias_dt =
      bias_rows * heads * len * len <= (int64_t{128} << 20) ? DType::f32 : table0.dtype();
  auto bias_of = [&](size_t layer) {
    Tensor t = relative_bias_cpu(layers_[layer].relative_attention_bias, c, len, bias_dt);
    if (!keep.empty()) t = hide_keys(t, keep, b, finfo_min(dtype_));
    return t.to(table0.device());
  };
  Tensor bias = bias_of(0);

  // residual + delta, then the T5LayerNorm of the next sublayer, in one pass where the stream is
  // not f16 (the f16 clamp sits between the two).
  auto add_norm = [&](const Tensor& residual, const Tensor& delta, const Tensor& w) {
    if (ops::promote_types(residual.dtype(), delta.dtype()) == DType::f16) {
      layer::AddNormResult r;
      r.sum = clamp_f16(ops::add(residual, delta));
      r.normed = layer::rms_norm(r.sum, w, eps);
      return r;
    }
    return layer::add_rms_norm(residual, delta, w, eps);
  };

  Tensor normed = layer::rms_norm(x, layers_[0].ln_attn, eps);
  layer::AttentionOptions attn;
  attn.scale = 1.0f;  // T5 folds the scale into its initialisation
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    if (i > 0 && c.per_layer_bias()) bias = bias_of(i);
    const Shape heads_shape{b, len, heads, c.d_kv};
    const Tensor q = layer::linear(normed, l.q).view(heads_shape);
    const Tensor k = layer::linear(normed, l.k).view(heads_shape);
    const Tensor v = layer::linear(normed, l.v).view(heads_shape);
    const Tensor ctx = layer::attention_forward(q, k, v, bias, "BSND", attn).view({b, len, inner});
    auto r = add_norm(x, layer::linear(ctx, l.o), l.ln_ff);
    x = std::move(r.sum);

    // T5DenseGatedActDense / T5DenseActDense; the product is cast to wo's dtype (f32 in f16).
    Tensor hidden = transformers_linear(r.normed, l.wi_0, Tensor(), c.dense_act_fn);
    if (c.is_gated_act) hidden = ops::mul(hidden, layer::linear(r.normed, l.wi_1));
    if (hidden.dtype() != l.wo.dtype()) hidden = hidden.to(l.wo.dtype());
    const Tensor ffn = layer::linear(hidden, l.wo);

    const bool last = i + 1 == layers_.size();
    r = add_norm(x, ffn, last ? final_ln_ : layers_[i + 1].ln_attn);
    x = std::move(r.sum);
    normed = std::move(r.normed);
  }
  return normed;  // final_layer_norm(x)
}

Tensor umt5_prompt_embeds(const T5EncoderModel& model, const Tensor& input_ids,
                          const Tensor& attention_mask, int64_t max_sequence_length) {
  MINDIESD_CHECK(attention_mask.defined(), InvalidArgument,
                 "umt5_prompt_embeds: attention_mask is required (it gives each prompt's length)");
  MINDIESD_CHECK(max_sequence_length >= 1 && max_sequence_length <= kMaxDim, InvalidArgument,
                 "umt5_prompt_embeds: max_sequence_length ", max_sequence_length,
                 " is out of range [1, ", kMaxDim, "]");
  // seq_lens = mask.gt(0).sum(dim=1), checked before the encoder runs (forward checks shapes).
  std::vector<int64_t> lens;
  if (attention_mask.dim() == 2) {
    const Tensor mask = attention_mask.to(Device::cpu()).to(DType::f32).contiguous();
    const int64_t rows = mask.size(0), width = mask.size(1);
    lens.assign(static_cast<size_t>(rows), 0);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t& n = lens[static_cast<size_t>(r)];
      for (int64_t j = 0; j < width; ++j) n += mask.data<float>()[r * width + j] > 0.0f;
      MINDIESD_CHECK(n <= max_sequence_length, InvalidArgument, "umt5_prompt_embeds: prompt ", r,
                     " has ", n, " tokens, more than max_sequence_length ", max_sequence_length);
    }
  }
  const Tensor hidden = model.forward(input_ids, attention_mask);
  const int64_t b = hidden.size(0);
  Tensor out = ops::full({b, max_sequence_length, model.config().d_model}, 0.0, hidden.dtype())
                   .to(hidden.device());
  for (int64_t r = 0; r < b; ++r) {
    const int64_t n = lens[static_cast<size_t>(r)];
    if (n > 0) out.select(0, r).narrow(0, 0, n).copy_(hidden.select(0, r).narrow(0, 0, n));
  }
  return out;
}

}  // namespace mindiesd::models
