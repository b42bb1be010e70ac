#include "mindiesd/kernel/cpu/cpu_backend.h"

#include <cstring>

namespace mindiesd::cpu {

namespace {
// Host work is synchronous: a CPU stream has nothing to wait for.
class CpuStream final : public Stream {
 public:
  Device device() const override { return Device::cpu(); }
  void synchronize() override {}
  void* native() const override { return nullptr; }
};

class CpuEvent final : public Event {
 public:
  void record(Stream&) override {}
  void wait(Stream&) override {}
  void synchronize() override {}
  bool query() override { return true; }
};

class CpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CPU; }
  int device_count() const override { return 1; }
  Allocator& allocator(int) override { return cpu_allocator(); }
  void copy(void* dst, const void* src, size_t bytes, CopyKind, Stream&) override {
    std::memcpy(dst, src, bytes);
  }
  Stream& default_stream(int) override { return stream_; }
  std::unique_ptr<Stream> new_stream(int) override { return std::make_unique<CpuStream>(); }
  std::unique_ptr<Event> new_event(int) override { return std::make_unique<CpuEvent>(); }
  void synchronize(int) override {}

 private:
  CpuStream stream_;
};
}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace mindiesd::cpu
