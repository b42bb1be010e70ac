#include "mindiesd/models/vae/autoencoder_kl.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/conv.h"
#include "mindiesd/layer/norm.h"
#include "mindiesd/models/weights.h"

namespace mindiesd::models {

namespace {

constexpr float kEps = 1e-6f;  // every GroupNorm of diffusers' Encoder / Decoder

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

std::string block(const char* part, size_t i) { return str_cat(part, ".", i); }

// Binds the tensors of the architecture the config describes, in diffusers' names and shapes,
// into `out`; problems are collected by BoundWeights and reported by finish().
class Binder {
 public:
  Binder(BoundWeights& bw, std::map<std::string, Tensor>& out) : bw_(bw), out_(out) {}

  void take(const std::string& name, const Shape& shape) { out_[name] = bw_.take(name, shape); }

  void conv(const std::string& p, int64_t out_c, int64_t in_c, int64_t k) {
    take(p + ".weight", {out_c, in_c, k, k});
    take(p + ".bias", {out_c});
  }
  void norm(const std::string& p, int64_t c) {
    take(p + ".weight", {c});
    take(p + ".bias", {c});
  }
  // diffusers ResnetBlock2D: conv_shortcut (1x1) only when the channel count changes.
  void resnet(const std::string& p, int64_t in_c, int64_t out_c) {
    norm(p + ".norm1", in_c);
    conv(p + ".conv1", out_c, in_c, 3);
    norm(p + ".norm2", out_c);
    conv(p + ".conv2", out_c, out_c, 3);
    if (in_c != out_c) conv(p + ".conv_shortcut", out_c, in_c, 1);
  }
  // Attention(_from_deprecated_attn_block=True). Checkpoints saved before the rename store
  // query / key / value / proj_attn, which diffusers maps to to_q / to_k / to_v / to_out.0 on
  // load (ModelMixin._convert_deprecated_attention_blocks); they are bound under the new names.
  void attention(const std::string& p, int64_t c) {
    norm(p + ".group_norm", c);
    static constexpr std::pair<const char*, const char*> kProj[] = {
        {"to_q", "query"}, {"to_k", "key"}, {"to_v", "value"}, {"to_out.0", "proj_attn"}};
    for (const auto& [name, old] : kProj) {
      const std::string now = p + "." + name, before = p + "." + old;
      const bool deprecated =
          !bw_.store().has(now + ".weight") && bw_.store().has(before + ".weight");
      const std::string& src = deprecated ? before : now;
      out_[now + ".weight"] = bw_.take(src + ".weight", {c, c});
      out_[now + ".bias"] = bw_.take(src + ".bias", {c});
    }
  }
  void mid_block(const std::string& p, int64_t c, bool attn) {
    resnet(p + ".resnets.0", c, c);
    if (attn) attention(p + ".attentions.0", c);
    resnet(p + ".resnets.1", c, c);
  }

