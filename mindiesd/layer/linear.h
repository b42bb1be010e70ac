// Linear layers with fused epilogues, the shape every DiT block uses:
//   y = act(x @ weight^T + bias)            one GEMM; act runs in its epilogue (oneDNN post-op)
//   y = residual + gate * act(...)          plus one fused elementwise pass (ops::fma)
// and the gated feed-forwards GEGLU / SwiGLU (diffusers GEGLU, SwiGLU in attention.py).
#pragma once

#include <optional>

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

// Gated feed-forward input projection: proj = linear(x, weight, bias) split in halves
// (hidden, gate) along the last dim; returns hidden * act(gate) — diffusers GEGLU uses
// gelu, SwiGLU silu.
Tensor gated_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, UnaryKind act);

}  // namespace mindiesd::layer
