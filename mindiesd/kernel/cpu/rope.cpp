// Rotary position embedding (RoPE) on CPU: out = x * cos + rotate(x) * sin per row of D
// channels, for the two pairings diffusers uses (see RopeParams in op_params.h).
//
// The op is memory-bound, so the kernel makes one pass: each (b, s, h) row is read once,
// computed in f32 with 16-lane vectors and written once; rows are split across threads.
//  - Fast path (the DiT case): x and out f32 or bf16 and tables f32, all with unit channel
//    stride. Lanes are loaded and stored in their own dtype (bf16 widened / rounded in
//    registers), so a row never goes through a scratch buffer.
//  - General path: any dtype, any channel stride. Each chunk of a row is gathered into f32
//    scratch with load_as_f32, computed, and scattered with store_from_f32.
//
// Rounding follows diffusers' apply_rotary_emb (use_real=True) operation for operation:
// x.float() * cos and rotate(x).float() * sin are each rounded to f32 and then added, so the
// result is bit-identical to PyTorch's for the same tables. FMA contraction would change the
// last bit, so it is switched off for this file's arithmetic, and there is no scalar code for
// GCC's SLP vectoriser to turn into its complex-multiply pattern (vfmaddsub), which fuses a
// product whatever -ffp-contract says: tails go through zero-padded vectors.
//
// In place (out is the very view x is) is safe: each vector of x is loaded, with its partner,
// before the lanes computed from them are stored.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/parallel.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"  // load_as_f32, store_from_f32

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace mindiesd::cpu {

namespace {

// 16 x f32: one AVX-512 register (two AVX2 registers elsewhere). The unaligned alias types let
// rows start anywhere.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint16_t u16x16u __attribute__((vector_size(32), aligned(2), may_alias));

// bf16 storage in the fast path (a distinct type from f16, which takes the general path).
struct Bf16 {
  uint16_t bits;
};

// 16 lanes of T as f32, and back (bf16: round to nearest even, NaN -> 0x7fc0, as
// f32_to_bf16 and PyTorch do).
inline v16 load16(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void store16(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
inline v16 load16(const Bf16* p) {
  const u16x16 h = *reinterpret_cast<const u16x16u*>(p);
  return reinterpret_cast<v16>(__builtin_convertvector(h, u32x16) << 16);
}
inline void store16(Bf16* p, v16 v) {
  const u32x16 u = reinterpret_cast<u32x16>(v);
  const u32x16 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const u32x16 r = (u & 0x7fffffffu) > 0x7f800000u ? u32x16{} + 0x7fc0u : rounded;
  *reinterpret_cast<u16x16u*>(p) = __builtin_convertvector(r, u16x16);
}

// n <= 16 lanes: whole vectors directly, a tail through a zero-padded copy.
template <typename T>
inline v16 load_n(const T* p, int64_t n) {
  if (n == 16) return load16(p);
  alignas(64) T t[16] = {};
  std::memcpy(t, p, n * sizeof(T));
  return load16(t);
}
template <typename T>
inline void store_n(T* p, v16 v, int64_t n) {
  if (n == 16) return store16(p, v);
  alignas(64) T t[16];
  store16(t, v);
  std::memcpy(p, t, n * sizeof(T));
}

// rotate_half on lanes of the two halves a = x[i], b = x[i + D/2] (diffusers' rotate_half,
// cat(-x2, x1)): lo = a * c_lo - b * s_lo, hi = b * c_hi + a * s_hi.
inline void rotate_half_v(v16 a, v16 b, v16 c_lo, v16 s_lo, v16 c_hi, v16 s_hi, v16* lo, v16* hi) {
  *lo = a * c_lo - b * s_lo;
  *hi = b * c_hi + a * s_hi;
}

// interleaved on 16 consecutive channels (diffusers' use_real_unbind_dim=-1, rotate(x) =
// stack(-x_imag, x_real)): y[2k] = x[2k] c[2k] - x[2k+1] s[2k], y[2k+1] = x[2k+1] c[2k+1] +
// x[2k] s[2k+1]. Pairs never straddle vectors (16 is even, D is even).
inline v16 interleaved_v(v16 v, v16 c, v16 s) {
  // rot = (-v1, v0, -v3, v2, ...): lanes >= 16 pick from the negated copy.
  const v16 rot =
      __builtin_shufflevector(v, -v, 17, 0, 19, 2, 21, 4, 23, 6, 25, 8, 27, 10, 29, 12, 31, 14);
  return v * c + rot * s;
}

// Channels per general-path chunk: rotate_half handles kChunk pairs (i, i + D/2) per step,
// interleaved kChunk consecutive channels. A multiple of 16.
constexpr int64_t kChunk = 256;
// Elements per thread below which threading costs more than it gains.
constexpr int64_t kGrainElems = 1 << 14;

// One rope call over rows (b, s, h); each thread takes a range of rows.
struct RopeJob {
  const Tensor* ts[4];  // x, cos, sin, out
  RopeMode mode;
  int64_t d, half, n1, n2;
  int64_t rs[4][3], cs[4];  // per operand: strides of the ordered row dims, channel stride

  // Storage offsets of row r for the four operands.
  void row_offsets(int64_t r, int64_t* row) const {
    const int64_t i2 = r % n2, i1 = (r / n2) % n1, i0 = r / (n2 * n1);
    for (int k = 0; k < 4; ++k)
      row[k] = ts[k]->offset() + i0 * rs[k][0] + i1 * rs[k][1] + i2 * rs[k][2];
  }
  template <typename TX, typename TO>
  void rows_fast(int64_t r0, int64_t r1) const;
  void rows_general(int64_t r0, int64_t r1) const;
};

template <typename TX, typename TO>
void RopeJob::rows_fast(int64_t r0, int64_t r1) const {
  const TX* xb = static_cast<const TX*>(ts[0]->storage()->data());
  const float* cb = static_cast<const float*>(ts[1]->storage()->data());
  const float* sb = static_cast<const float*>(ts[2]->storage()->data());
  TO* ob = static_cast<TO*>(ts[3]->storage()->data());
  for (int64_t r = r0; r < r1; ++r) {
    int64_t row[4];
    row_offsets(r, row);
    const TX* x = xb + row[0];
    const float* c = cb + row[1];
    const float* s = sb + row[2];
    TO* o = ob + row[3];
    if (mode == RopeMode::rotate_half) {
      for (int64_t i = 0; i < half; i += 16) {
        const int64_t n = std::min<int64_t>(16, half - i);
        v16 lo, hi;
        rotate_half_v(load_n(x + i, n), load_n(x + half + i, n), load_n(c + i, n), load_n(s + i, n),
                      load_n(c + half + i, n), load_n(s + half + i, n), &lo, &hi);
        store_n(o + i, lo, n);
        store_n(o + half + i, hi, n);
      }
    } else {
      for (int64_t j = 0; j < d; j += 16) {
        const int64_t n = std::min<int64_t>(16, d - j);
        store_n(o + j, interleaved_v(load_n(x + j, n), load_n(c + j, n), load_n(s + j, n)), n);
      }
    }
  }
}

// An operand's n channels starting at storage offset `off`, `stride` apart, as f32: the
// storage itself when it already is unit-stride f32, otherwise converted into buf.
const float* as_f32(const Tensor& t, int64_t off, int64_t stride, int64_t n, float* buf) {
  if (t.dtype() == DType::f32 && stride == 1)
    return static_cast<const float*>(t.storage()->data()) + off;
  load_as_f32(t.storage()->data(), t.dtype(), off, stride, n, buf);
  return buf;
}

void RopeJob::rows_general(int64_t r0, int64_t r1) const {
  alignas(64) float bx[2][kChunk], bc[2][kChunk], bs[2][kChunk], by[2][kChunk];
  const Tensor& out = *ts[3];
  // f32 unit-stride output is written in place of the scratch.
  const bool direct_out = out.dtype() == DType::f32 && cs[3] == 1;
  float* const out_base = static_cast<float*>(out.storage()->data());
  for (int64_t r = r0; r < r1; ++r) {
    int64_t row[4];
    row_offsets(r, row);
    // n channels of operand k (0 x, 1 cos, 2 sin) from channel `ch`, as f32.
    auto in = [&](int k, int64_t ch, int64_t n, float* buf) {
      return as_f32(*ts[k], row[k] + ch * cs[k], cs[k], n, buf);
    };
    auto dst = [&](int64_t ch, float* buf) { return direct_out ? out_base + row[3] + ch : buf; };
    auto flush = [&](int64_t ch, int64_t n, const float* y) {
      if (!direct_out)
        store_from_f32(out.storage()->data(), out.dtype(), row[3] + ch * cs[3], cs[3], n, y);
    };
    if (mode == RopeMode::rotate_half) {
      for (int64_t i = 0; i < half; i += kChunk) {
        const int64_t n = std::min(kChunk, half - i);
        const float* a = in(0, i, n, bx[0]);
        const float* b = in(0, half + i, n, bx[1]);
        const float* c_lo = in(1, i, n, bc[0]);
        const float* s_lo = in(2, i, n, bs[0]);
        const float* c_hi = in(1, half + i, n, bc[1]);
        const float* s_hi = in(2, half + i, n, bs[1]);
        float* lo = dst(i, by[0]);
        float* hi = dst(half + i, by[1]);
        for (int64_t k = 0; k < n; k += 16) {
          const int64_t m = std::min<int64_t>(16, n - k);
          v16 l, h;
          rotate_half_v(load_n(a + k, m), load_n(b + k, m), load_n(c_lo + k, m),
                        load_n(s_lo + k, m), load_n(c_hi + k, m), load_n(s_hi + k, m), &l, &h);
          store_n(lo + k, l, m);
          store_n(hi + k, h, m);
        }
        flush(i, n, lo);
        flush(half + i, n, hi);
      }
    } else {
      for (int64_t j = 0; j < d; j += kChunk) {
        const int64_t n = std::min(kChunk, d - j);  // even: d and kChunk are
        const float* x = in(0, j, n, bx[0]);
        const float* c = in(1, j, n, bc[0]);
        const float* s = in(2, j, n, bs[0]);
        float* y = dst(j, by[0]);
        for (int64_t k = 0; k < n; k += 16) {
          const int64_t m = std::min<int64_t>(16, n - k);
          store_n(y + k, interleaved_v(load_n(x + k, m), load_n(c + k, m), load_n(s + k, m)), m);
        }
        flush(j, n, y);
      }
    }
  }
}

void rope_kernel(const OpCall& c) {
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  MINDIESD_ASSERT(x.dim() == 4 && out.shape() == x.shape() && c.inputs[1].shape() == x.shape() &&
                      c.inputs[2].shape() == x.shape() && x.size(3) % 2 == 0,
                  "rope kernel expects 4-d operands of one shape with an even last dim, got ",
                  x.str(), ", cos ", c.inputs[1].str(), ", sin ", c.inputs[2].str(), ", out ",
                  out.str());
  RopeJob job;
  job.ts[0] = &x;
  job.ts[1] = &c.inputs[1];
  job.ts[2] = &c.inputs[2];
  job.ts[3] = &out;
  job.mode = c.p<RopeParams>().mode;
  job.d = x.size(3);
  job.half = job.d / 2;
  // Walk the three row dims with the one x steps through fastest innermost, so a BNSD view
  // (permuted to BSHD) still streams through memory in order.
  std::array<int, 3> order{0, 1, 2};
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return std::abs(x.stride(a)) > std::abs(x.stride(b)); });
  job.n1 = x.size(order[1]);
  job.n2 = x.size(order[2]);
  const int64_t rows = x.size(order[0]) * job.n1 * job.n2;
  if (rows == 0 || job.d == 0) return;
  for (int k = 0; k < 4; ++k) {
    for (int j = 0; j < 3; ++j) job.rs[k][j] = job.ts[k]->stride(order[j]);
    job.cs[k] = job.ts[k]->stride(3);
  }
  const auto unit = [&](int k, std::initializer_list<DType> ok) {
    return job.cs[k] == 1 && std::find(ok.begin(), ok.end(), job.ts[k]->dtype()) != ok.end();
  };
  void (RopeJob::*body)(int64_t, int64_t) const = &RopeJob::rows_general;
  if (unit(0, {DType::f32, DType::bf16}) && unit(3, {DType::f32, DType::bf16}) &&
      unit(1, {DType::f32}) && unit(2, {DType::f32})) {
    const bool xb = x.dtype() == DType::bf16, ob = out.dtype() == DType::bf16;
    body = xb ? (ob ? &RopeJob::rows_fast<Bf16, Bf16> : &RopeJob::rows_fast<Bf16, float>)
              : (ob ? &RopeJob::rows_fast<float, Bf16> : &RopeJob::rows_fast<float, float>);
  }
  parallel_for(0, rows, std::max<int64_t>(1, kGrainElems / job.d),
               [&](int64_t r0, int64_t r1) { (job.*body)(r0, r1); });
}

}  // namespace

void register_rope_kernels(KernelRegistry& r) {
  r.add(OpId::rope, DeviceType::CPU, {kFloatTypes, kFloatTypes, kFloatTypes}, kFloatTypes,
        rope_kernel);
}

}  // namespace mindiesd::cpu
