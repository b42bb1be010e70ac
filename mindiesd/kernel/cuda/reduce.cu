// Reductions (sum, mean, max, min, var over any set of dims) and softmax along one dim, on CUDA.
//
// Both ops are "groups of G threads per row": a row is one output's reduced elements (reduce)
// or one softmax row. G = 32 (a warp per row) or 512 (a block per row, long rows) when the row's
// elements are dense, or G = 1 (a thread per row, coalesced across neighbouring rows) when the
// rows are strided but neighbouring rows are adjacent in memory (a reduction or softmax over a
// non-last dim). Elements are read through strides (OffsetCalc over the collapsed dims), so
// views, transposes and broadcasts need no copy, and nothing is allocated: one row never spans
// several blocks. The group's partial results are combined with xor shuffles (and through
// shared memory across the warps of a block), which leaves every thread of the group with the
// same value.
//
// Accuracy follows the CPU kernel (mindiesd/kernel/cpu/reduce.cpp): sums accumulate in f64,
// var is two-pass (the f64 mean, then the f64 sum of centred squares), max / min give NaN when
// any element is NaN; softmax is max-subtracted with f32 math.
#include <limits>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"
#include "mindiesd/kernel/cuda/reduce.h"

namespace mindiesd::cuda {

namespace {

constexpr int kWideGroup = 512;  // threads per row for long rows (one row per block)

__device__ __forceinline__ float f32_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float f32_nan() { return __int_as_float(0x7fc00000); }

template <int G>
inline constexpr int kBlockThreads = G > 32 ? G : kThreads;

// Element `i` of x as f32: a compile-time dtype, or (D == i4, which no kernel here reads) the
// run-time switch, so that the rarer input dtypes share one instantiation.
template <DType D>
__device__ __forceinline__ float load_elem(const void* x, DType t, int64_t i) {
  if constexpr (D == DType::i4) {
    return load_f32(x, t, i);
  } else {
    return Traits<D>::to_f32(static_cast<const typename Traits<D>::T*>(x)[i]);
  }
}

struct AddOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MinOp {
  __device__ float operator()(float a, float b) const { return fminf(a, b); }
};
struct OrOp {
  __device__ int operator()(int a, int b) const { return a | b; }
};

// Combines v over the G threads of a group (aligned lanes; G = 1, 32 or a whole block). Every
// thread of the warp / block must call it (no early exits). `smem` holds one T per warp.
// The result is the same in every thread of the group: xor butterflies combine commutatively,
// and across warps every thread folds the per-warp values in the same order.
template <int G, typename T, typename Op>
__device__ __forceinline__ T group_reduce(T v, Op op, T* smem) {
  if constexpr (G == 1) {
    return v;
  } else {
    constexpr int kWarpWidth = G < 32 ? G : 32;
    MINDIESD_UNROLL
    for (int o = kWarpWidth / 2; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if constexpr (G > 32) {
      constexpr int kWarps = G / 32;
      if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
      __syncthreads();
      v = smem[0];
      MINDIESD_UNROLL
      for (int w = 1; w < kWarps; ++w) v = op(v, smem[w]);
      __syncthreads();  // smem may be reused by the next reduction
    }
    return v;
  }
}

// ---- reduce ---------------------------------------------------------------------------------

template <typename Index>
struct ReduceArgs {
  OffsetCalc<2, Index> kept;  // output index -> {out offset, x offset}
  OffsetCalc<1, Index> red;   // reduced element index -> x offset
  int64_t n_out;
  Index n_red;
  const void* x;
  void* out;
  DType x_dtype, out_dtype;
  ReduceKind kind;
  int correction;
};

template <DType D, int G, typename Index>
__global__ void __launch_bounds__(kBlockThreads<G>) reduce_kernel(const ReduceArgs<Index> a) {
  constexpr int kGroups = kBlockThreads<G> / G;
  __shared__ double smem[kBlockThreads<G> / 32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / G;
  const bool valid = row < a.n_out;
  const Index lane = static_cast<Index>(threadIdx.x % G);
  Index off[2] = {0, 0};
  if (valid) a.kept.get(static_cast<Index>(row), off);
  const Index n = valid ? a.n_red : Index{0};
  // Loads element j of this row (j < n).
  auto load = [&](Index j) {
    Index r[1];
    a.red.get(j, r);
    return load_elem<D>(a.x, a.x_dtype, static_cast<int64_t>(off[1]) + static_cast<int64_t>(r[0]));
  };
  const ReduceKind kind = a.kind;  // uniform over the grid: the branches below never diverge
  float result = 0.0f;
  if (kind == ReduceKind::max || kind == ReduceKind::min) {
    float mx = -f32_inf();
    float mn = f32_inf();
    int nan = 0;
    for (Index j = lane; j < n; j += G) {
      const float v = load(j);
      mx = v > mx ? v : mx;
      mn = v < mn ? v : mn;
      nan |= v != v;
    }
    nan = group_reduce<G>(nan, OrOp{}, reinterpret_cast<int*>(smem));
    if (kind == ReduceKind::max) {
      result = group_reduce<G>(mx, MaxOp{}, reinterpret_cast<float*>(smem));
    } else {
      result = group_reduce<G>(mn, MinOp{}, reinterpret_cast<float*>(smem));
    }
    if (nan) result = f32_nan();
  } else {
    double sum = 0.0;
    for (Index j = lane; j < n; j += G) sum += static_cast<double>(load(j));
    sum = group_reduce<G>(sum, AddOp{}, smem);
    const double cnt = static_cast<double>(a.n_red);
    if (kind == ReduceKind::sum) {
      result = static_cast<float>(sum);
    } else if (kind == ReduceKind::mean) {
      result = static_cast<float>(sum / cnt);
    } else {  // var: second pass over the centred values
      const double mean = sum / cnt;
      double q = 0.0;
      for (Index j = lane; j < n; j += G) {
        const double d = static_cast<double>(load(j)) - mean;
        q += d * d;
      }
      q = group_reduce<G>(q, AddOp{}, smem);
      const double dof = cnt - static_cast<double>(a.correction);
      result = dof > 0 ? static_cast<float>(q / dof) : f32_nan();
    }
  }
  if (!valid || lane != 0) return;
  if (a.n_red == 0)
    result = kind == ReduceKind::sum ? 0.0f : f32_nan();
  store_f32(a.out, a.out_dtype, static_cast<int64_t>(off[0]), result);
}

template <DType D, int G, typename Index>
cudaError_t launch_reduce_as(const ReduceArgs<Index>& a, cudaStream_t stream) {
  constexpr int kGroups = kBlockThreads<G> / G;
  const int64_t blocks = (a.n_out + kGroups - 1) / kGroups;
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
  // clang-format off
  reduce_kernel<D, G, Index><<<static_cast<unsigned>(blocks), kBlockThreads<G>, 0, stream>>>(a);
  // clang-format on
  return cudaGetLastError();
}

// Calls f(integral_constant<DType, D>) with D = the dtype for f32 / f16 / bf16 and D = i4 (the
// run-time load) for every other dtype.
template <typename F>
void dispatch_load(DType t, F&& f) {
  if (!dispatch_float(t, f)) f(std::integral_constant<DType, DType::i4>{});
}

template <typename Index>
cudaError_t reduce_with(const ReduceArgs<Index>& a, int g, cudaStream_t stream) {
  cudaError_t err = cudaSuccess;
  dispatch_load(a.x_dtype, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    if (g == 1) {
      err = launch_reduce_as<D, 1>(a, stream);
    } else if (g == 32) {
      err = launch_reduce_as<D, 32>(a, stream);
    } else {
      err = launch_reduce_as<D, kWideGroup>(a, stream);
    }
  });
  return err;
}

// Threads per row: a thread per row when the rows' elements are strided but neighbouring rows
// are adjacent in memory (coalesced across a warp), else a warp, or a block for long rows.
int group_size(int64_t n_rows, int64_t row_len, int64_t elem_stride, int64_t row_inner_stride,
               int64_t row_inner_size) {
  if (elem_stride != 1 && row_inner_stride == 1 && row_inner_size >= 32 && n_rows >= 2048 &&
      row_len <= 65536)
    return 1;
  return row_len >= 4096 ? kWideGroup : 32;
}

bool floating_out(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

// ---- softmax --------------------------------------------------------------------------------

template <typename Index>
struct SoftmaxArgs {
  OffsetCalc<2, Index> rows;  // row index -> {out offset, x offset}
  int64_t n_rows;
  Index len;
  int64_t xs, os;  // element strides along the softmax dim
  const void* x;
  void* out;
  DType out_dtype;
};

template <DType D, int G, typename Index>
__global__ void __launch_bounds__(kBlockThreads<G>) softmax_kernel(const SoftmaxArgs<Index> a) {
  using T = typename Traits<D>::T;
  constexpr int kGroups = kBlockThreads<G> / G;
  __shared__ float smem[kBlockThreads<G> / 32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / G;
  const bool valid = row < a.n_rows;
  const Index lane = static_cast<Index>(threadIdx.x % G);
  Index off[2] = {0, 0};
  if (valid) a.rows.get(static_cast<Index>(row), off);
  const Index n = valid ? a.len : Index{0};
  const T* x = static_cast<const T*>(a.x) + static_cast<int64_t>(off[1]);
  const int64_t xs = a.xs;
  // As the CPU kernel: the max ignores NaN (a NaN then poisons the sum), a row of -inf or
  // with +inf gives NaN through inf - inf.
  float mx = -f32_inf();
  for (Index j = lane; j < n; j += G) {
    const float v = Traits<D>::to_f32(x[static_cast<int64_t>(j) * xs]);
    mx = v > mx ? v : mx;
  }
  mx = group_reduce<G>(mx, MaxOp{}, smem);
  float sum = 0.0f;
  for (Index j = lane; j < n; j += G)
    sum += expf(Traits<D>::to_f32(x[static_cast<int64_t>(j) * xs]) - mx);
  sum = group_reduce<G>(sum, AddOp{}, smem);
  const float inv = 1.0f / sum;
  const int64_t ob = static_cast<int64_t>(off[0]);
  for (Index j = lane; j < n; j += G) {
    const float e = expf(Traits<D>::to_f32(x[static_cast<int64_t>(j) * xs]) - mx);
    store_f32(a.out, a.out_dtype, ob + static_cast<int64_t>(j) * a.os, e * inv);
  }
}

template <DType D, int G, typename Index>
cudaError_t launch_softmax_as(const SoftmaxArgs<Index>& a, cudaStream_t stream) {
  constexpr int kGroups = kBlockThreads<G> / G;
  const int64_t blocks = (a.n_rows + kGroups - 1) / kGroups;
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
  // clang-format off
  softmax_kernel<D, G, Index><<<static_cast<unsigned>(blocks), kBlockThreads<G>, 0, stream>>>(a);
  // clang-format on
  return cudaGetLastError();
}

template <typename Index>
cudaError_t softmax_with(const SoftmaxArgs<Index>& a, DType x_dtype, int g, cudaStream_t stream) {
  cudaError_t err = cudaErrorNotSupported;
  dispatch_float(x_dtype, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    if (g == 1) {
      err = launch_softmax_as<D, 1>(a, stream);
    } else if (g == 32) {
      err = launch_softmax_as<D, 32>(a, stream);
    } else {
      err = launch_softmax_as<D, kWideGroup>(a, stream);
    }
  });
  return err;
}

// ---- registration glue ----------------------------------------------------------------------

void reduce_op(const OpCall& c) {
  const KernelScope scope(c);
  const auto& p = c.p<ReduceParams>();
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  MINDIESD_CHECK(x.dtype() != DType::i4, Unsupported, "reduce: packed i4 input ", x.str());
  MINDIESD_CUDA_CHECK(launch_reduce(p.kind, p.dims_mask, p.correction, x.dim(), x.shape().data(),
                                    out_arg(out), in_arg(x), scope.stream()));
}

void softmax_op(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  MINDIESD_CUDA_CHECK(launch_softmax(c.p<SoftmaxParams>().dim, x.dim(), x.shape().data(),
                                     out_arg(out), in_arg(x), scope.stream()));
}

}  // namespace

// ---- launchers ------------------------------------------------------------------------------

cudaError_t launch_reduce(ReduceKind kind, uint32_t dims_mask, int correction, int ndim,
                          const int64_t* sizes, StridedOut out, StridedIn x, cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  if (x.dtype == DType::i4 || !floating_out(out.dtype)) return cudaErrorNotSupported;
  int64_t ks[kMaxDims] = {}, kos[kMaxDims] = {}, kxs[kMaxDims] = {}, rs[kMaxDims] = {},
          rxs[kMaxDims] = {};
  int nk = 0, nr = 0;
  for (int d = 0; d < ndim; ++d) {
    if ((dims_mask >> d) & 1u) {
      rs[nr] = sizes[d];
      rxs[nr++] = x.strides[d];
    } else {
      ks[nk] = sizes[d];
      kos[nk] = out.strides[d];
      kxs[nk++] = x.strides[d];
    }
  }
  const auto kept = collapse<2>(nk, ks, {kos, kxs});
  auto red = collapse<1>(nr, rs, {rxs});
  if (kept.numel == 0) return cudaSuccess;
  if (red.numel == 0) red.sizes[0] = 1;  // no element is read; keeps OffsetCalc's divisors > 0
  const int g = group_size(kept.numel, red.numel, red.strides[0][red.ndim - 1],
                           kept.strides[1][kept.ndim - 1], kept.sizes[kept.ndim - 1]);
  auto run = [&](auto index) {
    using Index = decltype(index);
    ReduceArgs<Index> a;
    a.kept = OffsetCalc<2, Index>(kept);
    a.red = OffsetCalc<1, Index>(red);
    a.n_out = kept.numel;
    a.n_red = static_cast<Index>(red.numel);
    a.x = x.data;
    a.out = out.data;
    a.x_dtype = x.dtype;
    a.out_dtype = out.dtype;
    a.kind = kind;
    a.correction = correction;
    return reduce_with(a, g, stream);
  };
  if (kept.fits_int32() && red.fits_int32()) return run(uint32_t{});
  return run(int64_t{});
}

cudaError_t launch_softmax(int dim, int ndim, const int64_t* sizes, StridedOut out, StridedIn x,
                           cudaStream_t stream) {
  if (!valid_rank(ndim) || dim < 0 || dim >= ndim) return cudaErrorInvalidValue;
  if (!floating_out(x.dtype) || !floating_out(out.dtype)) return cudaErrorNotSupported;
  int64_t rs[kMaxDims] = {}, ros[kMaxDims] = {}, rxs[kMaxDims] = {};
  int nr = 0;
  for (int d = 0; d < ndim; ++d) {
    if (d == dim) continue;
    rs[nr] = sizes[d];
    ros[nr] = out.strides[d];
    rxs[nr++] = x.strides[d];
  }
  const auto rows = collapse<2>(nr, rs, {ros, rxs});
  const int64_t len = sizes[dim];
  if (rows.numel == 0 || len == 0) return cudaSuccess;
  const int64_t xs = x.strides[dim], os = out.strides[dim];
  const int g = group_size(rows.numel, len, xs, rows.strides[1][rows.ndim - 1],
                           rows.sizes[rows.ndim - 1]);
  constexpr int64_t kMax32 = std::numeric_limits<int32_t>::max();
  const bool small = rows.fits_int32() && len <= kMax32;
  auto run = [&](auto index) {
    using Index = decltype(index);
    SoftmaxArgs<Index> a;
    a.rows = OffsetCalc<2, Index>(rows);
    a.n_rows = rows.numel;
    a.len = static_cast<Index>(len);
    a.xs = xs;
    a.os = os;
    a.x = x.data;
    a.out = out.data;
    a.out_dtype = out.dtype;
    return softmax_with(a, x.dtype, g, stream);
  };
  return small ? run(uint32_t{}) : run(int64_t{});
}

void register_reduce_kernels(KernelRegistry& r) {
  // The CPU's dtype sets, so that dispatch never differs by device.
  const DTypeSet in{DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2,
                    DType::i8,  DType::u8,  DType::i32,  DType::i64,     DType::boolean};
  r.add(OpId::reduce, DeviceType::CUDA, {in}, kFloatTypes, reduce_op);
  r.add(OpId::softmax, DeviceType::CUDA, {kFloatTypes}, kFloatTypes, softmax_op);
}

}  // namespace mindiesd::cuda
