// quantize(model, config): a model whose selected linear layers run quantized, through the
// models' map_linears() (the same seam for every family; no model code knows about it).
//
//   auto q = quant::quantize(transformer, quant::parse_quant_spec("w8a8_dynamic"));
//
// Static schemes (W8A8, W8A8_TIMESTEP) and SmoothQuant need the activation statistics that
// calibration records (calibration.h); the others quantize from the weights alone.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mindiesd/layer/linear.h"
#include "mindiesd/quant/quant_config.h"
#include "mindiesd/quant/quant_linear.h"

namespace mindiesd::quant {

// What calibration saw at the input of one linear layer.
struct LayerCalibration {
  // Per denoising step (index = step): the smallest and largest input value, after the
  // smoothing (mul_scale) when one is set.
  std::vector<float> step_min, step_max;
  std::vector<float> channel_absmax;  // (K): max |x_k| over every step (SmoothQuant)
  std::vector<float> mul_scale;       // (K) or empty: the smoothing the ranges were taken under
};
using Calibration = std::map<std::string, LayerCalibration>;

// SmoothQuant (Xiao et al. 2023): s_k = max|X_k|^alpha / max|W_k|^(1 - alpha) per input channel
// (1 where either is 0); the activation is multiplied by mul_scale = 1 / s, the weight's column k
// by s_k.
std::vector<float> smooth_scale(const std::vector<float>& channel_absmax, const Tensor& weight,
                                double alpha);

// The activation's multiplier under that smoothing: mul_scale = 1 / s (the suite's div.mul_scale).
std::vector<float> smooth_mul_scale(const std::vector<float>& channel_absmax, const Tensor& weight,
                                    double alpha);

// The quantized form of one float layer (InvalidArgument naming the layer when the config needs
// calibration it lacks).
std::shared_ptr<const QuantizedLinear> quantize_linear(
    const layer::Linear& layer, const QuantConfig& config,
    const LayerCalibration* calibration = nullptr);

struct QuantReport {
  int64_t quantized = 0, kept_float = 0;         // layers
  int64_t float_bytes = 0, quantized_bytes = 0;  // of the quantized layers, before and after
  int64_t per_channel_fallback = 0;  // group-wise layers whose inputs the group does not divide
  std::string str() const;           // "96 of 120 linear layers W8A8_DYNAMIC, 1.21 GB -> 0.61 GB"
  std::string algo;
};

// Replaces layer.impl (and drops the float weight) when config selects it.
void quantize_in_place(layer::Linear& layer, const QuantConfig& config,
                       const Calibration* calibration, QuantReport& report);

template <typename Model>
Model quantize(const Model& model, const QuantConfig& config,
               const Calibration* calibration = nullptr, QuantReport* report = nullptr) {
  QuantReport r;
  r.algo = algo_name(config.algo);
  Model out =
      model.map_linears([&](layer::Linear& l) { quantize_in_place(l, config, calibration, r); });
  if (report) *report = r;
  return out;
}

}  // namespace mindiesd::quant
