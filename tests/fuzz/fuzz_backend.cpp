// The fuzz targets' stand-in for the kernel layer (mindiesd/kernel/backends.cpp): the real CPU
// backend (caching allocator, memcpy copies) with no kernels registered. The io code only allocates
// and copies bytes, so this is all the parsers need, without building the kernels under
// sanitizers.
#include "mindiesd/core/backend.h"
#include "mindiesd/kernel/cpu/cpu_backend.h"

namespace mindiesd {

void register_builtin_backends() { register_backend(cpu::make_cpu_backend()); }

}  // namespace mindiesd
