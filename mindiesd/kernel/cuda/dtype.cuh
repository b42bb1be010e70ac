// Element types in device code: storage types, conversions to and from the f32 and int64
// compute types, and aligned vectors for 16-byte loads.
//
// The conversions reproduce mindiesd/core/dtype.h bit for bit (round-to-nearest-even,
// subnormals kept, f16/bf16/e5m2 overflow to inf, e4m3fn overflow to NaN, integers from
// floats truncated with NaN -> 0 and clamping), so a CUDA copy equals a CPU copy. Only NaN
// payloads may differ (NaN-ness is the contract there). Everything is __host__ __device__ so
// that the index and conversion logic can be checked on a machine without a GPU.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "mindiesd/core/dtype.h"

#define MINDIESD_HD __host__ __device__ __forceinline__
// Unrolling hint for device code; the host compilation of the same __host__ __device__ code
// (gcc) would warn about an unknown pragma.
#if defined(__CUDA_ARCH__)
#define MINDIESD_UNROLL _Pragma("unroll")
#else
#define MINDIESD_UNROLL
#endif

namespace mindiesd::cuda {

// ---- bit helpers ----------------------------------------------------------------------------

MINDIESD_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
MINDIESD_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
MINDIESD_HD int count_leading_zeros(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __clz(static_cast<int>(x));
#else
  return __builtin_clz(x);
#endif
}

// ---- fp8 (ports of detail::encode_rne / decode_finite in core/dtype.h) ------------------------

MINDIESD_HD uint32_t encode_rne(uint32_t abs_bits, int man, int bias) {
  const int e = static_cast<int>(abs_bits >> 23);
  const uint32_t frac = abs_bits & 0x7fffffu;
  if (e - 127 + bias >= 1) {
    const int drop = 23 - man;
    uint32_t code = (static_cast<uint32_t>(e - 127 + bias) << man) | (frac >> drop);
    const uint32_t rem = frac & ((1u << drop) - 1);
    const uint32_t half = 1u << (drop - 1);
    if (rem > half || (rem == half && (code & 1u))) ++code;
    return code;
  }
  const uint32_t mant = frac | (e ? 0x800000u : 0u);
  const int shift = 151 - bias - man - (e ? e : 1);
  if (shift >= 32) return 0;
  uint32_t code = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (code & 1u))) ++code;
  return code;
}

MINDIESD_HD float decode_finite(uint32_t code, int man, int bias) {
  const uint32_t e = code >> man;
  const uint32_t m = code & ((1u << man) - 1);
  if (e == 0) {
    if (m == 0) return 0.0f;
    const int top = 31 - count_leading_zeros(m);
    const uint32_t fe = static_cast<uint32_t>(top + 1 - bias - man + 127);
    return bits_float((fe << 23) | ((m << (23 - top)) & 0x7fffffu));
  }
  return bits_float(((e - static_cast<uint32_t>(bias) + 127) << 23) | (m << (23 - man)));
}

MINDIESD_HD uint8_t to_f8_e4m3(float f) {
  const uint32_t u = float_bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u || a >= 0x43f00000u) return sign | 0x7f;  // NaN, or >= 480: NaN
  const uint32_t code = encode_rne(a, 3, 7);
  return sign | static_cast<uint8_t>(code > 0x7f ? 0x7f : code);
}
MINDIESD_HD float from_f8_e4m3(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  if ((b & 0x7fu) == 0x7fu) return bits_float(sign | 0x7fc00000u);
  return bits_float(sign | float_bits(decode_finite(b & 0x7fu, 3, 7)));
}
MINDIESD_HD uint8_t to_f8_e5m2(float f) {
  const uint32_t u = float_bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7f;
  if (a >= 0x47800000u) return sign | 0x7c;
  return sign | static_cast<uint8_t>(encode_rne(a, 2, 15));
}
MINDIESD_HD float from_f8_e5m2(uint8_t b) {
  __half_raw r;
  r.x = static_cast<unsigned short>(b << 8);  // e5m2 is the top byte of an f16
  return __half2float(__half(r));
}

