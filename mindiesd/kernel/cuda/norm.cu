// CUDA kernels of the norm family (op `norm`, NormParams in core/op_params.h): LayerNorm and
// RMSNorm over the last dim with the DiT fusions (affine, adaLN scale / shift, residual add),
// and GroupNorm over (N, C, S). Same semantics and dtype set as kernel/cpu/norm.cpp.
//
// Row norms. A row is split into chunks of 8 elements; thread t of the row's G threads owns
// chunks t, t + G, t + 2G, ... Each chunk moves as 16-byte vectors where its operand's rows
// are unit-stride and 16-byte aligned (one access of 8 bf16 / f16, two of f32), element by
// element otherwise (any stride, the partial last chunk). Three launch shapes by row length:
//  - short rows (<= 128 chunks, C <= 1024): G = the power of two >= the chunk count, at most
//    32, so a row is a warp or a part of one, 256 / G rows per block, shuffle reductions;
//  - long rows (<= 2048 chunks, C <= 16384): one block of G = 64..512 threads per row;
//  - longer rows: one block of 512 threads per row, passes re-reading the row from memory.
// In the first two the row (s = x, or x + residual rounded as the stored sum) is read once
// into registers (at most 4 chunks = 32 values per thread); the statistics are two passes
// over those values in f32: mean0 = sum(s) / C, then sum(d) and sum(d^2) of d = s - mean0,
// so that mean = mean0 + sum(d) / C and var = sum(d^2) / C - (sum(d) / C)^2 stay accurate
// with far-off means and outlier channels (rms: sum(s^2) only). The output is written once:
// y = (norm * weight + bias) * (1 + scale) + shift, with norm rounded through y's dtype first
// under round_normed. Scale / shift are x-shaped views (stride 0 over broadcast dims), read
// per row; their rows are L2-resident when shared.
//
// GroupNorm: one block per (n, group); the statistics are f32 partial sums of d = x - shift
// (shift: the mean of the group's first 256 values) and d^2 folded into f64 every 16 values
// per thread, then reduced in f64; the block then re-reads the group to normalise with the
// per-channel affine. Any strides; the flat index within the group is split into (channel,
// position) by a multiply-shift division.
//
// All reductions are in a fixed order, so results are deterministic run to run.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"
#include "mindiesd/kernel/cuda/norm.h"