 private:
  BoundWeights& bw_;
  std::map<std::string, Tensor>& out_;
};

// diffusers' blend_v / blend_h, vectorised over the blend rows: b's first `extent` rows
// (dim 2) or columns (dim 3) become a's last ones * (1 - y / extent) + b's * (y / extent), in
// place. The weights are the f32 values PyTorch turns the Python scalars into, and the two
// products and their sum are each rounded to the tile's dtype, as PyTorch's three ops do.
void blend(const Tensor& a, const Tensor& b, int64_t blend_extent, int dim) {
  const int64_t e = std::min({a.size(dim), b.size(dim), blend_extent});
  if (e <= 0) return;
  std::vector<float> wa(e), wb(e);
  for (int64_t y = 0; y < e; ++y) {
    wa[y] = static_cast<float>(1.0 - static_cast<double>(y) / static_cast<double>(e));
    wb[y] = static_cast<float>(static_cast<double>(y) / static_cast<double>(e));
  }
  const Shape wshape = dim == 2 ? Shape{e, 1} : Shape{e};
  const Tensor ta = Tensor::from_vector(wa, wshape).to(a.device());
  const Tensor tb = Tensor::from_vector(wb, wshape).to(a.device());
  const Tensor a_end = a.narrow(dim, a.size(dim) - e, e);
  const Tensor b_start = b.narrow(dim, 0, e);
  const DType dt = b.dtype();
  const Tensor pa = ops::mul(a_end, ta).to(dt);
  const Tensor pb = ops::mul(b_start, tb).to(dt);
  b_start.copy_(ops::add(pa, pb));
}

// diffusers' tiled loop: tiles of `tile` input pixels every `stride`, each run through `fn`,
// blended with the (already blended) tile above and to the left, cropped to `limit` and
// concatenated. Only the previous row of tiles is kept.
Tensor run_tiled(const Tensor& x, int64_t tile, int64_t stride, int64_t blend_extent, int64_t limit,
                 const std::function<Tensor(const Tensor&)>& fn) {
  const int64_t h = x.size(2), w = x.size(3);
  std::vector<Tensor> prev_row, rows;
  for (int64_t i = 0; i < h; i += stride) {
    std::vector<Tensor> row, pieces;
    for (int64_t j = 0; j < w; j += stride) {
      const Tensor in =
          x.slice(2, i, std::min(i + tile, h)).slice(3, j, std::min(j + tile, w)).contiguous();
      Tensor t = fn(in);
      if (!t.storage() || t.storage()->borrowed() || !t.is_contiguous()) t = t.clone();
      const size_t c = row.size();
      if (!prev_row.empty()) blend(prev_row[c], t, blend_extent, 2);
      if (c > 0) blend(row[c - 1], t, blend_extent, 3);
      pieces.push_back(
          t.narrow(2, 0, std::min(limit, t.size(2))).narrow(3, 0, std::min(limit, t.size(3))));
      row.push_back(std::move(t));
    }
    rows.push_back(ops::cat(pieces, 3));
    prev_row = std::move(row);
  }
  return ops::cat(rows, 2);
}

void check_input(const Tensor& x, int64_t channels, const char* what, const char* field) {
  MINDIESD_CHECK(x.defined(), InvalidArgument, "AutoencoderKL.", what, ": input is undefined");
  MINDIESD_CHECK(x.dim() == 4, InvalidArgument, "AutoencoderKL.", what,
                 ": input must be (B, C, H, W), got shape ", x.shape().str());
  MINDIESD_CHECK(x.size(1) == channels, InvalidArgument, "AutoencoderKL.", what, ": input has ",
                 x.size(1), " channels (shape ", x.shape().str(), ") but the config's ", field,
                 " is ", channels);
  MINDIESD_CHECK(is_float(x.dtype()), InvalidArgument, "AutoencoderKL.", what,
                 ": input must be f32/bf16/f16, got ", dtype_name(x.dtype()));
  MINDIESD_CHECK(x.numel() > 0, InvalidArgument, "AutoencoderKL.", what, ": input of shape ",
                 x.shape().str(), " is empty");
}

// `z op s` with a Python float s, rounded as PyTorch's CPU kernels round a tensor-scalar op:
// mul / div compute in f32 with the scalar as f32, then round once to z's dtype; add / sub
// first round the scalar to z's dtype (measured on torch 2.11: bf16 `x + 0.1159` adds
// bf16(0.1159)).
Tensor scalar_op(const Tensor& z, BinaryKind kind, double s) {
  const bool same_dtype_scalar = kind == BinaryKind::add || kind == BinaryKind::sub;
  const Tensor r = ops::binary(
      z, ops::full({1}, s, same_dtype_scalar ? z.dtype() : DType::f32, z.device()), kind);
  return r.dtype() == z.dtype() ? r : r.to(z.dtype());
}

// torch.tensor(values).view(1, C, 1, 1).to(dtype), as the SDXL pipelines build latents_mean/std.
Tensor channel_tensor(const std::vector<double>& values, DType dtype, Device device) {
  std::vector<float> f(values.begin(), values.end());
  const int64_t c = static_cast<int64_t>(f.size());
  return Tensor::from_vector(f, {1, c, 1, 1}).to(dtype).to(device);
}

}  // namespace

AutoencoderKL::AutoencoderKL(io::AutoencoderKLConfig config, DType dtype,
                             std::shared_ptr<const WeightMap> weights)
    : config_(std::move(config)), dtype_(dtype), weights_(std::move(weights)) {}

AutoencoderKL AutoencoderKL::load(const io::Component& component, DType dtype) {
  io::ConfigReader reader = component.config_reader();
  io::AutoencoderKLConfig config = io::AutoencoderKLConfig::read(reader);
  return from_weights(std::move(config), component.open_weights(), dtype);
}

AutoencoderKL AutoencoderKL::from_weights(io::AutoencoderKLConfig c, io::WeightStore weights,
                                          DType dtype) {
  MINDIESD_CHECK(is_float(dtype), InvalidArgument, "AutoencoderKL: compute dtype must be ",
                 "f32/bf16/f16, got ", dtype_name(dtype));
  const size_t n = c.block_out_channels.size();
  MINDIESD_CHECK(n >= 1 && n <= 16, InvalidArgument,
                 "AutoencoderKL: block_out_channels must have 1 to 16 entries, got ", n);
  MINDIESD_CHECK(c.down_block_types.size() == n && c.up_block_types.size() == n, InvalidArgument,
                 "AutoencoderKL: ", c.down_block_types.size(), " down and ",
                 c.up_block_types.size(), " up block types for ", n, " block_out_channels");
  for (const std::string& t : c.down_block_types) {
    MINDIESD_CHECK(t == "DownEncoderBlock2D", Unsupported, "AutoencoderKL: down block type '", t,
                   "' is not supported (only DownEncoderBlock2D)");
  }
  for (const std::string& t : c.up_block_types) {
    MINDIESD_CHECK(t == "UpDecoderBlock2D", Unsupported, "AutoencoderKL: up block type '", t,
                   "' is not supported (only UpDecoderBlock2D)");
  }
  // diffusers' get_activation: "silu" and "swish" are both nn.SiLU (the resnets' non-linearity;
  // conv_act of Encoder / Decoder is SiLU whatever act_fn says).
  MINDIESD_CHECK(c.act_fn == "silu" || c.act_fn == "swish", Unsupported, "AutoencoderKL: act_fn '",
                 c.act_fn, "' is not supported (silu / swish)");
  MINDIESD_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.latent_channels > 0 &&
                     c.layers_per_block > 0 && c.norm_num_groups > 0 && c.sample_size > 0,
                 InvalidArgument, "AutoencoderKL: channel counts, layers_per_block, ",
                 "norm_num_groups and sample_size must be positive");
  for (int64_t ch : c.block_out_channels) {
    MINDIESD_CHECK(ch > 0 && ch % c.norm_num_groups == 0, InvalidArgument, "AutoencoderKL: ", ch,
                   " block channels do not split into norm_num_groups=", c.norm_num_groups,
                   " groups");
  }
  MINDIESD_CHECK(c.scaling_factor != 0.0, InvalidArgument,
                 "AutoencoderKL: scaling_factor must not be 0");
  MINDIESD_CHECK(c.latents_mean.has_value() == c.latents_std.has_value(), InvalidArgument,
                 "AutoencoderKL: latents_mean and latents_std must be given together");
  if (c.latents_mean) {
    const auto lc = static_cast<size_t>(c.latent_channels);
    MINDIESD_CHECK(c.latents_mean->size() == lc && c.latents_std->size() == lc, InvalidArgument,
                   "AutoencoderKL: latents_mean / latents_std need latent_channels=", lc,
                   " entries, got ", c.latents_mean->size(), " / ", c.latents_std->size());
  }

