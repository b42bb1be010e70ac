// Element types and their conversions.
//
// The float conversions are bit-exact to PyTorch's CPU conversions (c10/util/{Half,BFloat16,
// Float8_e4m3fn,Float8_e5m2}.h): round-to-nearest-even, subnormals kept, overflow to inf for
// f16/bf16/e5m2 and to NaN for e4m3fn (which has no inf). NaN inputs give a NaN (PyTorch's
// scalar and vectorised paths disagree on NaN payloads, so only NaN-ness is a contract).
// The fp8 encoders optionally saturate to the largest finite value, which is what the
// quantization module wants (PyTorch's `.to()` does not saturate).
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string_view>

#include "mindiesd/core/hd.h"

namespace mindiesd {

enum class DType : uint8_t {
  f32,
  f16,
  bf16,
  f8_e4m3,  // e4m3fn: no inf, NaN = S.1111.111, max 448
  f8_e5m2,  // IEEE-like: inf and NaN, max 57344
  i8,
  u8,
  i32,
  i64,
  boolean,
  i4,  // packed signed int4: two per byte, element 2i in the low nibble
};
inline constexpr int kNumDTypes = 11;

// Bits per element (4 for i4, so byte sizes must go through dtype_bytes()).
int dtype_bits(DType t);
const char* dtype_name(DType t);
// Parses the names used by dtype_name() and by safetensors ("F32", "BF16", "F8_E4M3", ...).
bool dtype_from_name(std::string_view name, DType* out);
bool is_floating(DType t);
// Bytes taken by `numel` elements (rounded up for packed types).
inline int64_t dtype_bytes(DType t, int64_t numel) { return (numel * dtype_bits(t) + 7) / 8; }

// A set of dtypes, as a bit mask; used by kernel registration and supports().
struct DTypeSet {
  uint32_t bits = 0;
  constexpr DTypeSet() = default;
  constexpr DTypeSet(std::initializer_list<DType> ts) {
    for (DType t : ts) bits |= 1u << static_cast<int>(t);
  }
  constexpr bool contains(DType t) const { return (bits >> static_cast<int>(t)) & 1u; }
  static constexpr DTypeSet all() {
    DTypeSet s;
    s.bits = (1u << kNumDTypes) - 1;
    return s;
  }
};
inline constexpr DTypeSet kFloatTypes{DType::f32, DType::f16, DType::bf16};

// ---- scalar conversions -------------------------------------------------------------------

// The scalar float conversions below are shared with the CUDA kernels (MINDIESD_HD).
MINDIESD_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
MINDIESD_HD float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

namespace detail {
// Round-to-nearest-even encoding of a finite non-negative f32 (given as bits) into a binary
// float with `man` mantissa bits and exponent bias `bias`. Returns exponent|mantissa bits; a
// value that rounds past the largest exponent carries into the next code, which the caller
// maps to inf or NaN.
MINDIESD_HD uint32_t encode_rne(uint32_t abs_bits, int man, int bias) {
  const int e = static_cast<int>(abs_bits >> 23);
  const uint32_t frac = abs_bits & 0x7fffffu;
  if (e - 127 + bias >= 1) {  // normal in the target format
    const int drop = 23 - man;
    uint32_t code = (static_cast<uint32_t>(e - 127 + bias) << man) | (frac >> drop);
    const uint32_t rem = frac & ((1u << drop) - 1);
    const uint32_t half = 1u << (drop - 1);
    if (rem > half || (rem == half && (code & 1u))) ++code;
    return code;
  }
  // Subnormal (or zero) in the target: code = value / 2^(1 - bias - man), rounded.
  const uint32_t mant = frac | (e ? 0x800000u : 0u);
  const int shift = 151 - bias - man - (e ? e : 1);
  if (shift >= 32) return 0;
  uint32_t code = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (code & 1u))) ++code;
  return code;
}

