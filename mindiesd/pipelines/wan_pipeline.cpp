#include "mindiesd/pipelines/wan_pipeline.h"

#include <chrono>
#include <cmath>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "mindiesd/compilation/graphed_forward.h"
#include "mindiesd/core/allocator.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/models/encoders/clip_vision_model.h"
#include "mindiesd/models/encoders/t5_encoder_model.h"
#include "mindiesd/models/vae/autoencoder_kl_wan.h"
#include "mindiesd/models/wan/wan_transformer.h"
#include "mindiesd/pipelines/image_processing.h"
#include "mindiesd/schedulers/flow_match_euler.h"
#include "mindiesd/schedulers/unipc_multistep.h"
#include "mindiesd/text/t5_tokenizer.h"
#include "mindiesd/text/tokens.h"

namespace mindiesd::pipelines {

namespace {

constexpr int64_t kMaxSide = 8192;
constexpr int64_t kMaxFrames = 1025;

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// One pass of Python's html.unescape over the entities prompts actually carry.
std::string html_unescape(std::string_view s) {
  struct Named {
    const char* name;
    uint32_t cp;
    bool bare;  // HTML5 also accepts it without the ';' (a legacy entity)
  };
  static constexpr Named kNamed[] = {{"amp", '&', true},    {"lt", '<', true},
                                     {"gt", '>', true},     {"quot", '"', true},
                                     {"apos", '\'', false}, {"nbsp", 0xA0, true}};
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == '#') {  // &#NNN; / &#xHH; (the ';' is optional)
      const bool hex = j + 1 < s.size() && (s[j + 1] == 'x' || s[j + 1] == 'X');
      size_t k = j + (hex ? 2 : 1);
      uint64_t cp = 0;
      const size_t digits_at = k;
      while (k < s.size() && (hex ? std::isxdigit(static_cast<unsigned char>(s[k]))
                                  : std::isdigit(static_cast<unsigned char>(s[k])))) {
        const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[k])));
        cp = std::min<uint64_t>(cp * (hex ? 16 : 10) + (c <= '9' ? c - '0' : c - 'a' + 10),
                                0x110000);
        ++k;
      }
      if (k > digits_at) {
        if (k < s.size() && s[k] == ';') ++k;
        // Python: 0, surrogates and values past U+10FFFF become U+FFFD.
        const bool bad = cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF;
        append_utf8(out, bad ? 0xFFFD : static_cast<uint32_t>(cp));
        i = k;
        continue;
      }
    } else {
      bool matched = false;
      for (const Named& n : kNamed) {
        const std::string_view name(n.name);
        if (s.substr(j, name.size()) != name) continue;
        const size_t end = j + name.size();
        if (end < s.size() && s[end] == ';') {
          append_utf8(out, n.cp);
          i = end + 1;
          matched = true;
        } else if (n.bare) {
          append_utf8(out, n.cp);
          i = end;
          matched = true;
        }
        if (matched) break;
      }
      if (matched) continue;
    }
    out += s[i++];
  }
  return out;
}

// Length in bytes of the Python-\s whitespace character at s[i] (0 if none): ASCII \t\n\v\f\r,
// space, \x1c-\x1f, and the Unicode spaces U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
// U+2029, U+202F, U+205F, U+3000.
size_t space_at(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  auto byte = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0; };
  if (c == 0xC2 && (byte(i + 1) == 0x85 || byte(i + 1) == 0xA0)) return 2;
  if (c == 0xE1 && byte(i + 1) == 0x9A && byte(i + 2) == 0x80) return 3;
  if (c == 0xE2 && byte(i + 1) == 0x80) {
    const unsigned char d = byte(i + 2);
    if ((d >= 0x80 && d <= 0x8A) || d == 0xA8 || d == 0xA9 || d == 0xAF) return 3;
  }
  if (c == 0xE2 && byte(i + 1) == 0x81 && byte(i + 2) == 0x9F) return 3;
  if (c == 0xE3 && byte(i + 1) == 0x80 && byte(i + 2) == 0x80) return 3;
  return 0;
}

