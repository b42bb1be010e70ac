#include "mindiesd/models/vae/autoencoder_kl_wan.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/conv.h"
#include "mindiesd/models/weights.h"

namespace mindiesd::models {

namespace {

// AutoencoderKLWan._encode: the first frame alone, then this many frames per chunk.
constexpr int64_t kEncodeChunkFrames = 4;

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// Binds the tensors of the architecture the config describes, in diffusers' names and shapes.
class Binder {
 public:
  Binder(BoundWeights& bw, std::map<std::string, Tensor>& out) : bw_(bw), out_(out) {}

  void take(const std::string& name, const Shape& shape) { out_[name] = bw_.take(name, shape); }
  // WanCausalConv3d / nn.Conv3d.
  void conv3d(const std::string& p, int64_t out_c, int64_t in_c, int64_t kt, int64_t k) {
    take(p + ".weight", {out_c, in_c, kt, k, k});
    take(p + ".bias", {out_c});
  }
  // nn.Conv2d.
  void conv2d(const std::string& p, int64_t out_c, int64_t in_c, int64_t k) {
    take(p + ".weight", {out_c, in_c, k, k});
    take(p + ".bias", {out_c});
  }
  // WanRMS_norm: gamma (C, 1, 1, 1) over video, (C, 1, 1) over images (the attention block).
  void norm(const std::string& p, int64_t c, bool images) {
    take(p + ".gamma", images ? Shape{c, 1, 1} : Shape{c, 1, 1, 1});
  }
  void residual(const std::string& p, int64_t in_c, int64_t out_c) {
    norm(p + ".norm1", in_c, false);
    conv3d(p + ".conv1", out_c, in_c, 3, 3);
    norm(p + ".norm2", out_c, false);
    conv3d(p + ".conv2", out_c, out_c, 3, 3);
    if (in_c != out_c) conv3d(p + ".conv_shortcut", out_c, in_c, 1, 1);
  }
  void attention(const std::string& p, int64_t c) {
    norm(p + ".norm", c, true);
    conv2d(p + ".to_qkv", 3 * c, c, 1);
    conv2d(p + ".proj", c, c, 1);
  }
  void mid_block(const std::string& p, int64_t c) {
    residual(p + ".resnets.0", c, c);
    attention(p + ".attentions.0", c);
    residual(p + ".resnets.1", c, c);
  }

