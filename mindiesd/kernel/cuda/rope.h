// Framework-free launcher of the CUDA rope kernel (FlashInfer style): raw device pointers,
// element strides, sizes and a stream in; the launch status out. Semantics are RopeParams'
// (core/op_params.h). Nothing is allocated and nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// out = x * cos + rotate(x) * sin over (B, S, H, D) = sizes[0..3] views, 4 strides each (0
// broadcasts: cos / sin are normally (S, D) tables seen as x's shape), D even (else
// cudaErrorInvalidValue). Each product is rounded to f32 before the sum (no FMA), so f32
// results equal PyTorch's bit for bit. Operands are f32, bf16 or f16 independently (anything
// else: cudaErrorNotSupported). out may be the very view x is (in place). 16-byte (or
// 8-byte) accesses where an operand's rows are unit-stride and aligned, scalar otherwise.
cudaError_t launch_rope(RopeMode mode, const int64_t* sizes, StridedOut out, StridedIn x,
                        StridedIn cos, StridedIn sin, cudaStream_t stream);

}  // namespace mindiesd::cuda
