// The CPU kernel families; each file registers its kernels with the registry.
#pragma once

#include "mindiesd/core/op.h"

#define MINDIESD_CPU_KERNEL_FAMILIES(X) \
  X(copy)                               \
  X(elementwise)                        \
  X(reduce)                             \
  X(matmul)                             \
  X(layout)                             \
  X(conv)                               \
  X(interpolate)                        \
  X(random)                              \
  X(attention)                           \
  X(norm)                                \
  X(rope)

namespace mindiesd::cpu {
#define MINDIESD_DECLARE_FAMILY(name) void register_##name##_kernels(KernelRegistry& r);
MINDIESD_CPU_KERNEL_FAMILIES(MINDIESD_DECLARE_FAMILY)
#undef MINDIESD_DECLARE_FAMILY

// Registers every family above.
inline void register_cpu_kernels(KernelRegistry& r) {
#define MINDIESD_REGISTER_FAMILY(name) register_##name##_kernels(r);
  MINDIESD_CPU_KERNEL_FAMILIES(MINDIESD_REGISTER_FAMILY)
#undef MINDIESD_REGISTER_FAMILY
}
}  // namespace mindiesd::cpu
