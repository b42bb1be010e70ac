// CUDA graphs: a sequence of ops recorded once on a device's default stream (stream capture)
// and replayed with one launch, which removes the per-kernel launch cost of a denoising step
// whose shapes no longer change (PyTorch's torch.cuda.CUDAGraph, made for our allocator).
//
// Capture rules, as for any CUDA graph: every input the captured work reads must be a device
// tensor made before the capture, and new values reach it by copying into it before a replay
// (a host->device copy inside the capture would replay stale host memory, so the backend
// refuses it with Unsupported); host scalars taken by the ops are baked in; nothing inside may
// wait for the device. Tensors allocated inside the capture come from a private pool of the
// device allocator that stays reserved while the graph exists: the outputs a caller keeps are
// rewritten in place by every replay.
//
// Plain C++ header (no CUDA headers), like cuda_backend.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "mindiesd/core/device.h"

namespace mindiesd::cuda {

class CudaGraph {
 public:
  // Runs `work` once under stream capture of `device`'s default stream (nothing executes) and
  // instantiates the graph. An exception from `work` ends the capture and propagates; a
  // capture the runtime invalidated (a synchronising call inside it) throws Internal.
  static std::unique_ptr<CudaGraph> capture(Device device, const std::function<void()>& work);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Queues the whole graph on the device's default stream; asynchronous like any op.
  void replay();
  Device device() const { return device_; }

 private:
  CudaGraph(Device device, uintptr_t pool);
  Device device_;
  uintptr_t pool_;       // the allocator's private pool key
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
};

}  // namespace mindiesd::cuda
