// Framework-free launcher of the CUDA interpolate kernel (see elementwise.h for the
// conventions: raw device pointers, element strides, shared sizes, a stream, a status back).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// 2-D resampling of an NCHW x (x_sizes, any strides) to out (out_sizes: same N and C) with
// PyTorch's index rules, as the CPU kernel (nearest, nearest-exact, bilinear with or without
// align_corners; p.scale_h / p.scale_w are PyTorch's 1 / scale_factor, 0 = in / out). f32 math;
// x and out are f32, f16 or bf16.
cudaError_t launch_interpolate(const InterpolateParams& p, const int64_t* x_sizes, StridedIn x,
                               const int64_t* out_sizes, StridedOut out, cudaStream_t stream);

}  // namespace mindiesd::cuda
