#include "mindiesd/pipelines/flux_pipeline.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>

#include "mindiesd/compilation/graphed_forward.h"
#include "mindiesd/core/allocator.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/models/encoders/clip_text_model.h"
#include "mindiesd/models/encoders/t5_encoder_model.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "mindiesd/models/vae/autoencoder_kl.h"
#include "mindiesd/pipelines/pipeline_util.h"
#include "mindiesd/schedulers/flow_match_euler.h"
#include "mindiesd/text/clip_tokenizer.h"
#include "mindiesd/text/t5_tokenizer.h"
#include "mindiesd/text/tokens.h"

namespace mindiesd::pipelines {

namespace {

constexpr int64_t kClipMaxLength = 77;  // FluxPipeline.tokenizer_max_length
constexpr int64_t kMaxSide = 16384;     // beyond any model's training; catches typos early

// Whether an image of this size is decoded in tiles ("automatic": above 1024x1024).
bool vae_tiled(FluxPipelineOptions::VaeTiling mode, int64_t height, int64_t width) {
  return mode == FluxPipelineOptions::VaeTiling::on ||
         (mode == FluxPipelineOptions::VaeTiling::automatic && height * width > 1024 * 1024);
}

}  // namespace

Tensor pack_flux_latents(const Tensor& latents) {
  MINDIESD_CHECK(
      latents.dim() == 4 && latents.size(2) % 2 == 0 && latents.size(3) % 2 == 0, InvalidArgument,
      "pack_flux_latents: expected (B, C, H, W) with even H and W, got ", latents.shape().str());
  const int64_t b = latents.size(0), c = latents.size(1), h = latents.size(2) / 2,
                w = latents.size(3) / 2;
  return latents.contiguous()
      .view({b, c, h, 2, w, 2})
      .permute({0, 2, 4, 1, 3, 5})
      .contiguous()
      .view({b, h * w, c * 4});
}

Tensor unpack_flux_latents(const Tensor& packed, int64_t latent_height, int64_t latent_width) {
  const int64_t h = latent_height / 2, w = latent_width / 2;
  MINDIESD_CHECK(packed.dim() == 3 && latent_height % 2 == 0 && latent_width % 2 == 0 &&
                     packed.size(1) == h * w && packed.size(2) % 4 == 0,
                 InvalidArgument, "unpack_flux_latents: ", packed.shape().str(),
                 " is not a packed ", latent_height, "x", latent_width, " latent");
  const int64_t b = packed.size(0), c = packed.size(2) / 4;
  return packed.contiguous()
      .view({b, h, w, c, 2, 2})
      .permute({0, 3, 1, 4, 2, 5})
      .contiguous()
      .view({b, c, h * 2, w * 2});
}

Tensor to_u8_hwc(const Tensor& image01) {
  MINDIESD_CHECK(image01.dim() == 3 && image01.size(0) == 3, InvalidArgument,
                 "to_u8_hwc: expected (3, H, W), got ", image01.shape().str());
  const Tensor hwc = image01.permute({1, 2, 0}).to(DType::f32).contiguous();
  const std::vector<float> v = hwc.to_vector();
  Tensor out = Tensor::empty(hwc.shape(), DType::u8);
  auto* p = out.data<uint8_t>();
  for (size_t i = 0; i < v.size(); ++i) {
    // numpy's round() is half-to-even; nearbyint under the default rounding mode is the same.
    p[i] = static_cast<uint8_t>(std::nearbyint(std::clamp(v[i], 0.0f, 1.0f) * 255.0f));
  }
  return out;
}

struct FluxPipeline::Impl {
  FluxPipelineOptions options;
  io::DiffusersFolder folder;
  io::FluxTransformer2DModelConfig transformer_config;
  io::AutoencoderKLConfig vae_config;
  schedulers::FlowMatchEulerDiscreteScheduler scheduler;
  text::ClipTokenizer clip_tokenizer;
  text::T5Tokenizer t5_tokenizer;
  std::optional<models::FluxTransformer2DModel> transformer;
  std::optional<models::AutoencoderKL> vae;
  std::optional<models::CLIPTextModel> clip;
  std::optional<models::T5EncoderModel> t5;
  double load_s = 0;
  std::optional<quant::QuantReport> quant_report;
  std::shared_ptr<const quant::Fp8Attention> attention_policy;  // with options.attention_quant

