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

// Unrolling hint for device code; the host compilation of the same __host__ __device__ code
// (gcc) would warn about an unknown pragma.
#if defined(__CUDA_ARCH__)
#define MINDIESD_UNROLL _Pragma("unroll")
#else
#define MINDIESD_UNROLL
#endif

namespace mindiesd::cuda {

// The fp8 conversions are core's (mindiesd/core/dtype.h), compiled for the device too.

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
  static MINDIESD_HD float to_f32(T v) { return f8_e4m3_to_f32(v); }
  static MINDIESD_HD T from_f32(float v) { return f32_to_f8_e4m3(v); }
};
template <>
struct Traits<DType::f8_e5m2> {
  using T = uint8_t;
  static MINDIESD_HD float to_f32(T v) { return f8_e5m2_to_f32(v); }
  static MINDIESD_HD T from_f32(float v) { return f32_to_f8_e5m2(v); }
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

// Element `i` of an f32 / bf16 / f16 buffer (kernels whose operands are only those three: a
// three-way switch, cheaper than load_f32's).
__device__ __forceinline__ float ld(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::bf16:
      return Traits<DType::bf16>::to_f32(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::f16:
      return Traits<DType::f16>::to_f32(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void st(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::bf16:
      static_cast<__nv_bfloat16*>(p)[i] = Traits<DType::bf16>::from_f32(v);
      return;
    case DType::f16:
      static_cast<__half*>(p)[i] = Traits<DType::f16>::from_f32(v);
      return;
    default:
      static_cast<float*>(p)[i] = v;
      return;
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
