// What the pipelines share: the per-step progress record, request-time checks and the memory
// figures they report.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mindiesd/cache/cache_agent.h"
#include "mindiesd/core/context.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/quant/attention_quant.h"
#include "mindiesd/quant/quant_format.h"
#include "mindiesd/quant/quantize.h"
#include "mindiesd/sparse/sparse_attention_policy.h"

namespace mindiesd {
class Event;
}

namespace mindiesd::pipelines {

// Passed to a request's on_step after every denoising step.
struct StepInfo {
  int64_t step = 0;  // 1-based, after the step finished
  int64_t total = 0;
  double elapsed_s = 0;  // since the denoising loop started
  Tensor latents;        // latents after the step, on the transformer's device (previews, tests)
};

// Calls a request's on_step for each denoising step without making the host wait for the device
// after every step. On a device with its own queue (CUDA) a step is reported once the host has
// queued the next one: the report waits for the step's event, so its time is when the device
// finished it, and the device has the next step queued meanwhile. On the CPU a step is reported
// as soon as it is done.
class StepReporter {
 public:
  StepReporter(std::function<void(const StepInfo&)> on_step, Device device, int64_t total);
  ~StepReporter();
  StepReporter(const StepReporter&) = delete;
  StepReporter& operator=(const StepReporter&) = delete;
  void queued(int64_t step, const Tensor& latents);  // step is 1-based
  void finish();                                     // reports the last step still pending

 private:
  void report_pending();

  std::function<void(const StepInfo&)> on_step_;
  Device device_;
  int64_t total_;
  std::chrono::steady_clock::time_point t0_;
  std::unique_ptr<Event> event_;
  int64_t pending_step_ = 0;  // 0: none
  Tensor pending_latents_;
};

// The per-call Context of one generation's transformer calls: the step, the CFG branch, the
// request's step cache (a fresh CacheAgent per generation) and sparse attention (a fresh policy
// per generation: its reused masks belong to this generation), if any.
class DenoiseContext {
 public:
  // `teacache_model`: the coefficient table the pipeline picks for its model when the request's
  // teacache config names none.
  // `attention`: the pipeline's attention policy (FP8 attention), which `sparse` may not join.
  DenoiseContext(const std::optional<cache::CacheConfig>& cache, const std::string& teacache_model,
                 int64_t num_steps, LinearObserver* observer = nullptr,
                 const AttentionPolicy* attention = nullptr,
                 const std::optional<sparse::SparseAttentionConfig>& sparse = std::nullopt);
  Context at(int64_t step, CfgBranch branch) const {
    Context c;
    c.step = step;
    c.num_steps = num_steps_;
    c.branch = branch;
    c.cache = agent_.get();
    c.linear_observer = observer_;
    c.attention = sparse_ ? sparse_.get() : attention_;
    return c;
  }
  std::optional<cache::CacheStats> cache_stats() const;
  std::optional<sparse::SparseAttentionStats> sparse_stats() const;

 private:
  std::unique_ptr<cache::CacheAgent> agent_;
  std::unique_ptr<sparse::SparseAttention> sparse_;
  int64_t num_steps_;
  LinearObserver* observer_;
  const AttentionPolicy* attention_;
};

// A pipeline's transformer as its options ask: a folder holding a quantized checkpoint
// (quant/quant_format.h) loads as it is; a float one is quantized on the fly with `quant` (its
// report kept in `report`); then it moves to `device`. InvalidArgument when `quant` is asked of
// a folder that is already quantized.
template <typename Model, typename Config>
Model load_transformer(const io::Component& component, DType dtype, Device device,
                       const std::optional<quant::QuantConfig>& quant,
                       std::optional<quant::QuantReport>* report) {
  Model m = quant::load_transformer<Model, Config>(component, dtype);
  const auto held = quant::quantized_layers(m);
  if (!held.empty()) {
    MINDIESD_CHECK(!quant, InvalidArgument, component.dir.string(),
                   " holds a quantized checkpoint (", algo_name(held.begin()->second->algo()),
                   "); on-the-fly quantization applies to float models only");
    quant::QuantReport r;
    r.algo = str_cat(algo_name(held.begin()->second->algo()), " (from the folder)");
    m.for_each_linear([&](const layer::Linear& l) { ++(l.impl ? r.quantized : r.kept_float); });
    for (const auto& [name, q] : held) r.quantized_bytes += q->bytes();
    *report = r;
  } else if (quant) {
    quant::QuantReport r;
    m = quant::quantize(m, *quant, nullptr, &r);
    *report = r;
  }
  return m.to(device);
}

// InvalidArgument when a request's cache does not fit the model (`num_blocks` per forward) and
// its steps, or asks for CUDA graphs too.
// A request's sparse attention: a sparse start_step past the last step is allowed (all dense);
// CUDA graphs are refused (the masks are chosen on the host from each step's scores).
void check_sparse_request(const std::optional<sparse::SparseAttentionConfig>& sparse,
                          bool cuda_graphs);
void check_cache_request(const std::optional<cache::CacheConfig>& cache, int64_t num_blocks,
                         int64_t num_steps, bool cuda_graphs);

double seconds_since(std::chrono::steady_clock::time_point t0);
// MemAvailable from /proc/meminfo (bytes), or 0 when unknown.
int64_t available_memory_bytes();
// The process's peak resident set (bytes), mapped weights included.
int64_t peak_rss_bytes();
std::string gib(int64_t bytes);  // "1.25 GiB"

// InvalidArgument naming prompt i when it is empty (unless allowed), longer than 64 KiB or not
// valid UTF-8.
void check_prompts(const std::vector<std::string>& prompts, const char* what, bool allow_empty);

// The checks every text-conditioned request shares: at least one prompt, negative prompts none,
// one or one per prompt, steps in [1, 1000], a finite guidance scale in [0, 100].
// InvalidArgument naming the problem.
void check_request_basics(const std::vector<std::string>& prompts,
                          const std::vector<std::string>& negative_prompts, int64_t steps,
                          double guidance_scale);

// Each row of x (one per prompt) repeated n times in a row, as diffusers'
// `embeds.repeat(1, n, 1).view(B * n, ...)` orders them; x itself when n is 1.
Tensor repeat_rows(const Tensor& x, int64_t n);

// (N, C, ...) decoder output in [-1, 1] -> f32 in [0, 1]: (x / 2 + 0.5).clamp(0, 1) in the
// decoder's dtype, as diffusers' VaeImageProcessor / VideoProcessor postprocess computes it.
Tensor postprocess_image(const Tensor& decoded);

}  // namespace mindiesd::pipelines
