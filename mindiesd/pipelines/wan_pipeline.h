// Wan 2.1 text-to-video and image-to-video, following diffusers' WanPipeline
// (pipelines/wan/pipeline_wan.py) and WanImageToVideoPipeline (pipeline_wan_i2v.py):
// prompt_clean -> UMT5 embeddings (cut at each prompt's length, zero-padded) -> f32 latents
// (B, z_dim, (F - 1) / 4 + 1, H / 8, W / 8) -> UniPC (flow) or flow-matching Euler denoising
// with classifier-free guidance against a negative prompt (two transformer passes per step,
// guidance in the transformer's dtype) -> `latents / (1 / std) + mean` -> AutoencoderKLWan
// decode, chunked in time -> frames in [0, 1].
// Image-to-video adds: CLIP ViT hidden_states[-2] of the image (CLIPImageProcessor) as the
// transformer's image tokens; the image resized to the video size (Lanczos) as frame 0 of an
// otherwise zero video, encoded by the VAE (its mean) and normalised, with a 4-channel mask
// marking latent frame 0 as given, concatenated to the noisy latents at every step.
//
// Dtypes as Wan is run with diffusers: transformer and text encoder in `dtype` (bf16), the VAE
// in `vae_dtype` (f32), the latents and the scheduler in f32 (with FlowMatchEuler the latents
// take the transformer's dtype after the first step, as diffusers' step returns them).
//
// Memory: weights are mmapped and used in place when stored in the run dtype; the text encoder
// is loaded for prompt encoding and released before denoising (UMT5-XXL, 5.7B, and the 14B
// transformer are never resident together); the VAE decodes one video at a time, one latent
// frame per chunk. Requests are validated (frames 4k + 1, sizes multiples of 16, prompts,
// memory) before any heavy work starts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/tensor.h"
#include "mindiesd/pipelines/pipeline_util.h"

namespace mindiesd::models {
class WanTransformer3DModel;
}

namespace mindiesd::pipelines {

struct WanPipelineOptions {
  DType dtype = DType::bf16;        // transformer and text encoder (diffusers' torch_dtype)
  DType vae_dtype = DType::f32;     // AutoencoderKLWan (Wan's examples load it in f32)
  bool keep_text_encoder = false;   // keep UMT5 loaded between requests (a server)
  int64_t memory_budget_bytes = 0;  // activation memory a request may plan for; 0 = available
  Device device = Device::cpu();    // where the models run (as FluxPipelineOptions::device)
  bool cuda_graphs = false;         // as FluxPipelineOptions::cuda_graphs
  std::optional<quant::QuantConfig> quant;                     // as FluxPipelineOptions::quant
  std::optional<quant::AttentionQuantConfig> attention_quant;  // as FluxPipelineOptions's
};

struct WanRequest {
  std::vector<std::string> prompts;           // one video set per prompt
  std::vector<std::string> negative_prompts;  // none ("" then), one, or one per prompt
  int64_t height = 480, width = 832;          // multiples of 16
  int64_t num_frames = 81;                    // 4k + 1
  int64_t num_inference_steps = 50;
  double guidance_scale = 5.0;  // > 1: classifier-free guidance
  int64_t num_videos_per_prompt = 1;
  uint64_t seed = 0;
  int64_t max_sequence_length = 512;  // I2V with image tokens: 512 (diffusers' attention split)
  // Image-to-video folders: the first frame, u8 (H, W, 1 | 3 | 4) as io::read_png returns it
  // (converted to RGB); resized to the video size.
  Tensor image;
  // Initial latents (B * num_videos_per_prompt, z_dim, latent frames, H / 8, W / 8) instead of
  // seeded noise (diffusers' `latents` argument).
  Tensor latents;
  std::function<void(const StepInfo&)> on_step;
  // Step cache (cache/cache_config.h); TeaCache picks the Wan2.1 coefficients of the model
  // (T2V 1.3B / 14B by width, I2V 480P / 720P by the folder name) unless it names a table.
  std::optional<cache::CacheConfig> cache;
  // Sparse attention in the transformer's self-attention (sparse/sparse_attention_policy.h).
  std::optional<sparse::SparseAttentionConfig> sparse_attention;
  LinearObserver* linear_observer = nullptr;  // as FluxRequest::linear_observer
};

struct WanTimings {
  double load_s = 0, text_encoding_s = 0, denoising_s = 0, decoding_s = 0;
};

struct WanResult {
  // (N, F, 3, H, W) f32 in [0, 1]: videos.select(0, i) is what io::write_mp4 takes.
  Tensor videos;
  Tensor latents;  // final latents (N, z_dim, T, h, w): f32 (UniPC), the model dtype (Euler)
  WanTimings timings;
  int64_t peak_allocated_bytes = 0;
  int64_t peak_reserved_bytes = 0;
  int64_t peak_rss_bytes = 0;
  std::optional<cache::CacheStats> cache_stats;  // with a step cache
  std::optional<sparse::SparseAttentionStats> sparse_stats;  // with sparse attention
};

class WanPipeline {
 public:
  // A diffusers WanPipeline folder (transformer/, text_encoder/ UMT5EncoderModel, tokenizer/,
  // vae/ AutoencoderKLWan, scheduler/ UniPCMultistepScheduler or FlowMatchEulerDiscreteScheduler),
  // or a WanImageToVideoPipeline
  // folder (the same plus image_encoder/ CLIPVisionModel and image_processor/). NotFound naming
  // missing components, InvalidArgument for components of another class or that do not fit
  // together, Unsupported for the Wan 2.2 variants this class does not run yet.
  static WanPipeline load(const std::filesystem::path& dir, const WanPipelineOptions& options = {});
  ~WanPipeline();
  WanPipeline(WanPipeline&&) noexcept;
  WanPipeline& operator=(WanPipeline&&) noexcept;