namespace mindiesd::cuda {

namespace {

// ---- element access (f32 / bf16 / f16 at run time) ------------------------------------------

// v rounded through dtype t (where the unfused code stores an intermediate in t).
__device__ __forceinline__ float round_through(DType t, float v) {
  switch (t) {
    case DType::bf16:
      return Traits<DType::bf16>::to_f32(Traits<DType::bf16>::from_f32(v));
    case DType::f16:
      return Traits<DType::f16>::to_f32(Traits<DType::f16>::from_f32(v));
    default:
      return v;
  }
}

inline constexpr int kChunk = 8;  // elements per chunk: 16 bytes of a 2-byte dtype

// Elements [i, i + n) of a buffer, stride cs, n <= kChunk, as f32 (zeros from n on). `vec`:
// cs == 1 and element i is 16-byte aligned; a full chunk then loads as 16-byte vectors.
__device__ __forceinline__ void load_chunk(const void* p, DType t, int64_t i, int64_t cs, int n,
                                           bool vec, float (&v)[kChunk]) {
  if (vec && n == kChunk) {
    switch (t) {
      case DType::bf16: {
        const auto q = *reinterpret_cast<const Vec<__nv_bfloat16, kChunk>*>(
            static_cast<const __nv_bfloat16*>(p) + i);
#pragma unroll
        for (int j = 0; j < kChunk; ++j) v[j] = Traits<DType::bf16>::to_f32(q.v[j]);
        return;
      }
      case DType::f16: {
        const auto q =
            *reinterpret_cast<const Vec<__half, kChunk>*>(static_cast<const __half*>(p) + i);
#pragma unroll
        for (int j = 0; j < kChunk; ++j) v[j] = Traits<DType::f16>::to_f32(q.v[j]);
        return;
      }
      default: {
        const float* f = static_cast<const float*>(p) + i;
        const auto lo = *reinterpret_cast<const Vec<float, 4>*>(f);
        const auto hi = *reinterpret_cast<const Vec<float, 4>*>(f + 4);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          v[j] = lo.v[j];
          v[j + 4] = hi.v[j];
        }
        return;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kChunk; ++j) v[j] = j < n ? ld(p, t, i + j * cs) : 0.0f;
}

__device__ __forceinline__ void store_chunk(void* p, DType t, int64_t i, int64_t cs, int n,
                                            bool vec, const float (&v)[kChunk]) {
  if (vec && n == kChunk) {
    switch (t) {
      case DType::bf16: {
        Vec<__nv_bfloat16, kChunk> q;
#pragma unroll
        for (int j = 0; j < kChunk; ++j) q.v[j] = Traits<DType::bf16>::from_f32(v[j]);
        *reinterpret_cast<Vec<__nv_bfloat16, kChunk>*>(static_cast<__nv_bfloat16*>(p) + i) = q;
        return;
      }
      case DType::f16: {
        Vec<__half, kChunk> q;
#pragma unroll
        for (int j = 0; j < kChunk; ++j) q.v[j] = Traits<DType::f16>::from_f32(v[j]);
        *reinterpret_cast<Vec<__half, kChunk>*>(static_cast<__half*>(p) + i) = q;
        return;
      }
      default: {
        float* f = static_cast<float*>(p) + i;
        Vec<float, 4> lo, hi;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          lo.v[j] = v[j];
          hi.v[j] = v[j + 4];
        }
        *reinterpret_cast<Vec<float, 4>*>(f) = lo;
        *reinterpret_cast<Vec<float, 4>*>(f + 4) = hi;
        return;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kChunk; ++j)
    if (j < n) st(p, t, i + j * cs, v[j]);
}

// ---- row norms ------------------------------------------------------------------------------

// Operand slots of a row norm: the x-shaped views, then the (C) vectors.
enum Slot { kX, kY, kSum, kRes, kScale, kShift, kRowSlots, kWeight = kRowSlots, kBias, kSlots };

struct Operand {
  void* p = nullptr;  // element 0; nullptr: absent
  DType t = DType::f32;
  int64_t cs = 0;    // element stride along C
  bool vec = false;  // unit stride along C and every row start 16-byte aligned
};

struct RowNormArgs {
  Operand op[kSlots];
  int64_t rows = 0, C = 0, nchunks = 0;
  int group = 32;  // threads per row on the short-row path (a power of two <= 32)
  float eps = 1e-5f;
  bool rms = false;
  bool round_normed = false;
};

// Launch shapes (see the file comment).
enum class RowPath { warp, block, stream };
inline constexpr int kWarpPathThreads = 256;
inline constexpr int kMaxRowThreads = 512;
inline constexpr int kHoldChunks = 4;  // chunks a thread keeps in registers

// Elements [c0, c0 + n) of a row operand (row offset `row`) as f32.
__device__ __forceinline__ void load_op(const Operand& o, int64_t row, int64_t c0, int n,
                                        float (&v)[kChunk]) {
  load_chunk(o.p, o.t, row + c0 * o.cs, o.cs, n, o.vec, v);
}
__device__ __forceinline__ void store_op(const Operand& o, int64_t row, int64_t c0, int n,
                                         const float (&v)[kChunk]) {
  store_chunk(o.p, o.t, row + c0 * o.cs, o.cs, n, o.vec, v);
}

// The chunk of s at [c0, c0 + n): x, or x + residual rounded to the sum's dtype and stored
// there (what an unfused add would store and the norm would then read).
__device__ __forceinline__ void load_s(const RowNormArgs& a, const int64_t (&off)[kRowSlots],
                                       int64_t c0, int n, float (&v)[kChunk]) {
  load_op(a.op[kX], off[kX], c0, n, v);
  if (a.op[kRes].p == nullptr || n == 0) return;
  float r[kChunk];
  load_op(a.op[kRes], off[kRes], c0, n, r);
  const DType t = a.op[kSum].t;
#pragma unroll
  for (int j = 0; j < kChunk; ++j) v[j] = j < n ? round_through(t, v[j] + r[j]) : 0.0f;
  store_op(a.op[kSum], off[kSum], c0, n, v);
}

// Normalises and stores the chunk at [c0, c0 + n): v holds s; y = (((s - mean0) - corr) *
// rstd * weight + bias) * (1 + scale) + shift.
__device__ __forceinline__ void emit_chunk(const RowNormArgs& a, const int64_t (&off)[kRowSlots],
                                           int64_t c0, int n, const float (&v)[kChunk],
                                           float mean0, float corr, float rstd) {
  if (n == 0) return;
  float y[kChunk];
  const DType yt = a.op[kY].t;
#pragma unroll
  for (int j = 0; j < kChunk; ++j) {
    y[j] = ((v[j] - mean0) - corr) * rstd;
    if (a.round_normed) y[j] = round_through(yt, y[j]);
  }
  float m[kChunk];
  if (a.op[kWeight].p) {
    load_op(a.op[kWeight], 0, c0, n, m);
#pragma unroll
    for (int j = 0; j < kChunk; ++j) y[j] *= m[j];
  }
  if (a.op[kBias].p) {
    load_op(a.op[kBias], 0, c0, n, m);
#pragma unroll
    for (int j = 0; j < kChunk; ++j) y[j] += m[j];
  }
  if (a.op[kScale].p) {
    load_op(a.op[kScale], off[kScale], c0, n, m);
#pragma unroll
    for (int j = 0; j < kChunk; ++j) y[j] *= 1.0f + m[j];
  }
  if (a.op[kShift].p) {
    load_op(a.op[kShift], off[kShift], c0, n, m);
#pragma unroll
    for (int j = 0; j < kChunk; ++j) y[j] += m[j];
  }
  store_op(a.op[kY], off[kY], c0, n, y);
}

// Sum over the threads of a row: the G-lane group of a warp (G a power of two <= 32), or the
// whole block. Every thread of the block must call it; all of a row's threads get the same
// bits (the butterfly adds the same pair in either order; the block step sums the warps'
// partials in one fixed order).
template <RowPath kPath>
__device__ __forceinline__ float2 row_sum(float2 v, int G, float2* red) {
  const int width = kPath == RowPath::warp ? G : 32;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    if (o < width) {
      v.x += __shfl_xor_sync(0xffffffffu, v.x, o);
      v.y += __shfl_xor_sync(0xffffffffu, v.y, o);
    }
  }
  if constexpr (kPath != RowPath::warp) {
    const int warps = static_cast<int>(blockDim.x) >> 5;
    __syncthreads();  // the previous call's reads of red are done
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    v = red[0];
    for (int w = 1; w < warps; ++w) {
      v.x += red[w].x;
      v.y += red[w].y;
    }
  }
  return v;
}

// mean0 / corr / rstd from the reductions (see the file comment).
struct RowStats {
  float mean0 = 0.0f, corr = 0.0f, rstd = 0.0f;
};
__device__ __forceinline__ float inv_std(float var, float eps) {
  return 1.0f / sqrtf(fmaxf(var, 0.0f) + eps);
}

// The row a thread works on: a group of G threads per row on the warp path (several rows per
// block), the whole block per row otherwise; `active` is false past the last row (such threads
// still join the shuffles), and off[] holds each operand's element offset of the row.
template <RowPath kPath, typename Index>
struct RowThread {
  int G, t;
  int64_t row;
  bool active;
  int64_t off[kRowSlots] = {};

  __device__ __forceinline__ RowThread(const RowNormArgs& a, const OffsetCalc<kRowSlots, Index>& rows) {
    constexpr bool kWarp = kPath == RowPath::warp;
    G = kWarp ? a.group : static_cast<int>(blockDim.x);
    t = kWarp ? static_cast<int>(threadIdx.x) & (G - 1) : static_cast<int>(threadIdx.x);
    row = kWarp ? static_cast<int64_t>(blockIdx.x) * (kWarpPathThreads / G) +
                      static_cast<int64_t>(threadIdx.x) / G
                : static_cast<int64_t>(blockIdx.x);
    active = row < a.rows;
    if (active) {
      Index o[kRowSlots];
      rows.get(static_cast<Index>(row), o);
#pragma unroll
      for (int k = 0; k < kRowSlots; ++k) off[k] = static_cast<int64_t>(o[k]);
    }
  }
};

template <RowPath kPath, typename Index>
__global__ void __launch_bounds__(kPath == RowPath::warp ? kWarpPathThreads : kMaxRowThreads)
    row_norm_kernel(const RowNormArgs a, const OffsetCalc<kRowSlots, Index> rows) {
  __shared__ float2 red[kMaxRowThreads / 32];
  const RowThread<kPath, Index> rt(a, rows);
  const int G = rt.G, t = rt.t;
  const int64_t row = rt.row;
  const bool active = rt.active;  // inactive threads still join the shuffles
  const int64_t(&off)[kRowSlots] = rt.off;
  const float inv_n = 1.0f / static_cast<float>(a.C);
  // n elements of chunk ch (0 past the row, and for inactive threads).
  auto chunk_len = [&](int64_t ch) -> int {
    if (!active || ch >= a.nchunks) return 0;
    const int64_t left = a.C - ch * kChunk;
    return left < kChunk ? static_cast<int>(left) : kChunk;
  };
  RowStats s;

  if constexpr (kPath != RowPath::stream) {
    float v[kHoldChunks][kChunk];
    int len[kHoldChunks];
    float s1 = 0.0f;
#pragma unroll
    for (int k = 0; k < kHoldChunks; ++k) {
      const int64_t ch = t + static_cast<int64_t>(k) * G;
      len[k] = chunk_len(ch);
      load_s(a, off, ch * kChunk, len[k], v[k]);
#pragma unroll
      for (int j = 0; j < kChunk; ++j) s1 += v[k][j];  // zero past len
    }
    if (!a.rms) s.mean0 = row_sum<kPath>(make_float2(s1, 0.0f), G, red).x * inv_n;
    float d1 = 0.0f, d2 = 0.0f;
#pragma unroll
    for (int k = 0; k < kHoldChunks; ++k) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const float d = j < len[k] ? v[k][j] - s.mean0 : 0.0f;
        d1 += d;
        d2 += d * d;
      }
    }
    const float2 r = row_sum<kPath>(make_float2(d1, d2), G, red);
    if (!a.rms) s.corr = r.x * inv_n;
    s.rstd = inv_std(r.y * inv_n - s.corr * s.corr, a.eps);
#pragma unroll
    for (int k = 0; k < kHoldChunks; ++k) {
      const int64_t ch = t + static_cast<int64_t>(k) * G;
      emit_chunk(a, off, ch * kChunk, len[k], v[k], s.mean0, s.corr, s.rstd);
    }
  } else {
    // Rows too long to hold: pass 1 forms s (storing the sum), later passes re-read s from
    // the sum output (the rounded values themselves) or from x. Each thread re-reads only the
    // chunks it wrote, so no ordering beyond program order is needed.
    const bool from_sum = a.op[kRes].p != nullptr;
    const Operand& src = from_sum ? a.op[kSum] : a.op[kX];
    const int64_t src_off = from_sum ? off[kSum] : off[kX];
    float v[kChunk];
    float s1 = 0.0f, q = 0.0f;
    for (int64_t ch = t; ch < a.nchunks; ch += G) {
      const int n = chunk_len(ch);
      load_s(a, off, ch * kChunk, n, v);
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        s1 += v[j];
        q += v[j] * v[j];
      }
    }
    float2 r = row_sum<kPath>(make_float2(s1, q), G, red);
    if (!a.rms) {
      s.mean0 = r.x * inv_n;
      float d1 = 0.0f, d2 = 0.0f;
      for (int64_t ch = t; ch < a.nchunks; ch += G) {
        const int n = chunk_len(ch);
        load_op(src, src_off, ch * kChunk, n, v);
#pragma unroll
        for (int j = 0; j < kChunk; ++j) {
          const float d = j < n ? v[j] - s.mean0 : 0.0f;
          d1 += d;
          d2 += d * d;
        }
      }
      r = row_sum<kPath>(make_float2(d1, d2), G, red);
      s.corr = r.x * inv_n;
    }
    s.rstd = inv_std(r.y * inv_n - s.corr * s.corr, a.eps);
    for (int64_t ch = t; ch < a.nchunks; ch += G) {
      const int n = chunk_len(ch);
      load_op(src, src_off, ch * kChunk, n, v);
      emit_chunk(a, off, ch * kChunk, n, v, s.mean0, s.corr, s.rstd);
    }
  }
}

