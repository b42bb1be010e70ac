// Framework-free operand descriptors for the CUDA launchers, and the host-side collapse of N
// same-shaped strided operands into the fewest dims (what the kernels index with).
//
// A launcher takes raw device pointers, element strides (stride 0 broadcasts) and the shared
// sizes, so fused kernels elsewhere (layers, compiled graphs) can call it without Tensors.
#pragma once

#include <array>
#include <cstdint>
#include <limits>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/shape.h"

namespace mindiesd::cuda {

// An input operand: the address of element 0, its dtype and per-dim element strides.
struct StridedIn {
  const void* data;
  DType dtype;
  const int64_t* strides;
};
// An output operand.
struct StridedOut {
  void* data;
  DType dtype;
  const int64_t* strides;
};

// N operands over one shape, with extent-1 dims dropped and neighbouring dims merged when
// every operand steps through them as one dim (a contiguous tensor becomes one dim, a
// (B, N, C) + (C) bias add becomes two). Operand 0 is the output by convention.
template <int N>
struct StridedLayout {
  int ndim = 1;
  int64_t sizes[kMaxDims] = {1};
  int64_t strides[N][kMaxDims] = {};
  int64_t numel = 1;

  // True when all operands are dense and in the same order: the vectorised path applies.
  bool contiguous() const {
    if (ndim != 1) return false;
    for (int k = 0; k < N; ++k)
      if (strides[k][0] != 1) return false;
    return true;
  }
  // True when every linear index and element offset fits in 31 bits, so kernels can use
  // 32-bit index math with multiply-shift division instead of 64-bit division. Negative
  // strides (which Tensor views never produce) take the signed 64-bit path.
  bool fits_int32() const {
    constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
    if (numel > kMax) return false;
    for (int k = 0; k < N; ++k) {
      int64_t reach = 0;
      for (int d = 0; d < ndim; ++d) {
        if (strides[k][d] < 0) return false;
        reach += (sizes[d] - 1) * strides[k][d];
      }
      if (reach > kMax) return false;
    }
    return true;
  }
};

// Launchers reject ranks the layout cannot hold (a Tensor has at most kMaxDims dims).
inline bool valid_rank(int ndim) { return ndim >= 0 && ndim <= kMaxDims; }

template <int N>
StridedLayout<N> collapse(int ndim, const int64_t* sizes,
                          const std::array<const int64_t*, N>& strides) {
  StridedLayout<N> l;
  l.ndim = 0;
  for (int d = 0; d < ndim; ++d) {  // keep the non-unit dims, outermost first
    l.numel *= sizes[d];
    if (sizes[d] == 1) continue;
    l.sizes[l.ndim] = sizes[d];
    for (int k = 0; k < N; ++k) l.strides[k][l.ndim] = strides[k][d];
    ++l.ndim;
  }
  // Merge dim d into the kept dim before it when every operand's outer stride equals
  // inner stride * inner extent.
  int out = 0;
  for (int d = 0; d < l.ndim; ++d) {
    if (out > 0) {
      bool mergeable = true;
      for (int k = 0; k < N; ++k)
        mergeable &= l.strides[k][out - 1] == l.strides[k][d] * l.sizes[d];
      if (mergeable) {
        l.sizes[out - 1] *= l.sizes[d];
        for (int k = 0; k < N; ++k) l.strides[k][out - 1] = l.strides[k][d];
        continue;
      }
    }
    l.sizes[out] = l.sizes[d];
    for (int k = 0; k < N; ++k) l.strides[k][out] = l.strides[k][d];
    ++out;
  }
  l.ndim = out;
  if (l.ndim == 0) {  // a single element (or a 0-d tensor)
    l.ndim = 1;
    l.sizes[0] = 1;
    for (int k = 0; k < N; ++k) l.strides[k][0] = 1;
  }
  if (l.numel == 0) {
    l.ndim = 1;
    l.sizes[0] = 0;
  }
  return l;
}

}  // namespace mindiesd::cuda
