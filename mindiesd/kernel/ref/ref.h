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

}  // namespace mindiesd::ref
