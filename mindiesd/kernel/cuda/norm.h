// Framework-free launchers of the CUDA norm kernels (FlashInfer style): raw device pointers,
// element strides, sizes and a stream in; the launch status out. Semantics are NormParams'
// (core/op_params.h): statistics in f32 (two passes over the values held on chip for row
// norms; shifted sums combined in f64 for group norm), the rest in f32, one rounding to each
// output's dtype (two with round_normed). Every operand is f32, bf16 or f16 independently
// (anything else: cudaErrorNotSupported). Nothing is allocated and nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// LayerNorm / RMSNorm over the last of `ndim` dims (p.kind layer or rms) with the DiT fusions:
//   s = residual ? round_to(sum.dtype, x + residual) : x      (s stored to `sum`)
//   y = (norm(s) * weight + bias) * (1 + scale) + shift
// x, y, scale, shift, residual and sum are views of one shape `sizes` (ndim strides each;
// stride 0 broadcasts, so scale / shift are normally (B, 1, C) rows seen as x's shape);
// weight and bias are (C) vectors (one stride). An absent optional has data == nullptr;
// residual and sum go together. y may be the very view x is (in place), and sum the very
// view x or residual is. Rows of any length; 16-byte accesses where an operand's rows are
// unit-stride and aligned, scalar strided accesses otherwise.
cudaError_t launch_row_norm(const NormParams& p, int ndim, const int64_t* sizes, StridedOut y,
                            StridedIn x, StridedIn weight, StridedIn bias, StridedIn scale,
                            StridedIn shift, StridedIn residual, StridedOut sum,
                            cudaStream_t stream);

// GroupNorm of x (N, C, S) into y (N, C, S), both with any strides (3 each): each (n, group of
// C / groups channels x S) block normalised with its biased variance, then the per-channel
// affine (weight / bias: (C) vectors, one stride, data nullptr when absent). groups must
// divide C (else cudaErrorInvalidValue).
cudaError_t launch_group_norm(float eps, int64_t groups, int64_t N, int64_t C, int64_t S,
                              StridedOut y, StridedIn x, StridedIn weight, StridedIn bias,
                              cudaStream_t stream);

}  // namespace mindiesd::cuda
