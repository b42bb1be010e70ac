// The CUDA kernel families; each file registers its kernels with the registry. The names
// mirror kernel/cpu/kernels.h so that a family missing on one side is visible at a glance.
#pragma once

#include "mindiesd/core/op.h"

#define MINDIESD_CUDA_KERNEL_FAMILIES(X) \
  X(copy)                                \
  X(elementwise)                         \
  X(reduce)                              \
  X(matmul)                              \
  X(layout)                              \
  X(conv)                                \
  X(interpolate)                         \
  X(random)                              \
  X(attention)                           \
  X(norm)                                \
  X(rope)                                \
  X(quant)

namespace mindiesd::cuda {
#define MINDIESD_DECLARE_FAMILY(name) void register_##name##_kernels(KernelRegistry& r);
MINDIESD_CUDA_KERNEL_FAMILIES(MINDIESD_DECLARE_FAMILY)
#undef MINDIESD_DECLARE_FAMILY
}  // namespace mindiesd::cuda
