#include "mindiesd/pipelines/pipeline_util.h"

#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/text/tokens.h"

namespace mindiesd::pipelines {

namespace {
constexpr size_t kMaxPromptBytes = 1 << 16;
}  // namespace

StepReporter::StepReporter(std::function<void(const StepInfo&)> on_step, Device device,
                           int64_t total)
    : on_step_(std::move(on_step)),
      device_(device),
      total_(total),
      t0_(std::chrono::steady_clock::now()) {}

StepReporter::~StepReporter() = default;

void StepReporter::queued(int64_t step, const Tensor& latents) {
  if (!on_step_) return;
  if (device_.is_cpu()) {
    on_step_({step, total_, seconds_since(t0_), latents});
    return;
  }
  report_pending();
  Backend& be = backend_for(device_);
  if (!event_) event_ = be.new_event(device_.index);
  event_->record(be.default_stream(device_.index));
  pending_step_ = step;
  pending_latents_ = latents;
}

void StepReporter::finish() { report_pending(); }

void StepReporter::report_pending() {
  if (pending_step_ == 0) return;
  event_->synchronize();
  const int64_t step = pending_step_;
  pending_step_ = 0;
  on_step_({step, total_, seconds_since(t0_), std::move(pending_latents_)});
  pending_latents_ = Tensor();
}

DenoiseContext::DenoiseContext(const std::optional<cache::CacheConfig>& cache,
                               const std::string& teacache_model, int64_t num_steps,
                               LinearObserver* observer, const AttentionPolicy* attention,
                               const std::optional<sparse::SparseAttentionConfig>& sparse)
    : num_steps_(num_steps), observer_(observer), attention_(attention) {
  if (sparse) {
    MINDIESD_CHECK(attention == nullptr, InvalidArgument,
                   "sparse attention cannot be combined with FP8 attention (--quant-attention) "
                   "yet: use one of them");
    sparse_ = std::make_unique<sparse::SparseAttention>(*sparse);
  }
  if (!cache) return;
  cache::CacheConfig c = *cache;
  if (c.method == "teacache" && c.teacache_model.empty() && c.coefficients.empty())
    c.teacache_model = teacache_model;
  agent_ = std::make_unique<cache::CacheAgent>(std::move(c));
}

std::optional<cache::CacheStats> DenoiseContext::cache_stats() const {
  if (!agent_) return std::nullopt;
  return agent_->stats();
}

std::optional<sparse::SparseAttentionStats> DenoiseContext::sparse_stats() const {
  if (!sparse_) return std::nullopt;
  return sparse_->stats();
}

void check_sparse_request(const std::optional<sparse::SparseAttentionConfig>& sparse,
                          bool cuda_graphs) {
  if (!sparse) return;
  MINDIESD_CHECK(!cuda_graphs, InvalidArgument,
                 "sparse attention: CUDA graphs replay one fixed forward, but the block masks are "
                 "chosen on the host every step; use sparse attention without CUDA graphs");
}

void check_cache_request(const std::optional<cache::CacheConfig>& cache, int64_t num_blocks,
                         int64_t num_steps, bool cuda_graphs) {
  if (!cache) return;
  cache::validate(*cache, num_blocks, num_steps);
  MINDIESD_CHECK(!cuda_graphs, InvalidArgument, "cache ", cache->method,
                 ": CUDA graphs replay one fixed forward, but a step cache changes what runs from "
                 "step to step; use the cache without CUDA graphs");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return buf;
}

void check_prompts(const std::vector<std::string>& prompts, const char* what, bool allow_empty) {
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string& p = prompts[i];
    MINDIESD_CHECK(allow_empty || p.find_first_not_of(" \t\r\n") != std::string::npos,
                   InvalidArgument, what, " ", i, " is empty");
    MINDIESD_CHECK(p.size() <= kMaxPromptBytes, InvalidArgument, what, " ", i, " is ", p.size(),
                   " bytes long; the limit is ", kMaxPromptBytes,
                   " (only the first max_sequence_length tokens are used)");
    text::check_text(p, str_cat(what, " ", i));
  }
}

void check_request_basics(const std::vector<std::string>& prompts,
                          const std::vector<std::string>& negative_prompts, int64_t steps,
                          double guidance_scale) {
  MINDIESD_CHECK(!prompts.empty(), InvalidArgument, "no prompt given");
  check_prompts(prompts, "prompt", false);
  MINDIESD_CHECK(negative_prompts.empty() || negative_prompts.size() == prompts.size() ||
                     negative_prompts.size() == 1,
                 InvalidArgument, negative_prompts.size(), " negative prompts for ", prompts.size(),
                 " prompts (give one, or one per prompt)");
  check_prompts(negative_prompts, "negative prompt", true);
  MINDIESD_CHECK(steps > 0 && steps <= 1000, InvalidArgument, "steps must be in [1, 1000], got ",
                 steps);
  MINDIESD_CHECK(std::isfinite(guidance_scale) && guidance_scale >= 0 && guidance_scale <= 100,
                 InvalidArgument, "guidance scale must be in [0, 100], got ", guidance_scale);
}

Tensor repeat_rows(const Tensor& x, int64_t n) {
  if (n == 1) return x;
  std::vector<int64_t> idx;
  for (int64_t p = 0; p < x.size(0); ++p)
    for (int64_t k = 0; k < n; ++k) idx.push_back(p);
  return ops::index_select(x, 0, text::ids_tensor({idx}).view({static_cast<int64_t>(idx.size())}));
}

Tensor postprocess_image(const Tensor& decoded) {
  // (x / 2 + 0.5).clamp(0, 1), in the decoder's dtype as diffusers computes it, then f32.
  return ops::clamp(ops::affine(decoded, 0.5f, 0.5f), 0.0f, 1.0f).to(DType::f32);
}

}  // namespace mindiesd::pipelines
