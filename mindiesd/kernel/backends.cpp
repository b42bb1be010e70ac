// Registers the backends built into this library (declared in core/backend.cpp).
#include "mindiesd/core/backend.h"
#include "mindiesd/kernel/cpu/cpu_backend.h"
#include "mindiesd/kernel/cpu/kernels.h"
#if defined(MINDIESD_CUDA)
#include "mindiesd/kernel/cuda/cuda_backend.h"
#endif

namespace mindiesd {

void register_builtin_backends() {
  register_backend(cpu::make_cpu_backend());
  cpu::register_cpu_kernels(kernel_registry());
#if defined(MINDIESD_CUDA)
  cuda::register_cuda_backend();  // registers only when a GPU is visible
#endif
}

}  // namespace mindiesd
