#include "mindiesd/kernel/cuda/cudnn_util.h"

#if defined(MINDIESD_CUDNN)

#include <mutex>
#include <unordered_map>
#include <vector>

#include "mindiesd/core/error.h"

namespace mindiesd::cuda {

namespace {

// Handles of threads that ended, per device, for the next thread that needs one. Leaked on
// purpose: destroying handles at process exit races with the runtime's own teardown.
struct HandlePool {
  std::mutex mu;
  std::unordered_map<int, std::vector<cudnnHandle_t>> idle;
};
HandlePool& handle_pool() {
  static HandlePool* pool = new HandlePool;
  return *pool;
}

struct ThreadHandles {
  std::unordered_map<int, cudnnHandle_t> by_device;
  ThreadHandles() = default;
  ThreadHandles(const ThreadHandles&) = delete;
  ThreadHandles& operator=(const ThreadHandles&) = delete;
  ~ThreadHandles() {
    HandlePool& pool = handle_pool();
    const std::lock_guard<std::mutex> lock(pool.mu);
    for (const auto& [device, h] : by_device) pool.idle[device].push_back(h);
  }
};

void check(cudnnStatus_t s, const char* call) {
  if (s != CUDNN_STATUS_SUCCESS) MINDIESD_THROW(Internal, call, " failed: ", cudnn_status_text(s));
}

}  // namespace

cudnnHandle_t cudnn_handle(int device, cudaStream_t stream) {
  thread_local ThreadHandles mine;
  cudnnHandle_t h = nullptr;
  const auto it = mine.by_device.find(device);
  if (it != mine.by_device.end()) {
    h = it->second;
  } else {
    {
      HandlePool& pool = handle_pool();
      const std::lock_guard<std::mutex> lock(pool.mu);
      std::vector<cudnnHandle_t>& idle = pool.idle[device];
      if (!idle.empty()) {
        h = idle.back();
        idle.pop_back();
      }
    }
    if (h == nullptr) check(cudnnCreate(&h), "cudnnCreate");
    mine.by_device.emplace(device, h);
  }
  check(cudnnSetStream(h, stream), "cudnnSetStream");
  return h;
}

std::string cudnn_status_text(cudnnStatus_t s) {
  std::string t = str_cat(cudnnGetErrorString(s), " (", static_cast<int>(s), ")");
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof(detail));
  detail[sizeof(detail) - 1] = '\0';
  if (detail[0] != '\0') t += str_cat(": ", detail);
  return t;
}

bool cudnn_not_supported(cudnnStatus_t s) {
  const int v = static_cast<int>(s);
  return v >= static_cast<int>(CUDNN_STATUS_NOT_SUPPORTED) && v < 4000;
}

}  // namespace mindiesd::cuda

#endif  // MINDIESD_CUDNN
