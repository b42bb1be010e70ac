// Framework-free launchers of the CUDA elementwise kernels (FlashInfer style): raw device
// pointers, element strides (0 = broadcast), the shared sizes and a stream in; the launch
// status out. Operand dtypes are any but i4; math is f32 (int64 for integer binary ops),
// results are converted to the output dtype as core/dtype.h converts. The output may alias
// an input with the same strides (in-place). Nothing is allocated and nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// y = unary(x). Vectorised when x and y share an f32/f16/bf16 dtype and are dense and aligned.
cudaError_t launch_unary(const UnaryParams& params, int ndim, const int64_t* sizes, StridedOut y,
                         StridedIn x, cudaStream_t stream);

// out = a <kind> b. Integer math when neither input is a float dtype; then div and pow are
// cudaErrorNotSupported. Comparisons produce 1/0 in the output dtype (normally boolean).
cudaError_t launch_binary(BinaryKind kind, int ndim, const int64_t* sizes, StridedOut out,
                          StridedIn a, StridedIn b, cudaStream_t stream);

// out = where(a, b, c) | a * b + c | lerp(a, b, c), in f32.
cudaError_t launch_ternary(TernaryKind kind, int ndim, const int64_t* sizes, StridedOut out,
                           StridedIn a, StridedIn b, StridedIn c, cudaStream_t stream);

}  // namespace mindiesd::cuda
