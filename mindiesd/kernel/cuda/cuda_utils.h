// Helpers shared by the CUDA backend and its kernels: error checking, device scoping and the
// stream of an op call. Host-only; includes the CUDA runtime API.
#pragma once

#include <cuda_runtime_api.h>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cuda/attention.h"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

// Throws the mindiesd::Error for a failed runtime call: OutOfMemory for
// cudaErrorMemoryAllocation (a caller may free memory and retry), Internal otherwise. The
// message names the call, the source location and the runtime's description.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

inline void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess) throw_cuda_error(err, call, file, line);
}

// Makes `device` current for a scope and restores the previous device after it: the runtime's
// current device is per host thread, and callers (PyTorch, another backend user) may rely on
// theirs staying put.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  int device_ = 0;
};

// The cudaStream_t of a CUDA Stream; InvalidArgument for a stream of another backend.
cudaStream_t native_stream(const Stream& stream);

// The launch context of a kernel call: the call's stream, with its device current.
class KernelScope {
 public:
  explicit KernelScope(const OpCall& call);
  cudaStream_t stream() const { return stream_; }

 private:
  cudaStream_t stream_;
  DeviceGuard guard_;
};

// ---- glue between OpCalls and the framework-free launchers ----

inline StridedIn in_arg(const Tensor& t) { return {t.data_ptr(), t.dtype(), t.strides().data()}; }
inline StridedOut out_arg(const Tensor& t) { return {t.data_ptr(), t.dtype(), t.strides().data()}; }
// `t` as a view of `out`'s shape (stride-0 broadcast); the front ends usually did this already.
inline Tensor broadcast_like(const Tensor& t, const Tensor& out) {
  return t.shape() == out.shape() ? t : t.expand(out.shape());
}

// The tensor-core attention arguments of 4-D (B, H, S, D) views (dense last dims).
inline FlashArgs flash_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                            float scale, bool causal) {
  FlashArgs a{};
  a.q = q.data_ptr();
  a.k = k.data_ptr();
  a.v = v.data_ptr();
  a.out = out.data_ptr();
  for (int i = 0; i < 3; ++i) {
    a.q_stride[i] = q.stride(i);
    a.k_stride[i] = k.stride(i);
    a.v_stride[i] = v.stride(i);
    a.o_stride[i] = out.stride(i);
  }
  a.batch = q.size(0);
  a.hq = q.size(1);
  a.hkv = k.size(1);
  a.sq = q.size(2);
  a.sk = k.size(2);
  a.scale = scale;
  a.causal = causal;
  return a;
}

}  // namespace mindiesd::cuda

#define MINDIESD_CUDA_CHECK(call) ::mindiesd::cuda::check_cuda((call), #call, __FILE__, __LINE__)