  const io::Component& component(const char* name, const char* cls) const {
    const io::Component& c = folder.component(name);
    MINDIESD_CHECK(c.enabled, NotFound, folder.path().string(), ": the FLUX pipeline needs '", name,
                   "' (", cls, "), which model_index.json marks as absent");
    MINDIESD_CHECK(c.class_name == cls, InvalidArgument, folder.path().string(), ": component '",
                   name, "' is ", c.class_name, ", expected ", cls);
    return c;
  }
};

FluxPipeline::FluxPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FluxPipeline::~FluxPipeline() = default;
FluxPipeline::FluxPipeline(FluxPipeline&&) noexcept = default;
FluxPipeline& FluxPipeline::operator=(FluxPipeline&&) noexcept = default;

FluxPipeline FluxPipeline::load(const std::filesystem::path& dir,
                                const FluxPipelineOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  io::DiffusersFolder folder = io::DiffusersFolder::open(dir);
  MINDIESD_CHECK(folder.is_pipeline(), InvalidArgument, dir.string(),
                 " is a single component folder; a FluxPipeline folder (model_index.json) is "
                 "needed");
  // Every component is checked before anything is mapped, so a folder missing its VAE fails
  // before the 24 GB transformer is touched.
  const char* kNeeded[][2] = {{"transformer", "FluxTransformer2DModel"},
                              {"vae", "AutoencoderKL"},
                              {"text_encoder", "CLIPTextModel"},
                              {"text_encoder_2", "T5EncoderModel"},
                              {"scheduler", "FlowMatchEulerDiscreteScheduler"}};
  std::string missing;
  for (const auto& [name, cls] : kNeeded) {
    if (!folder.has(name) || !folder.component(name).enabled) missing += str_cat(" ", name);
  }
  for (const char* name : {"tokenizer", "tokenizer_2"}) {
    if (!folder.has(name) || !folder.component(name).enabled) missing += str_cat(" ", name);
  }
  MINDIESD_CHECK(missing.empty(), NotFound, dir.string(),
                 ": the FLUX pipeline folder lacks components:", missing);

  // Whatever may throw runs before the aggregate initialisation: when an initialiser threw
  // inside it, GCC 12's cleanup of the members built so far freed one of them twice.
  auto scheduler = schedulers::FlowMatchEulerDiscreteScheduler::load(folder.component("scheduler"));
  auto clip_tokenizer = text::ClipTokenizer::from_folder(folder.component("tokenizer").dir);
  auto t5_tokenizer = text::T5Tokenizer::from_folder(folder.component("tokenizer_2").dir);
  auto impl = std::unique_ptr<Impl>(new Impl{options,
                                             folder,
                                             {},
                                             {},
                                             std::move(scheduler),
                                             std::move(clip_tokenizer),
                                             std::move(t5_tokenizer),
                                             std::nullopt,
                                             std::nullopt,
                                             std::nullopt,
                                             std::nullopt,
                                             0.0,
                                             std::nullopt,
                                             nullptr});
  for (const auto& [name, cls] : kNeeded) impl->component(name, cls);
  {
    io::ConfigReader r = folder.component("transformer").config_reader();
    impl->transformer_config = io::FluxTransformer2DModelConfig::read(r);
    io::ConfigReader v = folder.component("vae").config_reader();
    impl->vae_config = io::AutoencoderKLConfig::read(v);
  }
  const int64_t latent_c = impl->vae_config.latent_channels;
  MINDIESD_CHECK(impl->transformer_config.in_channels == latent_c * 4, InvalidArgument,
                 dir.string(), ": transformer in_channels ", impl->transformer_config.in_channels,
                 " is not 4 x the VAE's latent_channels (", latent_c, ")");
  impl->transformer.emplace(
      load_transformer<models::FluxTransformer2DModel, io::FluxTransformer2DModelConfig>(
          folder.component("transformer"), options.dtype, options.device, options.quant,
          &impl->quant_report));
  if (options.attention_quant)
    impl->attention_policy = std::make_shared<const quant::Fp8Attention>(*options.attention_quant);
  impl->vae.emplace(
      models::AutoencoderKL::load(folder.component("vae"), options.dtype).to(options.device));
  impl->load_s = seconds_since(t0);
  return FluxPipeline(std::move(impl));
}

const models::FluxTransformer2DModel& FluxPipeline::transformer() const {
  return *impl_->transformer;
}
const std::optional<quant::QuantReport>& FluxPipeline::quant_report() const {
  return impl_->quant_report;
}

bool FluxPipeline::text_encoders_resident() const {
  return impl_->clip.has_value() || impl_->t5.has_value();
}

int64_t FluxPipeline::vae_scale_factor() const {
  return int64_t{1} << (impl_->vae_config.block_out_channels.size() - 1);
}

int64_t FluxPipeline::image_seq_len(int64_t height, int64_t width) const {
  const int64_t m = vae_scale_factor() * 2;
  return (height / m) * (width / m);
}

int64_t FluxPipeline::estimate_activation_bytes(const FluxRequest& r) const {
  const auto& tc = impl_->transformer_config;
  const int64_t e = dtype_bytes(impl_->options.dtype, 1);
  const int64_t batch = static_cast<int64_t>(r.prompts.size()) * r.num_images_per_prompt;
  const int64_t tokens = image_seq_len(r.height, r.width) + r.max_sequence_length;
  const int64_t hidden = tc.num_attention_heads * tc.attention_head_dim;
  // A block holds its input, q/k/v, the attention output, the 4x MLP and its activation, plus
  // the attention kernel's f32 K/V copy: about 20 hidden-wide rows per token.
  const int64_t transformer = batch * tokens * hidden * (20 * e + 8);
  // The VAE decodes one image at a time; its widest stage is block_out_channels[0] channels at
  // full resolution, with about five such tensors alive in a ResNet block (f32 GroupNorm).
  int64_t side_h = r.height, side_w = r.width;
  if (vae_tiled(impl_->options.vae_tiling, r.height, r.width)) {
    side_h = std::min<int64_t>(side_h, impl_->vae_config.sample_size);
    side_w = std::min<int64_t>(side_w, impl_->vae_config.sample_size);
  }
  const int64_t vae = impl_->vae_config.block_out_channels.front() * side_h * side_w * 5 * 4;
  return std::max(transformer, vae) + batch * 3 * r.height * r.width * 4;
}

void FluxPipeline::validate(const FluxRequest& r) const {
  check_request_basics(r.prompts, r.negative_prompts, r.num_inference_steps, r.guidance_scale);
  MINDIESD_CHECK(r.prompts_2.empty() || r.prompts_2.size() == r.prompts.size(), InvalidArgument,
                 r.prompts_2.size(), " T5 prompts (prompt_2) for ", r.prompts.size(), " prompts");
  check_prompts(r.prompts_2, "prompt_2", false);
  MINDIESD_CHECK(std::isfinite(r.true_cfg_scale) && r.true_cfg_scale >= 1.0, InvalidArgument,
                 "true_cfg_scale must be >= 1, got ", r.true_cfg_scale);
  MINDIESD_CHECK(r.true_cfg_scale == 1.0 || !r.negative_prompts.empty(), InvalidArgument,
                 "true_cfg_scale ", r.true_cfg_scale, " needs a negative prompt");
  MINDIESD_CHECK(r.num_images_per_prompt >= 1 && r.num_images_per_prompt <= 64, InvalidArgument,
                 "num_images_per_prompt must be in [1, 64], got ", r.num_images_per_prompt);
  MINDIESD_CHECK(r.prompts.size() * r.num_images_per_prompt <= 256, InvalidArgument,
                 r.prompts.size() * r.num_images_per_prompt, " images in one request (limit 256)");
  MINDIESD_CHECK(r.max_sequence_length >= 2 && r.max_sequence_length <= 512, InvalidArgument,
                 "max_sequence_length must be in [2, 512], got ", r.max_sequence_length);
  const int64_t m = vae_scale_factor() * 2;
  MINDIESD_CHECK(r.height > 0 && r.width > 0 && r.height <= kMaxSide && r.width <= kMaxSide,
                 InvalidArgument, "image size ", r.width, "x", r.height, " is out of range (1 to ",
                 kMaxSide, " per side)");
  MINDIESD_CHECK(r.height % m == 0 && r.width % m == 0, InvalidArgument, "image size ", r.width,
                 "x", r.height, " is not a multiple of ", m,
                 " (the VAE's scale factor times the 2x2 latent packing)");
  if (r.sigmas) {
    MINDIESD_CHECK(static_cast<int64_t>(r.sigmas->size()) == r.num_inference_steps, InvalidArgument,
                   r.sigmas->size(), " sigmas for ", r.num_inference_steps, " steps");
  }
  const int64_t batch = static_cast<int64_t>(r.prompts.size()) * r.num_images_per_prompt;
  if (r.latents.defined()) {
    const Shape want{batch, image_seq_len(r.height, r.width),
                     impl_->transformer_config.in_channels};
    MINDIESD_CHECK(r.latents.shape() == want, InvalidArgument, "latents ", r.latents.shape().str(),
                   " do not match the request, expected ", want.str());
  }
  const auto& tc = impl_->transformer_config;
  check_cache_request(r.cache, tc.num_layers + tc.num_single_layers, r.num_inference_steps,
                      impl_->options.cuda_graphs);
  check_sparse_request(r.sparse_attention, impl_->options.cuda_graphs);
  const int64_t need = estimate_activation_bytes(r);
  const int64_t budget = impl_->options.memory_budget_bytes > 0 ? impl_->options.memory_budget_bytes
                                                                : available_memory_bytes();
  MINDIESD_CHECK(budget <= 0 || need <= budget, OutOfMemory, "a ", r.width, "x", r.height,
                 " request for ", batch, " image(s) needs about ", gib(need),
                 " of working memory; ", gib(budget),
                 " is available (use a smaller size, fewer images or VAE tiling)");
}

FluxPromptEmbeds FluxPipeline::encode_prompt(const std::vector<std::string>& prompts,
                                             const std::vector<std::string>& prompts_2,
                                             int64_t num_images_per_prompt,
                                             int64_t max_sequence_length) {
  Impl& s = *impl_;
  const DType dtype = s.options.dtype;
  std::vector<std::vector<int64_t>> clip_ids, t5_ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    clip_ids.push_back(s.clip_tokenizer.encode_padded(prompts[i], kClipMaxLength));
    t5_ids.push_back(s.t5_tokenizer.encode_padded(prompts_2.empty() ? prompts[i] : prompts_2[i],
                                                  max_sequence_length));
  }
  // The encoders run on the pipeline's device too: uploaded per request unless kept.
  const Device dev = s.options.device;
  if (!s.clip) {
    s.clip.emplace(models::CLIPTextModel::load(s.folder.component("text_encoder"), dtype).to(dev));
  }
  Tensor pooled = s.clip->forward(text::ids_tensor(clip_ids)).pooler_output;
  if (!s.options.keep_text_encoders) s.clip.reset();
  if (!s.t5) {
    s.t5.emplace(models::T5EncoderModel::load(s.folder.component("text_encoder_2"), dtype).to(dev));
  }
  Tensor embeds = s.t5->forward(text::ids_tensor(t5_ids));
  if (!s.options.keep_text_encoders) s.t5.reset();
  embeds = repeat_rows(embeds, num_images_per_prompt);
  pooled = repeat_rows(pooled, num_images_per_prompt);
  return {embeds.to(dtype), pooled.to(dtype)};
}

