// Linear layers with fused epilogues, the shape every DiT block uses:
//   y = act(x @ weight^T + bias)            one GEMM; act runs in its epilogue (oneDNN post-op)
//   y = residual + gate * act(...)          plus one fused elementwise pass (ops::fma)
// and the gated feed-forwards GEGLU / SwiGLU (diffusers GEGLU, SwiGLU in attention.py).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "mindiesd/core/context.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::layer {

struct LinearEpilogue {
  std::optional<UnaryKind> activation;  // gelu, gelu_tanh, silu, relu
  Tensor gate;      // broadcastable to the output, e.g. (B, 1, N) from adaLN
  Tensor residual;  // broadcastable to the output
};

// x (..., in) @ weight (out, in)^T + bias (out), then the epilogue. Output dtype = x's.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const LinearEpilogue& epilogue = {});

// What runs in place of a linear layer's float GEMM: a quantized linear (mindiesd/quant) holds
// its own codes, scales and bias. The seam through which quantization reaches every family.
class LinearImpl {
 public:
  virtual ~LinearImpl() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  // y (rows, out) = act(x (rows, in) @ W^T + b), in `out_dtype`.
  virtual Tensor forward(const Tensor& x, std::optional<UnaryKind> activation, DType out_dtype,
                         const Context& ctx) const = 0;
  // The same layer with its tensors on `device`.
  virtual std::shared_ptr<const LinearImpl> to(Device device) const = 0;
  // "W8A8_DYNAMIC", "W4A16 group 64", ...: for reports.
  virtual std::string describe() const = 0;
};

// A linear layer as a model binds it: its diffusers module name ("transformer_blocks.0.attn.to_q"),
// the float weight (out, in) and bias, and, once quantized, the impl that runs instead (the float
// weight is then dropped).
struct Linear {
  std::string name;
  Tensor weight, bias;
  std::shared_ptr<const LinearImpl> impl;

  bool defined() const { return weight.defined() || impl != nullptr; }
  int64_t in_features() const { return impl ? impl->in_features() : weight.size(1); }
  int64_t out_features() const { return impl ? impl->out_features() : weight.size(0); }
  // The layer on `device` (weights copied there).
  Linear to(Device device) const;
};

// The layer on x, as linear() above; runs the impl when set, and shows its input to the
// context's observer (calibration) first.
Tensor linear(const Tensor& x, const Linear& layer, const Context& ctx,
              const LinearEpilogue& epilogue = {});

// Gated feed-forward input projection: proj = linear(x, weight, bias) split in halves
// (hidden, gate) along the last dim; returns hidden * act(gate) — diffusers GEGLU uses
// gelu, SwiGLU silu.
Tensor gated_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, UnaryKind act);

}  // namespace mindiesd::layer
