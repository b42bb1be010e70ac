#pragma once

#include <memory>

#include "mindiesd/core/backend.h"

namespace mindiesd::cpu {
// The host backend: buffers from cpu_allocator(), synchronous copies, no-op streams/events.
// Its kernels are registered separately (register_cpu_kernels in kernels.h), so that tools
// needing only memory (the fuzz targets) can use it without the kernels.
std::unique_ptr<Backend> make_cpu_backend();
}  // namespace mindiesd::cpu
