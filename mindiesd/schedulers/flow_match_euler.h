// diffusers FlowMatchEulerDiscreteScheduler (rectified flow, Esser et al. 2024, "Scaling
// Rectified Flow Transformers"): the Euler step x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v for a
// velocity-predicting model, on a sigma schedule that is shifted statically (`shift`) or, for
// FLUX, per resolution (use_dynamic_shifting with mu from the image sequence length).
//
// The schedule is computed in the same precision diffusers computes it (float32 numpy when
// sigmas are given — the FLUX pipeline's case — float64 otherwise, rounded to float32 at the
// end), so timesteps and sigmas match diffusers' bit for bit.
#pragma once

#include <optional>
#include <vector>

#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"

namespace mindiesd::io {
struct Component;
}

namespace mindiesd::schedulers {

// diffusers' calculate_shift (pipelines/flux): mu grows linearly with the image token count,
// from base_shift at base_seq_len to max_shift at max_seq_len.
double flux_calculate_shift(int64_t image_seq_len, int64_t base_seq_len = 256,
                            int64_t max_seq_len = 4096, double base_shift = 0.5,
                            double max_shift = 1.15);

class FlowMatchEulerDiscreteScheduler {
 public:
  explicit FlowMatchEulerDiscreteScheduler(io::FlowMatchEulerDiscreteSchedulerConfig config);
  // From a pipeline's scheduler/ folder; InvalidArgument for another scheduler class.
  static FlowMatchEulerDiscreteScheduler load(const io::Component& component);

  const io::FlowMatchEulerDiscreteSchedulerConfig& config() const { return config_; }

  // diffusers set_timesteps(num_inference_steps, sigmas=..., mu=...). `sigmas`, when given,
  // must have num_inference_steps entries; `mu` is required when use_dynamic_shifting is on.
  // Karras / exponential / beta schedules and stochastic sampling are Unsupported.
  void set_timesteps(int64_t num_inference_steps,
                     std::optional<std::vector<double>> sigmas = std::nullopt,
                     std::optional<double> mu = std::nullopt);

  int64_t num_inference_steps() const { return static_cast<int64_t>(timesteps_.size()); }
  const std::vector<float>& timesteps() const { return timesteps_; }  // N entries, t in [0, 1000]
  const std::vector<float>& sigmas() const { return sigmas_; }        // N + 1, ends with 0 (or 1)

  // One Euler step at index `step` (0-based): sample + (sigma[step+1] - sigma[step]) * v,
  // computed as diffusers does — the product in model_output's dtype with an f32 scalar, the
  // sum in f32 — and returned in model_output's dtype.
  Tensor step(const Tensor& model_output, int64_t step, const Tensor& sample) const;

 private:
  io::FlowMatchEulerDiscreteSchedulerConfig config_;
  float sigma_min_ = 0, sigma_max_ = 1;
  std::vector<float> timesteps_, sigmas_;
};

}  // namespace mindiesd::schedulers
