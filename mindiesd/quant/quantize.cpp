#include "mindiesd/quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/quant/quant_ops.h"

namespace mindiesd::quant {

namespace {

bool quantizes_activations(QuantAlgo a) { return a != QuantAlgo::W8A16 && a != QuantAlgo::W4A16; }

Tensor host_vector(const std::vector<float>& v, Shape shape) {
  return Tensor::from_vector(v, shape);
}

// Per-row sums of int8 codes (N, K) on the host.
std::vector<int64_t> row_sums(const Tensor& codes) {
  const Tensor h = codes.to(Device::cpu()).contiguous();
  const int64_t n = h.size(0), k = h.size(1);
  std::vector<int64_t> s(n, 0);
  const int8_t* v = h.data<int8_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) s[i] += v[i * k + j];
  return s;
}

// The static set of one calibrated range [lo, hi] (widened to hold 0, so that zero padding
// quantizes exactly): scale = (hi - lo) / 255 and the zero point that maps lo to -128.
void static_params(float lo, float hi, float* scale, float* offset) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  float s = (hi - lo) / 255.0f;
  if (!(s > 0) || !std::isfinite(s)) s = 1.0f;  // an all-zero (or unseen) input
  *scale = s;
  *offset = std::clamp(std::nearbyint(-128.0f - lo / s), -128.0f, 127.0f);
}

}  // namespace

std::vector<float> smooth_scale(const std::vector<float>& xmax, const Tensor& weight,
                                double alpha) {
  MINDIESD_CHECK(alpha > 0 && alpha <= 1, InvalidArgument, "SmoothQuant: alpha ", alpha,
                 " must be in (0, 1]");
  const Tensor w = weight.to(Device::cpu()).to(DType::f32).contiguous();
  const int64_t n = w.size(0), k = w.size(1);
  MINDIESD_CHECK(static_cast<int64_t>(xmax.size()) == k, InvalidArgument,
                 "SmoothQuant: ", xmax.size(), " activation channels for a weight of ", k,
                 " inputs");
  std::vector<float> wmax(k, 0.0f), s(k, 1.0f);
  const float* v = w.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) wmax[j] = std::max(wmax[j], std::fabs(v[i * k + j]));
  for (int64_t j = 0; j < k; ++j)
    if (xmax[j] > 0 && wmax[j] > 0)
      s[j] = static_cast<float>(std::pow(double(xmax[j]), alpha) /
                                std::pow(double(wmax[j]), 1.0 - alpha));
  return s;
}

std::vector<float> smooth_mul_scale(const std::vector<float>& xmax, const Tensor& weight,
                                    double alpha) {
  std::vector<float> m = smooth_scale(xmax, weight, alpha);
  for (float& v : m) v = 1.0f / v;
  return m;
}

