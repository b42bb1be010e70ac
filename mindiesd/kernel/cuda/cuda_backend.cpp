#include "mindiesd/kernel/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/kernels.h"

namespace mindiesd::cuda {

// ---- errors and scoping ---------------------------------------------------------------------

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  // Reset the thread's last-error slot so that a recoverable failure (out of memory, an
  // invalid argument) is not reported again by the next unrelated call. Sticky errors (a
  // faulting kernel) survive this and keep failing, which is what they should do.
  (void)cudaGetLastError();
  const std::string what = str_cat(call, " failed at ", file, ":", line, ": ",
                                   cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
  if (err == cudaErrorMemoryAllocation) MINDIESD_THROW(OutOfMemory, what);
  MINDIESD_THROW(Internal, what);
}

DeviceGuard::DeviceGuard(int device) : device_(device) {
  MINDIESD_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device_) MINDIESD_CUDA_CHECK(cudaSetDevice(device_));
}

DeviceGuard::~DeviceGuard() {
  // Destructors must not throw; a failure here would already have failed the guarded call.
  if (previous_ != device_) (void)cudaSetDevice(previous_);
}

cudaStream_t native_stream(const Stream& stream) {
  MINDIESD_CHECK(stream.device().type == DeviceType::CUDA, InvalidArgument,
                 "a CUDA operation was given a stream of device ", stream.device().str());
  return static_cast<cudaStream_t>(stream.native());
}

KernelScope::KernelScope(const OpCall& call)
    : stream_(native_stream(*call.stream)), guard_(call.stream->device().index) {}

namespace {

// ---- streams and events ---------------------------------------------------------------------

class CudaStream final : public Stream {
 public:
  CudaStream(int device, bool is_default) : device_(device), is_default_(is_default) {
    DeviceGuard guard(device);
    // Non-blocking: no implicit synchronisation with the legacy NULL stream, which other
    // libraries in the process may be using; our ordering is explicit through events.
    MINDIESD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~CudaStream() override { (void)cudaStreamDestroy(stream_); }

  Device device() const override { return Device::cuda(device_); }
  void synchronize() override { MINDIESD_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void* native() const override { return stream_; }
  bool is_default() const { return is_default_; }

 private:
  int device_;
  bool is_default_;
  cudaStream_t stream_ = nullptr;
};

class CudaEvent final : public Event {
 public:
  explicit CudaEvent(int device) : device_(device) {
    DeviceGuard guard(device);
    // Timing would make every record a heavier operation; benchmarks make their own events.
    MINDIESD_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
  }
  ~CudaEvent() override { (void)cudaEventDestroy(event_); }

  void record(Stream& stream) override {
    MINDIESD_CHECK(stream.device() == Device::cuda(device_), InvalidArgument,
                   "an event of cuda:", device_, " cannot be recorded on a stream of ",
                   stream.device().str());
    DeviceGuard guard(device_);
    MINDIESD_CUDA_CHECK(cudaEventRecord(event_, native_stream(stream)));
  }
  void wait(Stream& stream) override {
    // Waiting across devices is allowed; the wait is enqueued on the stream's device.
    const cudaStream_t s = native_stream(stream);
    DeviceGuard guard(stream.device().index);
    MINDIESD_CUDA_CHECK(cudaStreamWaitEvent(s, event_, 0));
  }
  void synchronize() override { MINDIESD_CUDA_CHECK(cudaEventSynchronize(event_)); }
  bool query() override {
    const cudaError_t err = cudaEventQuery(event_);
    if (err == cudaErrorNotReady) return false;
    MINDIESD_CUDA_CHECK(err);
    return true;
  }

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

// ---- the backend ----------------------------------------------------------------------------

std::unique_ptr<CachingAllocator> make_device_allocator(int device) {
  auto raw_alloc = [device](size_t bytes) -> void* {
    DeviceGuard guard(device);
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err == cudaErrorMemoryAllocation) {
      // The caching allocator reacts to nullptr by releasing its cache and retrying, then
      // reports OutOfMemory with its own statistics.
      (void)cudaGetLastError();
      return nullptr;
    }
    MINDIESD_CUDA_CHECK(err);
    return p;
  };
  auto raw_free = [device](void* p) {
    // cudaFree synchronises the device, so a cached block that is given back cannot still be
    // in use by a kernel. Errors are ignored: this also runs at process exit, when the runtime
    // may already be unloaded and the memory is about to go anyway.
    int previous = 0;
    (void)cudaGetDevice(&previous);
    if (previous != device) (void)cudaSetDevice(device);
    (void)cudaFree(p);
    if (previous != device) (void)cudaSetDevice(previous);
  };
  return std::make_unique<CachingAllocator>(str_cat("cuda:", device), raw_alloc, raw_free);
}

// A host <-> device copy inside a CUDA graph capture would be replayed from (or into) host
// memory that has changed by then, or wait for the device: refuse it loudly (cuda_graph.h).
void refuse_in_capture(cudaStream_t s) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  MINDIESD_CUDA_CHECK(cudaStreamIsCapturing(s, &status));
  MINDIESD_CHECK(status != cudaStreamCaptureStatusActive, Unsupported,
                 "a host <-> device copy inside a CUDA graph capture: make the captured work's "
                 "inputs device tensors before the capture and copy new values into them");
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int count) : devices_(static_cast<size_t>(count)) {
    for (int i = 0; i < count; ++i)
      devices_[static_cast<size_t>(i)].allocator = make_device_allocator(i);
  }

