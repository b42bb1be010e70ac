// Float64 reference implementations of every op, for tests only.
//
// Deliberately naive: one loop per output element over multi-indices, no tiling, no
// vectorisation, so that they are easy to check by eye against the PyTorch definitions
// the kernels must match.
#pragma once

#include <vector>

#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::ref {

// A dense, row-major float64 array.
struct Array {
  Shape shape;
  std::vector<double> v;

  Array() = default;
  explicit Array(const Shape& s, double fill = 0.0) : shape(s), v(s.numel(), fill) {}
  int64_t numel() const { return static_cast<int64_t>(v.size()); }
  // Flat index of a multi-index (size-1 dims broadcast when `broadcast` is set).
  int64_t index(const int64_t* idx, int nd, bool broadcast = false) const;
  double at(const int64_t* idx, int nd, bool broadcast = false) const { return v[index(idx, nd, broadcast)]; }
};

// Any tensor (any device, dtype, strides) as float64 values.
Array from_tensor(const Tensor& t);
// Iterates the multi-indices of `shape` in row-major order.
bool next_index(const Shape& shape, int64_t* idx);

Array unary(const Array& x, UnaryKind kind, double alpha = 1.0, double beta = 0.0);
Array binary(const Array& a, const Array& b, BinaryKind kind);
Array ternary(const Array& a, const Array& b, const Array& c, TernaryKind kind);
// Keeps reduced dims with extent 1.
Array reduce(const Array& x, uint32_t dims_mask, ReduceKind kind, int correction = 1);
Array softmax(const Array& x, int dim);
// Batched with broadcast batch dims; bias (N) optional (empty Array = none).
Array matmul(const Array& a, const Array& b, const Array& bias = Array());
Array concat(const std::vector<Array>& xs, int dim);
Array pad(const Array& x, const PadParams& p);
Array index_select(const Array& x, int dim, const std::vector<int64_t>& index);
Array gather(const Array& x, int dim, const Array& index);
Array conv(const Array& x, const Array& w, const Array& bias, const ConvParams& p);
Array interpolate(const Array& x, int64_t out_h, int64_t out_w, const InterpolateParams& p);
Array random(const Shape& shape, const RandomParams& p);

// ---- norms ----
// Over the last dim (C): y = norm(x) * weight + bias, with weight / bias (C) optional (an
// empty Array is none). layer: (x - mean) / sqrt(var + eps), biased var, as
// torch.nn.functional.layer_norm; rms: x / sqrt(mean(x^2) + eps), as diffusers RMSNorm.
Array layer_norm(const Array& x, const Array& weight, const Array& bias, double eps);
Array rms_norm(const Array& x, const Array& weight, const Array& bias, double eps);
// x (N, C, *spatial): layer norm over each (n, group of C / groups channels x spatial) block,
// then the per-channel weight / bias (optional), as torch.nn.functional.group_norm.
Array group_norm(const Array& x, int64_t groups, const Array& weight, const Array& bias,
                 double eps);
// adaLN modulation y * (1 + scale) + shift; scale / shift broadcast to y's shape numpy-style.
Array modulate(const Array& y, const Array& scale, const Array& shift);

}  // namespace mindiesd::ref

// ---- rope ----
// (owned by the rope family: mindiesd/layer/rope.h, mindiesd/layer/embedding.h)
namespace mindiesd::ref {

// x (B, S, H, D) with cos/sin broadcastable to it (size-1 dims broadcast, equal rank):
// out = x * cos + rotate(x) * sin in float64, rotate as in RopeParams (op_params.h).
Array rope(const Array& x, const Array& cos, const Array& sin, RopeMode mode);

// diffusers get_1d_rotary_pos_embed(dim, positions, theta, use_real=True) in exact float64
// arithmetic: (S, dim) tables holding repeat_interleave(2) (or cat([f, f]) when
// !repeat_interleave) of cos/sin(position * theta^(-2k/dim)).
void rope_table_1d(int64_t dim, const std::vector<double>& positions, double theta,
                   bool repeat_interleave, Array* cos, Array* sin);

// diffusers get_timestep_embedding in exact float64 arithmetic: (N, dim).
Array timestep_embedding(const std::vector<double>& timesteps, int64_t dim, bool flip_sin_to_cos,
                         double downscale_freq_shift, double scale, double max_period);

}  // namespace mindiesd::ref