 private:
  BoundWeights& bw_;
  std::map<std::string, Tensor>& out_;
};

void check_video(const Tensor& x, int64_t channels, const char* what, const char* field) {
  MINDIESD_CHECK(x.defined(), InvalidArgument, "AutoencoderKLWan.", what, ": input is undefined");
  MINDIESD_CHECK(x.dim() == 5, InvalidArgument, "AutoencoderKLWan.", what,
                 ": input must be (B, C, T, H, W), got shape ", x.shape().str());
  MINDIESD_CHECK(x.size(1) == channels, InvalidArgument, "AutoencoderKLWan.", what, ": input has ",
                 x.size(1), " channels (shape ", x.shape().str(), ") but the config's ", field,
                 " is ", channels);
  MINDIESD_CHECK(is_float(x.dtype()), InvalidArgument, "AutoencoderKLWan.", what,
                 ": input must be f32/bf16/f16, got ", dtype_name(x.dtype()));
  MINDIESD_CHECK(x.numel() > 0, InvalidArgument, "AutoencoderKLWan.", what, ": input of shape ",
                 x.shape().str(), " is empty");
}

// torch.tensor(values).view(1, C, 1, 1, 1).to(dtype), as WanPipeline builds latents_mean/std.
Tensor channel_tensor(const std::vector<double>& values, DType dtype, Device device) {
  std::vector<float> f(values.begin(), values.end());
  const int64_t c = static_cast<int64_t>(f.size());
  Tensor t = Tensor::from_vector(f, {1, c, 1, 1, 1}).to(dtype);
  return device.is_cpu() ? t : t.to(device);
}

}  // namespace

// The feature caches of one chunked encode or decode, keyed by module name (diffusers keys them
// by call order in feat_cache; the name is the same thing, and survives a skipped module).
struct AutoencoderKLWan::Chunks {
  std::map<std::string, layer::CausalConv3d> convs;
  // upsample3d modules that have seen their first chunk (diffusers' "Rep" marker: the first
  // chunk skips time_conv).
  std::set<std::string> started;
  // downsample3d: the last frame of the previous chunk after the spatial downsampler.
  std::map<std::string, Tensor> tails;
};

AutoencoderKLWan::AutoencoderKLWan(io::AutoencoderKLWanConfig config, DType dtype,
                                   std::shared_ptr<const WeightMap> weights)
    : config_(std::move(config)), dtype_(dtype), weights_(std::move(weights)) {}

AutoencoderKLWan AutoencoderKLWan::load(const io::Component& component, DType dtype) {
  io::ConfigReader reader = component.config_reader();
  io::AutoencoderKLWanConfig config = io::AutoencoderKLWanConfig::read(reader);
  return from_weights(std::move(config), component.open_weights(), dtype);
}

AutoencoderKLWan AutoencoderKLWan::from_weights(io::AutoencoderKLWanConfig c,
                                                io::WeightStore weights, DType dtype) {
  MINDIESD_CHECK(is_float(dtype), InvalidArgument, "AutoencoderKLWan: compute dtype must be ",
                 "f32/bf16/f16, got ", dtype_name(dtype));
  MINDIESD_CHECK(!c.is_residual, Unsupported,
                 "AutoencoderKLWan: is_residual (the Wan 2.2 VAE) is not supported yet");
  MINDIESD_CHECK(!c.patch_size || *c.patch_size == 1, Unsupported, "AutoencoderKLWan: patch_size ",
                 c.patch_size.value_or(1), " (the Wan 2.2 VAE) is not supported yet");
  const size_t n = c.dim_mult.size();
  MINDIESD_CHECK(n >= 1 && n <= 16 && c.temperal_downsample.size() + 1 >= n, InvalidArgument,
                 "AutoencoderKLWan: dim_mult has ", n, " entries and temperal_downsample ",
                 c.temperal_downsample.size(), " (need 1-16 and one per downsampler)");
  MINDIESD_CHECK(c.base_dim > 0 && c.decoder_base_dim > 0 && c.z_dim > 0 && c.num_res_blocks > 0 &&
                     c.in_channels > 0 && c.out_channels > 0,
                 InvalidArgument, "AutoencoderKLWan: dims and channel counts must be positive");
  for (int64_t m : c.dim_mult) {
    MINDIESD_CHECK(m > 0, InvalidArgument, "AutoencoderKLWan: dim_mult entries must be positive");
  }
  const auto zc = static_cast<size_t>(c.z_dim);
  MINDIESD_CHECK(c.latents_mean.size() == zc && c.latents_std.size() == zc, InvalidArgument,
                 "AutoencoderKLWan: latents_mean / latents_std need z_dim=", zc, " entries, got ",
                 c.latents_mean.size(), " / ", c.latents_std.size());

  const std::string what = weights.valid()
                               ? str_cat("AutoencoderKLWan at ", weights.path().string())
                               : "AutoencoderKLWan";
  BoundWeights bw(std::move(weights), dtype, what);
  auto map = std::make_shared<WeightMap>();
  Binder b(bw, *map);
  std::vector<EncoderLayer> layers;

  // WanEncoder3d: dims = base_dim * [1] + dim_mult.
  std::vector<int64_t> dims{c.base_dim};
  for (int64_t m : c.dim_mult) dims.push_back(c.base_dim * m);
  b.conv3d("encoder.conv_in", dims[0], c.in_channels, 3, 3);
  double scale = 1.0;
  for (size_t i = 0; i < n; ++i) {
    int64_t in_c = dims[i];
    const int64_t out_c = dims[i + 1];
    for (int64_t r = 0; r < c.num_res_blocks; ++r) {
      const std::string p = str_cat("encoder.down_blocks.", layers.size());
      b.residual(p, in_c, out_c);
      layers.push_back({EncoderLayer::Kind::residual, p});
      if (std::find(c.attn_scales.begin(), c.attn_scales.end(), scale) != c.attn_scales.end()) {
        const std::string pa = str_cat("encoder.down_blocks.", layers.size());
        b.attention(pa, out_c);
        layers.push_back({EncoderLayer::Kind::attention, pa});
      }
      in_c = out_c;
    }
    if (i + 1 < n) {
      const std::string p = str_cat("encoder.down_blocks.", layers.size());
      b.conv2d(p + ".resample.1", out_c, out_c, 3);
      if (c.temperal_downsample[i]) b.conv3d(p + ".time_conv", out_c, out_c, 3, 1);
      layers.push_back({c.temperal_downsample[i] ? EncoderLayer::Kind::downsample3d
                                                 : EncoderLayer::Kind::downsample2d,
                        p});
      scale /= 2.0;
    }
  }
  b.mid_block("encoder.mid_block", dims[n]);
  b.norm("encoder.norm_out", dims[n], false);
  b.conv3d("encoder.conv_out", 2 * c.z_dim, dims[n], 3, 3);
  b.conv3d("quant_conv", 2 * c.z_dim, 2 * c.z_dim, 1, 1);

  // WanDecoder3d: dims = decoder_base_dim * ([dim_mult[-1]] + reversed(dim_mult)); every block
  // after the first takes the half-width output of the previous upsampler.
  b.conv3d("post_quant_conv", c.z_dim, c.z_dim, 1, 1);
  std::vector<int64_t> ddims{c.decoder_base_dim * c.dim_mult.back()};
  for (size_t i = n; i-- > 0;) ddims.push_back(c.decoder_base_dim * c.dim_mult[i]);
  b.conv3d("decoder.conv_in", ddims[0], c.z_dim, 3, 3);
  b.mid_block("decoder.mid_block", ddims[0]);
  const size_t nt = c.temperal_downsample.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string p = str_cat("decoder.up_blocks.", i);
    const int64_t out_c = ddims[i + 1];
    int64_t in_c = i > 0 ? ddims[i] / 2 : ddims[i];
    for (int64_t r = 0; r <= c.num_res_blocks; ++r) {
      b.residual(str_cat(p, ".resnets.", r), in_c, out_c);
      in_c = out_c;
    }
    if (i + 1 < n) {
      b.conv2d(p + ".upsamplers.0.resample.1", out_c / 2, out_c, 3);
      if (c.temperal_downsample[nt - 1 - i]) {
        b.conv3d(p + ".upsamplers.0.time_conv", 2 * out_c, out_c, 3, 1);
      }
    }
  }
  b.norm("decoder.norm_out", ddims[n], false);
  b.conv3d("decoder.conv_out", c.out_channels, ddims[n], 3, 3);
  bw.finish();

