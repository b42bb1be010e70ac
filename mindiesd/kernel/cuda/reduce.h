// Framework-free launchers of the CUDA reduction and softmax kernels (see elementwise.h for the
// conventions: raw device pointers, element strides, shared sizes, a stream, a status back).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// out <- kind over the dims of `sizes` whose bit is set in dims_mask (var divides by
// n - correction; NaN when that is <= 0). `out` is indexed with the input's rank: its strides
// at reduced dims are never used (extent 1). Input: any dtype but i4; output: f32, f16, bf16.
// Sums accumulate in f64 (as the CPU kernel), var is two-pass (mean, then centred squares),
// max / min propagate NaN. An empty reduction gives 0 for sum and NaN otherwise.
// One warp or block per output (or one thread per output when the kept dims are the dense
// ones); nothing is allocated, so one output's reduction never spans several blocks.
cudaError_t launch_reduce(ReduceKind kind, uint32_t dims_mask, int correction, int ndim,
                          const int64_t* sizes, StridedOut out, StridedIn x, cudaStream_t stream);

// out <- softmax of x along `dim` (max-subtracted, f32 math; a row whose max is -inf or that
// holds NaN or +inf gives NaN, as the CPU kernel). x and out: f32 / f16 / bf16, any strides.
cudaError_t launch_softmax(int dim, int ndim, const int64_t* sizes, StridedOut out, StridedIn x,
                           cudaStream_t stream);

}  // namespace mindiesd::cuda