// The common DiT case, as its own kernel: every row operand (x, y and those of residual, sum,
// scale, shift present) and weight / bias (when present) of one dtype D, unit-stride and
// 16-byte aligned, C a multiple of 8. Typed, predicated 16-byte loads for all of a thread's
// chunks are issued before any value is used, so they are in flight together (the run-time
// dtype switch of the general kernel makes each load wait for the one before it).
template <typename T>
struct alignas(16) Chunk {
  T v[kChunk];
};

template <DType D, RowPath kPath, typename Index>
__global__ void __launch_bounds__(kPath == RowPath::warp ? kWarpPathThreads : kMaxRowThreads)
    row_norm_fast_kernel(const RowNormArgs a, const OffsetCalc<kRowSlots, Index> rows) {
  static_assert(kPath != RowPath::stream);
  using T = typename Traits<D>::T;
  using Tr = Traits<D>;
  __shared__ float2 red[kMaxRowThreads / 32];
  const RowThread<kPath, Index> rt(a, rows);
  const int G = rt.G, t = rt.t;
  const int64_t row = rt.row;
  const bool active = rt.active;  // inactive threads still join the shuffles
  const int64_t(&off)[kRowSlots] = rt.off;
  auto at = [&](int slot, int64_t row_off, int64_t c0) {
    return reinterpret_cast<Chunk<T>*>(static_cast<T*>(a.op[slot].p) + row_off + c0);
  };
  const bool has_res = a.op[kRes].p != nullptr;
  const float inv_n = 1.0f / static_cast<float>(a.C);

  bool in[kHoldChunks];
  Chunk<T> xr[kHoldChunks], rr[kHoldChunks];
#pragma unroll
  for (int k = 0; k < kHoldChunks; ++k) {
    const int64_t ch = t + static_cast<int64_t>(k) * G;
    in[k] = active && ch < a.nchunks;
    if (in[k]) xr[k] = *at(kX, off[kX], ch * kChunk);
    if (in[k] && has_res) rr[k] = *at(kRes, off[kRes], ch * kChunk);
  }
  float v[kHoldChunks][kChunk];
  float s1 = 0.0f;
#pragma unroll
  for (int k = 0; k < kHoldChunks; ++k) {
    if (!in[k]) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) v[k][j] = 0.0f;
      continue;
    }
    if (has_res) {
      // s = x + residual rounded to the sum's dtype (D), stored, and normalised from there.
      Chunk<T> q;
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        q.v[j] = Tr::from_f32(Tr::to_f32(xr[k].v[j]) + Tr::to_f32(rr[k].v[j]));
        v[k][j] = Tr::to_f32(q.v[j]);
      }
      *at(kSum, off[kSum], (t + static_cast<int64_t>(k) * G) * kChunk) = q;
    } else {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) v[k][j] = Tr::to_f32(xr[k].v[j]);
    }
