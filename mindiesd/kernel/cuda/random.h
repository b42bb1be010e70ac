// Framework-free launcher of the CUDA Philox noise kernel (see elementwise.h for the
// conventions: raw device pointers, element strides, shared sizes, a stream, a status back).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// out[i] <- Philox noise of global element p.offset + i, for i the row-major index over
// `sizes`, bit-identical to the CPU kernel (mindiesd/kernel/cpu/random.cpp). out's dtype is
// f32, f16 or bf16 (else cudaErrorNotSupported); any strides (a dense output is the fast path).
cudaError_t launch_random(const RandomParams& p, int ndim, const int64_t* sizes, StridedOut out,
                          cudaStream_t stream);

}  // namespace mindiesd::cuda
