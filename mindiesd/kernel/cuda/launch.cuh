// The two launch shapes of the memory-bound kernels, shared by copy and elementwise:
//
//  - contiguous: every operand dense, each thread moves one aligned vector of VEC elements
//    (16-byte accesses); the op is a functor with `template <int V> void vec(int64_t i)`
//    that handles elements [i, i + V).
//  - strided: any strides (0 = broadcast) over a collapsed layout; each thread handles
//    kUnroll elements a block-width apart (coalesced across the warp), turning the linear
//    index into per-operand offsets with multiply-shift division when 32 bits suffice.
//
// The per-thread bodies are __host__ __device__ so that the index logic can be run and checked
// on a host without a GPU; the __global__ wrappers only supply the indices.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/strided.h"

namespace mindiesd::cuda {

inline constexpr int kThreads = 256;
inline constexpr int kUnroll = 4;

// ---- division by a run-time constant --------------------------------------------------------

// n / d for n < 2^31 as a multiply-high, an add and a shift (Granlund-Montgomery, as
// PyTorch's IntDivider): 64-bit division is a ~70-instruction software routine on GPUs and
// would dominate a strided copy.
struct FastDivmod {
  uint32_t divisor = 1;
  uint32_t magic = 0;
  uint32_t shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    while ((uint64_t{1} << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  MINDIESD_HD uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(n, magic);
#else
    const auto t = static_cast<uint32_t>((static_cast<uint64_t>(n) * magic) >> 32);
#endif
    return (t + n) >> shift;
  }
};

struct PlainDivmod {
  int64_t divisor = 1;
  PlainDivmod() = default;
  explicit PlainDivmod(int64_t d) : divisor(d) {}
  MINDIESD_HD int64_t div(int64_t n) const { return n / divisor; }
};

template <typename Index>
using Divider = std::conditional_t<std::is_same_v<Index, uint32_t>, FastDivmod, PlainDivmod>;

// ---- linear index -> per-operand element offsets --------------------------------------------

template <int N, typename Index>
struct OffsetCalc {
  int ndim = 1;
  Divider<Index> sizes[kMaxDims];  // innermost dim first
  Index strides[N][kMaxDims] = {};

  OffsetCalc() = default;
  explicit OffsetCalc(const StridedLayout<N>& l) : ndim(l.ndim) {
    for (int d = 0; d < l.ndim; ++d) {
      const int src = l.ndim - 1 - d;
      sizes[d] = Divider<Index>(static_cast<Index>(l.sizes[src]));
      for (int k = 0; k < N; ++k) strides[k][d] = static_cast<Index>(l.strides[k][src]);
    }
  }

  MINDIESD_HD void get(Index linear, Index (&off)[N]) const {
    MINDIESD_UNROLL
    for (int k = 0; k < N; ++k) off[k] = 0;
    MINDIESD_UNROLL
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim - 1) {  // the outermost dim needs no division
        MINDIESD_UNROLL
        for (int k = 0; k < N; ++k) off[k] += linear * strides[k][d];
        break;
      }
      const Index q = sizes[d].div(linear);
      const Index r = linear - q * static_cast<Index>(sizes[d].divisor);
      MINDIESD_UNROLL
      for (int k = 0; k < N; ++k) off[k] += r * strides[k][d];
      linear = q;
    }
  }
};

// ---- per-thread bodies ----------------------------------------------------------------------

template <int N, typename Index, typename Op>
MINDIESD_HD void strided_thread(const OffsetCalc<N, Index>& calc, Index n, const Op& op,
                                Index block, Index thread) {
  const Index base = block * static_cast<Index>(kThreads * kUnroll) + thread;
  MINDIESD_UNROLL
  for (int u = 0; u < kUnroll; ++u) {
    const Index i = base + static_cast<Index>(u * kThreads);
    if (i < n) {
      Index off[N];
      calc.get(i, off);
      op(off);
    }
  }
}

template <int VEC, typename Op>
MINDIESD_HD void contiguous_thread(int64_t n, const Op& op, int64_t thread) {
  const int64_t base = thread * VEC;
  if (base + VEC <= n) {
    op.template vec<VEC>(base);
  } else {
    for (int64_t i = base; i < n; ++i) op.template vec<1>(i);
  }
}

