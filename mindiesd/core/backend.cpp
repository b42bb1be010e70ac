#include "mindiesd/core/backend.h"

#include <mutex>

#include "mindiesd/core/error.h"

namespace mindiesd {

// Defined by the kernel layer (kernel/backends.cpp): registers the CPU backend and, when
// built, the CUDA backend. Core declares it so that it can stay below the kernels.
void register_builtin_backends();

namespace {
struct BackendTable {
  std::unique_ptr<Backend> by_type[kNumDeviceTypes];
};
BackendTable& raw_table() {
  static BackendTable t;
  return t;
}
}  // namespace

void Backend::upload(void* dst, const void* src, size_t bytes, Stream& stream) {
  copy(dst, src, bytes, CopyKind::HostToDevice, stream);
  stream.synchronize();
}

bool Backend::supports(OpId op, std::span<const DType> dtypes) const {
  return kernel_registry().find(op, type(), dtypes, {}) != nullptr;
}

void register_backend(std::unique_ptr<Backend> backend) {
  const int i = static_cast<int>(backend->type());
  raw_table().by_type[i] = std::move(backend);
}

Backend* find_backend(DeviceType type) {
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_backends(); });
  return raw_table().by_type[static_cast<int>(type)].get();
}

Backend& backend_for(Device device) {
  Backend* b = find_backend(device.type);
  MINDIESD_CHECK(b != nullptr, Unsupported, "no ", device_type_name(device.type),
                 " backend in this build or no such device (", device.str(), ")");
  MINDIESD_CHECK(device.index >= 0 && device.index < b->device_count(), InvalidArgument, "device ",
                 device.str(), " does not exist (", b->device_count(), " visible)");
  return *b;
}

}  // namespace mindiesd