// Decodes exponent|mantissa bits (no sign) of a binary float with `man` mantissa bits and
// bias `bias` whose all-ones exponent is NOT special (callers handle inf/NaN first).
MINDIESD_HD float decode_finite(uint32_t code, int man, int bias) {
  const uint32_t e = code >> man;
  const uint32_t m = code & ((1u << man) - 1);
  if (e == 0) {  // subnormal: m * 2^(1 - bias - man), exact in f32
    if (m == 0) return 0.0f;
#if defined(__CUDA_ARCH__)
    const int top = 31 - __clz(static_cast<int>(m));  // position of the leading one
#else
    const int top = 31 - __builtin_clz(m);
#endif
    const uint32_t fe = static_cast<uint32_t>(top + 1 - bias - man + 127);
    return f32_from_bits((fe << 23) | ((m << (23 - top)) & 0x7fffffu));
  }
  return f32_from_bits(((e - bias + 127) << 23) | (m << (23 - man)));
}
}  // namespace detail

MINDIESD_HD uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN (c10's canonical NaN)
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
MINDIESD_HD float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

MINDIESD_HD uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  return sign | static_cast<uint16_t>(detail::encode_rne(a, 10, 15));
}
MINDIESD_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t code = h & 0x7fffu;
  if (code >= 0x7c00u) return f32_from_bits(sign | 0x7f800000u | ((code & 0x3ffu) << 13));
  return f32_from_bits(sign | f32_bits(detail::decode_finite(code, 10, 15)));
}

inline constexpr float kF8E4M3Max = 448.0f;
inline constexpr float kF8E5M2Max = 57344.0f;

MINDIESD_HD uint8_t f32_to_f8_e4m3(float f, bool saturate = false) {
  const uint32_t u = f32_bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7f;
  if (saturate && a > f32_bits(kF8E4M3Max)) a = f32_bits(kF8E4M3Max);
  if (a >= 0x43f00000u) return sign | 0x7f;  // >= 480: beyond the format, NaN
  const uint32_t code = detail::encode_rne(a, 3, 7);
  // 464 < |x| < 480 rounds to code 0x7f, which is NaN in e4m3fn (matches c10).
  return sign | static_cast<uint8_t>(code > 0x7f ? 0x7f : code);
}
MINDIESD_HD float f8_e4m3_to_f32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  if ((b & 0x7fu) == 0x7fu) return f32_from_bits(sign | 0x7fc00000u);
  return f32_from_bits(sign | f32_bits(detail::decode_finite(b & 0x7fu, 3, 7)));
}

MINDIESD_HD uint8_t f32_to_f8_e5m2(float f, bool saturate = false) {
  const uint32_t u = f32_bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7f;
  if (saturate && a > f32_bits(kF8E5M2Max)) a = f32_bits(kF8E5M2Max);
  if (a >= 0x47800000u) return sign | 0x7c;  // >= 65536 (and inf): inf
  const uint32_t code = detail::encode_rne(a, 2, 15);
  return sign | static_cast<uint8_t>(code);  // [61440, 65536) rounds to 0x7c = inf, as in c10
}
MINDIESD_HD float f8_e5m2_to_f32(uint8_t b) {
  return f16_to_f32(static_cast<uint16_t>(static_cast<uint16_t>(b) << 8));  // e5m2 = f16's top byte
}

// Integer targets: NaN -> 0, out-of-range values clamp (C++ leaves them undefined).
template <typename I>
inline I f32_to_int(float f) {
  if (f != f) return 0;
  const double d = f;
  if (d <= static_cast<double>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (d >= static_cast<double>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(d);
}

// int4: round-to-nearest-even then clamp to [-8, 7].
inline uint8_t f32_to_i4(float f) {
  if (!(f == f)) return 0;
  float r = __builtin_nearbyintf(f);  // default rounding mode: nearest-even
  r = r < -8.0f ? -8.0f : (r > 7.0f ? 7.0f : r);
  return static_cast<uint8_t>(static_cast<int>(r) & 0xf);
}
inline float i4_to_f32(uint8_t nibble) {
  return static_cast<float>(static_cast<int>((nibble & 0xf) ^ 0x8) - 8);
}

// Bulk conversion between any two dtypes for `n` contiguous elements. For i4 the element
// count must be even (a packed byte is never split between tensors).
void convert(const void* src, DType src_type, void* dst, DType dst_type, int64_t n);

}  // namespace mindiesd