#pragma unroll
    for (int j = 0; j < kChunk; ++j) s1 += v[k][j];
  }
  RowStats s;
  if (!a.rms) s.mean0 = row_sum<kPath>(make_float2(s1, 0.0f), G, red).x * inv_n;
  float d1 = 0.0f, d2 = 0.0f;
#pragma unroll
  for (int k = 0; k < kHoldChunks; ++k) {
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      const float d = in[k] ? v[k][j] - s.mean0 : 0.0f;
      d1 += d;
      d2 += d * d;
    }
  }
  const float2 r = row_sum<kPath>(make_float2(d1, d2), G, red);
  if (!a.rms) s.corr = r.x * inv_n;
  s.rstd = inv_std(r.y * inv_n - s.corr * s.corr, a.eps);

  const bool has_w = a.op[kWeight].p != nullptr, has_b = a.op[kBias].p != nullptr;
  const bool has_sc = a.op[kScale].p != nullptr, has_sh = a.op[kShift].p != nullptr;
#pragma unroll
  for (int k = 0; k < kHoldChunks; ++k) {
    if (!in[k]) continue;
    const int64_t c0 = (t + static_cast<int64_t>(k) * G) * kChunk;
    Chunk<T> w, b, sc, sh;
    if (has_w) w = *at(kWeight, 0, c0);
    if (has_b) b = *at(kBias, 0, c0);
    if (has_sc) sc = *at(kScale, off[kScale], c0);
    if (has_sh) sh = *at(kShift, off[kShift], c0);
    Chunk<T> y;
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      float n = ((v[k][j] - s.mean0) - s.corr) * s.rstd;
      if (a.round_normed) n = Tr::to_f32(Tr::from_f32(n));
      if (has_w) n *= Tr::to_f32(w.v[j]);
      if (has_b) n += Tr::to_f32(b.v[j]);
      if (has_sc) n *= 1.0f + Tr::to_f32(sc.v[j]);
      if (has_sh) n += Tr::to_f32(sh.v[j]);
      y.v[j] = Tr::from_f32(n);
    }
    *at(kY, off[kY], c0) = y;
  }
}

