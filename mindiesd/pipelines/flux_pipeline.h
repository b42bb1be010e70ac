// FLUX.1 text-to-image, following diffusers' FluxPipeline (pipelines/flux/pipeline_flux.py):
// CLIP-L pooled embedding + T5 sequence embedding -> packed 2x2 latent patches -> flow-matching
// Euler loop with a guidance embedding (FLUX.1-dev) and, optionally, true classifier-free
// guidance with a negative prompt -> unpack -> AutoencoderKL decode.
//
// Memory: weights are mmapped and used in place when stored in the run dtype; the text encoders
// are loaded for prompt encoding and released before denoising (FLUX.1-dev: 12B transformer and
// 4.7B T5 never resident together); the VAE decodes one image at a time, tiled when large.
// Every request is validated (sizes, steps, prompts, memory) before any heavy work starts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mindiesd/core/tensor.h"
#include "mindiesd/pipelines/pipeline_util.h"

namespace mindiesd::models {
class FluxTransformer2DModel;
}

namespace mindiesd::pipelines {

struct FluxPipelineOptions {
  DType dtype = DType::bf16;  // every component runs in this dtype (diffusers' torch_dtype)
  // Keep CLIP/T5 loaded between requests (a server); otherwise they are freed after encoding.
  bool keep_text_encoders = false;
  // VAE tiling: "auto" tiles when the image exceeds 1024x1024 (bounded decode memory).
  enum class VaeTiling { off, on, automatic } vae_tiling = VaeTiling::automatic;
  // Activation memory a request may plan for; 0 = the machine's available memory.
  int64_t memory_budget_bytes = 0;
  // Where the models run: the transformer and the VAE (uploaded once at load), the scheduler's
  // loop (the latents stay there from the first step to the decode) and the text encoders
  // (uploaded when a request needs them; freed after unless keep_text_encoders). Tokenizing and
  // image post-processing stay on the host.
  Device device = Device::cpu();
  // On a CUDA device: every transformer call after the first of a request is one CUDA graph
  // launch (captured on the second call), which removes the per-kernel launch cost of the
  // denoising loop; the results are those of the eager loop. Ignored on the CPU.
  bool cuda_graphs = false;
  // Quantize the transformer's linear layers at load (quant/quant_config.h); a folder holding a
  // quantized checkpoint loads quantized without it.
  std::optional<quant::QuantConfig> quant;
  // FP8 attention in the transformer blocks (quant/attention_quant.h).
  std::optional<quant::AttentionQuantConfig> attention_quant;
};

using FluxStepInfo = StepInfo;  // latents: packed (B, tokens, C * 4)

struct FluxRequest {
  std::vector<std::string> prompts;           // one image set per prompt
  std::vector<std::string> prompts_2;         // T5 prompts; empty = same as prompts
  std::vector<std::string> negative_prompts;  // with true_cfg_scale > 1: true CFG
  double true_cfg_scale = 1.0;
  int64_t height = 1024, width = 1024;
  int64_t num_inference_steps = 28;
  double guidance_scale = 3.5;
  int64_t num_images_per_prompt = 1;
  uint64_t seed = 0;
  int64_t max_sequence_length = 512;
  std::optional<std::vector<double>> sigmas;  // custom schedule (default linspace(1, 1/N, N))
  // Packed initial latents (B * num_images_per_prompt, S_img, C * 4) instead of seeded noise
  // (diffusers' `latents` argument).
  Tensor latents;
  std::function<void(const FluxStepInfo&)> on_step;
  // Step cache (cache/cache_config.h); TeaCache uses FLUX's coefficients unless it names others.
  std::optional<cache::CacheConfig> cache;
  // Sparse attention in the transformer's self-attention (sparse/sparse_attention_policy.h).
  std::optional<sparse::SparseAttentionConfig> sparse_attention;
  // Sees every transformer linear layer's input (calibration: quant/calibration.h).
  LinearObserver* linear_observer = nullptr;
};

struct FluxTimings {
  double load_s = 0, text_encoding_s = 0, denoising_s = 0, decoding_s = 0;
};

struct FluxResult {
  Tensor images;   // (N, 3, H, W) f32, decoded and mapped to [0, 1] (diffusers' postprocess)
  Tensor latents;  // final packed latents, model dtype
  FluxTimings timings;
  int64_t peak_allocated_bytes = 0;  // engine allocator peak over the request (tensors alive)
  int64_t peak_reserved_bytes = 0;   // the same allocator's peak, its cached free blocks included
  int64_t peak_rss_bytes = 0;        // process peak resident set (includes mapped weights)
  std::optional<cache::CacheStats> cache_stats;  // with a step cache
  std::optional<sparse::SparseAttentionStats> sparse_stats;  // with sparse attention
};

struct FluxPromptEmbeds {
  Tensor prompt_embeds;  // (B * n, S_txt, joint_attention_dim)
  Tensor pooled;         // (B * n, pooled_projection_dim)
};

class FluxPipeline {
 public:
  // A diffusers FluxPipeline folder; NotFound naming a missing component, InvalidArgument
  // for a component of another class. Configs are read and checked here; weights are mapped
  // lazily.
  static FluxPipeline load(const std::filesystem::path& dir,
                           const FluxPipelineOptions& options = {});
  ~FluxPipeline();
  FluxPipeline(FluxPipeline&&) noexcept;
  FluxPipeline& operator=(FluxPipeline&&) noexcept;

  // Checks a request without running it: InvalidArgument / OutOfMemory naming the problem.
  void validate(const FluxRequest& request) const;
  // diffusers encode_prompt: T5 last hidden state and CLIP pooled output, repeated
  // num_images_per_prompt times (consecutively per prompt).
  FluxPromptEmbeds encode_prompt(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& prompts_2,
                                 int64_t num_images_per_prompt, int64_t max_sequence_length);
  FluxResult generate(const FluxRequest& request);

  // Whether CLIP / T5 are loaded now (between requests only with keep_text_encoders).
  bool text_encoders_resident() const;

  int64_t vae_scale_factor() const;
  // Image token count for a size (what dynamic shifting keys on).
  int64_t image_seq_len(int64_t height, int64_t width) const;
  // Rough peak activation bytes of a request (transformer step + one VAE decode).
  int64_t estimate_activation_bytes(const FluxRequest& request) const;

  // The transformer as loaded (quantized when the options or the folder say so) and, when it
  // is quantized, what was quantized.
  const models::FluxTransformer2DModel& transformer() const;
  const std::optional<quant::QuantReport>& quant_report() const;

  struct Impl;

 private:
  explicit FluxPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// (B, C, H, W) latents <-> (B, H/2 * W/2, C * 4) packed 2x2 patches (FluxPipeline._pack_latents
// / _unpack_latents).
Tensor pack_flux_latents(const Tensor& latents);
Tensor unpack_flux_latents(const Tensor& packed, int64_t latent_height, int64_t latent_width);
// One (3, H, W) [0, 1] image -> (H, W, 3) u8, rounded as numpy_to_pil does.
Tensor to_u8_hwc(const Tensor& image01);

}  // namespace mindiesd::pipelines