FluxResult FluxPipeline::generate(const FluxRequest& r) {
  validate(r);
  Impl& s = *impl_;
  const DType dtype = s.options.dtype;
  FluxResult result;
  result.timings.load_s = s.load_s;
  cpu_allocator().reset_peak();

  auto t0 = std::chrono::steady_clock::now();
  FluxPromptEmbeds cond =
      encode_prompt(r.prompts, r.prompts_2, r.num_images_per_prompt, r.max_sequence_length);
  const bool true_cfg = r.true_cfg_scale > 1.0 && !r.negative_prompts.empty();
  FluxPromptEmbeds uncond;
  if (true_cfg) {
    std::vector<std::string> neg = r.negative_prompts;
    if (neg.size() == 1) neg.assign(r.prompts.size(), neg.front());
    uncond = encode_prompt(neg, {}, r.num_images_per_prompt, r.max_sequence_length);
  }
  result.timings.text_encoding_s = seconds_since(t0);

  // Latents: seeded Philox noise (B*n, C, h, w), packed; or the caller's.
  const int64_t batch = static_cast<int64_t>(r.prompts.size()) * r.num_images_per_prompt;
  const int64_t m = vae_scale_factor();
  const int64_t lh = 2 * (r.height / (m * 2)), lw = 2 * (r.width / (m * 2));
  const int64_t c = s.transformer_config.in_channels / 4;
  Tensor latents = r.latents.defined()
                       ? r.latents.to(dtype)
                       : pack_flux_latents(ops::randn({batch, c, lh, lw}, r.seed)).to(dtype);

  const int64_t seq = latents.size(1);
  const double mu = schedulers::flux_calculate_shift(
      seq, s.scheduler.config().base_image_seq_len, s.scheduler.config().max_image_seq_len,
      s.scheduler.config().base_shift.value_or(0.5), s.scheduler.config().max_shift.value_or(1.15));
  std::vector<double> sigmas;
  if (r.sigmas) {
    sigmas = *r.sigmas;
  } else {  // np.linspace(1.0, 1 / N, N)
    const int64_t n = r.num_inference_steps;
    sigmas.resize(n);
    const double step = n > 1 ? (1.0 / n - 1.0) / static_cast<double>(n - 1) : 0.0;
    for (int64_t i = 0; i < n; ++i) sigmas[i] = 1.0 + static_cast<double>(i) * step;
    sigmas[n - 1] = 1.0 / static_cast<double>(n);
  }
  s.scheduler.set_timesteps(r.num_inference_steps, sigmas, mu);

  models::FluxForwardInputs in;
  in.txt_ids = models::flux_text_ids(cond.prompt_embeds.size(1)).to(dtype);
  in.img_ids = models::flux_latent_image_ids(lh / 2, lw / 2).to(dtype);
  if (s.transformer_config.guidance_embeds) {
    in.guidance = ops::full({batch}, r.guidance_scale, DType::f32);
  }
  // The embeddings go to the transformer's device once, not every step; the latents and the
  // scheduler's arithmetic stay there for the whole loop, so the host does not wait for the
  // device between steps (it queues step i + 1 while step i runs).
  const Device dev = s.transformer->device();
  latents = latents.to(dev);
  const Tensor cond_embeds = cond.prompt_embeds.to(dev), cond_pooled = cond.pooled.to(dev);
  const Tensor uncond_embeds = true_cfg ? uncond.prompt_embeds.to(dev) : Tensor();
  const Tensor uncond_pooled = true_cfg ? uncond.pooled.to(dev) : Tensor();
  t0 = std::chrono::steady_clock::now();
  StepReporter reporter(r.on_step, dev, r.num_inference_steps);
  using StepForward =
      compilation::GraphedForward<models::FluxTransformer2DModel, models::FluxDeviceInputs>;
  StepForward cond_forward(*s.transformer, s.options.cuda_graphs);
  StepForward uncond_forward(*s.transformer, s.options.cuda_graphs);
  const DenoiseContext calls(r.cache, "flux", r.num_inference_steps, r.linear_observer,
                             s.attention_policy.get(), r.sparse_attention);
  for (int64_t i = 0; i < r.num_inference_steps; ++i) {
    // timestep = t.expand(B).to(latents.dtype) / 1000, in the latents' dtype.
    const Tensor t = ops::full({batch}, s.scheduler.timesteps()[i], DType::f32).to(dtype);
    in.timestep = ops::div(t, ops::full({1}, 1000.0, dtype));
    in.hidden_states = latents;
    in.encoder_hidden_states = cond_embeds;
    in.pooled_projections = cond_pooled;
    Tensor noise_pred = cond_forward(in, calls.at(i, CfgBranch::cond));
    if (true_cfg) {
      in.encoder_hidden_states = uncond_embeds;
      in.pooled_projections = uncond_pooled;
      const Tensor neg = uncond_forward(in, calls.at(i, CfgBranch::uncond));
      // neg + scale * (cond - neg)
      noise_pred = ops::add(
          neg, ops::affine(ops::sub(noise_pred, neg), static_cast<float>(r.true_cfg_scale), 0.0f));
    }
    latents = s.scheduler.step(noise_pred, i, latents);
    reporter.queued(i + 1, latents);
  }
  reporter.finish();
  latents = latents.to(Device::cpu());
  result.timings.denoising_s = seconds_since(t0);
  result.latents = latents;
  result.cache_stats = calls.cache_stats();
  result.sparse_stats = calls.sparse_stats();

  t0 = std::chrono::steady_clock::now();
  models::VaeTiling tiling;
  tiling.enabled = vae_tiled(s.options.vae_tiling, r.height, r.width);
  s.vae->set_tiling(tiling);
  const Tensor z = s.vae->denormalize_latents(unpack_flux_latents(latents, lh, lw));
  std::vector<Tensor> images;
  for (int64_t b = 0; b < batch; ++b) {  // one image at a time bounds decode memory
    images.push_back(postprocess_image(s.vae->decode(z.narrow(0, b, 1))));
  }
  result.images = ops::cat(images, 0);
  result.timings.decoding_s = seconds_since(t0);
  result.peak_allocated_bytes = cpu_allocator().stats().peak_allocated_bytes;
  result.peak_reserved_bytes = cpu_allocator().stats().peak_reserved_bytes;
  result.peak_rss_bytes = peak_rss_bytes();
  return result;
}

}  // namespace mindiesd::pipelines