// ---- group norm -----------------------------------------------------------------------------

inline constexpr int kGroupThreads = 512;
inline constexpr int kGroupFold = 16;     // values per thread summed in f32 before an f64 add
inline constexpr int kShiftSample = 256;  // values averaged for the statistics' shift

struct GroupNormArgs {
  const void* x = nullptr;
  void* y = nullptr;
  const void* w = nullptr;
  const void* b = nullptr;
  DType xt = DType::f32, yt = DType::f32, wt = DType::f32, bt = DType::f32;
  int64_t xs[3] = {}, ys[3] = {};
  int64_t ws = 0, bs = 0;
  int64_t groups = 1, cpg = 1, S = 1, blocks = 0, numel = 0;  // numel: cpg * S per group
  float eps = 1e-5f;
};

// Block-wide sum of a double pair; every thread gets the same bits.
__device__ __forceinline__ double2 block_sum(double2 v, double2* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    v.x += __shfl_xor_sync(0xffffffffu, v.x, o);
    v.y += __shfl_xor_sync(0xffffffffu, v.y, o);
  }
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) {
    v.x += red[w].x;
    v.y += red[w].y;
  }
  return v;
}

template <DType XD, typename Index>
__global__ void __launch_bounds__(kGroupThreads)
    group_norm_kernel(const GroupNormArgs a, const Divider<Index> div_s) {
  using XT = typename Traits<XD>::T;
  const XT* xp = static_cast<const XT*>(a.x);
  __shared__ double2 red[kGroupThreads / 32];
  const Index m = static_cast<Index>(a.numel);
  const Index S = static_cast<Index>(a.S);
  const Index tid = static_cast<Index>(threadIdx.x);
  const Index nt = static_cast<Index>(blockDim.x);
  for (int64_t blk = blockIdx.x; blk < a.blocks; blk += gridDim.x) {  // uniform per block
    const int64_t n = blk / a.groups;
    const int64_t c0 = (blk % a.groups) * a.cpg;
    const int64_t xb = n * a.xs[0] + c0 * a.xs[1];
    const int64_t yb = n * a.ys[0] + c0 * a.ys[1];
    // Flat index e within the group -> channel (from c0) and position.
    auto split = [&](Index e, int64_t* ch, int64_t* pos) {
      const Index q = div_s.div(e);
      *ch = static_cast<int64_t>(q);
      *pos = static_cast<int64_t>(e - q * S);
    };
    auto x_at = [&](Index e) {
      int64_t ch, pos;
      split(e, &ch, &pos);
      return Traits<XD>::to_f32(xp[xb + ch * a.xs[1] + pos * a.xs[2]]);
    };

    // The shift: the mean of the first values, so that the sums below are of the data's
    // spread rather than its offset.
    const Index k = m < static_cast<Index>(kShiftSample) ? m : static_cast<Index>(kShiftSample);
    const double first = tid < k ? static_cast<double>(x_at(tid)) : 0.0;
    const float shift =
        static_cast<float>(block_sum(make_double2(first, 0.0), red).x / static_cast<double>(k));

    double s1 = 0.0, s2 = 0.0;
    for (Index base = tid; base < m; base += nt * kGroupFold) {
      float f1 = 0.0f, f2 = 0.0f;
#pragma unroll
      for (int u = 0; u < kGroupFold; ++u) {
        const Index e = base + static_cast<Index>(u) * nt;
        if (e < m) {
          const float d = x_at(e) - shift;
          f1 += d;
          f2 += d * d;
        }
      }
      s1 += f1;
      s2 += f2;
    }
    const double2 r = block_sum(make_double2(s1, s2), red);
    const double cnt = static_cast<double>(a.numel);
    const double dm = r.x / cnt;
    const double var = fmax(0.0, r.y / cnt - dm * dm);
    const double mean = static_cast<double>(shift) + dm;
    const float rstd = static_cast<float>(1.0 / sqrt(var + static_cast<double>(a.eps)));
    const float mean_hi = static_cast<float>(mean);
    const float mean_lo = static_cast<float>(mean - static_cast<double>(mean_hi));

    for (Index base = tid; base < m; base += nt * 4) {
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const Index e = base + static_cast<Index>(u) * nt;
        if (e < m) {
          int64_t ch, pos;
          split(e, &ch, &pos);
          const float v = Traits<XD>::to_f32(xp[xb + ch * a.xs[1] + pos * a.xs[2]]);
          const int64_t c = c0 + ch;
          const float w = a.w ? ld(a.w, a.wt, c * a.ws) : 1.0f;
          const float b = a.b ? ld(a.b, a.bt, c * a.bs) : 0.0f;
          st(a.y, a.yt, yb + ch * a.ys[1] + pos * a.ys[2], ((v - mean_hi) - mean_lo) * (rstd * w) + b);
        }
      }
    }
    // The next group's shift reuses `red`; block_sum syncs before writing it.
  }
}

