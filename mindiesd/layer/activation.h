// Activation layers by name, as the suite's get_activation_layer and diffusers' get_activation,
// and the gated feed-forward activations (GEGLU, SwiGLU) built on the core elementwise ops.
//
// Every activation computes in f32 and rounds once to the input's dtype, which is what PyTorch
// does for bf16/f16 tensors (and what diffusers' FP32SiLU asks for explicitly).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/tensor.h"

namespace mindiesd::layer {

using ActivationFn = std::function<Tensor(const Tensor&)>;

// Names (case-insensitive, as diffusers lower-cases them):
//   "gelu"                       x/2 (1 + erf(x / sqrt 2))          nn.GELU()
//   "gelu-tanh", "gelu_tanh"     tanh approximation                 nn.GELU(approximate="tanh")
//   "gelu-fast"                  the suite's fast GELU: the same tanh approximation (PyTorch
//                                has no separate fast GELU; the NPU's fast_gelu kernel
//                                approximates this same curve)
//   "gelu-quick", "quick_gelu"   x * sigmoid(1.702 x)               diffusers ApproximateGELU
//   "silu", "swish", "silu_fp32" x * sigmoid(x)                     nn.SiLU / FP32SiLU
//   "relu", "sigmoid", "tanh", "identity"
// Anything else is InvalidArgument listing these names.
ActivationFn get_activation_layer(std::string_view name);
// The accepted names, in the order above.
const std::vector<std::string>& activation_names();

// x (..., 2F) -> (..., F): hidden, gate = x.chunk(2, -1); hidden * act(gate). diffusers GEGLU
// and SwiGLU apply the activation to the SECOND half. The product is rounded to x's dtype
// after act(gate) was, as PyTorch's two ops do.
Tensor gated_activation(const Tensor& x, const ActivationFn& act);
// diffusers GEGLU after its projection (exact erf GELU unless tanh_approximation).
Tensor geglu(const Tensor& x, bool tanh_approximation = false);
// diffusers SwiGLU after its projection.
Tensor swiglu(const Tensor& x);

}  // namespace mindiesd::layer