  AutoencoderKLWan vae(std::move(c), dtype, std::move(map));
  vae.encoder_layers_ = std::move(layers);
  return vae;
}

int64_t AutoencoderKLWan::spatial_scale() const {
  return int64_t{1} << (config_.dim_mult.size() - 1);
}

int64_t AutoencoderKLWan::temporal_scale() const {
  int64_t s = 1;
  for (size_t i = 0; i + 1 < config_.dim_mult.size(); ++i) {
    if (config_.temperal_downsample[i]) s *= 2;
  }
  return s;
}

int64_t AutoencoderKLWan::video_frames(int64_t latent_frames) const {
  return latent_frames <= 0 ? 0 : 1 + (latent_frames - 1) * temporal_scale();
}

// ---- forward pieces ----

// WanRMS_norm: F.normalize(x, dim=1) (x / max(||x||_2, 1e-12) over channels, in f32 for 16-bit
// x and rounded back) * sqrt(C) * gamma; each product rounded as PyTorch rounds it.
Tensor AutoencoderKLWan::rms_norm(const Tensor& x, const std::string& p) const {
  const int64_t c = x.size(1);
  const Tensor gamma = weights_->at(p + ".gamma").reshape({c, 1, 1, 1});
  const Tensor xf = x.dtype() == DType::f32 ? x : x.to(DType::f32);
  const Tensor norm = ops::sqrt(ops::sum(ops::square(xf), {1}, /*keepdim=*/true));
  const Tensor denom = ops::maximum(norm, ops::full({1}, 1e-12, DType::f32, x.device()));
  Tensor h = ops::div(xf, denom);
  if (h.dtype() != x.dtype()) h = h.to(x.dtype());
  h = ops::affine(h, static_cast<float>(std::sqrt(static_cast<double>(c))), 0.0f);
  return ops::mul(h, gamma);
}