  DeviceType type() const override { return DeviceType::CUDA; }
  int device_count() const override { return static_cast<int>(devices_.size()); }

  Allocator& allocator(int device_index) override { return *slot(device_index).allocator; }

  void copy(void* dst, const void* src, size_t bytes, CopyKind kind, Stream& stream) override {
    if (bytes == 0) return;
    const cudaStream_t s = native_stream(stream);
    if (kind != CopyKind::DeviceToDevice) refuse_in_capture(s);
    DeviceGuard guard(stream.device().index);
    cudaMemcpyKind k = cudaMemcpyDeviceToDevice;
    if (kind == CopyKind::HostToDevice) k = cudaMemcpyHostToDevice;
    if (kind == CopyKind::DeviceToHost) k = cudaMemcpyDeviceToHost;
    MINDIESD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, s));
  }

  void upload(void* dst, const void* src, size_t bytes, Stream& stream) override {
    if (bytes == 0) return;
    refuse_in_capture(native_stream(stream));
    // Large uploads (weights at load time) go straight from pageable memory and wait: staging
    // them would double their host footprint for no gain.
    if (bytes > kMaxStagedBytes) {
      copy(dst, src, bytes, CopyKind::HostToDevice, stream);
      stream.synchronize();
      return;
    }
    const cudaStream_t s = native_stream(stream);
    DeviceGuard guard(stream.device().index);
    std::lock_guard<std::mutex> lock(staging_mu_);
    reclaim_staging_locked();
    void* buf = pinned_host_allocator().allocate(bytes);
    std::memcpy(buf, src, bytes);
    cudaEvent_t done = nullptr;
    MINDIESD_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    MINDIESD_CUDA_CHECK(cudaMemcpyAsync(dst, buf, bytes, cudaMemcpyHostToDevice, s));
    MINDIESD_CUDA_CHECK(cudaEventRecord(done, s));
    staging_.push_back({buf, done});
  }

  Stream& default_stream(int device_index) override {
    DeviceSlot& d = slot(device_index);
    // Created on first use, so that registering the backend does not create a context (and
    // take its memory) on every visible GPU.
    std::call_once(d.stream_once,
                   [&] { d.stream = std::make_unique<CudaStream>(device_index, true); });
    return *d.stream;
  }
  std::unique_ptr<Stream> new_stream(int device_index) override {
    slot(device_index);
    return std::make_unique<CudaStream>(device_index, false);
  }
  std::unique_ptr<Event> new_event(int device_index) override {
    slot(device_index);
    return std::make_unique<CudaEvent>(device_index);
  }
  void synchronize(int device_index) override {
    slot(device_index);
    DeviceGuard guard(device_index);
    MINDIESD_CUDA_CHECK(cudaDeviceSynchronize());
  }

 private:
  struct DeviceSlot {
    std::unique_ptr<CachingAllocator> allocator;
    std::once_flag stream_once;
    std::unique_ptr<CudaStream> stream;
  };
  DeviceSlot& slot(int device_index) {
    MINDIESD_CHECK(device_index >= 0 && device_index < device_count(), InvalidArgument,
                   "device cuda:", device_index, " does not exist (", device_count(), " visible)");
    return devices_[static_cast<size_t>(device_index)];
  }

  // Pinned staging buffers of uploads still in flight, each with the event after its copy; a
  // buffer goes back to the pinned allocator once its event has completed. (At process exit the
  // ones left are not freed: the pinned allocator may already be gone.)
  struct Staged {
    void* buffer;
    cudaEvent_t done;
  };
  static constexpr size_t kMaxStagedBytes = size_t{64} << 20;
  void reclaim_staging_locked() {
    size_t kept = 0;
    for (const Staged& st : staging_) {
      if (cudaEventQuery(st.done) == cudaSuccess) {
        (void)cudaEventDestroy(st.done);
        pinned_host_allocator().deallocate(st.buffer);
      } else {
        (void)cudaGetLastError();  // cudaErrorNotReady is not an error here
        staging_[kept++] = st;
      }
    }
    staging_.resize(kept);
  }

  std::vector<DeviceSlot> devices_;
  std::mutex staging_mu_;
  std::vector<Staged> staging_;
};

}  // namespace

