// Quantized linear layers: what a model's layer::Linear runs once quantize() has replaced it.
//
// A quantized linear is built from its tensors under the suite's names (the layout of
// quant_model_weight_<algo>.safetensors, ../shared/specs/quant-parallel.md section 1), whether
// they were just computed from the float weight (quantize.h) or read from a file
// (quant_format.h), so both paths share one constructor and its checks:
//   W8A8_DYNAMIC   weight i8 (N, K), weight_scale (N), [bias (N)]
//   W8A8           weight i8 (N, K), input_scale (1), input_offset (1), deq_scale (N),
//                  quant_bias i32 (N) (the float bias folded in)
//   W8A8_TIMESTEP  the W8A8_DYNAMIC set, and the W8A8 set with a leading step dim:
//                  input_scale / input_offset (T, 1), deq_scale / quant_bias (T, N)
//   W8A16, W4A16   weight i8 (N, K) (int4 values in [-8, 7] for W4A16), weight_scale (N) or
//                  (N, K / group), [bias (N)]
//   FP8_DYNAMIC    weight f8_e4m3 (N, K), weight_scale (N), [bias (N)]
// plus, for SmoothQuant-calibrated activation schemes, mul_scale (K) multiplying the input.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "mindiesd/layer/linear.h"
#include "mindiesd/quant/quant_config.h"

namespace mindiesd::quant {

using TensorMap = std::map<std::string, Tensor>;

class QuantizedLinear : public layer::LinearImpl {
 public:
  QuantAlgo algo() const { return algo_; }
  // The tensors by the suite's names (without the layer prefix); a W4A16 weight is held packed
  // (i4) and saved as int8 values.
  const TensorMap& tensors() const { return tensors_; }
  // Bytes held by the tensors.
  int64_t bytes() const;

  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  Tensor forward(const Tensor& x, std::optional<UnaryKind> activation, DType out_dtype,
                 const Context& ctx) const override;
  std::shared_ptr<const layer::LinearImpl> to(Device device) const override;
  std::string describe() const override;

  // Checks every tensor `algo` needs (InvalidArgument naming `layer` and the tensor: missing,
  // wrong dtype or shape, non-finite or non-positive scales) and builds the layer. `policy` is
  // W8A8_TIMESTEP's (empty: every calibrated step static).
  static std::shared_ptr<const QuantizedLinear> from_tensors(
      QuantAlgo algo, const std::string& layer, TensorMap tensors,
      const TimestepPolicyConfig& policy = {});

 private:
  QuantizedLinear() = default;
  Tensor forward_dynamic(const Tensor& x, std::optional<UnaryKind> act, DType out) const;
  Tensor forward_static(const Tensor& x, int64_t step, std::optional<UnaryKind> act,
                        DType out) const;
  Tensor forward_weight_only(const Tensor& x, std::optional<UnaryKind> act, DType out) const;
  const Tensor& t(const char* name) const;  // tensors_.at, or an undefined tensor

  QuantAlgo algo_ = QuantAlgo::W8A8_DYNAMIC;
  std::string layer_;
  TensorMap tensors_;
  int64_t n_ = 0, k_ = 0, steps_ = 0;              // steps_: calibrated steps (W8A8: 1)
  std::vector<float> input_scale_, input_offset_;  // per calibrated step
  TimestepPolicyConfig policy_;
};

}  // namespace mindiesd::quant