  const std::string what =
      weights.valid() ? str_cat("AutoencoderKL at ", weights.path().string()) : "AutoencoderKL";
  BoundWeights bw(std::move(weights), dtype, what);
  auto map = std::make_shared<WeightMap>();
  Binder b(bw, *map);
  const auto& ch = c.block_out_channels;
  const int64_t lpb = c.layers_per_block, top = ch.back();

  // Encoder (diffusers vae.py Encoder, double_z=True).
  b.conv("encoder.conv_in", ch[0], c.in_channels, 3);
  for (size_t i = 0; i < n; ++i) {
    const std::string p = block("encoder.down_blocks", i);
    const int64_t in_c = i == 0 ? ch[0] : ch[i - 1];
    for (int64_t r = 0; r < lpb; ++r) {
      b.resnet(str_cat(p, ".resnets.", r), r == 0 ? in_c : ch[i], ch[i]);
    }
    if (i + 1 < n) b.conv(p + ".downsamplers.0.conv", ch[i], ch[i], 3);
  }
  b.mid_block("encoder.mid_block", top, c.mid_block_add_attention);
  b.norm("encoder.conv_norm_out", top);
  b.conv("encoder.conv_out", 2 * c.latent_channels, top, 3);
  if (c.use_quant_conv) b.conv("quant_conv", 2 * c.latent_channels, 2 * c.latent_channels, 1);

