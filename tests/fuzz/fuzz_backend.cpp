// The fuzz targets' stand-in for the kernel layer (mindiesd/kernel/backends.cpp): a CPU backend
// with the real caching allocator and memcpy copies, and no kernels. The io code only allocates
// and copies bytes, so this is all the parsers need, without building the kernels under
// sanitizers.
#include <cstring>
#include <memory>

#include "mindiesd/core/allocator.h"
#include "mindiesd/core/backend.h"

namespace mindiesd {
namespace {

class FuzzStream final : public Stream {
 public:
  Device device() const override { return Device::cpu(); }
  void synchronize() override {}
  void* native() const override { return nullptr; }
};

class FuzzEvent final : public Event {
 public:
  void record(Stream&) override {}
  void wait(Stream&) override {}
  void synchronize() override {}
  bool query() override { return true; }
};

class FuzzCpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CPU; }
  int device_count() const override { return 1; }
  Allocator& allocator(int) override { return cpu_allocator(); }
  void copy(void* dst, const void* src, size_t bytes, CopyKind, Stream&) override {
    std::memcpy(dst, src, bytes);
  }
  Stream& default_stream(int) override { return stream_; }
  std::unique_ptr<Stream> new_stream(int) override { return std::make_unique<FuzzStream>(); }
  std::unique_ptr<Event> new_event(int) override { return std::make_unique<FuzzEvent>(); }
  void synchronize(int) override {}

 private:
  FuzzStream stream_;
};

}  // namespace

void register_builtin_backends() { register_backend(std::make_unique<FuzzCpuBackend>()); }

}  // namespace mindiesd
