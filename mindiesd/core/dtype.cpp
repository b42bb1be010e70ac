#include "mindiesd/core/dtype.h"

#include <immintrin.h>

#include <cstring>

#include "mindiesd/core/error.h"

namespace mindiesd {

namespace {
struct DTypeInfo {
  const char* name;
  const char* safetensors_name;
  int bits;
  bool floating;
};
constexpr DTypeInfo kInfo[kNumDTypes] = {
    {"f32", "F32", 32, true},         {"f16", "F16", 16, true},
    {"bf16", "BF16", 16, true},       {"f8_e4m3", "F8_E4M3", 8, true},
    {"f8_e5m2", "F8_E5M2", 8, true},  {"i8", "I8", 8, false},
    {"u8", "U8", 8, false},           {"i32", "I32", 32, false},
    {"i64", "I64", 64, false},        {"bool", "BOOL", 8, false},
    {"i4", "I4", 4, false},
};
}  // namespace

int dtype_bits(DType t) { return kInfo[static_cast<int>(t)].bits; }
const char* dtype_name(DType t) { return kInfo[static_cast<int>(t)].name; }
bool is_floating(DType t) { return kInfo[static_cast<int>(t)].floating; }

bool dtype_from_name(std::string_view name, DType* out) {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (name == kInfo[i].name || name == kInfo[i].safetensors_name) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

namespace {

// Reads element i of a buffer of dtype T as float (floats) or int64 (integers).
float load_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::f8_e4m3: return f8_e4m3_to_f32(static_cast<const uint8_t*>(p)[i]);
    case DType::f8_e5m2: return f8_e5m2_to_f32(static_cast<const uint8_t*>(p)[i]);
    case DType::i8: return static_cast<const int8_t*>(p)[i];
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
    case DType::i32: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
    case DType::i64: return static_cast<float>(static_cast<const int64_t*>(p)[i]);
    case DType::boolean: return static_cast<const uint8_t*>(p)[i] ? 1.0f : 0.0f;
    case DType::i4: return i4_to_f32(static_cast<const uint8_t*>(p)[i / 2] >> ((i & 1) * 4));
  }
  return 0.0f;
}

int64_t load_i64(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::i8: return static_cast<const int8_t*>(p)[i];
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return static_cast<const int64_t*>(p)[i];
    case DType::boolean: return static_cast<const uint8_t*>(p)[i] ? 1 : 0;
    case DType::i4: return static_cast<int64_t>(i4_to_f32(static_cast<const uint8_t*>(p)[i / 2] >> ((i & 1) * 4)));
    default: return f32_to_int<int64_t>(load_f32(p, t, i));
  }
}

template <typename I>
I clamp_int(int64_t v) {
  if (v < static_cast<int64_t>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (v > static_cast<int64_t>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(v);
}

void store_f32(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = v; break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); break;
    case DType::f8_e4m3: static_cast<uint8_t*>(p)[i] = f32_to_f8_e4m3(v); break;
    case DType::f8_e5m2: static_cast<uint8_t*>(p)[i] = f32_to_f8_e5m2(v); break;
    case DType::i8: static_cast<int8_t*>(p)[i] = f32_to_int<int8_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = f32_to_int<uint8_t>(v); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = f32_to_int<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = f32_to_int<int64_t>(v); break;
    case DType::boolean: static_cast<uint8_t*>(p)[i] = v != 0.0f; break;
    case DType::i4: {
      uint8_t& byte = static_cast<uint8_t*>(p)[i / 2];
      const int sh = (i & 1) * 4;
      byte = static_cast<uint8_t>((byte & ~(0xf << sh)) | (f32_to_i4(v) << sh));
      break;
    }
  }
}

void store_i64(void* p, DType t, int64_t i, int64_t v) {
  switch (t) {
    case DType::i8: static_cast<int8_t*>(p)[i] = clamp_int<int8_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = clamp_int<uint8_t>(v); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = clamp_int<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = v; break;
    case DType::boolean: static_cast<uint8_t*>(p)[i] = v != 0; break;
    default: store_f32(p, t, i, static_cast<float>(v)); break;
  }
}

void f32_to_f16_bulk(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  // F16C rounds to nearest-even exactly like f32_to_f16 for every non-NaN input.
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
#endif
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

void f16_to_f32_bulk(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

}  // namespace

void convert(const void* src, DType st, void* dst, DType dt, int64_t n) {
  // Checked before the memcpy shortcut: an odd i4 count would overwrite a neighbour nibble.
  MINDIESD_CHECK((st != DType::i4 && dt != DType::i4) || n % 2 == 0, InvalidArgument,
                 "convert: i4 conversions need an even element count, got ", n);
  if (st == dt) {
    std::memcpy(dst, src, static_cast<size_t>(dtype_bytes(st, n)));
    return;
  }
  // Hot pairs first; they auto-vectorise.
  if (st == DType::bf16 && dt == DType::f32) {
    const auto* s = static_cast<const uint16_t*>(src);
    auto* d = static_cast<float*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
    return;
  }
  if (st == DType::f32 && dt == DType::bf16) {
    const auto* s = static_cast<const float*>(src);
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
    return;
  }
  if (st == DType::f32 && dt == DType::f16) {
    f32_to_f16_bulk(static_cast<const float*>(src), static_cast<uint16_t*>(dst), n);
    return;
  }
  if (st == DType::f16 && dt == DType::f32) {
    f16_to_f32_bulk(static_cast<const uint16_t*>(src), static_cast<float*>(dst), n);
    return;
  }
  if (dt == DType::i4) std::memset(dst, 0, static_cast<size_t>(n / 2));
  // Float sources go through f32 (exact for every float dtype); integer sources through int64
  // so that i64 -> i32 and friends stay exact.
  for (int64_t i = 0; i < n; ++i) {
    if (is_floating(st)) {
      store_f32(dst, dt, i, load_f32(src, st, i));
    } else {
      store_i64(dst, dt, i, load_i64(src, st, i));
    }
  }
}

}  // namespace mindiesd
