#include "mindiesd/layer/embedding.h"

#include <cmath>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/activation.h"

namespace mindiesd::layer {

// ---- sinusoidal timestep embedding ----

Tensor timestep_embedding(const Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                          double downscale_freq_shift, double scale, double max_period) {
  MINDIESD_CHECK(timesteps.defined() && timesteps.dim() == 1, InvalidArgument,
                 "timestep_embedding: timesteps must be 1-d (N), got ",
                 timesteps.defined() ? timesteps.shape().str() : std::string("undefined"));
  MINDIESD_CHECK(dim >= 2, InvalidArgument, "timestep_embedding: dim must be at least 2, got ",
                 dim);
  MINDIESD_CHECK(max_period > 0, InvalidArgument,
                 "timestep_embedding: max_period must be positive, got ", max_period);
  const int64_t half = dim / 2;
  MINDIESD_CHECK(static_cast<double>(half) != downscale_freq_shift, InvalidArgument,
                 "timestep_embedding: downscale_freq_shift ", downscale_freq_shift,
                 " equals dim / 2 (division by zero in the frequencies)");
  // PyTorch evaluates `-math.log(max_period) * arange(half, f32) / (half - shift)` with the
  // Python scalars cast to f32 and every op rounded to f32; f32 products and quotients are
  // formed exactly in double and rounded once, which is the same rounding.
  const float neg_log = static_cast<float>(-std::log(max_period));
  const float denom = static_cast<float>(static_cast<double>(half) - downscale_freq_shift);
  std::vector<float> freqs(half);
  for (int64_t k = 0; k < half; ++k) {
    const float e = static_cast<float>(static_cast<double>(neg_log) * static_cast<double>(k));
    const float q = static_cast<float>(static_cast<double>(e) / static_cast<double>(denom));
    freqs[k] = static_cast<float>(std::exp(static_cast<double>(q)));
  }
  const float scale_f = static_cast<float>(scale);
  const std::vector<float> t = timesteps.to_vector();  // timesteps.float()
  const int64_t n = static_cast<int64_t>(t.size());
  std::vector<float> out(n * dim, 0.0f);
  const int64_t sin_at = flip_sin_to_cos ? half : 0, cos_at = flip_sin_to_cos ? 0 : half;
  for (int64_t i = 0; i < n; ++i) {
    float* row = out.data() + i * dim;
    for (int64_t k = 0; k < half; ++k) {
      float a = static_cast<float>(static_cast<double>(t[i]) * static_cast<double>(freqs[k]));
      if (scale != 1.0) a = static_cast<float>(static_cast<double>(scale_f) * a);
      row[sin_at + k] = static_cast<float>(std::sin(static_cast<double>(a)));
      row[cos_at + k] = static_cast<float>(std::cos(static_cast<double>(a)));
    }
  }
  Tensor e = Tensor::from_vector(out, {n, dim});
  return timesteps.device().is_cpu() ? e : e.to(timesteps.device());
}

// ---- patchify / unpatchify ----

namespace {

void check_patch(int64_t size, int64_t patch, const char* what, const char* dim_name,
                 const Shape& shape) {
  MINDIESD_CHECK(patch >= 1, InvalidArgument, what, ": patch size must be >= 1, got ", patch);
  MINDIESD_CHECK(size % patch == 0, InvalidArgument, what, ": ", dim_name, " ", size, " of ",
                 shape.str(), " is not a multiple of the patch size ", patch);
}

}  // namespace

Tensor patchify_2d(const Tensor& x, int64_t p, PatchOrder order) {
  MINDIESD_CHECK(x.dim() == 4, InvalidArgument, "patchify_2d: latents must be (B, C, H, W), got ",
                 x.shape().str());
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  check_patch(h, p, "patchify_2d", "height", x.shape());
  check_patch(w, p, "patchify_2d", "width", x.shape());
  // Splitting dims is always a view; the permute is free; the final reshape is the one copy.
  const Tensor v = x.reshape({b, c, h / p, p, w / p, p});
  const Tensor t = order == PatchOrder::channels_first ? v.permute({0, 2, 4, 1, 3, 5})
                                                       : v.permute({0, 2, 4, 3, 5, 1});
  return t.reshape({b, (h / p) * (w / p), c * p * p});
}

Tensor unpatchify_2d(const Tensor& tokens, int64_t height, int64_t width, int64_t p,
                     PatchOrder order) {
  MINDIESD_CHECK(tokens.dim() == 3, InvalidArgument,
                 "unpatchify_2d: tokens must be (B, N, C * p * p), got ", tokens.shape().str());
  check_patch(height, p, "unpatchify_2d", "height", tokens.shape());
  check_patch(width, p, "unpatchify_2d", "width", tokens.shape());
  const int64_t b = tokens.size(0), gh = height / p, gw = width / p;
  MINDIESD_CHECK(tokens.size(1) == gh * gw && tokens.size(2) % (p * p) == 0, InvalidArgument,
                 "unpatchify_2d: tokens ", tokens.shape().str(), " do not hold a ", height, " x ",
                 width, " latent in ", p, " x ", p, " patches (expected (B, ", gh * gw, ", C * ",
                 p * p, "))");
  const int64_t c = tokens.size(2) / (p * p);
  const Tensor t = order == PatchOrder::channels_first
                       ? tokens.reshape({b, gh, gw, c, p, p}).permute({0, 3, 1, 4, 2, 5})
                       : tokens.reshape({b, gh, gw, p, p, c}).permute({0, 5, 1, 3, 2, 4});
  return t.reshape({b, c, height, width});
}

Tensor patchify_3d(const Tensor& x, std::array<int64_t, 3> patch, PatchOrder order) {
  MINDIESD_CHECK(x.dim() == 5, InvalidArgument,
                 "patchify_3d: latents must be (B, C, F, H, W), got ", x.shape().str());
  const int64_t b = x.size(0), c = x.size(1), f = x.size(2), h = x.size(3), w = x.size(4);
  const auto [pt, ph, pw] = patch;
  check_patch(f, pt, "patchify_3d", "frames", x.shape());
  check_patch(h, ph, "patchify_3d", "height", x.shape());
  check_patch(w, pw, "patchify_3d", "width", x.shape());
  const Tensor v = x.reshape({b, c, f / pt, pt, h / ph, ph, w / pw, pw});
  const Tensor t = order == PatchOrder::channels_first ? v.permute({0, 2, 4, 6, 1, 3, 5, 7})
                                                       : v.permute({0, 2, 4, 6, 3, 5, 7, 1});
  return t.reshape({b, (f / pt) * (h / ph) * (w / pw), c * pt * ph * pw});
}

Tensor unpatchify_3d(const Tensor& tokens, int64_t frames, int64_t height, int64_t width,
                     std::array<int64_t, 3> patch, PatchOrder order) {
  MINDIESD_CHECK(tokens.dim() == 3, InvalidArgument,
                 "unpatchify_3d: tokens must be (B, N, C * pt * ph * pw), got ",
                 tokens.shape().str());
  const auto [pt, ph, pw] = patch;
  check_patch(frames, pt, "unpatchify_3d", "frames", tokens.shape());
  check_patch(height, ph, "unpatchify_3d", "height", tokens.shape());
  check_patch(width, pw, "unpatchify_3d", "width", tokens.shape());
  const int64_t b = tokens.size(0), gf = frames / pt, gh = height / ph, gw = width / pw;
  const int64_t vol = pt * ph * pw;
  MINDIESD_CHECK(tokens.size(1) == gf * gh * gw && tokens.size(2) % vol == 0, InvalidArgument,
                 "unpatchify_3d: tokens ", tokens.shape().str(), " do not hold a ", frames, " x ",
                 height, " x ", width, " latent in ", pt, " x ", ph, " x ", pw,
                 " patches (expected (B, ", gf * gh * gw, ", C * ", vol, "))");
  const int64_t c = tokens.size(2) / vol;
  // Wan: reshape(B, ppf, pph, ppw, pt, ph, pw, C).permute(0, 7, 1, 4, 2, 5, 3, 6).
  const Tensor t =
      order == PatchOrder::channels_first
          ? tokens.reshape({b, gf, gh, gw, c, pt, ph, pw}).permute({0, 4, 1, 5, 2, 6, 3, 7})
          : tokens.reshape({b, gf, gh, gw, pt, ph, pw, c}).permute({0, 7, 1, 4, 2, 5, 3, 6});
  return t.reshape({b, c, frames, height, width});
}

Tensor patch_embed(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  MINDIESD_CHECK((x.dim() == 4 || x.dim() == 5) && weight.dim() == x.dim(), InvalidArgument,
                 "patch_embed: x ", x.shape().str(), " and weight ", weight.shape().str(),
                 " must both be 4-d (2-d patches) or 5-d (3-d patches)");
  MINDIESD_CHECK(weight.size(1) == x.size(1), InvalidArgument, "patch_embed: weight ",
                 weight.shape().str(), " expects ", weight.size(1), " channels, x ",
                 x.shape().str(), " has ", x.size(1));
  Tensor tokens;
  if (x.dim() == 4) {
    MINDIESD_CHECK(weight.size(2) == weight.size(3), Unsupported,
                   "patch_embed: non-square 2-d patch ", weight.shape().str());
    tokens = patchify_2d(x, weight.size(2), PatchOrder::channels_first);
  } else {
    tokens = patchify_3d(x, {weight.size(2), weight.size(3), weight.size(4)},
                         PatchOrder::channels_first);
  }
  // The conv weight (O, C, p...) flattened row-major is exactly the (C, p...) feature order.
  const Tensor w2 = weight.reshape({weight.size(0), -1});
  return ops::linear(tokens.dtype() == w2.dtype() ? tokens : tokens.to(w2.dtype()), w2, bias);
}

// ---- weights ----

ModuleWeights ModuleWeights::child(std::string_view name) const {
  return ModuleWeights{lookup, prefix + std::string(name) + "."};
}

Tensor ModuleWeights::get(std::string_view name) const {
  Tensor t = get_optional(name);
  MINDIESD_CHECK(t.defined(), NotFound, "weight '", prefix, name, "' not found");
  return t;
}

Tensor ModuleWeights::get_optional(std::string_view name) const {
  MINDIESD_CHECK(lookup != nullptr, InvalidArgument, "ModuleWeights '", prefix,
                 "' has no lookup function");
  return lookup(prefix + std::string(name));
}

ModuleWeights module_weights(const io::WeightStore& store, std::string prefix) {
  // The store is cheap to copy (it shares its mapped files), so the lookup owns one.
  return ModuleWeights{
      [store](const std::string& name) { return store.has(name) ? store.get(name) : Tensor(); },
      std::move(prefix)};
}

ModuleWeights module_weights(WeightLookup lookup, std::string prefix) {
  return ModuleWeights{std::move(lookup), std::move(prefix)};
}

// ---- embedders ----

namespace {

Tensor module_linear(const Tensor& x, const ModuleWeights& w) {
  const Tensor weight = w.get("weight");
  Tensor bias = w.get_optional("bias");
  if (bias.defined() && bias.dtype() != weight.dtype()) bias = bias.to(weight.dtype());
  return ops::linear(x.dtype() == weight.dtype() ? x : x.to(weight.dtype()), weight, bias);
}

// Timesteps(num_channels=256, flip_sin_to_cos=True, downscale_freq_shift=0), as the combined
// embedders construct it.
void check_batch(const Tensor& a, const char* an, const Tensor& b, const char* bn,
                 const char* what) {
  MINDIESD_CHECK(a.defined() && b.defined(), InvalidArgument, what, ": undefined input");
  MINDIESD_CHECK(a.dim() >= 1 && b.dim() >= 1 && a.size(0) == b.size(0), InvalidArgument, what,
                 ": ", an, " ", a.shape().str(), " and ", bn, " ", b.shape().str(),
                 " disagree on the batch size");
}

}  // namespace

Tensor timestep_proj_256(const Tensor& t) { return timestep_embedding(t, 256, true, 0.0, 1.0); }

Tensor timestep_embedder(const Tensor& sample, const ModuleWeights& w, std::string_view act_fn) {
  const ActivationFn act = get_activation_layer(act_fn);
  return module_linear(act(module_linear(sample, w.child("linear_1"))), w.child("linear_2"));
}

Tensor text_projection(const Tensor& caption, const ModuleWeights& w, std::string_view act_fn) {
  MINDIESD_CHECK(act_fn == "gelu_tanh" || act_fn == "silu" || act_fn == "silu_fp32",
                 InvalidArgument, "text_projection: act_fn '", act_fn,
                 "' is not one of gelu_tanh, silu, silu_fp32 (PixArtAlphaTextProjection)");
  const ActivationFn act = get_activation_layer(act_fn);
  return module_linear(act(module_linear(caption, w.child("linear_1"))), w.child("linear_2"));
}

Tensor combined_timestep_text_proj(const Tensor& timestep, const Tensor& pooled_projection,
                                   const ModuleWeights& w) {
  check_batch(timestep, "timestep", pooled_projection, "pooled_projection",
              "combined_timestep_text_proj");
  // The projection is formed where the timestep is (normally the host) and moved to the
  // weights' device.
  const Tensor proj =
      timestep_proj_256(timestep).to(pooled_projection.dtype()).to(pooled_projection.device());
  return combined_timestep_text_proj_from(proj, pooled_projection, w);
}

Tensor combined_timestep_text_proj_from(const Tensor& timestep_proj,
                                        const Tensor& pooled_projection, const ModuleWeights& w) {
  check_batch(timestep_proj, "timestep_proj", pooled_projection, "pooled_projection",
              "combined_timestep_text_proj");
  const Tensor t_emb = timestep_embedder(timestep_proj, w.child("timestep_embedder"));
  const Tensor p_emb = text_projection(pooled_projection, w.child("text_embedder"), "silu");
  return ops::add(t_emb, p_emb);
}

Tensor combined_timestep_guidance_text_proj(const Tensor& timestep, const Tensor& guidance,
                                            const Tensor& pooled_projection,
                                            const ModuleWeights& w) {
  const char* what = "combined_timestep_guidance_text_proj";
  check_batch(timestep, "timestep", pooled_projection, "pooled_projection", what);
  check_batch(guidance, "guidance", pooled_projection, "pooled_projection", what);
  const DType t = pooled_projection.dtype();
  const Device dev = pooled_projection.device();
  return combined_timestep_guidance_text_proj_from(timestep_proj_256(timestep).to(t).to(dev),
                                                   timestep_proj_256(guidance).to(t).to(dev),
                                                   pooled_projection, w);
}

Tensor combined_timestep_guidance_text_proj_from(const Tensor& timestep_proj,
                                                 const Tensor& guidance_proj,
                                                 const Tensor& pooled_projection,
                                                 const ModuleWeights& w) {
  const char* what = "combined_timestep_guidance_text_proj";
  check_batch(timestep_proj, "timestep_proj", pooled_projection, "pooled_projection", what);
  check_batch(guidance_proj, "guidance_proj", pooled_projection, "pooled_projection", what);
  const Tensor t_emb = timestep_embedder(timestep_proj, w.child("timestep_embedder"));
  const Tensor g_emb = timestep_embedder(guidance_proj, w.child("guidance_embedder"));
  // (t_emb + g_emb) + text: the association diffusers uses, for identical rounding.
  const Tensor p_emb = text_projection(pooled_projection, w.child("text_embedder"), "silu");
  return ops::add(ops::add(t_emb, g_emb), p_emb);
}

}  // namespace mindiesd::layer
