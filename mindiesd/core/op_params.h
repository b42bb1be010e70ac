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

// sparse_attention: in0 q, in1 k, in2 v as for attention (no causal, no element mask); in3 the
// kept-block mask, boolean, viewed as (B, Hq, ceil(Sq / block_q), ceil(Sk / block_k)) with any
// strides (0 = shared across batch or heads). Query rows of block i attend only the keys of the
// blocks j with mask[b, h, i, j]; a query block with no kept key block outputs zeros. With an
// all-true mask the result is bit-identical to the dense attention op on the same device.
struct SparseAttentionParams {
  float scale = 0.0f;
  int64_t block_q = 128;  // tokens per query / key block: positive multiples of 64
  int64_t block_k = 128;
};

// ---- norm (owned by the norm family: see mindiesd/kernel/cpu/norm.cpp) ----
// Normalisation with the DiT fusions in one pass over memory. Inputs by position; an absent
// optional is an undefined Tensor() (the dispatcher skips those when matching dtypes):
//   in0 x         layer / rms: (..., C), normalised over the last dim; rows may be strided.
//                 group: (N, C, S), the spatial dims flattened into S; any strides.
//   in1 weight    (C) or undefined
//   in2 bias      (C) or undefined
//   in3 scale     layer / rms: x's shape (broadcast views with stride 0), or undefined
//   in4 shift     likewise
//   in5 residual  layer / rms: x's shape, or undefined
// out0 y (x's shape); out1 sum (x's shape) iff residual is defined.
// With s = x + residual when a residual is given (rounded to out1's dtype, then normalised, as
// the unfused `h = x + r; norm(h)` would), else s = x:
//   y = (norm(s) * weight + bias) * (1 + scale) + shift
// layer: (s - mean) / sqrt(var + eps), biased var; rms: s / sqrt(mean(s^2) + eps); group: layer
// over each (n, group) block of C / groups channels x S. Statistics as shifted f32 partial sums
// combined in f64 (accurate with far-off means and outlier channels), the rest in f32; one
// rounding to the output dtype (two with round_normed). Dtypes: any of f32 / bf16 / f16 per
// operand. Group norm takes no scale / shift / residual (Unsupported).
enum class NormKind : uint8_t { layer, rms, group };
struct NormParams {
  NormKind kind = NormKind::layer;
  float eps = 1e-5f;
  int64_t groups = 1;  // group norm only
  // diffusers RMSNorm with a half-precision weight casts norm(s) to the weight's dtype before
  // multiplying (`hidden_states.to(self.weight.dtype) * self.weight`): round norm(s) through
  // out0's dtype before the affine, so the result matches it bit for bit (rms only).
  bool round_normed = false;
};

// ---- rope (owned by the rope family: see mindiesd/kernel/cpu/rope.cpp) ----
// rope: in0 x, in1 cos, in2 sin, out -- 4-d views of one shape (B, S, H, D) with any strides,
// D even. cos/sin hold the full-width tables as diffusers builds them (repeat_interleave(2)
// of the D/2 frequencies for interleaved, cat([f, f]) for rotate_half) and are normally (S, D)
// broadcast with stride 0 over B and H; any broadcast works (per-batch positions). x/out and
// the tables may be f32, bf16 or f16; the math is f32:
//   out = x * cos + rotate(x) * sin, each product rounded to f32 before the sum (no FMA),
// which is diffusers' apply_rotary_emb(use_real=True) operation for operation, so f32 and
// bf16 results match PyTorch bit for bit given the same tables. Every cos/sin entry is used
// where it sits: the kernel never assumes the two copies of a frequency are equal.
// out may be the very view x is (in place); any other overlap with x is not allowed.
enum class RopeMode : uint8_t {
  // pairs (i, i + D/2): rotate(x) = cat(-x[D/2:], x[:D/2]); GPT-NeoX style, diffusers'
  // use_real_unbind_dim=-2 (Stable Audio, OmniGen, CogView4, Cosmos).
  rotate_half,
  // pairs (2i, 2i + 1): rotate(x)[2i] = -x[2i+1], rotate(x)[2i+1] = x[2i]; GPT-J style,
  // diffusers' use_real_unbind_dim=-1 (FLUX, Wan, CogVideoX, HunyuanDiT, HunyuanVideo).
  interleaved,
};
struct RopeParams {
  RopeMode mode = RopeMode::rotate_half;
};

// ---- quant (owned by the quant family: see mindiesd/kernel/cpu/quant.cpp, mindiesd/quant) ----
// quantize: in0 x (M, K) float, rows may be strided; in1 smooth (K) f32 or undefined (x is
// multiplied by it first: SmoothQuant's activation scale, the suite's div.mul_scale);
// out0 q (M, K) contiguous, i8, f8_e4m3 or (per_row, K even: weights) packed i4.
//   per_row   symmetric per row: s_m = max_k |x_mk| / qmax, qmax = 127 / 448 / 7 (out1 (M)
//             f32 holds s_m),
//             q = round(x / s_m); an all-zero row has s_m = 0 and q = 0.
//   per_tensor affine with the given scale and zero point: q = round(x / scale + offset)
//             (the suite's npu_quantize(div_mode=True)); no out1.
// round: to nearest, ties to even; int8 clamps to [-128, 127], int4 to [-8, 7], e4m3
// saturates to +-448.
enum class QuantizeKind : uint8_t { per_row, per_tensor };
struct QuantizeParams {
  QuantizeKind kind = QuantizeKind::per_row;
  float scale = 1.0f;   // per_tensor
  float offset = 0.0f;  // per_tensor
};

// quant_matmul: in0 xq (M, K), in1 wq (N, K), both i8 or both f8_e4m3, contiguous rows; then
// optional (undefined when absent) in2 row_scale (M) f32, in3 col_scale (N) f32, in4
// quant_bias (N) i32, in5 bias (N) f32. out (M, N): i32 takes the raw integer accumulator
// acc = sum_k xq_mk wq_nk (exact; no optional input allowed), a float output
//   y = act((acc + quant_bias_n) * row_scale_m * col_scale_n + bias_n)
// with f32 arithmetic in that order (fp8 accumulates in f32, int8 in exact int32).
struct QuantMatmulParams {
  bool has_activation = false;
  UnaryKind activation = UnaryKind::relu;  // gelu, gelu_tanh, silu, relu
};

// dequantize: in0 wq (N, K) i8 / i4 (packed, K even) / f8_e4m3, contiguous; in1 scale (N, G)
// f32 with K % G == 0 (G = 1: per channel; else groups of K / G columns); in2 offset (N, G)
// f32 or undefined. out (N, K) float: w = (wq - offset) * scale, rounded once.
struct DequantizeParams {};

}  // namespace mindiesd
