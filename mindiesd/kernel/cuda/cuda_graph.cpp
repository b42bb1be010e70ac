#include "mindiesd/kernel/cuda/cuda_graph.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <exception>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"

namespace mindiesd::cuda {

namespace {

CachingAllocator& device_allocator(Device device) {
  auto* a = dynamic_cast<CachingAllocator*>(&backend_for(device).allocator(device.index));
  MINDIESD_ASSERT(a != nullptr, "the allocator of ", device.str(), " is not a CachingAllocator");
  return *a;
}

}  // namespace

CudaGraph::CudaGraph(Device device, uintptr_t pool) : device_(device), pool_(pool) {}

std::unique_ptr<CudaGraph> CudaGraph::capture(Device device, const std::function<void()>& work) {
  MINDIESD_CHECK(device.type == DeviceType::CUDA, InvalidArgument,
                 "CudaGraph::capture: ", device.str(), " is not a CUDA device");
  // Pool keys with the top bit set never collide with a stream's key (a cudaStream_t).
  static std::atomic<uintptr_t> next_pool{1};
  const uintptr_t pool = (uintptr_t{1} << 63) | next_pool++;
  std::unique_ptr<CudaGraph> g(new CudaGraph(device, pool));
  CachingAllocator& alloc = device_allocator(device);
  const cudaStream_t stream = native_stream(backend_for(device).default_stream(device.index));
  DeviceGuard guard(device.index);
  alloc.begin_private_pool(pool);  // throws, before any capture begins, when one is open
  // Relaxed: the allocator may cudaMalloc a new block inside the capture (never cudaFree).
  const cudaError_t began = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
  if (began != cudaSuccess) {
    alloc.end_private_pool();
    MINDIESD_CUDA_CHECK(began);
  }
  std::exception_ptr error;
  try {
    work();
  } catch (...) {
    error = std::current_exception();
  }
  alloc.end_private_pool();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (error || ended != cudaSuccess) {
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    if (error) std::rethrow_exception(error);
    MINDIESD_THROW(Internal, "CudaGraph::capture on ", device.str(), ": the capture failed (",
                   cudaGetErrorString(ended), "); a call inside it waited for the device or ",
                   "used another stream");
  }
  g->graph_ = graph;
  cudaGraphExec_t exec = nullptr;
  MINDIESD_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  g->exec_ = exec;
  return g;
}

CudaGraph::~CudaGraph() {
  try {
    DeviceGuard guard(device_.index);
    // A replay may still run: its memory goes back only after the stream has drained.
    (void)cudaStreamSynchronize(native_stream(backend_for(device_).default_stream(device_.index)));
    if (exec_ != nullptr) (void)cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
    if (graph_ != nullptr) (void)cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
    device_allocator(device_).release_private_pool(pool_);
  } catch (...) {  // a destructor must not throw; the pool then stays reserved
  }
}

void CudaGraph::replay() {
  const cudaStream_t stream = native_stream(backend_for(device_).default_stream(device_.index));
  DeviceGuard guard(device_.index);
  MINDIESD_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream));
}

}  // namespace mindiesd::cuda
