// Rotary position embedding (RoPE) on CUDA: out = x * cos + rotate(x) * sin per (b, s, h)
// row of D channels, for the two pairings diffusers uses (RopeParams in core/op_params.h).
// Same semantics and dtype set as kernel/cpu/rope.cpp.
//
// Memory-bound and elementwise over pairs: each thread takes 4 pairs of one row, (i, i + D/2)
// for rotate_half (4 channels from each half), (2i, 2i + 1) for interleaved (8 consecutive
// channels), so a warp covers consecutive channels of a row and its accesses coalesce. Each
// operand moves as vectors (16 bytes; 8 for 4 channels of a 2-byte dtype) where its rows are
// unit-stride and aligned, element by element otherwise (any stride, stride 0 broadcast
// tables, the partial last group of a row). Row offsets come from the collapsed (B, S, H)
// layout with 32-bit multiply-shift division when every index fits.
//
// The math is diffusers' apply_rotary_emb(use_real=True) operation for operation: each
// product rounded to f32 (__fmul_rn), then the sum (__fadd_rn / __fsub_rn): no FMA, so f32
// (and, through the same f32 values, bf16 / f16) results equal the CPU kernel's and
// PyTorch's bit for bit. A thread loads all of its pairs before it stores, and pairs are
// disjoint between threads, so out may be the very view x is.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"
#include "mindiesd/kernel/cuda/rope.h"

