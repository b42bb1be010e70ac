#include "mindiesd/schedulers/flow_match_euler.h"

#include <cmath>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/diffusers.h"

namespace mindiesd::schedulers {

double flux_calculate_shift(int64_t image_seq_len, int64_t base_seq_len, int64_t max_seq_len,
                            double base_shift, double max_shift) {
  MINDIESD_CHECK(max_seq_len != base_seq_len, InvalidArgument,
                 "calculate_shift: max_image_seq_len equals base_image_seq_len (", base_seq_len,
                 ")");
  const double m = (max_shift - base_shift) / static_cast<double>(max_seq_len - base_seq_len);
  const double b = base_shift - m * static_cast<double>(base_seq_len);
  return static_cast<double>(image_seq_len) * m + b;
}

FlowMatchEulerDiscreteScheduler::FlowMatchEulerDiscreteScheduler(
    io::FlowMatchEulerDiscreteSchedulerConfig config)
    : config_(std::move(config)) {
  // __init__: sigmas = linspace(1, T, T)[::-1] / T in float32, statically shifted unless the
  // shift is dynamic; only the two ends are kept (they bound the default schedule).
  const auto n = static_cast<float>(config_.num_train_timesteps);
  auto shifted = [&](float s) {
    if (config_.use_dynamic_shifting) return s;
    const auto shift = static_cast<float>(config_.shift);
    return shift * s / (1.0f + (shift - 1.0f) * s);
  };
  sigma_max_ = shifted(n / n);
  sigma_min_ = shifted(1.0f / n);
}

FlowMatchEulerDiscreteScheduler FlowMatchEulerDiscreteScheduler::load(
    const io::Component& component) {
  io::ConfigReader reader = component.config_reader();
  reader.expect_class(io::FlowMatchEulerDiscreteSchedulerConfig::kClassName);
  return FlowMatchEulerDiscreteScheduler(io::FlowMatchEulerDiscreteSchedulerConfig::read(reader));
}

namespace {

// The shifting and terminal stretch of set_timesteps, in the precision numpy uses there:
// float32 for user-given sigmas (np.float32 array with Python-float scalars), float64 for the
// default linspace schedule.
template <typename T>
std::vector<T> shift_schedule(std::vector<T> s, const io::FlowMatchEulerDiscreteSchedulerConfig& c,
                              std::optional<double> mu) {
  if (c.use_dynamic_shifting) {
    const bool exponential = c.time_shift_type == "exponential";
    const T m = exponential ? static_cast<T>(std::exp(*mu)) : static_cast<T>(*mu);
    for (T& t : s) t = m / (m + (T(1) / t - T(1)));  // (1/t - 1) ** sigma with sigma = 1.0
  } else {
    const auto shift = static_cast<T>(c.shift);
    for (T& t : s) t = shift * t / (T(1) + (shift - T(1)) * t);
  }
  if (c.shift_terminal) {
    // stretch_shift_to_terminal: rescale 1 - t so the last sigma lands on shift_terminal.
    const T scale = (T(1) - s.back()) / (T(1) - static_cast<T>(*c.shift_terminal));
    for (T& t : s) t = T(1) - (T(1) - t) / scale;
  }
  return s;
}

}  // namespace

void FlowMatchEulerDiscreteScheduler::set_timesteps(int64_t num_inference_steps,
                                                    std::optional<std::vector<double>> sigmas,
                                                    std::optional<double> mu) {
  MINDIESD_CHECK(num_inference_steps > 0, InvalidArgument,
                 "FlowMatchEulerDiscreteScheduler: num_inference_steps must be positive, got ",
                 num_inference_steps);
  MINDIESD_CHECK(!config_.use_dynamic_shifting || mu.has_value(), InvalidArgument,
                 "FlowMatchEulerDiscreteScheduler: mu must be given when use_dynamic_shifting "
                 "is set");
  MINDIESD_CHECK(
      !config_.use_karras_sigmas && !config_.use_exponential_sigmas && !config_.use_beta_sigmas,
      Unsupported,
      "FlowMatchEulerDiscreteScheduler: karras / exponential / beta sigma schedules "
      "are not supported");
  MINDIESD_CHECK(!config_.stochastic_sampling, Unsupported,
                 "FlowMatchEulerDiscreteScheduler: stochastic_sampling is not supported");
  const auto n = static_cast<size_t>(num_inference_steps);
  std::vector<float> s32(n);
  if (sigmas) {
    MINDIESD_CHECK(sigmas->size() == n, InvalidArgument,
                   "FlowMatchEulerDiscreteScheduler: ", sigmas->size(),
                   " sigmas given for num_inference_steps = ", num_inference_steps);
    for (size_t i = 0; i < n; ++i) {
      MINDIESD_CHECK(std::isfinite((*sigmas)[i]) && (*sigmas)[i] > 0 && (*sigmas)[i] <= 1,
                     InvalidArgument, "FlowMatchEulerDiscreteScheduler: sigma ", i, " is ",
                     (*sigmas)[i], ", must lie in (0, 1]");
      s32[i] = static_cast<float>((*sigmas)[i]);
    }
    s32 = shift_schedule(std::move(s32), config_, mu);
  } else {
    // np.linspace(sigma_max * T, sigma_min * T, n) / T in float64.
    const double T = static_cast<double>(config_.num_train_timesteps);
    const double a = static_cast<double>(sigma_max_) * T, b = static_cast<double>(sigma_min_) * T;
    std::vector<double> s64(n);
    const double delta = n > 1 ? (b - a) / static_cast<double>(n - 1) : 0.0;
    for (size_t i = 0; i < n; ++i) s64[i] = (a + static_cast<double>(i) * delta) / T;
    if (n > 1) s64[n - 1] = b / T;  // numpy pins the endpoint
    s64 = shift_schedule(std::move(s64), config_, mu);
    for (size_t i = 0; i < n; ++i) s32[i] = static_cast<float>(s64[i]);
  }
  const auto T = static_cast<float>(config_.num_train_timesteps);
  timesteps_.resize(n);
  if (config_.invert_sigmas) {
    for (float& s : s32) s = 1.0f - s;
  }
  for (size_t i = 0; i < n; ++i) timesteps_[i] = s32[i] * T;
  sigmas_ = s32;
  sigmas_.push_back(config_.invert_sigmas ? 1.0f : 0.0f);
}

Tensor FlowMatchEulerDiscreteScheduler::step(const Tensor& model_output, int64_t step,
                                             const Tensor& sample) const {
  MINDIESD_CHECK(step >= 0 && step < num_inference_steps(), InvalidArgument,
                 "FlowMatchEulerDiscreteScheduler::step: step ", step, " outside [0, ",
                 num_inference_steps(), ") (call set_timesteps first)");
  MINDIESD_CHECK(model_output.shape() == sample.shape(), InvalidArgument,
                 "FlowMatchEulerDiscreteScheduler::step: model_output ", model_output.shape().str(),
                 " and sample ", sample.shape().str(), " differ");
  const float dt = sigmas_[static_cast<size_t>(step) + 1] - sigmas_[static_cast<size_t>(step)];
  // dt * v rounds to the model's dtype (PyTorch keeps the 0-dim f32 dt unrounded and rounds the
  // product); sample + product is f32; the result goes back to the model's dtype.
  const Tensor update = ops::affine(model_output, dt, 0.0f);
  const Tensor next = ops::add(sample.to(DType::f32), update);
  return next.dtype() == model_output.dtype() ? next : next.to(model_output.dtype());
}

}  // namespace mindiesd::schedulers