  // Decoder (diffusers vae.py Decoder): up blocks over the reversed channels.
  if (c.use_post_quant_conv) b.conv("post_quant_conv", c.latent_channels, c.latent_channels, 1);
  b.conv("decoder.conv_in", top, c.latent_channels, 3);
  b.mid_block("decoder.mid_block", top, c.mid_block_add_attention);
  for (size_t i = 0; i < n; ++i) {
    const std::string p = block("decoder.up_blocks", i);
    const int64_t prev = ch[n - (i == 0 ? 1 : i)], out = ch[n - 1 - i];
    for (int64_t r = 0; r <= lpb; ++r) {
      b.resnet(str_cat(p, ".resnets.", r), r == 0 ? prev : out, out);
    }
    if (i + 1 < n) b.conv(p + ".upsamplers.0.conv", out, out, 3);
  }
  b.norm("decoder.conv_norm_out", ch[0]);
  b.conv("decoder.conv_out", c.out_channels, ch[0], 3);
  bw.finish();

  return AutoencoderKL(std::move(c), dtype, std::move(map));
}

// ---- forward pieces ----

Tensor AutoencoderKL::run_conv(const Tensor& x, const std::string& prefix) const {
  return layer::conv2d(x, module_weights_of(weights_, prefix + "."));
}

Tensor AutoencoderKL::run_resnet(const Tensor& x, const std::string& prefix) const {
  layer::ResnetBlockOptions o;
  o.groups = config_.norm_num_groups;
  o.eps = kEps;
  return layer::resnet_block2d(x, module_weights_of(weights_, prefix + "."), o);
}

// diffusers UNetMidBlock2D (one layer): resnet, attention (when mid_block_add_attention),
// resnet. attention_head_dim = channels, so one head; rescale_output_factor 1.
Tensor AutoencoderKL::run_mid_block(const Tensor& x, const std::string& prefix) const {
  Tensor h = run_resnet(x, prefix + ".resnets.0");
  if (config_.mid_block_add_attention) {
    layer::SpatialAttentionOptions o;
    o.groups = config_.norm_num_groups;
    o.eps = kEps;
    o.heads = 1;
    h = layer::spatial_attention_block(h, module_weights_of(weights_, prefix + ".attentions.0."),
                                       o);
  }
  return run_resnet(h, prefix + ".resnets.1");
}

// conv_norm_out (GroupNorm, eps 1e-6) -> SiLU -> conv_out.
Tensor AutoencoderKL::run_norm_act_conv_out(const Tensor& x, const std::string& prefix) const {
  const layer::ModuleWeights norm = module_weights_of(weights_, prefix + ".conv_norm_out.");
  Tensor h =
      layer::group_norm(x, config_.norm_num_groups, norm.get("weight"), norm.get("bias"), kEps);
  h = ops::silu(h);
  return run_conv(h, prefix + ".conv_out");
}