// A causal conv that carries its feature cache from chunk to chunk (layer::CausalConv3d).
Tensor AutoencoderKLWan::cached_conv(const Tensor& x, const std::string& p, Chunks& st) const {
  auto it = st.convs.find(p);
  if (it == st.convs.end()) {
    // time_conv of upsample3d is (3, 1, 1) with padding (1, 0, 0); every other cached conv is
    // 3x3x3 with padding 1.
    const Tensor& w = weights_->at(p + ".weight");
    const std::array<int64_t, 3> padding{w.size(2) / 2, w.size(3) / 2, w.size(4) / 2};
    it = st.convs
             .emplace(p,
                      layer::CausalConv3d(module_weights_of(weights_, p + "."), {1, 1, 1}, padding))
             .first;
  }
  return it->second(x);
}

// WanResidualBlock: shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))).
Tensor AutoencoderKLWan::residual_block(const Tensor& x, const std::string& p, Chunks& st) const {
  const auto sc = weights_->find(p + ".conv_shortcut.weight");
  const Tensor skip =
      sc == weights_->end()
          ? x
          : layer::causal_conv3d(x, sc->second, weights_->at(p + ".conv_shortcut.bias"), {1, 1, 1},
                                 {0, 0, 0});
  Tensor h = cached_conv(ops::silu(rms_norm(x, p + ".norm1")), p + ".conv1", st);
  h = cached_conv(ops::silu(rms_norm(h, p + ".norm2")), p + ".conv2", st);
  return ops::add(h, skip);
}

// WanAttentionBlock: single-head self-attention within each frame over its H * W pixels, the
// 1x1 to_qkv / proj convolutions as linears over channels-last tokens, plus the identity.
Tensor AutoencoderKLWan::attention_block(const Tensor& x, const std::string& p) const {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  const int64_t bt = b * t, hw = h * w;
  const Tensor tokens = rms_norm(x, p + ".norm").permute({0, 2, 3, 4, 1}).reshape({bt, hw, c});
  const Tensor qkv = ops::linear(tokens, weights_->at(p + ".to_qkv.weight").reshape({3 * c, c}),
                                 weights_->at(p + ".to_qkv.bias"));
  auto head = [&](int i) { return qkv.narrow(2, i * c, c).reshape({bt, hw, 1, c}); };
  const Tensor o = layer::attention_forward(head(0), head(1), head(2), Tensor(), "BSND");
  const Tensor proj =
      ops::linear(o.reshape({bt, hw, c}), weights_->at(p + ".proj.weight").reshape({c, c}),
                  weights_->at(p + ".proj.bias"));
  return ops::add(proj.reshape({b, t, h, w, c}).permute({0, 4, 1, 2, 3}), x);
}

Tensor AutoencoderKLWan::mid_block(const Tensor& x, const std::string& p, Chunks& st) const {
  Tensor h = residual_block(x, p + ".resnets.0", st);
  h = attention_block(h, p + ".attentions.0");
  return residual_block(h, p + ".resnets.1", st);
}

Tensor AutoencoderKLWan::head(const Tensor& x, const std::string& p, Chunks& st) const {
  return cached_conv(ops::silu(rms_norm(x, p + ".norm_out")), p + ".conv_out", st);
}

