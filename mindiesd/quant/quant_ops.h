// Front ends of the quantization ops (op_params.h: quantize, quant_matmul, dequantize): argument
// checks, output allocation, dispatch.
#pragma once

#include <optional>

#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::quant {

// Per-row symmetric codes of x (M, K): codes (M, K) of `code` (i8, f8_e4m3, or i4 with K
// even) and the row scales (M) f32, max |x * smooth| / qmax. `smooth` (K), when defined,
// multiplies x first (SmoothQuant).
struct QuantizedRows {
  Tensor codes, scale;
};
QuantizedRows quantize_per_row(const Tensor& x, DType code, const Tensor& smooth = Tensor());

// Per-tensor affine int8 codes of x (M, K): round(x * smooth / scale + offset).
Tensor quantize_per_tensor(const Tensor& x, float scale, float offset,
                           const Tensor& smooth = Tensor());

// The dequantizing epilogue of quant_matmul; every tensor optional, all f32 but quant_bias
// (i32).
struct QuantEpilogue {
  Tensor row_scale, col_scale, quant_bias, bias;
  std::optional<UnaryKind> activation;
};
// xq (M, K) @ wq (N, K)^T with the epilogue, in `out_dtype` (i32: the raw accumulator, no
// epilogue allowed).
Tensor quant_matmul(const Tensor& xq, const Tensor& wq, const QuantEpilogue& epilogue,
                    DType out_dtype);

// (wq - offset) * scale per group: wq (N, K), scale / offset (N, G), out (N, K) `out_dtype`.
Tensor dequantize(const Tensor& wq, const Tensor& scale, const Tensor& offset, DType out_dtype);

// Symmetric codes of a weight (N, K) per output channel (group = 0) or per group of `group`
// input columns: codes (N, K) and scale (N, K / group or 1) f32.
QuantizedRows quantize_weight(const Tensor& weight, DType code, int64_t group = 0);

}  // namespace mindiesd::quant