namespace mindiesd::cuda {

namespace {

inline constexpr int kPairs = 4;  // pairs per thread
inline constexpr int kRopeThreads = 256;

// Operand slots; the output first, as collapse() expects.
enum Slot { kOut, kX, kCos, kSin, kSlots };

// Elements [i, i + n) (stride cs, n <= N) as f32, zeros from n on. `vec`: cs == 1 and
// element i aligned to min(16, N * element size) bytes; N values then load as vectors.
template <int N>
__device__ __forceinline__ void load_n(const void* p, DType t, int64_t i, int64_t cs, int n,
                                       bool vec, float (&v)[N]) {
  if (vec && n == N) {
    switch (t) {
      case DType::bf16: {
        const auto q =
            *reinterpret_cast<const Vec<__nv_bfloat16, N>*>(static_cast<const __nv_bfloat16*>(p) + i);
#pragma unroll
        for (int j = 0; j < N; ++j) v[j] = Traits<DType::bf16>::to_f32(q.v[j]);
        return;
      }
      case DType::f16: {
        const auto q = *reinterpret_cast<const Vec<__half, N>*>(static_cast<const __half*>(p) + i);
#pragma unroll
        for (int j = 0; j < N; ++j) v[j] = Traits<DType::f16>::to_f32(q.v[j]);
        return;
      }
      default: {
#pragma unroll
        for (int h = 0; h < N; h += 4) {
          const auto q = *reinterpret_cast<const Vec<float, 4>*>(static_cast<const float*>(p) + i + h);
#pragma unroll
          for (int j = 0; j < 4; ++j) v[h + j] = q.v[j];
        }
        return;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = j < n ? ld(p, t, i + j * cs) : 0.0f;
}

template <int N>
__device__ __forceinline__ void store_n(void* p, DType t, int64_t i, int64_t cs, int n, bool vec,
                                        const float (&v)[N]) {
  if (vec && n == N) {
    switch (t) {
      case DType::bf16: {
        Vec<__nv_bfloat16, N> q;
#pragma unroll
        for (int j = 0; j < N; ++j) q.v[j] = Traits<DType::bf16>::from_f32(v[j]);
        *reinterpret_cast<Vec<__nv_bfloat16, N>*>(static_cast<__nv_bfloat16*>(p) + i) = q;
        return;
      }
      case DType::f16: {
        Vec<__half, N> q;
#pragma unroll
        for (int j = 0; j < N; ++j) q.v[j] = Traits<DType::f16>::from_f32(v[j]);
        *reinterpret_cast<Vec<__half, N>*>(static_cast<__half*>(p) + i) = q;
        return;
      }
      default: {
#pragma unroll
        for (int h = 0; h < N; h += 4) {
          Vec<float, 4> q;
#pragma unroll
          for (int j = 0; j < 4; ++j) q.v[j] = v[h + j];
          *reinterpret_cast<Vec<float, 4>*>(static_cast<float*>(p) + i + h) = q;
        }
        return;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j)
    if (j < n) st(p, t, i + j * cs, v[j]);
}

struct Operand {
  void* p = nullptr;
  DType t = DType::f32;
  int64_t cs = 0;    // channel stride
  bool vec = false;  // see load_n
};

struct RopeArgs {
  Operand op[kSlots];
  int64_t half = 0;            // D / 2
  int64_t groups_per_row = 0;  // ceil(half / kPairs)
  int64_t items = 0;           // rows * groups_per_row
  bool interleaved = false;
};

// a * b - c * d and a * b + c * d with each product rounded to f32 first (no FMA).
__device__ __forceinline__ float mul_sub(float a, float b, float c, float d) {
  return __fsub_rn(__fmul_rn(a, b), __fmul_rn(c, d));
}
__device__ __forceinline__ float mul_add(float a, float b, float c, float d) {
  return __fadd_rn(__fmul_rn(a, b), __fmul_rn(c, d));
}

template <typename Index>
__global__ void __launch_bounds__(kRopeThreads)
    rope_kernel(const RopeArgs a, const OffsetCalc<kSlots, Index> rows,
                const Divider<Index> div_groups) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * kRopeThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kRopeThreads + threadIdx.x; i < a.items;
       i += step) {
    const Index ii = static_cast<Index>(i);
    const Index r = div_groups.div(ii);
    const int64_t g = static_cast<int64_t>(ii - r * static_cast<Index>(div_groups.divisor));
    Index o[kSlots];
    rows.get(r, o);
    int64_t off[kSlots];
#pragma unroll
    for (int k = 0; k < kSlots; ++k) off[k] = static_cast<int64_t>(o[k]);
    const int64_t k0 = g * kPairs;  // first pair
    const int64_t left = a.half - k0;
    const int n = left < kPairs ? static_cast<int>(left) : kPairs;
    const Operand& ox = a.op[kX];
    const Operand& oc = a.op[kCos];
    const Operand& os = a.op[kSin];
    const Operand& oo = a.op[kOut];
    if (a.interleaved) {
      // Channels [2 k0, 2 k0 + 2n): y[2p] = x[2p] c[2p] - x[2p+1] s[2p],
      // y[2p+1] = x[2p+1] c[2p+1] + x[2p] s[2p+1].
      const int64_t c0 = 2 * k0;
      float x[2 * kPairs], c[2 * kPairs], s[2 * kPairs], y[2 * kPairs];
      load_n(ox.p, ox.t, off[kX] + c0 * ox.cs, ox.cs, 2 * n, ox.vec, x);
      load_n(oc.p, oc.t, off[kCos] + c0 * oc.cs, oc.cs, 2 * n, oc.vec, c);
      load_n(os.p, os.t, off[kSin] + c0 * os.cs, os.cs, 2 * n, os.vec, s);
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        y[2 * p] = mul_sub(x[2 * p], c[2 * p], x[2 * p + 1], s[2 * p]);
        y[2 * p + 1] = mul_add(x[2 * p + 1], c[2 * p + 1], x[2 * p], s[2 * p + 1]);
      }
      store_n(oo.p, oo.t, off[kOut] + c0 * oo.cs, oo.cs, 2 * n, oo.vec, y);
    } else {
      // Pairs (k, k + D/2): lo = a c_lo - b s_lo, hi = b c_hi + a s_hi.
      const int64_t h0 = a.half + k0;
      float xa[kPairs], xb[kPairs], cl[kPairs], ch[kPairs], sl[kPairs], sh[kPairs];
      load_n(ox.p, ox.t, off[kX] + k0 * ox.cs, ox.cs, n, ox.vec, xa);
      load_n(ox.p, ox.t, off[kX] + h0 * ox.cs, ox.cs, n, ox.vec, xb);
      load_n(oc.p, oc.t, off[kCos] + k0 * oc.cs, oc.cs, n, oc.vec, cl);
      load_n(oc.p, oc.t, off[kCos] + h0 * oc.cs, oc.cs, n, oc.vec, ch);
      load_n(os.p, os.t, off[kSin] + k0 * os.cs, os.cs, n, os.vec, sl);
      load_n(os.p, os.t, off[kSin] + h0 * os.cs, os.cs, n, os.vec, sh);
      float lo[kPairs], hi[kPairs];
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        lo[p] = mul_sub(xa[p], cl[p], xb[p], sl[p]);
        hi[p] = mul_add(xb[p], ch[p], xa[p], sh[p]);
      }
      store_n(oo.p, oo.t, off[kOut] + k0 * oo.cs, oo.cs, n, oo.vec, lo);
      store_n(oo.p, oo.t, off[kOut] + h0 * oo.cs, oo.cs, n, oo.vec, hi);
    }
  }
}

bool rope_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

}  // namespace

cudaError_t launch_rope(RopeMode mode, const int64_t* sizes, StridedOut out, StridedIn x,
                        StridedIn cos, StridedIn sin, cudaStream_t stream) {
  const StridedIn ins[kSlots] = {{out.data, out.dtype, out.strides}, x, cos, sin};
  for (const StridedIn& t : ins) {
    if (t.data == nullptr || t.strides == nullptr) return cudaErrorInvalidValue;
    if (!rope_dtype(t.dtype)) return cudaErrorNotSupported;
  }
  if (sizes[3] % 2 != 0) return cudaErrorInvalidValue;
  for (int d = 0; d < 4; ++d)
    if (sizes[d] == 0) return cudaSuccess;

  RopeArgs a;
  a.interleaved = mode == RopeMode::interleaved;
  a.half = sizes[3] / 2;
  a.groups_per_row = (a.half + kPairs - 1) / kPairs;
  const StridedLayout<kSlots> layout =
      collapse<kSlots>(3, sizes, {ins[kOut].strides, ins[kX].strides, ins[kCos].strides,
                                  ins[kSin].strides});
  a.items = layout.numel * a.groups_per_row;
  // Elements a vector access covers: 8 consecutive channels (interleaved) or 4 of each half.
  const int64_t vec_elems = a.interleaved ? 2 * kPairs : kPairs;
  for (int k = 0; k < kSlots; ++k) {
    Operand& o = a.op[k];
    o.p = const_cast<void*>(ins[k].data);
    o.t = ins[k].dtype;
    o.cs = ins[k].strides[3];
    const int64_t es = o.t == DType::f32 ? 4 : 2;
    const int64_t align = vec_elems * es < 16 ? vec_elems * es : 16;
    bool ok = o.cs == 1 && aligned_to(o.p, static_cast<size_t>(align));
    if (!a.interleaved) ok &= (a.half * es) % align == 0;  // the upper half's groups
    for (int d = 0; d < layout.ndim; ++d)
      ok &= layout.sizes[d] == 1 || (layout.strides[k][d] * es) % align == 0;
    o.vec = ok;
  }

  const int64_t blocks64 = (a.items + kRopeThreads - 1) / kRopeThreads;
  const auto grid =
      static_cast<unsigned>(std::min<int64_t>(blocks64, std::numeric_limits<int32_t>::max()));
  // clang-format off
  if (layout.fits_int32() && a.items <= std::numeric_limits<int32_t>::max()) {
    rope_kernel<uint32_t><<<grid, kRopeThreads, 0, stream>>>(
        a, OffsetCalc<kSlots, uint32_t>(layout),
        Divider<uint32_t>(static_cast<uint32_t>(a.groups_per_row)));
  } else {
    rope_kernel<int64_t><<<grid, kRopeThreads, 0, stream>>>(
        a, OffsetCalc<kSlots, int64_t>(layout), Divider<int64_t>(a.groups_per_row));
  }
  // clang-format on
  return cudaGetLastError();
}

namespace {

void rope_op(const OpCall& c) {
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  MINDIESD_ASSERT(x.dim() == 4 && out.shape() == x.shape() && x.size(3) % 2 == 0,
                  "rope kernel expects 4-d operands of one shape with an even last dim, got ",
                  x.str(), ", out ", out.str());
  const Tensor cos = broadcast_like(c.inputs[1], x);
  const Tensor sin = broadcast_like(c.inputs[2], x);
  if (x.numel() == 0) return;
  const KernelScope scope(c);
  MINDIESD_CUDA_CHECK(launch_rope(c.p<RopeParams>().mode, x.shape().data(), out_arg(out),
                                  in_arg(x), in_arg(cos), in_arg(sin), scope.stream()));
}

}  // namespace

void register_rope_kernels(KernelRegistry& r) {
  // The CPU's dtype set (f32 / bf16 / f16 for each of x, cos, sin and out), so dispatch never
  // differs by device.
  r.add(OpId::rope, DeviceType::CUDA, {kFloatTypes, kFloatTypes, kFloatTypes}, kFloatTypes,
        rope_op);
}

}  // namespace mindiesd::cuda
