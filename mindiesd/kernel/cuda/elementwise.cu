// unary, binary and ternary elementwise ops on CUDA.
//
// Two paths per op. Dense operands of one float dtype take a vectorised kernel (16-byte loads
// and stores, the op's kind resolved once per thread, not per element): this is the hot case
// of a DiT block (activations, residual adds, gating) and runs at copy bandwidth. Everything
// else (broadcasting, views, mixed or integer dtypes) takes the strided kernel, which reads
// any dtype through a run-time switch; its cost is the index math, which the collapsed layout
// and 32-bit multiply-shift division keep small.
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/elementwise.cuh"
#include "mindiesd/kernel/cuda/elementwise.h"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"

namespace mindiesd::cuda {

namespace {

__host__ __device__ constexpr bool is_comparison_kind(BinaryKind k) { return k >= BinaryKind::eq; }

// ---- vectorised functors (dense, one float dtype) -------------------------------------------

template <DType D>
struct UnaryVec {
  using T = typename Traits<D>::T;
  const T* x;
  T* y;
  UnaryParams p;

  template <int V>
  MINDIESD_HD void vec(int64_t i) const {
    const Vec<T, V> in = *reinterpret_cast<const Vec<T, V>*>(x + i);
    Vec<T, V> out{};  // zero only for an out-of-range kind: never a garbage store
    with_unary_kind(p.kind, [&](auto k) {
      MINDIESD_UNROLL
      for (int j = 0; j < V; ++j) {
        const float r = unary_op<decltype(k)::value>(Traits<D>::to_f32(in.v[j]), p.alpha, p.beta);
        out.v[j] = Traits<D>::from_f32(r);
      }
    });
    *reinterpret_cast<Vec<T, V>*>(y + i) = out;
  }
};

// O is D for arithmetic kinds and boolean for comparisons; the host launches no other pair,
// and only the matching kinds are compiled into each instantiation.
template <DType D, DType O>
struct BinaryVec {
  using T = typename Traits<D>::T;
  using TO = typename Traits<O>::T;
  const T* a;
  const T* b;
  TO* out;
  BinaryKind kind;

  template <int V>
  MINDIESD_HD void vec(int64_t i) const {
    const Vec<T, V> va = *reinterpret_cast<const Vec<T, V>*>(a + i);
    const Vec<T, V> vb = *reinterpret_cast<const Vec<T, V>*>(b + i);
    Vec<TO, V> r{};
    with_binary_kind(kind, [&](auto k) {
      constexpr BinaryKind K = decltype(k)::value;
      if constexpr (is_comparison_kind(K) == (O == DType::boolean)) {
        MINDIESD_UNROLL
        for (int j = 0; j < V; ++j) {
          const float y = binary_op<K>(Traits<D>::to_f32(va.v[j]), Traits<D>::to_f32(vb.v[j]));
          r.v[j] = Traits<O>::from_f32(y);
        }
      }
    });
    *reinterpret_cast<Vec<TO, V>*>(out + i) = r;
  }
};

// ---- strided functors (any dtypes, any strides) ---------------------------------------------

struct UnaryStrided {
  void* y;
  const void* x;
  DType yt, xt;
  UnaryParams p;

  template <typename Index>
  MINDIESD_HD void operator()(const Index (&off)[2]) const {
    store_f32(y, yt, off[0], apply_unary(p, load_f32(x, xt, off[1])));
  }
};

struct BinaryStrided {
  void* out;
  const void* a;
  const void* b;
  DType ot, at, bt;
  BinaryKind kind;
  bool int_math;

  template <typename Index>
  MINDIESD_HD void operator()(const Index (&off)[3]) const {
    if (int_math) {
      store_i64(out, ot, off[0],
                apply_binary_int(kind, load_i64(a, at, off[1]), load_i64(b, bt, off[2])));
    } else {
      store_f32(out, ot, off[0],
                apply_binary(kind, load_f32(a, at, off[1]), load_f32(b, bt, off[2])));
    }
  }
};

struct TernaryStrided {
  void* out;
  const void* a;
  const void* b;
  const void* c;
  DType ot, at, bt, ct;
  TernaryKind kind;

  template <typename Index>
  MINDIESD_HD void operator()(const Index (&off)[4]) const {
    const float r = apply_ternary(kind, load_f32(a, at, off[1]), load_f32(b, bt, off[2]),
                                  load_f32(c, ct, off[3]));
    store_f32(out, ot, off[0], r);
  }
};

bool supported(DType t) { return t != DType::i4; }

// ---- registration glue ----------------------------------------------------------------------

void unary_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& y = c.outputs[0];
  const Tensor x = broadcast_like(c.inputs[0], y);
  MINDIESD_CUDA_CHECK(launch_unary(c.p<UnaryParams>(), y.dim(), y.shape().data(), out_arg(y),
                                   in_arg(x), scope.stream()));
}

void binary_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const BinaryKind kind = c.p<BinaryParams>().kind;
  const Tensor& out = c.outputs[0];
  const Tensor a = broadcast_like(c.inputs[0], out);
  const Tensor b = broadcast_like(c.inputs[1], out);
  MINDIESD_CHECK(is_floating(a.dtype()) || is_floating(b.dtype()) ||
                     (kind != BinaryKind::div && kind != BinaryKind::pow),
                 Unsupported, "binary op ", static_cast<int>(kind), " on integer tensors ", a.str(),
                 " and ", b.str());
  MINDIESD_CUDA_CHECK(launch_binary(kind, out.dim(), out.shape().data(), out_arg(out), in_arg(a),
                                    in_arg(b), scope.stream()));
}