  void validate(const WanRequest& request) const;
  // WanPipeline.encode_prompt for one side of the guidance: prompt_clean, tokenize to
  // max_sequence_length, UMT5 with the attention mask, cut and zero-pad; each prompt's rows
  // repeated num_videos_per_prompt times. (B * n, max_sequence_length, d_model) in dtype.
  Tensor encode_prompt(const std::vector<std::string>& prompts, int64_t num_videos_per_prompt,
                       int64_t max_sequence_length);
  WanResult generate(const WanRequest& request);

  bool text_encoder_resident() const;
  bool is_image_to_video() const;
  // WanImageToVideoPipeline.encode_image: CLIP hidden_states[-2] of one image, (1, L, image_dim)
  // in vae_dtype; undefined when the transformer takes no image tokens.
  Tensor encode_image(const Tensor& image) const;
  // prepare_latents' condition for one image: cat(mask, normalised VAE latents of [image, 0, ...,
  // 0]) (1, 4 + z_dim, latent frames, H / 8, W / 8) f32.
  Tensor image_condition(const Tensor& image, int64_t height, int64_t width,
                         int64_t num_frames) const;
  int64_t latent_frames(int64_t num_frames) const;  // (F - 1) / 4 + 1
  int64_t estimate_activation_bytes(const WanRequest& request) const;

  // The transformer as loaded (quantized when the options or the folder say so) and, when it
  // is quantized, what was quantized.
  const models::WanTransformer3DModel& transformer() const;
  const std::optional<quant::QuantReport>& quant_report() const;

  struct Impl;

 private:
  explicit WanPipeline(std::unique_ptr<Impl> impl);
  Tensor encode_with_text_encoder(const std::vector<std::string>& prompts,
                                  int64_t num_videos_per_prompt, int64_t max_sequence_length);
  std::unique_ptr<Impl> impl_;
};

// WanPipeline's prompt_clean without ftfy: HTML entities unescaped twice (html.unescape; named
// entities: amp, lt, gt, quot, apos, nbsp; numeric &#NN; / &#xHH;), runs of whitespace (Python's
// \s, Unicode spaces included) collapsed to one space, the ends stripped. ftfy.fix_text's
// mojibake repair is not reproduced (diffusers applies it only when ftfy is installed).
std::string wan_prompt_clean(std::string_view text);

}  // namespace mindiesd::pipelines