// ---- host side ------------------------------------------------------------------------------

bool norm_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

int64_t element_size(DType t) { return t == DType::f32 ? 4 : 2; }

// Grid of `blocks` blocks (checked against the 31-bit limit by the callers).
template <typename K, typename... Args>
cudaError_t launch_kernel(K kernel, int64_t blocks, int threads, cudaStream_t stream, const Args&... args) {
  // clang-format off
  kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(args...);
  // clang-format on
  return cudaGetLastError();
}

// The fast kernel applies: every present operand of x's dtype and vectorisable, full chunks.
bool fast_rows(const RowNormArgs& a) {
  if (a.C % kChunk != 0) return false;
  for (const Operand& o : a.op)
    if (o.p && (o.t != a.op[kX].t || !o.vec)) return false;
  return true;
}

template <RowPath kPath>
cudaError_t launch_rows(const RowNormArgs& a, const StridedLayout<kRowSlots>& layout,
                        int64_t blocks, int threads, cudaStream_t stream) {
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
  const bool small = layout.fits_int32();
  if constexpr (kPath != RowPath::stream) {
    if (fast_rows(a)) {
      cudaError_t err = cudaErrorNotSupported;
      dispatch_float(a.op[kX].t, [&](auto d) {
        constexpr DType D = decltype(d)::value;
        if (small) {
          err = launch_kernel(row_norm_fast_kernel<D, kPath, uint32_t>, blocks, threads, stream,
                              a, OffsetCalc<kRowSlots, uint32_t>(layout));
        } else {
          err = launch_kernel(row_norm_fast_kernel<D, kPath, int64_t>, blocks, threads, stream,
                              a, OffsetCalc<kRowSlots, int64_t>(layout));
        }
      });
      return err;
    }
  }
  if (small) {
    return launch_kernel(row_norm_kernel<kPath, uint32_t>, blocks, threads, stream, a,
                         OffsetCalc<kRowSlots, uint32_t>(layout));
  }
  return launch_kernel(row_norm_kernel<kPath, int64_t>, blocks, threads, stream, a,
                       OffsetCalc<kRowSlots, int64_t>(layout));
}

}  // namespace