Tensor AutoencoderKL::decode_tile(const Tensor& z) const {
  const size_t n = config_.block_out_channels.size();
  Tensor h = z.dtype() == dtype_ ? z : z.to(dtype_);
  if (config_.use_post_quant_conv) h = run_conv(h, "post_quant_conv");
  h = run_conv(h, "decoder.conv_in");
  h = run_mid_block(h, "decoder.mid_block");
  for (size_t i = 0; i < n; ++i) {
    const std::string p = block("decoder.up_blocks", i);
    for (int64_t r = 0; r <= config_.layers_per_block; ++r) {
      h = run_resnet(h, str_cat(p, ".resnets.", r));
    }
    if (i + 1 < n) {
      h = layer::upsample2d(h, module_weights_of(weights_, p + ".upsamplers.0."),
                            layer::UpsampleMode::nearest);
    }
  }
  return run_norm_act_conv_out(h, "decoder");
}

Tensor AutoencoderKL::encode_tile(const Tensor& x) const {
  const size_t n = config_.block_out_channels.size();
  Tensor h = run_conv(x.dtype() == dtype_ ? x : x.to(dtype_), "encoder.conv_in");
  for (size_t i = 0; i < n; ++i) {
    const std::string p = block("encoder.down_blocks", i);
    for (int64_t r = 0; r < config_.layers_per_block; ++r) {
      h = run_resnet(h, str_cat(p, ".resnets.", r));
    }
    if (i + 1 < n) h = layer::downsample2d(h, module_weights_of(weights_, p + ".downsamplers.0."));
  }
  h = run_mid_block(h, "encoder.mid_block");
  h = run_norm_act_conv_out(h, "encoder");
  if (config_.use_quant_conv) h = run_conv(h, "quant_conv");
  return h;
}

// ---- public API ----

int64_t AutoencoderKL::tile_sample_size() const {
  return tiling_.tile_sample_min_size > 0 ? tiling_.tile_sample_min_size : config_.sample_size;
}

// diffusers: int(sample_size / 2 ** (len(block_out_channels) - 1)).
int64_t AutoencoderKL::tile_latent_size() const { return tile_sample_size() / scale_factor(); }

void AutoencoderKL::set_tiling(VaeTiling t) {
  if (t.enabled) {
    MINDIESD_CHECK(t.tile_sample_min_size >= 0, InvalidArgument,
                   "AutoencoderKL: tile_sample_min_size must be >= 0, got ",
                   t.tile_sample_min_size);
    MINDIESD_CHECK(t.tile_overlap_factor >= 0.0 && t.tile_overlap_factor < 1.0, InvalidArgument,
                   "AutoencoderKL: tile_overlap_factor must be in [0, 1), got ",
                   t.tile_overlap_factor);
    const int64_t ts = t.tile_sample_min_size > 0 ? t.tile_sample_min_size : config_.sample_size;
    const int64_t tl = ts / scale_factor();
    const double keep = 1.0 - t.tile_overlap_factor;
    MINDIESD_CHECK(tl >= 1 && static_cast<int64_t>(tl * keep) >= 1 &&
                       static_cast<int64_t>(static_cast<double>(ts) * keep) >= 1,
                   InvalidArgument, "AutoencoderKL: tile of ", ts, " pixels (", tl,
                   " latents) with overlap ", t.tile_overlap_factor,
                   " leaves no stride between tiles (scale factor ", scale_factor(), ")");
  }
  tiling_ = t;
}

AutoencoderKL AutoencoderKL::to(Device device) const {
  AutoencoderKL m = *this;
  m.weights_ = weights_on(weights_, device);
  m.device_ = device;
  return m;
}

Tensor AutoencoderKL::decode(const Tensor& z_in) const {
  check_input(z_in, config_.latent_channels, "decode", "latent_channels");
  const Tensor z = z_in.to(device_);
  const int64_t tl = tile_latent_size();
  // diffusers _decode: tiled only when the latent exceeds one tile.
  const bool tiled = tiling_.enabled && (z.size(3) > tl || z.size(2) > tl);
  return (tiled ? tiled_decode(z) : decode_tile(z)).to(z_in.device());
}