// ---- public functions -----------------------------------------------------------------------

int visible_device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // No driver (cudaErrorInsufficientDriver), no device (cudaErrorNoDevice), a driver older
    // than the runtime: all mean "no CUDA here", not a failure of the program.
    (void)cudaGetLastError();
    if (why != nullptr) *why = str_cat(cudaGetErrorName(err), ": ", cudaGetErrorString(err));
    return 0;
  }
  if (why != nullptr) *why = count > 0 ? "" : "no CUDA device visible";
  return count;
}

void register_cuda_backend() {
  try {
    const int count = visible_device_count();
    if (count < 1) return;
    register_backend(std::make_unique<CudaBackend>(count));
    KernelRegistry& r = kernel_registry();
#define MINDIESD_REGISTER_FAMILY(name) register_##name##_kernels(r);
    MINDIESD_CUDA_KERNEL_FAMILIES(MINDIESD_REGISTER_FAMILY)
#undef MINDIESD_REGISTER_FAMILY
  } catch (const std::exception&) {
    // Registration only builds tables; nothing here should throw, but a CPU-only run must
    // never be taken down by the CUDA side of the build.
  }
}

CachingAllocator& pinned_host_allocator() {
  static CachingAllocator alloc(
      "cuda_pinned",
      [](size_t bytes) -> void* {
        void* p = nullptr;
        const cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
        if (err == cudaErrorMemoryAllocation) {
          (void)cudaGetLastError();
          return nullptr;
        }
        MINDIESD_CUDA_CHECK(err);
        return p;
      },
      [](void* p) { (void)cudaFreeHost(p); });
  return alloc;
}

uintptr_t stream_key(const Stream& stream) {
  const auto* s = dynamic_cast<const CudaStream*>(&stream);
  if (s == nullptr || s->is_default()) return 0;
  return reinterpret_cast<uintptr_t>(s->native());
}

}  // namespace mindiesd::cuda
