// The CPU kernel families; each file registers its kernels with the registry.
#pragma once

#include "mindiesd/core/op.h"
#include "mindiesd/core/op_params.h"

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
  X(rope)                                \
  X(quant)

namespace mindiesd::cpu {
#define MINDIESD_DECLARE_FAMILY(name) void register_##name##_kernels(KernelRegistry& r);
MINDIESD_CPU_KERNEL_FAMILIES(MINDIESD_DECLARE_FAMILY)
#undef MINDIESD_DECLARE_FAMILY

// y = op(x) over n contiguous f32 values (elementwise.cpp; the GEMM epilogues reuse it).
void unary_f32(UnaryKind k, float alpha, float beta, const float* x, float* y, int64_t n);

// Registers every family above.
inline void register_cpu_kernels(KernelRegistry& r) {
#define MINDIESD_REGISTER_FAMILY(name) register_##name##_kernels(r);
  MINDIESD_CPU_KERNEL_FAMILIES(MINDIESD_REGISTER_FAMILY)
#undef MINDIESD_REGISTER_FAMILY
}
}  // namespace mindiesd::cpu