// WanResample upsample2d / upsample3d. upsample3d doubles the frames first: time_conv maps C to
// 2C channels and the halves become frames 2t and 2t + 1; the first chunk (the first latent
// frame) skips it and stays one frame. Then every frame: nearest x2 (nearest-exact is the same
// at scale 2) and a 3x3 conv to C / 2 channels, run as a (1, 3, 3) conv3d.
Tensor AutoencoderKLWan::upsample(const Tensor& x, const std::string& p, bool temporal,
                                  Chunks& st) const {
  Tensor h = x;
  if (temporal) {
    if (!st.started.insert(p).second) {
      const Tensor y = cached_conv(h, p + ".time_conv", st);  // (B, 2C, T, H, W)
      const int64_t b = y.size(0), c = y.size(1) / 2, t = y.size(2);
      h = y.view({b, 2, c, t, y.size(3), y.size(4)})
              .permute({0, 2, 3, 1, 4, 5})
              .reshape({b, c, 2 * t, y.size(3), y.size(4)});
    }
  }
  const int64_t b = h.size(0), c = h.size(1), t = h.size(2), hh = h.size(3), ww = h.size(4);
  const Tensor up = ops::interpolate(h.reshape({b, c * t, hh, ww}), 2 * hh, 2 * ww,
                                     InterpolateMode::nearest, false, 2.0, 2.0)
                        .view({b, c, t, 2 * hh, 2 * ww});
  const Tensor& wt = weights_->at(p + ".resample.1.weight");
  return ops::conv3d(up, wt.reshape({wt.size(0), wt.size(1), 1, 3, 3}),
                     weights_->at(p + ".resample.1.bias"), {{1}, {0, 1, 1}, {1}, 1});
}

// WanResample downsample2d / downsample3d: every frame padded by one row and column at the
// bottom / right and convolved 3x3 with stride 2; downsample3d then halves the frames with
// time_conv (kernel 3, stride 2, no padding) over the previous chunk's last frame and this
// chunk (the first chunk passes through and only leaves its last frame behind).
Tensor AutoencoderKLWan::downsample(const Tensor& x, const std::string& p, bool temporal,
                                    Chunks& st) const {
  const int64_t pads[] = {0, 1, 0, 1};
  const Tensor& wt = weights_->at(p + ".resample.1.weight");
  Tensor h = ops::conv3d(ops::pad(x, pads), wt.reshape({wt.size(0), wt.size(1), 1, 3, 3}),
                         weights_->at(p + ".resample.1.bias"), {{1, 2, 2}, {0}, {1}, 1});
  if (!temporal) return h;
  const int64_t t = h.size(2);
  Tensor last = h.narrow(2, t - 1, 1).clone();
  auto it = st.tails.find(p);
  if (it != st.tails.end()) {
    const Tensor parts[] = {it->second, h};
    h = layer::causal_conv3d(ops::cat(parts, 2), weights_->at(p + ".time_conv.weight"),
                             weights_->at(p + ".time_conv.bias"), {2, 1, 1}, {0, 0, 0});
  }
  st.tails[p] = std::move(last);
  return h;
}

Tensor AutoencoderKLWan::decode_chunk(const Tensor& x, Chunks& st) const {
  const size_t n = config_.dim_mult.size(), nt = config_.temperal_downsample.size();
  Tensor h = cached_conv(x, "decoder.conv_in", st);
  h = mid_block(h, "decoder.mid_block", st);
  for (size_t i = 0; i < n; ++i) {
    const std::string p = str_cat("decoder.up_blocks.", i);
    for (int64_t r = 0; r <= config_.num_res_blocks; ++r) {
      h = residual_block(h, str_cat(p, ".resnets.", r), st);
    }
    if (i + 1 < n) {
      h = upsample(h, p + ".upsamplers.0", config_.temperal_downsample[nt - 1 - i], st);
    }
  }
  return head(h, "decoder", st);
}

Tensor AutoencoderKLWan::encode_chunk(const Tensor& x, Chunks& st) const {
  Tensor h = cached_conv(x, "encoder.conv_in", st);
  for (const EncoderLayer& l : encoder_layers_) {
    switch (l.kind) {
      case EncoderLayer::Kind::residual:
        h = residual_block(h, l.prefix, st);
        break;
      case EncoderLayer::Kind::attention:
        h = attention_block(h, l.prefix);
        break;
      case EncoderLayer::Kind::downsample2d:
        h = downsample(h, l.prefix, false, st);
        break;
      case EncoderLayer::Kind::downsample3d:
        h = downsample(h, l.prefix, true, st);
        break;
    }
  }
  h = mid_block(h, "encoder.mid_block", st);
  return head(h, "encoder", st);
}

// ---- public API ----

AutoencoderKLWan AutoencoderKLWan::to(Device device) const {
  AutoencoderKLWan m = *this;
  m.weights_ = weights_on(weights_, device);
  m.device_ = device;
  return m;
}