// x.repeat(n, 1, ...): n copies of a batch-1 tensor.
Tensor repeat_batch(const Tensor& x, int64_t n) {
  if (n == 1) return x;
  std::vector<int64_t> reps(static_cast<size_t>(x.dim()), 1);
  reps[0] = n;
  return ops::repeat(x, reps);
}

// The schedulers a Wan folder may carry, behind one call shape: UniPCMultistepScheduler in flow
// mode (what Wan2.1 ships) or FlowMatchEulerDiscreteScheduler (swapped in by users, e.g. for
// few-step distilled weights).
class WanScheduler {
 public:
  static WanScheduler load(const io::Component& c) {
    WanScheduler w;
    if (c.class_name == "FlowMatchEulerDiscreteScheduler") {
      w.euler_.emplace(schedulers::FlowMatchEulerDiscreteScheduler::load(c));
      MINDIESD_CHECK(!w.euler_->config().use_dynamic_shifting, InvalidArgument, c.dir.string(),
                     ": FlowMatchEulerDiscreteScheduler with use_dynamic_shifting needs mu, "
                     "which the Wan pipelines do not pass (diffusers refuses it too)");
    } else {
      MINDIESD_CHECK(c.class_name == "UniPCMultistepScheduler", InvalidArgument, c.dir.string(),
                     ": scheduler ", c.class_name,
                     " is not supported by the Wan pipelines (UniPCMultistepScheduler or "
                     "FlowMatchEulerDiscreteScheduler)");
      w.unipc_.emplace(schedulers::UniPCMultistepScheduler::load(c));
    }
    return w;
  }
  void set_timesteps(int64_t n) {
    if (euler_)
      euler_->set_timesteps(n);
    else
      unipc_->set_timesteps(n);
  }
  int64_t num_inference_steps() const {
    return euler_ ? euler_->num_inference_steps() : unipc_->num_inference_steps();
  }
  // t.expand(B) as the pipeline passes it: UniPC's int64 timesteps, FlowMatchEuler's float32.
  Tensor timestep(int64_t i, int64_t batch) const {
    return euler_ ? ops::full({batch}, euler_->timesteps()[i], DType::f32)
                  : ops::full({batch}, static_cast<double>(unipc_->timesteps()[i]), DType::i64);
  }
  // UniPC returns the sample's dtype (f32 latents stay f32); FlowMatchEuler returns the model
  // output's (diffusers' Euler step casts back to it), so latents follow the transformer dtype.
  Tensor step(const Tensor& model_output, int64_t i, const Tensor& sample) {
    return euler_ ? euler_->step(model_output, i, sample) : unipc_->step(model_output, sample);
  }

 private:
  std::optional<schedulers::UniPCMultistepScheduler> unipc_;
  std::optional<schedulers::FlowMatchEulerDiscreteScheduler> euler_;
};

}  // namespace