// Float to integer as core's f32_to_int: NaN -> 0, clamp, truncate. The comparisons are done
// in f32, which is exact: no float lies strictly between a bound and its f32 rounding.
template <typename I>
MINDIESD_HD I float_to_int(float f, I lo, I hi) {
  if (f != f) return 0;
  if (f <= static_cast<float>(lo)) return lo;
  if (f >= static_cast<float>(hi)) return hi;
  return static_cast<I>(f);
}
template <typename I>
MINDIESD_HD I clamp_int(int64_t v, I lo, I hi) {
  return v < static_cast<int64_t>(lo) ? lo
                                      : (v > static_cast<int64_t>(hi) ? hi : static_cast<I>(v));
}

// ---- per-dtype traits -----------------------------------------------------------------------

// Traits<D>: `T` (storage), to_f32 / from_f32 and, for integer dtypes, to_i64 / from_i64.
template <DType D>
struct Traits;

template <>
struct Traits<DType::f32> {
  using T = float;
  static MINDIESD_HD float to_f32(T v) { return v; }
  static MINDIESD_HD T from_f32(float v) { return v; }
};
template <>
struct Traits<DType::f16> {
  using T = __half;
  static MINDIESD_HD float to_f32(T v) { return __half2float(v); }
  static MINDIESD_HD T from_f32(float v) { return __float2half_rn(v); }
};
template <>
struct Traits<DType::bf16> {
  using T = __nv_bfloat16;
  static MINDIESD_HD float to_f32(T v) { return __bfloat162float(v); }
  static MINDIESD_HD T from_f32(float v) { return __float2bfloat16_rn(v); }
};
template <>
struct Traits<DType::f8_e4m3> {
  using T = uint8_t;
  static MINDIESD_HD float to_f32(T v) { return from_f8_e4m3(v); }
  static MINDIESD_HD T from_f32(float v) { return to_f8_e4m3(v); }
};
template <>
struct Traits<DType::f8_e5m2> {
  using T = uint8_t;
  static MINDIESD_HD float to_f32(T v) { return from_f8_e5m2(v); }
  static MINDIESD_HD T from_f32(float v) { return to_f8_e5m2(v); }
};

template <typename I, int64_t Lo, int64_t Hi>
struct IntTraits {
  using T = I;
  static MINDIESD_HD float to_f32(T v) { return static_cast<float>(v); }
  static MINDIESD_HD T from_f32(float v) {
    return float_to_int<I>(v, static_cast<I>(Lo), static_cast<I>(Hi));
  }
  static MINDIESD_HD int64_t to_i64(T v) { return static_cast<int64_t>(v); }
  static MINDIESD_HD T from_i64(int64_t v) {
    return clamp_int<I>(v, static_cast<I>(Lo), static_cast<I>(Hi));
  }
};
template <>
struct Traits<DType::i8> : IntTraits<int8_t, INT8_MIN, INT8_MAX> {};
template <>
struct Traits<DType::u8> : IntTraits<uint8_t, 0, UINT8_MAX> {};
template <>
struct Traits<DType::i32> : IntTraits<int32_t, INT32_MIN, INT32_MAX> {};
template <>
struct Traits<DType::i64> : IntTraits<int64_t, INT64_MIN, INT64_MAX> {
  static MINDIESD_HD T from_i64(int64_t v) { return v; }
};
template <>
struct Traits<DType::boolean> {
  using T = uint8_t;
  static MINDIESD_HD float to_f32(T v) { return v ? 1.0f : 0.0f; }
  static MINDIESD_HD T from_f32(float v) { return v != 0.0f; }
  static MINDIESD_HD int64_t to_i64(T v) { return v ? 1 : 0; }
  static MINDIESD_HD T from_i64(int64_t v) { return v != 0; }
};