cudaError_t launch_row_norm(const NormParams& p, int ndim, const int64_t* sizes, StridedOut y,
                            StridedIn x, StridedIn weight, StridedIn bias, StridedIn scale,
                            StridedIn shift, StridedIn residual, StridedOut sum,
                            cudaStream_t stream) {
  if (ndim < 1 || ndim > kMaxDims || p.kind == NormKind::group) return cudaErrorInvalidValue;
  if (x.data == nullptr || y.data == nullptr || (residual.data == nullptr) != (sum.data == nullptr))
    return cudaErrorInvalidValue;
  for (int d = 0; d < ndim; ++d)
    if (sizes[d] == 0) return cudaSuccess;
  const int64_t C = sizes[ndim - 1];

  RowNormArgs a;
  a.C = C;
  a.nchunks = (C + kChunk - 1) / kChunk;
  a.eps = p.eps;
  a.rms = p.kind == NormKind::rms;
  a.round_normed = p.round_normed;
  const StridedIn ins[kSlots] = {x, {y.data, y.dtype, y.strides}, {sum.data, sum.dtype, sum.strides},
                                 residual, scale, shift, weight, bias};
  for (int k = 0; k < kSlots; ++k) {
    if (ins[k].data == nullptr) continue;
    if (!norm_dtype(ins[k].dtype)) return cudaErrorNotSupported;
    if (ins[k].strides == nullptr) return cudaErrorInvalidValue;
    a.op[k].p = const_cast<void*>(ins[k].data);
    a.op[k].t = ins[k].dtype;
    a.op[k].cs = k < kRowSlots ? ins[k].strides[ndim - 1] : ins[k].strides[0];
  }

  // The leading dims enumerate rows; absent operands step by 0.
  const int64_t zeros[kMaxDims] = {};
  std::array<const int64_t*, kRowSlots> st;
  for (int k = 0; k < kRowSlots; ++k) st[k] = a.op[k].p ? ins[k].strides : zeros;
  const StridedLayout<kRowSlots> layout = collapse<kRowSlots>(ndim - 1, sizes, st);
  a.rows = layout.numel;
  if (a.rows == 0) return cudaSuccess;

  // 16-byte vectors: unit stride along C, and element 0 of every row 16-byte aligned (chunk
  // starts are then too: 8 elements of at least 2 bytes).
  for (int k = 0; k < kSlots; ++k) {
    Operand& o = a.op[k];
    if (o.p == nullptr || o.cs != 1 || !aligned_to(o.p, 16)) continue;
    bool ok = true;
    if (k < kRowSlots) {
      for (int d = 0; d < layout.ndim; ++d)
        ok &= layout.sizes[d] == 1 || (layout.strides[k][d] * element_size(o.t)) % 16 == 0;
    }
    o.vec = ok;
  }

  const int64_t nchunks = a.nchunks;
  if (nchunks <= 32 * kHoldChunks) {
    int g = 1;
    while (g < 32 && g < nchunks) g *= 2;
    a.group = g;
    const int64_t per_block = kWarpPathThreads / g;
    return launch_rows<RowPath::warp>(a, layout, (a.rows + per_block - 1) / per_block,
                                      kWarpPathThreads, stream);
  }
  if (nchunks <= int64_t{kMaxRowThreads} * kHoldChunks) {
    const int64_t per_thread = (nchunks + kHoldChunks - 1) / kHoldChunks;
    const int threads = static_cast<int>((per_thread + 31) / 32 * 32);
    return launch_rows<RowPath::block>(a, layout, a.rows, threads, stream);
  }
  return launch_rows<RowPath::stream>(a, layout, a.rows, kMaxRowThreads, stream);
}

cudaError_t launch_group_norm(float eps, int64_t groups, int64_t N, int64_t C, int64_t S,
                              StridedOut y, StridedIn x, StridedIn weight, StridedIn bias,
                              cudaStream_t stream) {
  if (groups <= 0 || C < 0 || N < 0 || S < 0 || C % groups != 0) return cudaErrorInvalidValue;
  if (x.data == nullptr || y.data == nullptr || x.strides == nullptr || y.strides == nullptr)
    return cudaErrorInvalidValue;
  if (N == 0 || C == 0 || S == 0) return cudaSuccess;
  for (const StridedIn* t : {&x, &weight, &bias})
    if (t->data && (!norm_dtype(t->dtype) || t->strides == nullptr)) return cudaErrorNotSupported;
  if (!norm_dtype(y.dtype)) return cudaErrorNotSupported;
  GroupNormArgs a;
  a.x = x.data;
  a.y = y.data;
  a.w = weight.data;
  a.b = bias.data;
  a.xt = x.dtype;
  a.yt = y.dtype;
  a.wt = weight.dtype;
  a.bt = bias.dtype;
  for (int d = 0; d < 3; ++d) {
    a.xs[d] = x.strides[d];
    a.ys[d] = y.strides[d];
  }
  a.ws = weight.data ? weight.strides[0] : 0;
  a.bs = bias.data ? bias.strides[0] : 0;
  a.groups = groups;
  a.cpg = C / groups;
  a.S = S;
  a.blocks = N * groups;
  a.numel = a.cpg * S;
  a.eps = eps;
  const int64_t grid = std::min<int64_t>(a.blocks, std::numeric_limits<int32_t>::max());
  cudaError_t err = cudaErrorNotSupported;
  dispatch_float(x.dtype, [&](auto d) {
    constexpr DType XD = decltype(d)::value;
    if (a.numel <= std::numeric_limits<int32_t>::max()) {
      err = launch_kernel(group_norm_kernel<XD, uint32_t>, grid, kGroupThreads, stream, a,
                          Divider<uint32_t>(static_cast<uint32_t>(S)));
    } else {
      err = launch_kernel(group_norm_kernel<XD, int64_t>, grid, kGroupThreads, stream, a,
                          Divider<int64_t>(S));
    }
  });
  return err;
}

