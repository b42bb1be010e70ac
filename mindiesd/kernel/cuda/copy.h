// Framework-free launchers of the CUDA copy and fill kernels (see elementwise.h for the
// conventions: raw device pointers, element strides, shared sizes, a stream, a status back).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// dst <- src over `sizes`, converting dtypes exactly as core's convert() does (float sources
// through f32, integer sources through int64). src may broadcast (stride 0). Dense same-dtype
// copies are one cudaMemcpyAsync; dense f32/f16/bf16 conversions are vectorised. Any dtype
// but i4 (cudaErrorNotSupported). src and dst must not overlap.
cudaError_t launch_copy(int ndim, const int64_t* sizes, StridedOut dst, StridedIn src,
                        cudaStream_t stream);

// dst <- value converted to dst's dtype as the CPU fill does (through f32; i64 directly from
// the double). Any dtype but i4; strided views are filled in place.
cudaError_t launch_fill(double value, int ndim, const int64_t* sizes, StridedOut dst,
                        cudaStream_t stream);

}  // namespace mindiesd::cuda
