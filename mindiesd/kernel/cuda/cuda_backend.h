// The CUDA backend: device memory, copies, streams and events, and its kernel table.
//
// This header is plain C++ (no CUDA headers), so that kernel/backends.cpp and tests can use
// it from any translation unit. Device code and the error-check macro live in cuda_utils.h.
#pragma once

#include <cstdint>
#include <string>

#include "mindiesd/core/allocator.h"
#include "mindiesd/core/backend.h"

namespace mindiesd::cuda {

// Registers the CUDA backend and every CUDA kernel family when at least one GPU is visible.
// With no driver, no device or a broken installation it registers nothing and returns: a
// CUDA build must still run every CPU path on a machine without a GPU. Never throws.
void register_cuda_backend();

// The number of visible CUDA devices; 0 when there is no usable driver or device, with the
// runtime's reason in *why (when given). Never throws.
int visible_device_count(std::string* why = nullptr);

// Page-locked host memory (cudaHostAlloc, portable to every device) for asynchronous copies:
// a cudaMemcpyAsync from pageable memory is staged and partly synchronous, from pinned memory
// it is a true DMA that overlaps with kernels. Cached like device memory.
CachingAllocator& pinned_host_allocator();

// The allocator stream key of a CUDA stream: 0 for a device's default stream (what
// Tensor::empty uses), the cudaStream_t otherwise. A block freed under one key is reused only
// under the same key, so memory handed to a side stream is not recycled for work on another
// stream that could overtake its pending kernels.
uintptr_t stream_key(const Stream& stream);

}  // namespace mindiesd::cuda