template <int N, typename Index, typename Op>
__global__ void __launch_bounds__(kThreads)
    strided_kernel(const OffsetCalc<N, Index> calc, Index n, const Op op) {
  strided_thread<N, Index, Op>(calc, n, op, static_cast<Index>(blockIdx.x),
                               static_cast<Index>(threadIdx.x));
}

template <int VEC, typename Op>
__global__ void __launch_bounds__(kThreads) contiguous_kernel(int64_t n, const Op op) {
  contiguous_thread<VEC, Op>(n, op, static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x);
}

// ---- host launchers -------------------------------------------------------------------------

inline bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// MINDIESD_CUDA_EMULATE (defined only by kernel-logic checks on machines without a GPU, never
// in the library) runs every grid serially on the host and treats device pointers as host
// pointers, so index math, conversions, vector tails and dispatch can be verified anywhere.

template <int N, typename Op>
cudaError_t launch_strided(const StridedLayout<N>& layout, const Op& op, cudaStream_t stream) {
  if (layout.numel == 0) return cudaSuccess;
  const int64_t per_block = int64_t{kThreads} * kUnroll;
  const int64_t blocks = (layout.numel + per_block - 1) / per_block;
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
#if defined(MINDIESD_CUDA_EMULATE)
  auto emulate = [&](auto index) {
    using Index = decltype(index);
    const OffsetCalc<N, Index> calc(layout);
    for (int64_t b = 0; b < blocks; ++b)
      for (int t = 0; t < kThreads; ++t)
        strided_thread<N, Index, Op>(calc, static_cast<Index>(layout.numel), op,
                                     static_cast<Index>(b), static_cast<Index>(t));
  };
  if (layout.fits_int32()) {
    emulate(uint32_t{});
  } else {
    emulate(int64_t{});
  }
  return cudaSuccess;
#else
  const auto grid = static_cast<unsigned>(blocks);
  // clang-format splits the launch chevrons in .cuh files.
  // clang-format off
  if (layout.fits_int32()) {
    const OffsetCalc<N, uint32_t> calc(layout);
    strided_kernel<N, uint32_t, Op><<<grid, kThreads, 0, stream>>>(
        calc, static_cast<uint32_t>(layout.numel), op);
  } else {
    const OffsetCalc<N, int64_t> calc(layout);
    strided_kernel<N, int64_t, Op><<<grid, kThreads, 0, stream>>>(calc, layout.numel, op);
  }
  // clang-format on
  return cudaGetLastError();
#endif
}

template <int VEC, typename Op>
cudaError_t launch_contiguous(int64_t n, const Op& op, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t per_block = int64_t{kThreads} * VEC;
  const int64_t blocks = (n + per_block - 1) / per_block;
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
#if defined(MINDIESD_CUDA_EMULATE)
  for (int64_t t = 0; t < blocks * kThreads; ++t) contiguous_thread<VEC, Op>(n, op, t);
  return cudaSuccess;
#else
  const auto grid = static_cast<unsigned>(blocks);
  // clang-format off
  contiguous_kernel<VEC, Op><<<grid, kThreads, 0, stream>>>(n, op);
  // clang-format on
  return cudaGetLastError();
#endif
}

// Device-to-device byte copy and byte fill on a stream (host memcpy/memset when emulating).
inline cudaError_t copy_bytes(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
#if defined(MINDIESD_CUDA_EMULATE)
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
#else
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
#endif
}
inline cudaError_t set_bytes(void* dst, uint8_t value, size_t bytes, cudaStream_t stream) {
#if defined(MINDIESD_CUDA_EMULATE)
  std::memset(dst, value, bytes);
  return cudaSuccess;
#else
  return cudaMemsetAsync(dst, value, bytes, stream);
#endif
}

// Calls f(std::integral_constant<DType, D>{}) for a float dtype D in {f32, f16, bf16}; returns
// false (calling nothing) for any other dtype. This is the small compile-time dispatch that
// keeps the vectorised kernels to three instantiations per op.
template <typename F>
bool dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      f(std::integral_constant<DType, DType::f32>{});
      return true;
    case DType::f16:
      f(std::integral_constant<DType, DType::f16>{});
      return true;
    case DType::bf16:
      f(std::integral_constant<DType, DType::bf16>{});
      return true;
    default:
      return false;
  }
}

}  // namespace mindiesd::cuda
