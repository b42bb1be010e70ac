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
      std::vector<float> s = smooth_scale(it->second.channel_absmax, l.weight, alpha);
      for (float& v : s) v = 1.0f / v;
      out[l.name] = std::move(s);
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

}  // namespace mindiesd::quant
