// Framework-free launchers of the CUDA layout kernels (see elementwise.h for the conventions:
// raw device pointers, element strides, shared sizes, a stream, a status back). concat is a
// launch_copy (copy.h) per input into a slice of the output.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// out (out_sizes) <- x (x_sizes, same rank and dtype) padded by p.before / p.after per dim:
// constant (p.value converted to the dtype as the CPU converts it), reflect (without repeating
// the edge; needs pad < extent) or replicate. Element sizes 1, 2, 4, 8 bytes (any dtype but i4).
cudaError_t launch_pad(const PadParams& p, int ndim, const int64_t* out_sizes, StridedOut out,
                       const int64_t* x_sizes, StridedIn x, cudaStream_t stream);

// torch.gather: out[c] <- x[c with c[dim] replaced by index[c]] over `sizes` (out's shape);
// index is i32 or i64 with strides over `sizes` (index_select is a 1-D index broadcast: stride
// 0 on every dim but `dim`), x has the dtype of out, `x_dim_size` is x's extent along dim. An
// index outside [0, x_dim_size) is not read through; its element is written as zero bits (the
// op glue checks indices on the host first and throws InvalidArgument, as the CPU does).
cudaError_t launch_gather(int dim, int ndim, const int64_t* sizes, StridedOut out, StridedIn x,
                          int64_t x_dim_size, StridedIn index, cudaStream_t stream);

}  // namespace mindiesd::cuda