// ---- runtime-dtype access (the strided paths, where index math dominates anyway) ------------

// Element `i` of a buffer of dtype `t` as f32. `t` is any dtype but i4.
MINDIESD_HD float load_f32(const void* p, DType t, int64_t i) {
  switch (t) {
#define MINDIESD_CASE(D) \
  case D:                \
    return Traits<D>::to_f32(static_cast<const Traits<D>::T*>(p)[i]);
    MINDIESD_CASE(DType::f32)
    MINDIESD_CASE(DType::f16)
    MINDIESD_CASE(DType::bf16)
    MINDIESD_CASE(DType::f8_e4m3)
    MINDIESD_CASE(DType::f8_e5m2)
    MINDIESD_CASE(DType::i8)
    MINDIESD_CASE(DType::u8)
    MINDIESD_CASE(DType::i32)
    MINDIESD_CASE(DType::i64)
    MINDIESD_CASE(DType::boolean)
#undef MINDIESD_CASE
    default:
      return 0.0f;
  }
}

MINDIESD_HD void store_f32(void* p, DType t, int64_t i, float v) {
  switch (t) {
#define MINDIESD_CASE(D)                                       \
  case D:                                                      \
    static_cast<Traits<D>::T*>(p)[i] = Traits<D>::from_f32(v); \
    return;
    MINDIESD_CASE(DType::f32)
    MINDIESD_CASE(DType::f16)
    MINDIESD_CASE(DType::bf16)
    MINDIESD_CASE(DType::f8_e4m3)
    MINDIESD_CASE(DType::f8_e5m2)
    MINDIESD_CASE(DType::i8)
    MINDIESD_CASE(DType::u8)
    MINDIESD_CASE(DType::i32)
    MINDIESD_CASE(DType::i64)
    MINDIESD_CASE(DType::boolean)
#undef MINDIESD_CASE
    default:
      return;
  }
}

// Element `i` as int64: exact for integer dtypes, core's f32_to_int<int64_t> for floats.
MINDIESD_HD int64_t load_i64(const void* p, DType t, int64_t i) {
  switch (t) {
#define MINDIESD_CASE(D) \
  case D:                \
    return Traits<D>::to_i64(static_cast<const Traits<D>::T*>(p)[i]);
    MINDIESD_CASE(DType::i8)
    MINDIESD_CASE(DType::u8)
    MINDIESD_CASE(DType::i32)
    MINDIESD_CASE(DType::i64)
    MINDIESD_CASE(DType::boolean)
#undef MINDIESD_CASE
    default:
      return Traits<DType::i64>::from_f32(load_f32(p, t, i));
  }
}

// Stores an int64: clamped for integer dtypes, through f32 (as core's store_i64) for floats.
MINDIESD_HD void store_i64(void* p, DType t, int64_t i, int64_t v) {
  switch (t) {
#define MINDIESD_CASE(D)                                       \
  case D:                                                      \
    static_cast<Traits<D>::T*>(p)[i] = Traits<D>::from_i64(v); \
    return;
    MINDIESD_CASE(DType::i8)
    MINDIESD_CASE(DType::u8)
    MINDIESD_CASE(DType::i32)
    MINDIESD_CASE(DType::i64)
    MINDIESD_CASE(DType::boolean)
#undef MINDIESD_CASE
    default:
      store_f32(p, t, i, static_cast<float>(v));
  }
}

// ---- vectors --------------------------------------------------------------------------------

// N consecutive elements moved as aligned vector accesses (the widest a thread issues is
// 16 bytes, so 32- or 64-byte vectors become two or four of them).
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

// Elements per thread on the vectorised paths: one 16-byte access of the narrowest operand
// type (wider operands then take a few 16-byte accesses for the same elements).
template <typename... Ts>
inline constexpr int kVecElems = static_cast<int>(16 / std::min({sizeof(Ts)...}));

}  // namespace mindiesd::cuda
