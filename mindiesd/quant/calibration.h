// Calibration: the activation statistics static quantization and SmoothQuant need, recorded at
// the input of every selected linear layer while the float model runs the calibration prompts
// (the Context's linear observer; the denoising loop's step index keys the per-step ranges).
//
// With SmoothQuant on a static scheme the ranges must be those of the smoothed input, which
// depends on the channel maxima of the first pass: calibration then runs twice, the second pass
// with set_smoothing() (mindiesd quantize does this).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mindiesd/core/context.h"
#include "mindiesd/quant/quant_config.h"
#include "mindiesd/quant/quantize.h"

namespace mindiesd::quant {

class Calibrator final : public LinearObserver {
 public:
  explicit Calibrator(QuantConfig config) : config_(std::move(config)) {}

  void observe(const std::string& layer, const Tensor& input, const Context& ctx) override;
  // Records ranges of input * mul_scale (per layer, (K) each) from now on; channel maxima stay
  // those of the raw input.
  void set_smoothing(std::map<std::string, std::vector<float>> mul_scales);
  // What was seen, per layer. A step no call reached (a cached step) takes the range over all
  // steps. InvalidArgument when nothing was observed.
  Calibration result() const;
  // The SmoothQuant mul_scale of every observed layer of `model` at `alpha`.
  template <typename Model>
  std::map<std::string, std::vector<float>> smoothing_for(const Model& model, double alpha) const {
    std::map<std::string, std::vector<float>> out;
    model.for_each_linear([&](const layer::Linear& l) {
      auto it = seen_.find(l.name);
      if (it == seen_.end() || !l.weight.defined()) return;
      out[l.name] = smooth_mul_scale(it->second.channel_absmax, l.weight, alpha);
    });
    return out;
  }
  int64_t calls() const { return calls_; }

 private:
  QuantConfig config_;
  std::map<std::string, LayerCalibration> seen_;
  std::map<std::string, std::vector<float>> smoothing_;
  int64_t calls_ = 0;
};

// The calibration `config` needs for `model`: `run_pass(calibrator, pass, passes)` runs the
// calibration prompts once with the calibrator as the requests' linear observer. One pass, or
// two when a static scheme is smoothed (the second under the smoothing of the first's maxima);
// a smoothed dynamic scheme gets its mul_scale from the maxima of its one pass.
template <typename Model, typename RunPass>
Calibration calibrate(const Model& model, const QuantConfig& config, RunPass&& run_pass) {
  Calibrator cal(config);
  const bool smooth = config.smooth_alpha > 0,
             two_passes = smooth && needs_calibration(config.algo);
  run_pass(cal, 0, two_passes ? 2 : 1);
  if (two_passes) {
    cal.set_smoothing(cal.smoothing_for(model, config.smooth_alpha));
    run_pass(cal, 1, 2);
  }
  Calibration c = cal.result();
  if (smooth && !two_passes)
    for (auto& [name, s] : cal.smoothing_for(model, config.smooth_alpha))
      c[name].mul_scale = std::move(s);
  return c;
}

}  // namespace mindiesd::quant