namespace {

// ---- registration glue ----------------------------------------------------------------------

const Tensor* optional_input(const OpCall& c, size_t i) {
  return i < c.inputs.size() && c.inputs[i].defined() ? &c.inputs[i] : nullptr;
}

StridedIn optional_arg(const Tensor* t) {
  return t ? in_arg(*t) : StridedIn{nullptr, DType::f32, nullptr};
}

void check_channel_vector(const Tensor* t, int64_t C, const char* what) {
  MINDIESD_ASSERT(!t || (t->dim() == 1 && t->size(0) == C), "norm: ", what, " ", t->str(),
                  " for ", C, " channels");
}

void row_norm(const OpCall& c) {
  const auto& p = c.p<NormParams>();
  const Tensor& x = c.inputs[0];
  const Tensor& y = c.outputs[0];
  const Tensor* res = optional_input(c, 5);
  MINDIESD_ASSERT(!res || (c.outputs.size() >= 2 && c.outputs[1].defined()),
                  "norm: a residual needs the sum output");
  MINDIESD_ASSERT(x.dim() >= 1 && y.shape() == x.shape(), "norm: x ", x.str(), ", y ", y.str());
  if (x.numel() == 0) return;
  const int64_t C = x.size(-1);
  const Tensor* w = optional_input(c, 1);
  const Tensor* b = optional_input(c, 2);
  check_channel_vector(w, C, "weight");
  check_channel_vector(b, C, "bias");
  // scale / shift as x-shaped views (the front end normally made them already).
  Tensor scale, shift;
  if (const Tensor* t = optional_input(c, 3)) scale = broadcast_like(*t, x);
  if (const Tensor* t = optional_input(c, 4)) shift = broadcast_like(*t, x);
  const Tensor* sum = res ? &c.outputs[1] : nullptr;
  if (res) {
    MINDIESD_ASSERT(res->shape() == x.shape() && sum->shape() == x.shape(), "norm: residual ",
                    res->str(), ", sum ", sum->str(), " for x ", x.str());
  }
  const KernelScope scope(c);
  MINDIESD_CUDA_CHECK(launch_row_norm(
      p, x.dim(), x.shape().data(), out_arg(y), in_arg(x), optional_arg(w), optional_arg(b),
      optional_arg(scale.defined() ? &scale : nullptr),
      optional_arg(shift.defined() ? &shift : nullptr), optional_arg(res),
      sum ? out_arg(*sum) : StridedOut{nullptr, DType::f32, nullptr}, scope.stream()));
}

// torch.nn.GroupNorm: x (N, C, S) normalised over each (n, group of C / G channels x S)
// block with biased variance, then the per-channel affine.
void group_norm(const OpCall& c) {
  const auto& p = c.p<NormParams>();
  const Tensor& x = c.inputs[0];
  MINDIESD_CHECK(!optional_input(c, 3) && !optional_input(c, 4) && !optional_input(c, 5),
                 Unsupported, "norm: group norm takes no scale, shift or residual");
  const Tensor& y = c.outputs[0];
  MINDIESD_ASSERT(x.dim() == 3 && y.shape() == x.shape(), "group norm wants (N, C, S), got ",
                  x.str());
  const int64_t N = x.size(0), C = x.size(1), S = x.size(2), G = p.groups;
  MINDIESD_ASSERT(G > 0 && C % G == 0, "group norm: ", G, " groups for ", C, " channels");
  if (x.numel() == 0) return;
  const Tensor* w = optional_input(c, 1);
  const Tensor* b = optional_input(c, 2);
  check_channel_vector(w, C, "weight");
  check_channel_vector(b, C, "bias");
  const KernelScope scope(c);
  MINDIESD_CUDA_CHECK(launch_group_norm(p.eps, G, N, C, S, out_arg(y), in_arg(x), optional_arg(w),
                                        optional_arg(b), scope.stream()));
}

void norm_kernel(const OpCall& c) {
  if (c.p<NormParams>().kind == NormKind::group) {
    group_norm(c);
  } else {
    row_norm(c);
  }
}

}  // namespace

void register_norm_kernels(KernelRegistry& r) {
  // The CPU's dtype set (any of f32 / bf16 / f16 per operand), so dispatch never differs by
  // device.
  r.add(OpId::norm, DeviceType::CUDA, {kFloatTypes}, kFloatTypes, norm_kernel);
}

}  // namespace mindiesd::cuda