std::string wan_prompt_clean(std::string_view text) {
  const std::string unescaped = html_unescape(html_unescape(text));
  std::string out;
  out.reserve(unescaped.size());
  bool pending_space = false;
  for (size_t i = 0; i < unescaped.size();) {
    if (const size_t n = space_at(unescaped, i); n > 0) {
      pending_space = !out.empty();
      i += n;
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += unescaped[i++];
  }
  return out;
}

struct WanPipeline::Impl {
  WanPipelineOptions options;
  io::DiffusersFolder folder;
  io::WanTransformer3DModelConfig transformer_config;
  io::AutoencoderKLWanConfig vae_config;
  WanScheduler scheduler;
  text::T5Tokenizer tokenizer;
  std::optional<models::WanTransformer3DModel> transformer;
  std::optional<models::AutoencoderKLWan> vae;
  std::optional<models::UMT5EncoderModel> text_encoder;
  double load_s = 0;
  bool i2v = false;
  std::optional<models::CLIPVisionModel> image_encoder;  // I2V with image tokens
  ClipImageProcessorConfig image_processor;
  std::optional<quant::QuantReport> quant_report;
  std::shared_ptr<const quant::Fp8Attention> attention_policy;  // with options.attention_quant

  // TeaCache's coefficient table for this model (TeaCache4Wan2.1 picks it by the checkpoint
  // name): I2V 720P when the folder name says so, else 480P; T2V 14B for the 5120-wide model,
  // else 1.3B.
  std::string teacache_model() const {
    if (i2v) {
      const std::string name = folder.path().filename().string();
      return name.find("720") != std::string::npos ? "wan2.1-i2v-720p" : "wan2.1-i2v-480p";
    }
    const int64_t n =
        transformer_config.num_attention_heads * transformer_config.attention_head_dim;
    return n >= 5120 ? "wan2.1-t2v-14b" : "wan2.1-t2v-1.3b";
  }
};

WanPipeline::WanPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WanPipeline::~WanPipeline() = default;
WanPipeline::WanPipeline(WanPipeline&&) noexcept = default;
WanPipeline& WanPipeline::operator=(WanPipeline&&) noexcept = default;

WanPipeline WanPipeline::load(const std::filesystem::path& dir, const WanPipelineOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  io::DiffusersFolder folder = io::DiffusersFolder::open(dir);
  MINDIESD_CHECK(folder.is_pipeline(), InvalidArgument, dir.string(),
                 " is a single component folder; a WanPipeline folder (model_index.json) is "
                 "needed");
  const bool i2v = folder.class_name() == "WanImageToVideoPipeline";
  MINDIESD_CHECK(i2v || folder.class_name() == "WanPipeline", Unsupported, dir.string(), ": ",
                 folder.class_name(),
                 " is not a Wan pipeline (WanPipeline or WanImageToVideoPipeline folders)");
  std::vector<std::pair<const char*, const char*>> needed = {
      {"transformer", "WanTransformer3DModel"},
      {"vae", "AutoencoderKLWan"},
      {"text_encoder", "UMT5EncoderModel"},
      {"scheduler", ""},  // UniPC or FlowMatchEuler (WanScheduler)
      {"tokenizer", ""}};
  std::string missing;
  for (const auto& [name, cls] : needed) {
    if (!folder.has(name) || !folder.component(name).enabled) missing += str_cat(" ", name);
  }
  MINDIESD_CHECK(missing.empty(), NotFound, dir.string(),
                 ": the Wan pipeline folder lacks components:", missing);
  for (const auto& [name, cls] : needed) {
    const io::Component& c = folder.component(name);
    MINDIESD_CHECK(*cls == '\0' || c.class_name == cls, InvalidArgument, dir.string(),
                   ": component '", name, "' is ", c.class_name, ", expected ", cls);
  }
  // Wan 2.2 A14B's second transformer (boundary_ratio) is not run yet: refuse rather than
  // silently denoise with one expert.
  MINDIESD_CHECK(!folder.has("transformer_2") || !folder.component("transformer_2").enabled,
                 Unsupported, dir.string(),
                 ": a second transformer (Wan 2.2 two-expert denoising) is not supported yet");

  // Whatever may throw runs before the aggregate initialisation: when an initialiser threw
  // inside it, GCC 12's cleanup of the members built so far freed one of them twice.
  auto scheduler = WanScheduler::load(folder.component("scheduler"));
  auto tokenizer = text::T5Tokenizer::from_folder(folder.component("tokenizer").dir);
  auto impl = std::unique_ptr<Impl>(new Impl{options,
                                             folder,
                                             {},
                                             {},
                                             std::move(scheduler),
                                             std::move(tokenizer),
                                             std::nullopt,
                                             std::nullopt,
                                             std::nullopt,
                                             0.0,
                                             false,
                                             std::nullopt,
                                             {},
                                             std::nullopt,
                                             nullptr});
  {
    io::ConfigReader r = folder.component("transformer").config_reader();
    impl->transformer_config = io::WanTransformer3DModelConfig::read(r);
    io::ConfigReader v = folder.component("vae").config_reader();
    impl->vae_config = io::AutoencoderKLWanConfig::read(v);
  }
  impl->vae.emplace(models::AutoencoderKLWan::load(folder.component("vae"), options.vae_dtype)
                        .to(options.device));
  const auto& tc = impl->transformer_config;
  const int64_t z = impl->vae_config.z_dim;
  impl->i2v = i2v;
  if (i2v) {
    // prepare_latents: latents ++ mask (vae_scale_factor_temporal channels) ++ image latents.
    const int64_t ts = impl->vae->temporal_scale();
    MINDIESD_CHECK(tc.in_channels == 2 * z + ts && tc.out_channels == z, InvalidArgument,
                   dir.string(), ": an image-to-video transformer takes 2 x z_dim + ", ts, " = ",
                   2 * z + ts, " channels and predicts z_dim = ", z, "; this one takes ",
                   tc.in_channels, " and predicts ", tc.out_channels);
    if (tc.image_dim) {
      for (const char* name : {"image_encoder", "image_processor"}) {
        MINDIESD_CHECK(folder.has(name) && folder.component(name).enabled, NotFound, dir.string(),
                       ": the transformer takes image tokens (image_dim ", *tc.image_dim,
                       ") but the folder has no ", name);
      }
      impl->image_encoder.emplace(
          models::CLIPVisionModel::load(folder.component("image_encoder"), options.vae_dtype)
              .to(options.device));
      MINDIESD_CHECK(impl->image_encoder->config().hidden_size == *tc.image_dim, InvalidArgument,
                     dir.string(), ": the image encoder's hidden_size ",
                     impl->image_encoder->config().hidden_size,
                     " is not the transformer's image_dim ", *tc.image_dim);
      io::ConfigReader p = io::ConfigReader::from_file(folder.component("image_processor").dir /
                                                       "preprocessor_config.json");
      impl->image_processor = ClipImageProcessorConfig::read(p);
    }
  } else {
    MINDIESD_CHECK(!tc.image_dim && tc.in_channels == z, InvalidArgument, dir.string(),
                   ": the transformer takes ", tc.in_channels, " channels but the VAE has z_dim ",
                   z, tc.image_dim ? " (an image-to-video transformer)" : "");
  }
  impl->transformer.emplace(
      load_transformer<models::WanTransformer3DModel, io::WanTransformer3DModelConfig>(
          folder.component("transformer"), options.dtype, options.device, options.quant,
          &impl->quant_report));
  if (options.attention_quant)
    impl->attention_policy = std::make_shared<const quant::Fp8Attention>(*options.attention_quant);
  impl->load_s = seconds_since(t0);
  return WanPipeline(std::move(impl));
}

const models::WanTransformer3DModel& WanPipeline::transformer() const {
  return *impl_->transformer;
}
const std::optional<quant::QuantReport>& WanPipeline::quant_report() const {
  return impl_->quant_report;
}

bool WanPipeline::text_encoder_resident() const { return impl_->text_encoder.has_value(); }

bool WanPipeline::is_image_to_video() const { return impl_->i2v; }

Tensor WanPipeline::encode_image(const Tensor& image) const {
  if (!impl_->image_encoder) return Tensor();
  return impl_->image_encoder->hidden_state(clip_image_preprocess(image, impl_->image_processor),
                                            -2);
}

Tensor WanPipeline::image_condition(const Tensor& image, int64_t height, int64_t width,
                                    int64_t num_frames) const {
  const Impl& s = *impl_;
  const models::AutoencoderKLWan& vae = *s.vae;
  // video_condition = [image, zeros x (F - 1)] in the VAE's dtype.
  const Tensor first = vae_image_preprocess(image, height, width).unsqueeze(2);
  const Tensor parts[] = {first, ops::full({1, 3, num_frames - 1, height, width}, 0.0)};
  const Tensor video =
      ops::cat(std::span(parts, num_frames > 1 ? 2 : 1), 2).to(s.options.vae_dtype);
  // retrieve_latents(sample_mode="argmax"): the mean; then (z - mean) * (1 / std) in f32.
  const Tensor latent = vae.normalize_latents(vae.encode(video).first.to(DType::f32));
  // The mask: vae_scale_factor_temporal channels, 1 on latent frame 0 (the given frame repeated
  // over the channels), 0 on the later ones.
  Tensor mask =
      ops::full({1, vae.temporal_scale(), latent.size(2), latent.size(3), latent.size(4)}, 0.0);
  mask.narrow(2, 0, 1).copy_(
      ops::full({1, vae.temporal_scale(), 1, latent.size(3), latent.size(4)}, 1.0));
  const Tensor both[] = {mask, latent};
  return ops::cat(both, 1);
}

int64_t WanPipeline::latent_frames(int64_t num_frames) const {
  return (num_frames - 1) / impl_->vae->temporal_scale() + 1;
}

int64_t WanPipeline::estimate_activation_bytes(const WanRequest& r) const {
  const auto& tc = impl_->transformer_config;
  const int64_t e = dtype_bytes(impl_->options.dtype, 1);
  const int64_t batch = static_cast<int64_t>(r.prompts.size()) * r.num_videos_per_prompt;
  const int64_t s = impl_->vae->spatial_scale();
  const int64_t tokens = latent_frames(r.num_frames) * (r.height / s / tc.patch_size[1]) *
                         (r.width / s / tc.patch_size[2]);
  const int64_t hidden = tc.num_attention_heads * tc.attention_head_dim;
  // A block holds its input, q/k/v, the attention output and the FFN (ffn_dim wide), plus f32
  // modulation temporaries: about 12 hidden-wide rows and the FFN's two activations per token.
  const int64_t transformer = batch * (tokens * (hidden * (12 * e + 8) + tc.ffn_dim * 2 * e) +
                                       r.max_sequence_length * hidden * 4 * e);
  // The VAE decodes one latent frame (4 video frames) at a time; its widest stage is
  // decoder_base_dim channels at full resolution with about six such tensors alive (input,
  // norm, SiLU, the causal conv's padded copy and output, the residual) in vae_dtype.
  const int64_t ve = dtype_bytes(impl_->options.vae_dtype, 1);
  const int64_t vae = impl_->vae_config.decoder_base_dim * 4 * r.height * r.width * 6 * ve;
  const int64_t videos = batch * 3 * r.num_frames * r.height * r.width * 4 * 2;
  return std::max(transformer, vae) + videos;
}

void WanPipeline::validate(const WanRequest& r) const {
  check_request_basics(r.prompts, r.negative_prompts, r.num_inference_steps, r.guidance_scale);
  MINDIESD_CHECK(r.num_videos_per_prompt >= 1 && r.num_videos_per_prompt <= 16, InvalidArgument,
                 "num_videos_per_prompt must be in [1, 16], got ", r.num_videos_per_prompt);
  MINDIESD_CHECK(r.prompts.size() * r.num_videos_per_prompt <= 64, InvalidArgument,
                 r.prompts.size() * r.num_videos_per_prompt, " videos in one request (limit 64)");
  MINDIESD_CHECK(r.max_sequence_length >= 1 && r.max_sequence_length <= 4096, InvalidArgument,
                 "max_sequence_length must be in [1, 4096], got ", r.max_sequence_length);
  const int64_t ts = impl_->vae->temporal_scale();
  MINDIESD_CHECK(r.num_frames >= 1 && r.num_frames <= kMaxFrames && (r.num_frames - 1) % ts == 0,
                 InvalidArgument, "num_frames must be ", ts, "k + 1 (1, ", ts + 1, ", ...",
                 " 81, ...) and at most ", kMaxFrames, ", got ", r.num_frames);
  const auto& tc = impl_->transformer_config;
  const int64_t mh = impl_->vae->spatial_scale() * tc.patch_size[1];
  const int64_t mw = impl_->vae->spatial_scale() * tc.patch_size[2];
  MINDIESD_CHECK(r.height > 0 && r.width > 0 && r.height <= kMaxSide && r.width <= kMaxSide,
                 InvalidArgument, "video size ", r.width, "x", r.height, " is out of range (1 to ",
                 kMaxSide, " per side)");
  MINDIESD_CHECK(r.height % mh == 0 && r.width % mw == 0, InvalidArgument, "video size ", r.width,
                 "x", r.height, " is not a multiple of ", mw, "x", mh,
                 " (the VAE's scale factor times the transformer's patch size)");
  if (impl_->i2v) {
    MINDIESD_CHECK(r.image.defined(), InvalidArgument,
                   "an image-to-video model needs an input image (the first frame)");
    to_rgb_u8(r.image);  // InvalidArgument for a tensor that is not an image
    MINDIESD_CHECK(!impl_->image_encoder || r.max_sequence_length == 512, InvalidArgument,
                   "image-to-video with image tokens needs max_sequence_length 512 (the "
                   "transformer takes the last 512 context tokens as text), got ",
                   r.max_sequence_length);
  } else {
    MINDIESD_CHECK(!r.image.defined(), InvalidArgument,
                   "an input image was given but this is a text-to-video model");
  }
  const int64_t batch = static_cast<int64_t>(r.prompts.size()) * r.num_videos_per_prompt;
  if (r.latents.defined()) {
    const int64_t s = impl_->vae->spatial_scale();
    const Shape want{batch, impl_->vae_config.z_dim, latent_frames(r.num_frames), r.height / s,
                     r.width / s};
    MINDIESD_CHECK(r.latents.shape() == want, InvalidArgument, "latents ", r.latents.shape().str(),
                   " do not match the request, expected ", want.str());
  }
  check_cache_request(r.cache, impl_->transformer_config.num_layers, r.num_inference_steps,
                      impl_->options.cuda_graphs);
  check_sparse_request(r.sparse_attention, impl_->options.cuda_graphs);
  const int64_t need = estimate_activation_bytes(r);
  const int64_t budget = impl_->options.memory_budget_bytes > 0 ? impl_->options.memory_budget_bytes
                                                                : available_memory_bytes();
  MINDIESD_CHECK(budget <= 0 || need <= budget, OutOfMemory, "a ", r.width, "x", r.height, "x",
                 r.num_frames, " request for ", batch, " video(s) needs about ", gib(need),
                 " of working memory; ", gib(budget),
                 " is available (use a smaller size, fewer frames or fewer videos)");
}

Tensor WanPipeline::encode_prompt(const std::vector<std::string>& prompts,
                                  int64_t num_videos_per_prompt, int64_t max_sequence_length) {
  Tensor embeds = encode_with_text_encoder(prompts, num_videos_per_prompt, max_sequence_length);
  if (!impl_->options.keep_text_encoder) impl_->text_encoder.reset();
  return embeds;
}

// encode_prompt without releasing UMT5 afterwards (generate encodes both sides of the guidance
// with one load).
Tensor WanPipeline::encode_with_text_encoder(const std::vector<std::string>& prompts,
                                             int64_t num_videos_per_prompt,
                                             int64_t max_sequence_length) {
  Impl& s = *impl_;
  std::vector<std::vector<int64_t>> ids, masks;
  for (const std::string& p : prompts) {
    std::vector<int64_t> mask;
    ids.push_back(s.tokenizer.encode_padded(wan_prompt_clean(p), max_sequence_length, &mask));
    masks.push_back(std::move(mask));
  }
  if (!s.text_encoder) {
    s.text_encoder.emplace(
        models::UMT5EncoderModel::load(s.folder.component("text_encoder"), s.options.dtype)
            .to(s.options.device));
  }
  const Tensor embeds = models::umt5_prompt_embeds(*s.text_encoder, text::ids_tensor(ids),
                                                   text::ids_tensor(masks), max_sequence_length);
  return repeat_rows(embeds, num_videos_per_prompt).to(s.options.dtype);
}

WanResult WanPipeline::generate(const WanRequest& r) {
  validate(r);
  Impl& s = *impl_;
  const DType dtype = s.options.dtype;
  WanResult result;
  result.timings.load_s = s.load_s;
  cpu_allocator().reset_peak();

  auto t0 = std::chrono::steady_clock::now();
  // Both sides of the guidance with one load of UMT5, released before denoising.
  const Tensor cond =
      encode_with_text_encoder(r.prompts, r.num_videos_per_prompt, r.max_sequence_length);
  const bool cfg = r.guidance_scale > 1.0;
  Tensor uncond;
  if (cfg) {  // negative_prompt = negative_prompt or "", one per prompt
    std::vector<std::string> neg = r.negative_prompts;
    if (neg.empty()) neg.assign(1, "");
    if (neg.size() == 1) neg.assign(r.prompts.size(), neg.front());
    uncond = encode_with_text_encoder(neg, r.num_videos_per_prompt, r.max_sequence_length);
  }
  if (!s.options.keep_text_encoder) s.text_encoder.reset();
  result.timings.text_encoding_s = seconds_since(t0);

  const int64_t batch = cond.size(0), sp = s.vae->spatial_scale();
  Tensor latents = r.latents.defined()
                       ? r.latents.to(DType::f32)
                       : ops::randn({batch, s.vae_config.z_dim, latent_frames(r.num_frames),
                                     r.height / sp, r.width / sp},
                                    r.seed);
  s.scheduler.set_timesteps(r.num_inference_steps);

  // The latents, the I2V condition and the scheduler's arithmetic stay on the transformer's
  // device for the whole loop: the host does not wait for the device between steps.
  const Device dev = s.transformer->device();
  latents = latents.to(dev);
  models::WanForwardInputs cond_in, uncond_in;
  cond_in.encoder_hidden_states = cond.to(dev);
  if (cfg) uncond_in.encoder_hidden_states = uncond.to(dev);
  Tensor condition;  // I2V: (B, 4 + z_dim, T, h, w) f32, the same for every step
  if (s.i2v) {
    condition =
        repeat_batch(image_condition(r.image, r.height, r.width, r.num_frames), batch).to(dev);
    const Tensor image_embeds = encode_image(r.image);
    if (image_embeds.defined()) {
      cond_in.encoder_hidden_states_image = repeat_batch(image_embeds, batch).to(dtype).to(dev);
      uncond_in.encoder_hidden_states_image = cond_in.encoder_hidden_states_image;
    }
  }
  t0 = std::chrono::steady_clock::now();
  const int64_t steps = s.scheduler.num_inference_steps();
  StepReporter reporter(r.on_step, dev, steps);
  using StepForward =
      compilation::GraphedForward<models::WanTransformer3DModel, models::WanDeviceInputs>;
  StepForward cond_forward(*s.transformer, s.options.cuda_graphs);
  StepForward uncond_forward(*s.transformer, s.options.cuda_graphs);
  const DenoiseContext calls(r.cache, s.teacache_model(), steps, r.linear_observer,
                             s.attention_policy.get(), r.sparse_attention);
  for (int64_t i = 0; i < steps; ++i) {
    Tensor input = latents.to(dtype);
    if (condition.defined()) {  // cat([latents, condition], dim=1).to(transformer_dtype)
      const Tensor parts[] = {latents, condition};
      input = ops::cat(parts, 1).to(dtype);
    }
    const Tensor t = s.scheduler.timestep(i, batch);
    cond_in.hidden_states = input;
    cond_in.timestep = t;
    Tensor noise_pred = cond_forward(cond_in, calls.at(i, CfgBranch::cond));
    if (cfg) {
      uncond_in.hidden_states = input;
      uncond_in.timestep = t;
      const Tensor noise_uncond = uncond_forward(uncond_in, calls.at(i, CfgBranch::uncond));
      // noise_uncond + scale * (noise_pred - noise_uncond), each op rounded to the model dtype.
      noise_pred = ops::add(noise_uncond, ops::affine(ops::sub(noise_pred, noise_uncond),
                                                      static_cast<float>(r.guidance_scale), 0.0f));
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
  const Tensor z = s.vae->denormalize_latents(latents.to(s.options.vae_dtype));
  std::vector<Tensor> videos;
  for (int64_t b = 0; b < batch; ++b) {  // one video at a time bounds decode memory
    // (1, 3, F, H, W) -> (F, 3, H, W), as VideoProcessor.postprocess_video permutes it.
    const Tensor video = s.vae->decode(z.narrow(0, b, 1)).select(0, 0).transpose(0, 1);
    videos.push_back(postprocess_image(video).unsqueeze(0));
  }
  result.videos = ops::cat(videos, 0);
  result.timings.decoding_s = seconds_since(t0);
  result.peak_allocated_bytes = cpu_allocator().stats().peak_allocated_bytes;
  result.peak_reserved_bytes = cpu_allocator().stats().peak_reserved_bytes;
  result.peak_rss_bytes = peak_rss_bytes();
  return result;
}

}  // namespace mindiesd::pipelines
