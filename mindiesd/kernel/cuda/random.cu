// Philox noise (uniform, normal) on CUDA, bit-identical to the CPU kernel.
//
// Global element g = offset + i takes word g % 4 of Philox block g / 4 (philox.h); normal
// values pair words (0, 1) and (2, 3) through Box-Muller with glibc's logf / sinf / cosf, which
// random.cuh ports operation for operation. Each thread computes one Philox block and stores
// the (up to) 4 elements of the output that fall in it, so every element is computed exactly
// once and the result depends only on (seed, offset + i), never on the launch shape.
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"
#include "mindiesd/kernel/cuda/random.cuh"
#include "mindiesd/kernel/cuda/random.h"

namespace mindiesd::cuda {

namespace {

// Thread t covers output indices [4 t - lead, 4 t - lead + 4) with lead = offset % 4, i.e.
// global elements 4 (offset / 4 + t) + j: Philox block offset / 4 + t (mod 2^62, as the
// CPU's uint64 arithmetic wraps).
template <DType D, bool kStrided>
__global__ void __launch_bounds__(kThreads)
    random_kernel(const RandomParams p, int64_t n, int64_t threads, int lead,
                  typename Traits<D>::T* out, const OffsetCalc<1, int64_t> calc) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= threads) return;
  float v[4];
  philox_values(p, (p.offset / 4 + static_cast<uint64_t>(t)) & ((uint64_t{1} << 62) - 1), v);
  const int64_t i0 = 4 * t - lead;
  MINDIESD_UNROLL
  for (int j = 0; j < 4; ++j) {
    const int64_t i = i0 + j;
    if (i < 0 || i >= n) continue;
    int64_t off = i;
    if constexpr (kStrided) {
      int64_t o[1];
      calc.get(i, o);
      off = o[0];
    }
    out[off] = Traits<D>::from_f32(v[j]);
  }
}

void random_op(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& out = c.outputs[0];
  MINDIESD_CUDA_CHECK(launch_random(c.p<RandomParams>(), out.dim(), out.shape().data(),
                                    out_arg(out), scope.stream()));
}

}  // namespace

cudaError_t launch_random(const RandomParams& p, int ndim, const int64_t* sizes, StridedOut out,
                          cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  const auto layout = collapse<1>(ndim, sizes, {out.strides});
  const int64_t n = layout.numel;
  if (n == 0) return cudaSuccess;
  const int lead = static_cast<int>(p.offset % 4);
  const int64_t threads = (n + lead + 3) / 4;
  const int64_t blocks = (threads + kThreads - 1) / kThreads;
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
  const bool strided = !layout.contiguous();
  const OffsetCalc<1, int64_t> calc(layout);
  cudaError_t err = cudaSuccess;
  const bool ok = dispatch_float(out.dtype, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    using T = typename Traits<D>::T;
    T* po = static_cast<T*>(out.data);
    const auto grid = static_cast<unsigned>(blocks);
    // clang-format off
    if (strided) {
      random_kernel<D, true><<<grid, kThreads, 0, stream>>>(p, n, threads, lead, po, calc);
    } else {
      random_kernel<D, false><<<grid, kThreads, 0, stream>>>(p, n, threads, lead, po, calc);
    }
    // clang-format on
    err = cudaGetLastError();
  });
  return ok ? err : cudaErrorNotSupported;
}

void register_random_kernels(KernelRegistry& r) {
  r.add(OpId::random, DeviceType::CUDA, {}, kFloatTypes, random_op);
}

}  // namespace mindiesd::cuda