void ternary_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& out = c.outputs[0];
  const Tensor a = broadcast_like(c.inputs[0], out);
  const Tensor b = broadcast_like(c.inputs[1], out);
  const Tensor d = broadcast_like(c.inputs[2], out);
  MINDIESD_CUDA_CHECK(launch_ternary(c.p<TernaryParams>().kind, out.dim(), out.shape().data(),
                                     out_arg(out), in_arg(a), in_arg(b), in_arg(d),
                                     scope.stream()));
}

}  // namespace

// ---- launchers ------------------------------------------------------------------------------

cudaError_t launch_unary(const UnaryParams& p, int ndim, const int64_t* sizes, StridedOut y,
                         StridedIn x, cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  if (!supported(y.dtype) || !supported(x.dtype)) return cudaErrorNotSupported;
  const auto layout = collapse<2>(ndim, sizes, {y.strides, x.strides});
  if (layout.numel == 0) return cudaSuccess;
  if (layout.contiguous() && x.dtype == y.dtype) {
    cudaError_t err = cudaSuccess;
    bool launched = false;
    dispatch_float(x.dtype, [&](auto d) {
      constexpr DType D = decltype(d)::value;
      using T = typename Traits<D>::T;
      constexpr int V = kVecElems<T>;
      if (!aligned_to(x.data, sizeof(T) * V) || !aligned_to(y.data, sizeof(T) * V)) return;
      const UnaryVec<D> op{static_cast<const T*>(x.data), static_cast<T*>(y.data), p};
      err = launch_contiguous<V>(layout.numel, op, stream);
      launched = true;
    });
    if (launched) return err;
  }
  return launch_strided(layout, UnaryStrided{y.data, x.data, y.dtype, x.dtype, p}, stream);
}

cudaError_t launch_binary(BinaryKind kind, int ndim, const int64_t* sizes, StridedOut out,
                          StridedIn a, StridedIn b, cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  if (!supported(out.dtype) || !supported(a.dtype) || !supported(b.dtype))
    return cudaErrorNotSupported;
  const bool int_math = !is_floating(a.dtype) && !is_floating(b.dtype);
  if (int_math && (kind == BinaryKind::div || kind == BinaryKind::pow))
    return cudaErrorNotSupported;
  const auto layout = collapse<3>(ndim, sizes, {out.strides, a.strides, b.strides});
  if (layout.numel == 0) return cudaSuccess;
  const bool cmp = is_comparison_kind(kind);
  if (layout.contiguous() && a.dtype == b.dtype && out.dtype == (cmp ? DType::boolean : a.dtype)) {
    cudaError_t err = cudaSuccess;
    bool launched = false;
    dispatch_float(a.dtype, [&](auto d) {
      constexpr DType D = decltype(d)::value;
      using T = typename Traits<D>::T;
      constexpr int V = kVecElems<T>;
      using TB = typename Traits<DType::boolean>::T;
      const size_t out_bytes = (cmp ? sizeof(TB) : sizeof(T)) * V;
      if (!aligned_to(a.data, sizeof(T) * V) || !aligned_to(b.data, sizeof(T) * V) ||
          !aligned_to(out.data, out_bytes))
        return;
      const auto* pa = static_cast<const T*>(a.data);
      const auto* pb = static_cast<const T*>(b.data);
      if (cmp) {
        const BinaryVec<D, DType::boolean> op{pa, pb, static_cast<TB*>(out.data), kind};
        err = launch_contiguous<V>(layout.numel, op, stream);
      } else {
        const BinaryVec<D, D> op{pa, pb, static_cast<T*>(out.data), kind};
        err = launch_contiguous<V>(layout.numel, op, stream);
      }
      launched = true;
    });
    if (launched) return err;
  }
  const BinaryStrided op{out.data, a.data, b.data, out.dtype, a.dtype, b.dtype, kind, int_math};
  return launch_strided(layout, op, stream);
}

cudaError_t launch_ternary(TernaryKind kind, int ndim, const int64_t* sizes, StridedOut out,
                           StridedIn a, StridedIn b, StridedIn c, cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  if (!supported(out.dtype) || !supported(a.dtype) || !supported(b.dtype) || !supported(c.dtype))
    return cudaErrorNotSupported;
  const auto layout = collapse<4>(ndim, sizes, {out.strides, a.strides, b.strides, c.strides});
  const TernaryStrided op{out.data, a.data,  b.data,  c.data, out.dtype,
                          a.dtype,  b.dtype, c.dtype, kind};
  return launch_strided(layout, op, stream);
}

void register_elementwise_kernels(KernelRegistry& r) {
  // Every dtype but packed i4, as on the CPU, so that dispatch never differs by device.
  constexpr DTypeSet kNumeric{DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2,
                              DType::i8,  DType::u8,  DType::i32,  DType::i64,     DType::boolean};
  r.add(OpId::unary, DeviceType::CUDA, {kNumeric}, kNumeric, unary_kernel);
  r.add(OpId::binary, DeviceType::CUDA, {kNumeric}, kNumeric, binary_kernel);
  r.add(OpId::ternary, DeviceType::CUDA, {kNumeric}, kNumeric, ternary_kernel);
}

}  // namespace mindiesd::cuda
