// 2-D resampling of NCHW tensors on CUDA with PyTorch's index rules (aten/src/ATen/native/
// UpSample.h), exactly as the CPU kernel (mindiesd/kernel/cpu/interpolate.cpp) picks source
// pixels and weights: the scale in f64 on the host, nearest indices from the f32 product
// floor(dst * float(scale)) (nearest-exact: floor((dst + 0.5f) * float(scale))), bilinear
// coordinates in f64 and weights rounded to f32. One thread per output element reads its
// (up to) 4 taps through the input's strides; the weighted sum is f32.
#include <limits>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/interpolate.h"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"

namespace mindiesd::cuda {

namespace {

// PyTorch's area_pixel_compute_scale (the CPU's pixel_scale).
double pixel_scale(int64_t in, int64_t out, bool align_corners, double given) {
  if (align_corners)
    return out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  return given > 0.0 ? given : static_cast<double>(in) / static_cast<double>(out);
}

struct Tap {
  int64_t i0, i1;
  float w0, w1;
};

// The CPU's taps() for one output coordinate. The CPU build fuses scale * (o + 0.5) - 0.5 into
// one FMA (gcc, FMA targets); the f32 products of the nearest modes are single roundings.
__device__ __forceinline__ Tap tap(int64_t o, int64_t in, double scale, InterpolateMode mode,
                                   bool align_corners) {
  if (mode == InterpolateMode::bilinear) {
    double src = align_corners ? __dmul_rn(scale, static_cast<double>(o))
                               : __fma_rn(scale, __dadd_rn(static_cast<double>(o), 0.5), -0.5);
    if (src < 0) src = 0;
    const int64_t i0 = min(static_cast<int64_t>(src), in - 1);
    const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float l1 = __double2float_rn(__dsub_rn(src, static_cast<double>(i0)));
    return {i0, i1, __fsub_rn(1.0f, l1), l1};
  }
  const float fs = __double2float_rn(scale);
  const float fo = static_cast<float>(o);
  const float src = mode == InterpolateMode::nearest ? floorf(__fmul_rn(fo, fs))
                                                     : floorf(__fmul_rn(__fadd_rn(fo, 0.5f), fs));
  const int64_t i0 = min(static_cast<int64_t>(src), in - 1);
  return {i0, i0, 1.0f, 0.0f};
}

template <typename Index>
struct InterpArgs {
  int64_t n;                      // output elements
  Divider<Index> ow, oh, c;       // output W, H and C
  int64_t ih, iw;
  int64_t xs[4], os[4];
  double scale_h, scale_w;
  InterpolateMode mode;
  bool align_corners;
  void* out;
  DType out_dtype;
};

template <DType D, typename Index>
__global__ void __launch_bounds__(kThreads)
    interpolate_kernel(const InterpArgs<Index> a, const typename Traits<D>::T* x) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= a.n) return;
  Index t = static_cast<Index>(i);
  Index q = a.ow.div(t);
  const auto ox = static_cast<int64_t>(t - q * static_cast<Index>(a.ow.divisor));
  t = q;
  q = a.oh.div(t);
  const auto oy = static_cast<int64_t>(t - q * static_cast<Index>(a.oh.divisor));
  t = q;
  q = a.c.div(t);
  const auto ch = static_cast<int64_t>(t - q * static_cast<Index>(a.c.divisor));
  const auto nb = static_cast<int64_t>(q);
  const Tap ty = tap(oy, a.ih, a.scale_h, a.mode, a.align_corners);
  const Tap tx = tap(ox, a.iw, a.scale_w, a.mode, a.align_corners);
  const int64_t base = nb * a.xs[0] + ch * a.xs[1];
  const int64_t r0 = base + ty.i0 * a.xs[2], r1 = base + ty.i1 * a.xs[2];
  const int64_t c0 = tx.i0 * a.xs[3], c1 = tx.i1 * a.xs[3];
  const float v00 = Traits<D>::to_f32(x[r0 + c0]), v01 = Traits<D>::to_f32(x[r0 + c1]);
  const float v10 = Traits<D>::to_f32(x[r1 + c0]), v11 = Traits<D>::to_f32(x[r1 + c1]);
  // As the CPU: every tap is weighted, even a zero weight (so inf / NaN propagate alike).
  const float top = tx.w0 * v00 + tx.w1 * v01;
  const float bot = tx.w0 * v10 + tx.w1 * v11;
  const float y = ty.w0 * top + ty.w1 * bot;
  store_f32(a.out, a.out_dtype, nb * a.os[0] + ch * a.os[1] + oy * a.os[2] + ox * a.os[3], y);
}

void interpolate_op(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  MINDIESD_CHECK(x.dim() == 4 && out.dim() == 4, InvalidArgument,
                 "interpolate: expected NCHW tensors, got ", x.str(), " -> ", out.str());
  MINDIESD_CUDA_CHECK(launch_interpolate(c.p<InterpolateParams>(), x.shape().data(), in_arg(x),
                                         out.shape().data(), out_arg(out), scope.stream()));
}

}  // namespace

cudaError_t launch_interpolate(const InterpolateParams& p, const int64_t* x_sizes, StridedIn x,
                               const int64_t* out_sizes, StridedOut out, cudaStream_t stream) {
  if (x_sizes[0] != out_sizes[0] || x_sizes[1] != out_sizes[1]) return cudaErrorInvalidValue;
  const int64_t n = out_sizes[0] * out_sizes[1] * out_sizes[2] * out_sizes[3];
  if (n == 0) return cudaSuccess;
  if (x_sizes[2] <= 0 || x_sizes[3] <= 0) return cudaErrorInvalidValue;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
  if (out.dtype != DType::f32 && out.dtype != DType::f16 && out.dtype != DType::bf16)
    return cudaErrorNotSupported;
  cudaError_t err = cudaErrorNotSupported;
  auto run = [&](auto index) {
    using Index = decltype(index);
    InterpArgs<Index> a;
    a.n = n;
    a.ow = Divider<Index>(static_cast<Index>(out_sizes[3]));
    a.oh = Divider<Index>(static_cast<Index>(out_sizes[2]));
    a.c = Divider<Index>(static_cast<Index>(out_sizes[1]));
    a.ih = x_sizes[2];
    a.iw = x_sizes[3];
    for (int d = 0; d < 4; ++d) {
      a.xs[d] = x.strides[d];
      a.os[d] = out.strides[d];
    }
    a.scale_h = pixel_scale(x_sizes[2], out_sizes[2], p.align_corners, p.scale_h);
    a.scale_w = pixel_scale(x_sizes[3], out_sizes[3], p.align_corners, p.scale_w);
    a.mode = p.mode;
    a.align_corners = p.align_corners;
    a.out = out.data;
    a.out_dtype = out.dtype;
    dispatch_float(x.dtype, [&](auto d) {
      constexpr DType D = decltype(d)::value;
      using T = typename Traits<D>::T;
      // clang-format off
      interpolate_kernel<D, Index><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          a, static_cast<const T*>(x.data));
      // clang-format on
      err = cudaGetLastError();
    });
  };
  if (n <= std::numeric_limits<int32_t>::max()) {
    run(uint32_t{});
  } else {
    run(int64_t{});
  }
  return err;
}

void register_interpolate_kernels(KernelRegistry& r) {
  // The CPU's dtype sets, so that dispatch never differs by device.
  r.add(OpId::interpolate, DeviceType::CUDA, {kFloatTypes}, kFloatTypes, interpolate_op);
}

}  // namespace mindiesd::cuda