Tensor AutoencoderKLWan::decode(const Tensor& z) const {
  check_video(z, config_.z_dim, "decode", "z_dim");
  const Tensor zc = z.to(dtype_).to(device_);
  const Tensor x = layer::causal_conv3d(zc, weights_->at("post_quant_conv.weight"),
                                        weights_->at("post_quant_conv.bias"), {1, 1, 1}, {0, 0, 0});
  const int64_t frames = x.size(2), total = video_frames(frames);
  Chunks st;
  Tensor out;
  int64_t at = 0;
  for (int64_t i = 0; i < frames; ++i) {
    const Tensor y = ops::clamp(decode_chunk(x.narrow(2, i, 1).contiguous(), st), -1.0f, 1.0f);
    if (!out.defined()) {
      out =
          Tensor::empty({y.size(0), y.size(1), total, y.size(3), y.size(4)}, y.dtype(), y.device());
    }
    MINDIESD_CHECK(at + y.size(2) <= total, Internal, "AutoencoderKLWan.decode: chunk ", i,
                   " gave ", y.size(2), " frames past the expected ", total);
    out.narrow(2, at, y.size(2)).copy_(y);
    at += y.size(2);
  }
  MINDIESD_CHECK(at == total, Internal, "AutoencoderKLWan.decode: decoded ", at,
                 " frames, expected ", total);
  return out.to(z.device());
}

std::pair<Tensor, Tensor> AutoencoderKLWan::encode(const Tensor& video) const {
  check_video(video, config_.in_channels, "encode", "in_channels");
  const int64_t f = video.size(2), s = spatial_scale();
  MINDIESD_CHECK((f - 1) % kEncodeChunkFrames == 0, InvalidArgument, "AutoencoderKLWan.encode: ", f,
                 " frames; the encoder takes 1 + 4k frames");
  MINDIESD_CHECK(video.size(3) % s == 0 && video.size(4) % s == 0, InvalidArgument,
                 "AutoencoderKLWan.encode: height and width must be multiples of ", s, ", got ",
                 video.size(3), "x", video.size(4));
  const Tensor x = video.to(dtype_).to(device_);
  Chunks st;
  std::vector<Tensor> outs;
  for (int64_t start = 0; start < f;) {
    const int64_t len = start == 0 ? 1 : kEncodeChunkFrames;
    outs.push_back(encode_chunk(x.narrow(2, start, len).contiguous(), st));
    start += len;
  }
  const Tensor moments =
      layer::causal_conv3d(ops::cat(outs, 2), weights_->at("quant_conv.weight"),
                           weights_->at("quant_conv.bias"), {1, 1, 1}, {0, 0, 0});
  const std::vector<Tensor> parts = ops::chunk(moments, 2, 1);
  const Device back = video.device();
  return {parts[0].contiguous().to(back), ops::clamp(parts[1], -30.0f, 20.0f).to(back)};
}

// WanPipeline / WanImageToVideoPipeline: `1.0 / torch.tensor(latents_std)...to(dtype)` takes the
// reciprocal in z's dtype, so it is rounded twice in bf16 as there.
Tensor AutoencoderKLWan::denormalize_latents(const Tensor& z) const {
  check_video(z, config_.z_dim, "denormalize_latents", "z_dim");
  const Tensor mean = channel_tensor(config_.latents_mean, z.dtype(), z.device());
  const Tensor std = channel_tensor(config_.latents_std, z.dtype(), z.device());
  const Tensor inv = ops::div(ops::full({1}, 1.0, z.dtype(), z.device()), std);
  return ops::add(ops::div(z, inv), mean);
}

Tensor AutoencoderKLWan::normalize_latents(const Tensor& z) const {
  check_video(z, config_.z_dim, "normalize_latents", "z_dim");
  const Tensor mean = channel_tensor(config_.latents_mean, z.dtype(), z.device());
  const Tensor std = channel_tensor(config_.latents_std, z.dtype(), z.device());
  const Tensor inv = ops::div(ops::full({1}, 1.0, z.dtype(), z.device()), std);
  return ops::mul(ops::sub(z, mean), inv);
}

}  // namespace mindiesd::models
