#include "mindiesd/quant/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mindiesd/core/error.h"

namespace mindiesd::quant {

void Calibrator::observe(const std::string& layer, const Tensor& input, const Context& ctx) {
  if (!selects(config_, layer) || input.numel() == 0) return;
  ++calls_;
  const int64_t k = input.size(-1);
  const Tensor x = input.to(Device::cpu()).to(DType::f32).contiguous();
  const float* v = x.data<float>();
  const int64_t rows = x.numel() / k;
  LayerCalibration& c = seen_[layer];
  if (c.channel_absmax.empty()) c.channel_absmax.assign(k, 0.0f);
  MINDIESD_CHECK(static_cast<int64_t>(c.channel_absmax.size()) == k, InvalidArgument,
                 "calibration: layer ", layer, " saw inputs of ", c.channel_absmax.size(), " and ",
                 k, " features");
  const std::vector<float>* mul = nullptr;
  if (auto it = smoothing_.find(layer); it != smoothing_.end()) {
    mul = &it->second;
    c.mul_scale = it->second;
  }
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const float a = v[r * k + j];
      c.channel_absmax[j] = std::max(c.channel_absmax[j], std::fabs(a));
      const float s = mul ? a * (*mul)[j] : a;
      lo = std::min(lo, s);
      hi = std::max(hi, s);
    }
  const size_t step = static_cast<size_t>(std::max<int64_t>(ctx.step, 0));
  if (c.step_min.size() <= step) {
    c.step_min.resize(step + 1, std::numeric_limits<float>::infinity());
    c.step_max.resize(step + 1, -std::numeric_limits<float>::infinity());
  }
  c.step_min[step] = std::min(c.step_min[step], lo);
  c.step_max[step] = std::max(c.step_max[step], hi);
}

void Calibrator::set_smoothing(std::map<std::string, std::vector<float>> mul_scales) {
  smoothing_ = std::move(mul_scales);
  // The ranges seen so far were of the raw input.
  for (auto& [name, c] : seen_) {
    c.step_min.clear();
    c.step_max.clear();
  }
}

Calibration Calibrator::result() const {
  MINDIESD_CHECK(
      !seen_.empty(), InvalidArgument,
      "calibration: no quantized layer saw an input (are the selected layers in the model?)");
  Calibration out = seen_;
  for (auto& [name, c] : out) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (size_t s = 0; s < c.step_min.size(); ++s)
      if (c.step_min[s] <= c.step_max[s]) {
        lo = std::min(lo, c.step_min[s]);
        hi = std::max(hi, c.step_max[s]);
      }
    for (size_t s = 0; s < c.step_min.size(); ++s)
      if (!(c.step_min[s] <= c.step_max[s])) {
        c.step_min[s] = lo;
        c.step_max[s] = hi;
      }
  }
  return out;
}

}  // namespace mindiesd::quant