std::shared_ptr<const QuantizedLinear> quantize_linear(const layer::Linear& l, const QuantConfig& c,
                                                       const LayerCalibration* calib) {
  MINDIESD_CHECK(!l.impl, InvalidArgument, "quantize: layer ", l.name, " is already quantized (",
                 l.impl ? l.impl->describe() : "", ")");
  MINDIESD_CHECK(l.weight.defined() && l.weight.dim() == 2, InvalidArgument, "quantize: layer ",
                 l.name, " has no float weight");
  MINDIESD_CHECK(!needs_calibration(c.algo) || calib, InvalidArgument, algo_name(c.algo),
                 ": layer ", l.name,
                 " has no calibration (static activation ranges come from `mindiesd quantize`; "
                 "use w8a8_dynamic to quantize without calibration)");
  const Device device = l.weight.device();
  Tensor w = l.weight.to(Device::cpu()).to(DType::f32).contiguous();
  const int64_t n = w.size(0), k = w.size(1);
  TensorMap t;
  if (l.bias.defined()) t["bias"] = l.bias.to(Device::cpu()).to(DType::f32).contiguous();

  // SmoothQuant: the activation scaled by mul_scale = 1 / s, the weight's columns by s.
  if (quantizes_activations(c.algo) && calib &&
      (!calib->mul_scale.empty() || (c.smooth_alpha > 0 && !calib->channel_absmax.empty()))) {
    std::vector<float> mul = calib->mul_scale;
    MINDIESD_CHECK(!mul.empty() || !needs_calibration(c.algo), InvalidArgument, algo_name(c.algo),
                   ": layer ", l.name,
                   ": smoothing a static scheme needs its ranges recorded under the smoothing "
                   "(calibration's second pass); this calibration has none");
    if (mul.empty()) {
      mul = smooth_mul_scale(calib->channel_absmax, w, c.smooth_alpha);
    }
    MINDIESD_CHECK(static_cast<int64_t>(mul.size()) == k, InvalidArgument, "quantize: layer ",
                   l.name, ": smoothing of ", mul.size(), " channels for ", k, " inputs");
    std::vector<float> inv(k);
    for (int64_t j = 0; j < k; ++j) inv[j] = 1.0f / mul[j];
    const Tensor m = host_vector(mul, {k});
    w = ops::mul(w, host_vector(inv, {1, k}));
    t["mul_scale"] = m;
  }

  switch (c.algo) {
    case QuantAlgo::W8A16:
    case QuantAlgo::W4A16: {
      // A group that does not divide the layer's inputs falls back to one scale per channel
      // (counted in the report).
      const int64_t group = c.group_size > 0 && k % c.group_size == 0 ? c.group_size : 0;
      const QuantizedRows q =
          quantize_weight(w, c.algo == QuantAlgo::W4A16 ? DType::i4 : DType::i8, group);
      t["weight"] = c.algo == QuantAlgo::W4A16 ? q.codes.to(DType::i8) : q.codes;
      t["weight_scale"] = q.scale.size(1) == 1 ? q.scale.view({n}) : q.scale;
      break;
    }
    case QuantAlgo::FP8_DYNAMIC: {
      const QuantizedRows q = quantize_weight(w, DType::f8_e4m3);
      t["weight"] = q.codes;
      t["weight_scale"] = q.scale.view({n});
      break;
    }
    case QuantAlgo::W8A8:
    case QuantAlgo::W8A8_DYNAMIC:
    case QuantAlgo::W8A8_TIMESTEP: {
      const QuantizedRows q = quantize_weight(w, DType::i8);
      t["weight"] = q.codes;
      if (c.algo != QuantAlgo::W8A8) t["weight_scale"] = q.scale.view({n});
      if (c.algo == QuantAlgo::W8A8_DYNAMIC) break;
      MINDIESD_CHECK(!calib->step_min.empty() && calib->step_min.size() == calib->step_max.size(),
                     InvalidArgument, algo_name(c.algo), ": layer ", l.name,
                     " has no calibrated ranges");
      // W8A8: one range over every step; W8A8_TIMESTEP: one per step.
      std::vector<std::pair<float, float>> ranges;
      if (c.algo == QuantAlgo::W8A8) {
        ranges.push_back({*std::min_element(calib->step_min.begin(), calib->step_min.end()),
                          *std::max_element(calib->step_max.begin(), calib->step_max.end())});
      } else {
        for (size_t s = 0; s < calib->step_min.size(); ++s)
          ranges.push_back({calib->step_min[s], calib->step_max[s]});
      }
      const int64_t steps = static_cast<int64_t>(ranges.size());
      const std::vector<float> ws = q.scale.to_vector();
      const std::vector<int64_t> sums = row_sums(q.codes);
      const std::vector<float> bias =
          l.bias.defined() ? t["bias"].to_vector() : std::vector<float>(n, 0.0f);
      std::vector<float> in_scale(steps), in_offset(steps), deq(steps * n);
      Tensor qb = Tensor::empty({steps, n}, DType::i32);
      int32_t* qbv = qb.data<int32_t>();
      for (int64_t s = 0; s < steps; ++s) {
        static_params(ranges[s].first, ranges[s].second, &in_scale[s], &in_offset[s]);
        for (int64_t i = 0; i < n; ++i) {
          const float d = in_scale[s] * ws[i];
          deq[s * n + i] = d;
          const double b =
              std::nearbyint(double(bias[i]) / double(d)) - double(in_offset[s]) * double(sums[i]);
          MINDIESD_CHECK(std::fabs(b) < 2147483647.0, InvalidArgument, algo_name(c.algo),
                         ": layer ", l.name, ": quant_bias of channel ", i,
                         " overflows int32 (bias ", bias[i], ", deq_scale ", d, ")");
          qbv[s * n + i] = static_cast<int32_t>(b);
        }
      }
      const bool ts = c.algo == QuantAlgo::W8A8_TIMESTEP;
      t["input_scale"] = host_vector(in_scale, ts ? Shape{steps, 1} : Shape{1});
      t["input_offset"] = host_vector(in_offset, ts ? Shape{steps, 1} : Shape{1});
      t["deq_scale"] = host_vector(deq, ts ? Shape{steps, n} : Shape{n});
      t["quant_bias"] = ts ? qb : qb.view({n});
      if (!ts) t.erase("bias");  // folded into quant_bias
      break;
    }
  }
  for (auto& [name, v] : t) v = v.to(device);
  return QuantizedLinear::from_tensors(c.algo, l.name, std::move(t), c.timestep_policy);
}

void quantize_in_place(layer::Linear& l, const QuantConfig& c, const Calibration* calib,
                       QuantReport& r) {
  if (!selects(c, l.name) || l.impl) {
    ++r.kept_float;
    return;
  }
  const LayerCalibration* lc = nullptr;
  if (calib) {
    auto it = calib->find(l.name);
    if (it != calib->end()) lc = &it->second;
  }
  auto q = quantize_linear(l, c, lc);
  r.float_bytes += dtype_bytes(l.weight.dtype(), l.weight.numel()) +
                   (l.bias.defined() ? dtype_bytes(l.bias.dtype(), l.bias.numel()) : 0);
  r.quantized_bytes += q->bytes();
  ++r.quantized;
  if (c.group_size > 0 && l.weight.size(1) % c.group_size != 0) ++r.per_channel_fallback;
  l.impl = std::move(q);
  l.weight = Tensor();
  l.bias = Tensor();
}

std::string QuantReport::str() const {
  auto mb = [](int64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), b < 10'000'000 ? "%.2f MB" : "%.0f MB", b / 1e6);
    return std::string(buf);
  };
  const std::string head =
      str_cat(quantized, " of ", quantized + kept_float, " linear layers ", algo, ", ");
  // A folder loaded quantized has no float size to compare with.
  return float_bytes > 0 ? head + mb(float_bytes) + " -> " + mb(quantized_bytes)
                         : head + mb(quantized_bytes);
}

}  // namespace mindiesd::quant
