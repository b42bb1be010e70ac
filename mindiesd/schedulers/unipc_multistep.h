// diffusers UniPCMultistepScheduler (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector
// Framework for Fast Sampling of Diffusion Models") in flow-prediction mode, the scheduler of
// Wan2.1: a multistep predictor (UniP, order up to solver_order) and, from the second step on,
// a corrector (UniC) that reuses the new model output, on a shifted flow-matching sigma schedule
// (alpha_t = 1 - sigma, sigma_t = sigma; the model predicts v and x0 = x - sigma * v).
//
// The schedule is computed in float64 as numpy does, rounded to f32 at the end, and timesteps
// are truncated to integers as diffusers' int64 cast does. The step's scalar coefficients
// (log-SNR steps, phi functions, the small linear solves) are f32 as diffusers' 0-d tensors,
// and the tensor updates run op by op with diffusers' roundings, so the results match it to
// f32 rounding.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"

namespace mindiesd::io {
struct Component;
}

namespace mindiesd::schedulers {

class UniPCMultistepScheduler {
 public:
  // Unsupported (naming the field) for what this port does not cover: schedules other than
  // use_flow_sigmas, prediction types other than flow_prediction, predict_x0 false, a solver_p,
  // thresholding.
  explicit UniPCMultistepScheduler(io::UniPCMultistepSchedulerConfig config);
  // From a pipeline's scheduler/ folder; InvalidArgument for another scheduler class.
  static UniPCMultistepScheduler load(const io::Component& component);
  const io::UniPCMultistepSchedulerConfig& config() const { return config_; }

  // diffusers set_timesteps(num_inference_steps, sigmas=..., mu=...): `sigmas`, when given,
  // replace the linspace schedule (their count is the step count); `mu` is required with
  // use_dynamic_shifting. Resets the multistep history.
  void set_timesteps(int64_t num_inference_steps,
                     std::optional<std::vector<double>> sigmas = std::nullopt,
                     std::optional<double> mu = std::nullopt);
  int64_t num_inference_steps() const { return static_cast<int64_t>(timesteps_.size()); }
  const std::vector<int64_t>& timesteps() const { return timesteps_; }  // what the model gets
  const std::vector<float>& sigmas() const { return sigmas_; }          // N + 1 entries
  int64_t step_index() const { return step_index_; }

  // The next step (diffusers' step() with the internal step counter): `model_output` is the
  // model's velocity for `sample` at timesteps()[step_index()]; returns the sample for the next
  // step, in sample's dtype. InvalidArgument past the last step or for mismatched shapes.
  Tensor step(const Tensor& model_output, const Tensor& sample);

 private:
  io::UniPCMultistepSchedulerConfig config_;
  std::vector<int64_t> timesteps_;
  std::vector<float> sigmas_;
  // Multistep state: the last solver_order converted outputs (x0 predictions, oldest first),
  // the sample before the last predictor step, and the warm-up count.
  std::vector<Tensor> model_outputs_;
  Tensor last_sample_;
  int64_t lower_order_nums_ = 0;
  int64_t this_order_ = 0;
  int64_t step_index_ = 0;
};

}  // namespace mindiesd::schedulers