std::pair<Tensor, Tensor> AutoencoderKL::encode(const Tensor& image_in) const {
  check_input(image_in, config_.in_channels, "encode", "in_channels");
  const Tensor image = image_in.to(device_);
  const int64_t ts = tile_sample_size();
  const Tensor moments = tiling_.enabled && (image.size(3) > ts || image.size(2) > ts)
                             ? tiled_encode(image)
                             : encode_tile(image);
  // DiagonalGaussianDistribution: mean, logvar = chunk(2, dim=1); logvar.clamp(-30, 20).
  const std::vector<Tensor> parts = ops::chunk(moments, 2, 1);
  const Device back = image_in.device();
  return {parts[0].contiguous().to(back), ops::clamp(parts[1], -30.0f, 20.0f).to(back)};
}

// diffusers AutoencoderKL.tiled_decode: latent tiles of tile_latent_min_size every
// int(tl * (1 - overlap)), blended over int(tile_sample_min_size * overlap) pixels, each
// cropped to tile_sample_min_size - blend_extent.
Tensor AutoencoderKL::tiled_decode(const Tensor& z) const {
  const int64_t ts = tile_sample_size(), tl = tile_latent_size();
  const double f = tiling_.tile_overlap_factor;
  const auto stride = static_cast<int64_t>(static_cast<double>(tl) * (1.0 - f));
  const auto blend_extent = static_cast<int64_t>(static_cast<double>(ts) * f);
  return run_tiled(z, tl, stride, blend_extent, ts - blend_extent,
                   [this](const Tensor& t) { return decode_tile(t); });
}

// diffusers AutoencoderKL._tiled_encode: image tiles of tile_sample_min_size every
// int(ts * (1 - overlap)), moments blended over int(tile_latent_min_size * overlap).
Tensor AutoencoderKL::tiled_encode(const Tensor& x) const {
  const int64_t ts = tile_sample_size(), tl = tile_latent_size();
  const double f = tiling_.tile_overlap_factor;
  const auto stride = static_cast<int64_t>(static_cast<double>(ts) * (1.0 - f));
  const auto blend_extent = static_cast<int64_t>(static_cast<double>(tl) * f);
  return run_tiled(x, ts, stride, blend_extent, tl - blend_extent,
                   [this](const Tensor& t) { return encode_tile(t); });
}

Tensor AutoencoderKL::normalize_latents(const Tensor& z) const {
  check_input(z, config_.latent_channels, "normalize_latents", "latent_channels");
  if (config_.latents_mean) {
    const Tensor mean = channel_tensor(*config_.latents_mean, z.dtype(), z.device());
    const Tensor std = channel_tensor(*config_.latents_std, z.dtype(), z.device());
    const Tensor h = scalar_op(ops::sub(z, mean), BinaryKind::mul, config_.scaling_factor);
    return ops::div(h, std);
  }
  const Tensor h = config_.shift_factor ? scalar_op(z, BinaryKind::sub, *config_.shift_factor) : z;
  return scalar_op(h, BinaryKind::mul, config_.scaling_factor);
}

Tensor AutoencoderKL::denormalize_latents(const Tensor& z) const {
  check_input(z, config_.latent_channels, "denormalize_latents", "latent_channels");
  if (config_.latents_mean) {
    const Tensor mean = channel_tensor(*config_.latents_mean, z.dtype(), z.device());
    const Tensor std = channel_tensor(*config_.latents_std, z.dtype(), z.device());
    const Tensor h = scalar_op(ops::mul(z, std), BinaryKind::div, config_.scaling_factor);
    return ops::add(h, mean);
  }
  const Tensor h = scalar_op(z, BinaryKind::div, config_.scaling_factor);
  return config_.shift_factor ? scalar_op(h, BinaryKind::add, *config_.shift_factor) : h;
}

}  // namespace mindiesd::models
