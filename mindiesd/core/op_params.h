// Parameter structs of the ops in op.h (one per op family), shared by front ends and kernels.
#pragma once

#include <cstdint>

#include "mindiesd/core/shape.h"

namespace mindiesd {

enum class UnaryKind : uint8_t {
  neg, abs, exp, log, sqrt, rsqrt, sin, cos, tanh, sigmoid,
  silu,       // x * sigmoid(x)
  gelu,       // x/2 * (1 + erf(x / sqrt 2))
  gelu_tanh,  // x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  relu, square, reciprocal,
  affine,      // alpha * x + beta
  pow_scalar,  // x ^ alpha
  clamp,       // min(max(x, alpha), beta)
};
struct UnaryParams {
  UnaryKind kind;
  float alpha = 1.0f;
  float beta = 0.0f;
};

enum class BinaryKind : uint8_t { add, sub, mul, div, maximum, minimum, pow, eq, ne, lt, le, gt, ge };
inline bool is_comparison(BinaryKind k) { return k >= BinaryKind::eq; }
struct BinaryParams {
  BinaryKind kind;
};

enum class TernaryKind : uint8_t {
  where,  // in0 ? in1 : in2 (in0 bool)
  fma,    // in0 * in1 + in2
  lerp,   // in0 + in2 * (in1 - in0)
};
struct TernaryParams {
  TernaryKind kind;
};

enum class ReduceKind : uint8_t { sum, mean, max, min, var };
struct ReduceParams {
  ReduceKind kind;
  uint32_t dims_mask;  // bit d set: dim d is reduced (the output keeps it with extent 1)
  int correction = 1;  // var: divide by n - correction
};

struct SoftmaxParams {
  int dim;
};

struct FillParams {
  double value;
};

// matmul: in0 (..., M, K) @ in1 (..., K, N) [+ in2 bias (N)] -> (..., M, N); batch dims
// broadcast. Accumulates in f32 whatever the input dtypes; the optional activation is applied
// to alpha * (a @ b) + bias in f32 before the output is rounded (a GEMM epilogue).
struct MatmulParams {
  float alpha = 1.0f;
  bool has_activation = false;
  UnaryKind activation = UnaryKind::relu;  // gelu, gelu_tanh, silu, relu (when has_activation)
};

struct ConcatParams {
  int dim;
};

enum class PadMode : uint8_t { constant, reflect, replicate };
struct PadParams {
  PadMode mode = PadMode::constant;
  float value = 0.0f;
  int64_t before[kMaxDims] = {};  // per dim, in dim order
  int64_t after[kMaxDims] = {};
};

struct IndexParams {
  int dim;
};

// Convolution over `spatial` (1..3) trailing dims, NC[D]HW input, OI[D]HW weight.
struct ConvParams {
  int spatial = 2;
  int64_t stride[3] = {1, 1, 1};
  int64_t padding[3] = {0, 0, 0};
  int64_t dilation[3] = {1, 1, 1};
  int64_t groups = 1;
};

enum class InterpolateMode : uint8_t {
  nearest,        // PyTorch "nearest": src = floor(dst * scale)
  nearest_exact,  // PyTorch "nearest-exact": src = floor((dst + 0.5) * scale)
  bilinear,
};
// 2-D interpolation of an NCHW tensor to the output tensor's H and W.
struct InterpolateParams {
  InterpolateMode mode = InterpolateMode::nearest;
  bool align_corners = false;
  // PyTorch uses 1/scale_factor when the user gave one, else in/out; 0 = derive from sizes.
  double scale_h = 0.0;
  double scale_w = 0.0;
};

enum class RandomKind : uint8_t { uniform, normal };
// Philox4x32-10 counter-based noise: element i of the (contiguous) output depends only on
// (seed, offset + i), never on threading or device, so noise is reproducible everywhere.
struct RandomParams {
  RandomKind kind = RandomKind::normal;
  uint64_t seed = 0;
  uint64_t offset = 0;
  float a = 0.0f;  // uniform: low;  normal: mean
  float b = 1.0f;  // uniform: high; normal: std
};

// attention: in0 q (B, Hq, Sq, D), in1 k (B, Hkv, Sk, D), in2 v (B, Hkv, Sk, Dv) as views with
// any strides (the layouts BSND / BNSD / BSH are permuted views), optional in3 mask
// broadcastable to (B, Hq, Sq, Sk): boolean (true = attend) or float (added to the logits);
// out (B, Hq, Sq, Dv), also any strides. Hq must be a multiple of Hkv (GQA / MQA).
// attention_varlen: in0 q (Tq, Hq, D), in1 k (Tk, Hkv, D), in2 v (Tk, Hkv, Dv), in3
// cu_seqlens_q (B + 1, i32), in4 cu_seqlens_k (B + 1, i32); out (Tq, Hq, Dv).
struct AttentionParams {
  float scale = 0.0f;   // applied to q.k; the front end fills 1/sqrt(D) by default
  bool causal = false;  // query i attends keys j <= i + (Sk - Sq) (bottom-right aligned)
};

}  // namespace mindiesd
