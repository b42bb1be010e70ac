// The backend interface: buffers, copies, streams/events and the kernel table.
//
// A backend is a handful of functions in three groups (as ggml's backend interface): memory
// (an allocator per device, copies), execution (streams, events, synchronisation), and
// capability (supports(op, dtypes), answered from the kernel registry). CPU is always
// present; CUDA registers itself when built with MINDIESD_CUDA and a GPU is visible.
#pragma once

#include <memory>
#include <span>

#include "mindiesd/core/allocator.h"
#include "mindiesd/core/device.h"
#include "mindiesd/core/dtype.h"
#include "mindiesd/core/op.h"

namespace mindiesd {

class Stream {
 public:
  virtual ~Stream() = default;
  virtual Device device() const = 0;
  virtual void synchronize() = 0;
  // The native handle (cudaStream_t on CUDA, nullptr on CPU).
  virtual void* native() const = 0;
};

class Event {
 public:
  virtual ~Event() = default;
  virtual void record(Stream& stream) = 0;
  // Makes `stream` wait for the recorded work without blocking the host.
  virtual void wait(Stream& stream) = 0;
  virtual void synchronize() = 0;
  virtual bool query() = 0;  // true when the recorded work has finished
};

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;
  virtual int device_count() const = 0;

  // ---- memory ----
  virtual Allocator& allocator(int device_index) = 0;
  // Copies bytes; asynchronous on `stream` where the backend has streams.
  virtual void copy(void* dst, const void* src, size_t bytes, CopyKind kind, Stream& stream) = 0;
  // Host -> device without making the host wait for the device: `src` may be reused as soon as
  // this returns, and the copy runs in `stream`'s order (CUDA stages the bytes in pinned memory
  // that is recycled once the copy has run). The default copies and synchronises the stream.
  virtual void upload(void* dst, const void* src, size_t bytes, Stream& stream);

  // ---- execution ----
  virtual Stream& default_stream(int device_index) = 0;
  virtual std::unique_ptr<Stream> new_stream(int device_index) = 0;
  virtual std::unique_ptr<Event> new_event(int device_index) = 0;
  virtual void synchronize(int device_index) = 0;

  // ---- capability ----
  bool supports(OpId op, std::span<const DType> dtypes) const;
};

// The backend for a device type; nullptr when that backend is not built or has no device.
Backend* find_backend(DeviceType type);
// As find_backend, but throws Unsupported naming the device when it is missing.
Backend& backend_for(Device device);
// Registers a backend (called once by each backend's initialisation).
void register_backend(std::unique_ptr<Backend> backend);

}  // namespace mindiesd
