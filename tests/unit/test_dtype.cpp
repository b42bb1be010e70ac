// Element-type conversions (mindiesd/core/dtype.h) against PyTorch's own conversions.
//
// The golden, tests/data/golden/dtype/conversions.safetensors, is written by
// tools/golden/make_dtype_golden.py from PyTorch's CPU `tensor.to(dtype)`; see that script for
// the input set (round-to-nearest-even ties and their f32 neighbours for every code of every
// format, overflow sweeps, specials). Float results must be bit-exact; NaN results are compared
// by NaN-ness only, because PyTorch's scalar and vectorised paths give different payloads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/dtype.h"
#include "mindiesd/core/error.h"

namespace mindiesd {
namespace {

// ---- a minimal safetensors reader, independent of the engine's io/ reader ------------------

class GoldenFile {
 public:
  explicit GoldenFile(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open golden " + path);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (bytes_.size() < 8) throw std::runtime_error("truncated golden " + path);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes_[static_cast<size_t>(i)];
    if (header_len > bytes_.size() - 8) throw std::runtime_error("bad header length in " + path);
    const auto header = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + header_len);
    const size_t base = 8 + header_len;
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") {
        for (const auto& [k, v] : info.items()) metadata_[k] = v.get<std::string>();
        continue;
      }
      Entry e;
      e.dtype = info.at("dtype").get<std::string>();
      const auto off = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > bytes_.size() - base) {
        throw std::runtime_error("bad data_offsets for " + name + " in " + path);
      }
      e.offset = base + off[0];
      e.bytes = off[1] - off[0];
      entries_[name] = e;
    }
  }

  // The tensor's elements, checking the stored dtype name ("F32", "I16", "U8", ...).
  template <typename T>
  std::vector<T> get(const std::string& name, std::string_view dtype) const {
    const auto it = entries_.find(name);
    if (it == entries_.end()) throw std::runtime_error("no tensor " + name + " in " + path_);
    if (it->second.dtype != dtype || it->second.bytes % sizeof(T) != 0) {
      throw std::runtime_error(name + " has dtype " + it->second.dtype + ", expected " +
                               std::string(dtype));
    }
    std::vector<T> out(it->second.bytes / sizeof(T));
    std::memcpy(out.data(), bytes_.data() + it->second.offset, it->second.bytes);
    return out;
  }

  std::string meta(const std::string& key) const {
    const auto it = metadata_.find(key);
    return it == metadata_.end() ? "?" : it->second;
  }

 private:
  struct Entry {
    std::string dtype;
    size_t offset = 0;
    size_t bytes = 0;
  };
  std::string path_;
  std::vector<uint8_t> bytes_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

const GoldenFile& golden() {
  static const GoldenFile file(std::string(MINDIESD_SOURCE_DIR) +
                               "/tests/data/golden/dtype/conversions.safetensors");
  return file;
}

// ---- the float formats, as raw bits ---------------------------------------------------------

struct FloatFormat {
  DType dtype;
  const char* key;  // tensor-name prefix in the golden
  int bits;
  uint32_t (*encode)(float);
  float (*decode)(uint32_t);
  bool (*is_nan)(uint32_t);
};

const FloatFormat kF32{DType::f32,
                       "f32",
                       32,
                       [](float f) { return f32_bits(f); },
                       [](uint32_t b) { return f32_from_bits(b); },
                       [](uint32_t b) { return (b & 0x7fffffffu) > 0x7f800000u; }};
const FloatFormat kF16{DType::f16,
                       "f16",
                       16,
                       [](float f) -> uint32_t { return f32_to_f16(f); },
                       [](uint32_t b) { return f16_to_f32(static_cast<uint16_t>(b)); },
                       [](uint32_t b) { return (b & 0x7fffu) > 0x7c00u; }};
const FloatFormat kBF16{DType::bf16,
                        "bf16",
                        16,
                        [](float f) -> uint32_t { return f32_to_bf16(f); },
                        [](uint32_t b) { return bf16_to_f32(static_cast<uint16_t>(b)); },
                        [](uint32_t b) { return (b & 0x7fffu) > 0x7f80u; }};
const FloatFormat kE4M3{DType::f8_e4m3,
                        "f8_e4m3",
                        8,
                        [](float f) -> uint32_t { return f32_to_f8_e4m3(f); },
                        [](uint32_t b) { return f8_e4m3_to_f32(static_cast<uint8_t>(b)); },
                        [](uint32_t b) { return (b & 0x7fu) == 0x7fu; }};
const FloatFormat kE5M2{DType::f8_e5m2,
                        "f8_e5m2",
                        8,
                        [](float f) -> uint32_t { return f32_to_f8_e5m2(f); },
                        [](uint32_t b) { return f8_e5m2_to_f32(static_cast<uint8_t>(b)); },
                        [](uint32_t b) { return (b & 0x7fu) > 0x7cu; }};
const FloatFormat* const kAllFloats[] = {&kF32, &kF16, &kBF16, &kE4M3, &kE5M2};

// "0x" and `digits` lowercase hex digits.
std::string hex(uint32_t v, int digits) {
  std::string s = "0x";
  for (int i = digits - 1; i >= 0; --i) s += "0123456789abcdef"[(v >> (4 * i)) & 0xfu];
  return s;
}

// Counts mismatches and keeps a readable description of the first few.
class Mismatches {
 public:
  void add(const std::string& what) {
    if (count_++ < kShown) text_ += "\n  " + what;
  }
  int count() const { return count_; }
  std::string report() const {
    return std::to_string(count_) + " mismatches" + (count_ > kShown ? ", first:" : ":") + text_;
  }

 private:
  static constexpr int kShown = 12;
  int count_ = 0;
  std::string text_;
};

// Compares two results of one format: NaN by NaN-ness, everything else bit for bit.
bool same_result(const FloatFormat& f, uint32_t want, uint32_t got) {
  if (f.is_nan(want) || f.is_nan(got)) return f.is_nan(want) && f.is_nan(got);
  return want == got;
}

// Raw element bits of a buffer of `bits`-wide elements.
uint32_t load_bits(const void* p, int bits, size_t i) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint32_t v = 0;
  std::memcpy(&v, b + i * static_cast<size_t>(bits / 8), static_cast<size_t>(bits / 8));
  return v;
}
void store_bits(void* p, int bits, size_t i, uint32_t v) {
  std::memcpy(static_cast<uint8_t*>(p) + i * static_cast<size_t>(bits / 8), &v,
              static_cast<size_t>(bits / 8));
}

// Golden output bits (stored as I16 or U8) widened to uint32.
std::vector<uint32_t> golden_codes(const FloatFormat& f, const std::string& name) {
  std::vector<uint32_t> out;
  if (f.bits == 16) {
    for (int16_t v : golden().get<int16_t>(name, "I16")) out.push_back(static_cast<uint16_t>(v));
  } else {
    for (uint8_t v : golden().get<uint8_t>(name, "U8")) out.push_back(v);
  }
  return out;
}

std::vector<float> golden_decode_values(const FloatFormat& f) {
  std::vector<float> out;
  for (int32_t v : golden().get<int32_t>(std::string(f.key) + ".decode", "I32")) {
    out.push_back(f32_from_bits(static_cast<uint32_t>(v)));
  }
  return out;
}

// Every f32 input in the golden: all formats' encode inputs and decoded values.
const std::vector<float>& all_golden_f32_inputs() {
  static const std::vector<float> inputs = [] {
    std::vector<float> v;
    for (const FloatFormat* f : {&kF16, &kBF16, &kE4M3, &kE5M2}) {
      const auto enc = golden().get<float>(std::string(f->key) + ".encode.input", "F32");
      v.insert(v.end(), enc.begin(), enc.end());
      const auto dec = golden_decode_values(*f);
      v.insert(v.end(), dec.begin(), dec.end());
    }
    return v;
  }();
  return inputs;
}

// ---- golden comparisons, per format ----------------------------------------------------------

void PrintTo(const FloatFormat& f, std::ostream* os) { *os << f.key; }

class DTypeGolden : public ::testing::TestWithParam<FloatFormat> {};

TEST_P(DTypeGolden, EncodeMatchesTorch) {
  const FloatFormat& f = GetParam();
  const std::string key = f.key;
  // Set 1: torch's own decoded value of every pattern; set 2: ties, neighbours, sweeps, specials.
  const std::vector<float> exact_in = golden_decode_values(f);
  const std::vector<uint32_t> exact_out = golden_codes(f, key + ".exact.output");
  const std::vector<float> enc_in = golden().get<float>(key + ".encode.input", "F32");
  const std::vector<uint32_t> enc_out = golden_codes(f, key + ".encode.output");
  ASSERT_EQ(exact_in.size(), size_t{1} << f.bits);
  ASSERT_EQ(exact_in.size(), exact_out.size());
  ASSERT_EQ(enc_in.size(), enc_out.size());
  ASSERT_GT(enc_in.size(), exact_in.size() / 2);

  Mismatches bad;
  size_t checked = 0;
  for (const auto& [in, out] : {std::pair{&exact_in, &exact_out}, std::pair{&enc_in, &enc_out}}) {
    for (size_t i = 0; i < in->size(); ++i, ++checked) {
      const uint32_t got = f.encode((*in)[i]);
      const uint32_t want = (*out)[i];
      if (!same_result(f, want, got)) {
        bad.add("f32 " + hex(f32_bits((*in)[i]), 8) + " (" + std::to_string((*in)[i]) +
                ") -> torch " + hex(want, f.bits / 4) + ", mindiesd " + hex(got, f.bits / 4));
      }
    }
  }
  EXPECT_EQ(bad.count(), 0) << "f32 -> " << key << " vs torch " << golden().meta("torch") << ", "
                            << checked << " inputs, " << bad.report();
}

TEST_P(DTypeGolden, DecodeMatchesTorchForEveryPattern) {
  const FloatFormat& f = GetParam();
  const std::vector<float> want = golden_decode_values(f);
  ASSERT_EQ(want.size(), size_t{1} << f.bits);
  Mismatches bad;
  for (uint32_t p = 0; p < want.size(); ++p) {
    const float got = f.decode(p);
    if (!same_result(kF32, f32_bits(want[p]), f32_bits(got))) {
      bad.add(std::string(f.key) + " " + hex(p, f.bits / 4) + " -> torch " +
              hex(f32_bits(want[p]), 8) + ", mindiesd " + hex(f32_bits(got), 8));
    }
  }
  EXPECT_EQ(bad.count(), 0) << f.key << " -> f32, " << bad.report();
}

TEST_P(DTypeGolden, EveryNonNaNPatternRoundTrips) {
  const FloatFormat& f = GetParam();
  int nans = 0;
  for (uint32_t p = 0; p < (1u << f.bits); ++p) {
    const float v = f.decode(p);
    if (f.is_nan(p)) {
      ++nans;
      EXPECT_TRUE(std::isnan(v)) << hex(p, f.bits / 4);
      EXPECT_TRUE(f.is_nan(f.encode(v))) << hex(p, f.bits / 4);
      continue;
    }
    ASSERT_EQ(f.encode(v), p) << f.key << " " << hex(p, f.bits / 4) << " decodes to " << v;
  }
  // NaN codes per format: bf16 2*127, f16 2*1023, e4m3fn 2, e5m2 6.
  const int want_nans =
      f.bits == 8 ? (f.dtype == DType::f8_e4m3 ? 2 : 6) : (f.dtype == DType::bf16 ? 254 : 2046);
  EXPECT_EQ(nans, want_nans);
}

INSTANTIATE_TEST_SUITE_P(Formats, DTypeGolden, ::testing::Values(kBF16, kF16, kE4M3, kE5M2),
                         [](const ::testing::TestParamInfo<FloatFormat>& info) {
                           return std::string(info.param.key);
                         });

// ---- bulk convert() against the scalar functions ---------------------------------------------

// Source elements for a float dtype: every pattern of a narrow format; for f32, every golden input.
std::vector<uint8_t> source_buffer(const FloatFormat& f) {
  std::vector<uint8_t> buf;
  if (f.bits == 32) {
    const auto& in = all_golden_f32_inputs();
    buf.resize(in.size() * 4);
    std::memcpy(buf.data(), in.data(), buf.size());
    return buf;
  }
  const size_t n = size_t{1} << f.bits;
  buf.resize(n * static_cast<size_t>(f.bits / 8));
  for (size_t i = 0; i < n; ++i) store_bits(buf.data(), f.bits, i, static_cast<uint32_t>(i));
  return buf;
}

// Checks convert(src[off, off+n)) -> dst against encode_dst(decode_src(x)), and that the bytes
// around the written range are untouched.
// `src_at` picks the source elements, `off` is the destination's element offset (alignment).
void check_convert(const FloatFormat& s, const FloatFormat& d, const std::vector<uint8_t>& src,
                   size_t src_at, size_t off, size_t n, Mismatches* bad) {
  constexpr uint8_t kGuard = 0xcd;
  constexpr size_t kSlack = 5;
  const size_t sb = static_cast<size_t>(s.bits / 8), db = static_cast<size_t>(d.bits / 8);
  std::vector<uint8_t> dst((off + n + kSlack) * db, kGuard);
  convert(src.data() + src_at * sb, s.dtype, dst.data() + off * db, d.dtype,
          static_cast<int64_t>(n));
  for (size_t i = 0; i < dst.size(); ++i) {
    if ((i < off * db || i >= (off + n) * db) && dst[i] != kGuard) {
      bad->add("wrote outside the range: offset " + std::to_string(off) + " n " +
               std::to_string(n) + " byte " + std::to_string(i));
      return;
    }
  }
  for (size_t i = off; i < off + n; ++i) {
    const uint32_t x = load_bits(src.data(), s.bits, src_at + i - off);
    const uint32_t want = d.encode(s.decode(x));
    const uint32_t got = load_bits(dst.data(), d.bits, i);
    if (!same_result(d, want, got)) {
      bad->add(std::string(s.key) + " " + hex(x, s.bits / 4) + " -> " + d.key + ": scalar " +
               hex(want, d.bits / 4) + ", convert " + hex(got, d.bits / 4) + " (offset " +
               std::to_string(off) + ", n " + std::to_string(n) + ", element " +
               std::to_string(i - off) + ")");
    }
  }
}

TEST(DTypeConvert, BulkMatchesScalarForEveryFloatPair) {
  for (const FloatFormat* s : kAllFloats) {
    const std::vector<uint8_t> src = source_buffer(*s);
    const size_t total = src.size() / static_cast<size_t>(s->bits / 8);
    for (const FloatFormat* d : kAllFloats) {
      Mismatches bad;
      check_convert(*s, *d, src, 0, 0, total, &bad);  // every pattern at once
      EXPECT_EQ(bad.count(), 0) << s->key << " -> " << d->key << ": " << bad.report();
    }
  }
}

TEST(DTypeConvert, BulkHandlesTailsAndUnalignedStarts) {
  // Every length up to 40 and a few around vector widths, at several element offsets, so each
  // vectorised path sees every tail length and misaligned pointers.
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 40; ++n) lengths.push_back(n);
  for (size_t n : {63, 64, 65, 127, 128, 129, 255, 257}) lengths.push_back(n);
  for (const FloatFormat* s : kAllFloats) {
    std::vector<uint8_t> src = source_buffer(*s);
    const size_t total = src.size() / static_cast<size_t>(s->bits / 8);
    for (const FloatFormat* d : kAllFloats) {
      Mismatches bad;
      for (size_t off : {0, 1, 2, 3, 7}) {
        for (size_t n : lengths) {
          if (n + off >= total) continue;
          // Slide the window through the source so that different values land in the tails;
          // the source start has the same misalignment as the destination.
          const size_t start = (n * 131 * 8) % (total - n - off) / 8 * 8 + off;
          check_convert(*s, *d, src, start, off, n, &bad);
        }
      }
      EXPECT_EQ(bad.count(), 0) << s->key << " -> " << d->key << ": " << bad.report();
    }
  }
}

// ---- saturating fp8 ----------------------------------------------------------------------------

void check_saturating(const FloatFormat& f, uint8_t (*sat)(float, bool), float max_value,
                      uint32_t max_code) {
  Mismatches bad;
  std::vector<float> inputs = all_golden_f32_inputs();
  for (float x :
       {1e30f, -1e30f, std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity(), max_value, -max_value,
        std::nextafter(max_value, 1e30f), std::nextafter(max_value, 0.0f),
        std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
        std::numeric_limits<float>::signaling_NaN()}) {
    inputs.push_back(x);
  }
  for (float x : inputs) {
    const uint32_t got = sat(x, true);
    const uint32_t sign = std::signbit(x) ? 0x80u : 0u;
    uint32_t want;
    if (std::isnan(x)) {
      if (!f.is_nan(got)) bad.add("NaN " + hex(f32_bits(x), 8) + " -> " + hex(got, 2));
      continue;
    }
    want = std::fabs(x) >= max_value ? (sign | max_code) : f.encode(x);
    if (got != want) {
      bad.add(hex(f32_bits(x), 8) + " (" + std::to_string(x) + ") -> " + hex(got, 2) +
              ", expected " + hex(want, 2));
    }
    if (f.is_nan(got) || std::isinf(f.decode(got)) || std::fabs(f.decode(got)) > max_value) {
      bad.add(hex(f32_bits(x), 8) + " saturated to a non-finite or too large " + hex(got, 2));
    }
  }
  EXPECT_EQ(bad.count(), 0) << f.key << " saturating: " << bad.report();
}

TEST(DTypeFp8, SaturatingE4M3ClampsToMaxAndKeepsNaN) {
  EXPECT_EQ(f32_to_f8_e4m3(449.0f, true), 0x7e);
  EXPECT_EQ(f32_to_f8_e4m3(1e9f, true), 0x7e);
  EXPECT_EQ(f32_to_f8_e4m3(-std::numeric_limits<float>::infinity(), true), 0xfe);
  EXPECT_EQ(f32_to_f8_e4m3(470.0f, false), 0x7f);  // non-saturating: NaN, as torch
  EXPECT_EQ(f8_e4m3_to_f32(0x7e), kF8E4M3Max);
  check_saturating(kE4M3, &f32_to_f8_e4m3, kF8E4M3Max, 0x7e);
}

TEST(DTypeFp8, SaturatingE5M2ClampsToMaxAndKeepsNaN) {
  EXPECT_EQ(f32_to_f8_e5m2(61440.0f, true), 0x7b);
  EXPECT_EQ(f32_to_f8_e5m2(61440.0f, false), 0x7c);  // non-saturating: inf, as torch
  EXPECT_EQ(f32_to_f8_e5m2(std::numeric_limits<float>::infinity(), true), 0x7b);
  EXPECT_EQ(f32_to_f8_e5m2(-1e9f, true), 0xfb);
  EXPECT_EQ(f8_e5m2_to_f32(0x7b), kF8E5M2Max);
  check_saturating(kE5M2, &f32_to_f8_e5m2, kF8E5M2Max, 0x7b);
}

// ---- int4 ---------------------------------------------------------------------------------------

TEST(DTypeInt4, ScalarRoundsToNearestEvenAndClamps) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::pair<float, int> cases[] = {
      {0.0f, 0},   {-0.0f, 0},  {0.5f, 0},  {1.5f, 2},  {2.5f, 2},   {-0.5f, 0},
      {-1.5f, -2}, {-2.5f, -2}, {0.49f, 0}, {0.51f, 1}, {6.5f, 6},   {7.0f, 7},
      {7.4f, 7},   {7.5f, 7},   {100.f, 7}, {inf, 7},   {-7.5f, -8}, {-8.0f, -8},
      {-8.5f, -8}, {-1e9f, -8}, {-inf, -8}, {nan, 0},   {-nan, 0},   {3.0f, 3}};
  for (const auto& [x, want] : cases) {
    const uint8_t nib = f32_to_i4(x);
    EXPECT_EQ(nib & 0xf0, 0) << x;
    EXPECT_EQ(nib, static_cast<uint8_t>(want & 0xf)) << x;
    EXPECT_EQ(i4_to_f32(nib), static_cast<float>(want)) << x;
  }
  for (int v = -8; v <= 7; ++v) {
    EXPECT_EQ(i4_to_f32(static_cast<uint8_t>(v & 0xf)), static_cast<float>(v));
    EXPECT_EQ(i4_to_f32(static_cast<uint8_t>((v & 0xf) | 0xa0)), static_cast<float>(v))
        << "the high nibble must be ignored";
    EXPECT_EQ(f32_to_i4(static_cast<float>(v)), static_cast<uint8_t>(v & 0xf));
  }
}

TEST(DTypeInt4, PackedConvertPutsEvenElementInLowNibble) {
  // Every byte value, unpacked: element 2i is the low nibble, 2i+1 the high one.
  std::vector<uint8_t> packed(256);
  for (int b = 0; b < 256; ++b) packed[static_cast<size_t>(b)] = static_cast<uint8_t>(b);
  std::vector<float> unpacked(512, -100.0f);
  convert(packed.data(), DType::i4, unpacked.data(), DType::f32, 512);
  for (int b = 0; b < 256; ++b) {
    const auto lo = static_cast<float>(((b & 0xf) ^ 8) - 8);
    const auto hi = static_cast<float>(((b >> 4) ^ 8) - 8);
    ASSERT_EQ(unpacked[static_cast<size_t>(2 * b)], lo) << "byte " << b;
    ASSERT_EQ(unpacked[static_cast<size_t>(2 * b + 1)], hi) << "byte " << b;
  }
  // And back, into a buffer holding stale bits that must not leak into the result.
  std::vector<uint8_t> repacked(256, 0x5a);
  convert(unpacked.data(), DType::f32, repacked.data(), DType::i4, 512);
  EXPECT_EQ(repacked, packed);

  // Rounding and clamping through convert, and to/from integer types.
  const float in[] = {
      1.0f, -1.0f, 2.5f, 3.5f, 100.0f, -100.0f, std::numeric_limits<float>::quiet_NaN(), -0.4f};
  uint8_t out[4] = {0xff, 0xff, 0xff, 0xff};
  convert(in, DType::f32, out, DType::i4, 8);
  EXPECT_EQ(out[0], 0xf1);  // 1 | -1 << 4
  EXPECT_EQ(out[1], 0x42);  // 2 | 4 << 4
  EXPECT_EQ(out[2], 0x87);  // 7 | -8 << 4
  EXPECT_EQ(out[3], 0x00);  // NaN -> 0, -0.4 -> 0

  const int8_t ints[] = {-9, -8, 0, 7, 8, 127};
  uint8_t from_ints[3];
  convert(ints, DType::i8, from_ints, DType::i4, 6);
  EXPECT_EQ(from_ints[0], 0x88);
  EXPECT_EQ(from_ints[1], 0x70);
  EXPECT_EQ(from_ints[2], 0x77);
  int32_t back[6];
  convert(from_ints, DType::i4, back, DType::i32, 6);
  EXPECT_EQ(std::vector<int32_t>(back, back + 6), (std::vector<int32_t>{-8, -8, 0, 7, 7, 7}));
  int64_t wide[2] = {int64_t{1} << 40, -(int64_t{1} << 40)};
  uint8_t from_wide = 0;
  convert(wide, DType::i64, &from_wide, DType::i4, 2);
  EXPECT_EQ(from_wide, 0x87);

  uint16_t halves[2];
  convert(&out[0], DType::i4, halves, DType::bf16, 2);
  EXPECT_EQ(bf16_to_f32(halves[0]), 1.0f);
  EXPECT_EQ(bf16_to_f32(halves[1]), -1.0f);

  uint8_t copy[2] = {0, 0};
  convert(out, DType::i4, copy, DType::i4, 4);  // same dtype: a byte copy
  EXPECT_EQ(copy[0], out[0]);
  EXPECT_EQ(copy[1], out[1]);
}

TEST(DTypeInt4, OddElementCountIsAnError) {
  const float in[3] = {1, 2, 3};
  uint8_t out[2] = {};
  try {
    convert(in, DType::f32, out, DType::i4, 3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
  }
  float back[3];
  EXPECT_THROW(convert(out, DType::i4, back, DType::f32, 3), Error);
  // Same-dtype copies of an odd count would clobber the neighbouring nibble.
  uint8_t src[2] = {0x21, 0x43}, dst[2] = {0x00, 0xf0};
  EXPECT_THROW(convert(src, DType::i4, dst, DType::i4, 3), Error);
  EXPECT_EQ(dst[1], 0xf0);
}

// ---- integers
// ------------------------------------------------------------------------------------

TEST(DTypeInt, FloatToIntTruncatesClampsAndMapsNaNToZero) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32_to_int<int8_t>(1.9f), 1);
  EXPECT_EQ(f32_to_int<int8_t>(-1.9f), -1);
  EXPECT_EQ(f32_to_int<int8_t>(127.9f), 127);
  EXPECT_EQ(f32_to_int<int8_t>(300.0f), 127);
  EXPECT_EQ(f32_to_int<int8_t>(-128.5f), -128);
  EXPECT_EQ(f32_to_int<int8_t>(-1e30f), -128);
  EXPECT_EQ(f32_to_int<int8_t>(inf), 127);
  EXPECT_EQ(f32_to_int<int8_t>(-inf), -128);
  EXPECT_EQ(f32_to_int<int8_t>(nan), 0);
  EXPECT_EQ(f32_to_int<uint8_t>(-1.0f), 0);
  EXPECT_EQ(f32_to_int<uint8_t>(255.5f), 255);
  EXPECT_EQ(f32_to_int<uint8_t>(1e10f), 255);
  EXPECT_EQ(f32_to_int<uint8_t>(nan), 0);
  EXPECT_EQ(f32_to_int<int32_t>(3e9f), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(f32_to_int<int32_t>(-3e9f), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(f32_to_int<int32_t>(2147483520.0f), 2147483520);  // largest f32 below 2^31
  EXPECT_EQ(f32_to_int<int32_t>(2147483648.0f), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(f32_to_int<int32_t>(-2147483648.0f), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(f32_to_int<int32_t>(nan), 0);
  EXPECT_EQ(f32_to_int<int64_t>(9.2233720e18f), std::numeric_limits<int64_t>::max());  // 2^63
  EXPECT_EQ(f32_to_int<int64_t>(-1e19f), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f32_to_int<int64_t>(9.2233714e18f), int64_t{9223371487098961920});  // 2^63 - 2^39
  EXPECT_EQ(f32_to_int<int64_t>(-inf), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f32_to_int<int64_t>(nan), 0);

  // The same through convert(), from every float dtype.
  const float in[] = {nan, inf, -inf, 300.0f, -300.0f, 2.5f, -2.5f, 0.0f};
  const int8_t want_i8[] = {0, 127, -128, 127, -128, 2, -2, 0};
  const uint8_t want_u8[] = {0, 255, 0, 255, 0, 2, 0, 0};
  for (const FloatFormat* f : kAllFloats) {
    std::vector<uint8_t> src(8 * static_cast<size_t>(f->bits / 8));
    for (size_t i = 0; i < 8; ++i) store_bits(src.data(), f->bits, i, f->encode(in[i]));
    int8_t i8[8];
    uint8_t u8[8];
    int64_t i64[8];
    convert(src.data(), f->dtype, i8, DType::i8, 8);
    convert(src.data(), f->dtype, u8, DType::u8, 8);
    convert(src.data(), f->dtype, i64, DType::i64, 8);
    for (size_t i = 0; i < 8; ++i) {
      const float v = f->decode(load_bits(src.data(), f->bits, i));  // e4m3 has no inf: NaN
      EXPECT_EQ(i8[i], std::isnan(v) ? 0 : want_i8[i]) << f->key << " " << in[i];
      EXPECT_EQ(u8[i], std::isnan(v) ? 0 : want_u8[i]) << f->key << " " << in[i];
      EXPECT_EQ(i64[i], f32_to_int<int64_t>(v)) << f->key << " " << in[i];
    }
  }
}

TEST(DTypeInt, IntegerNarrowingClamps) {
  const int64_t wide[] = {std::numeric_limits<int64_t>::max(),
                          std::numeric_limits<int64_t>::min(),
                          int64_t{1} << 40,
                          -5,
                          200,
                          0};
  int32_t i32[6];
  convert(wide, DType::i64, i32, DType::i32, 6);
  EXPECT_EQ(std::vector<int32_t>(i32, i32 + 6),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::max(),
                                  std::numeric_limits<int32_t>::min(),
                                  std::numeric_limits<int32_t>::max(), -5, 200, 0}));
  int8_t i8[6];
  convert(i32, DType::i32, i8, DType::i8, 6);
  EXPECT_EQ(std::vector<int8_t>(i8, i8 + 6), (std::vector<int8_t>{127, -128, 127, -5, 127, 0}));
  uint8_t u8[6];
  convert(i32, DType::i32, u8, DType::u8, 6);
  EXPECT_EQ(std::vector<uint8_t>(u8, u8 + 6), (std::vector<uint8_t>{255, 0, 255, 0, 200, 0}));
  convert(i8, DType::i8, u8, DType::u8, 6);
  EXPECT_EQ(std::vector<uint8_t>(u8, u8 + 6), (std::vector<uint8_t>{127, 0, 127, 0, 127, 0}));
  int64_t back[6];
  convert(wide, DType::i64, back, DType::i64, 6);  // same dtype: exact
  EXPECT_EQ(std::vector<int64_t>(back, back + 6), std::vector<int64_t>(wide, wide + 6));
  const int64_t big = (int64_t{1} << 53) + 1;  // integer paths stay exact (no float detour)
  int64_t big_back = 0;
  int64_t big_in = big;
  convert(&big_in, DType::i64, &big_back, DType::i64, 1);
  EXPECT_EQ(big_back, big);
  const int32_t i32_big = (1 << 24) + 1;
  int64_t widened = 0;
  convert(&i32_big, DType::i32, &widened, DType::i64, 1);
  EXPECT_EQ(widened, (1 << 24) + 1);
}

TEST(DTypeInt, BoolConversions) {
  const float in[] = {0.0f, -0.0f, 0.5f, -2.0f, std::numeric_limits<float>::quiet_NaN()};
  uint8_t b[5];
  convert(in, DType::f32, b, DType::boolean, 5);
  EXPECT_EQ(std::vector<uint8_t>(b, b + 5), (std::vector<uint8_t>{0, 0, 1, 1, 1}));
  const int32_t ints[] = {0, 7, -1, 0, 1};
  convert(ints, DType::i32, b, DType::boolean, 5);
  EXPECT_EQ(std::vector<uint8_t>(b, b + 5), (std::vector<uint8_t>{0, 1, 1, 0, 1}));
  const uint8_t raw[] = {0, 1, 2, 255, 0};  // any non-zero byte reads as true
  float f[5];
  convert(raw, DType::boolean, f, DType::f32, 5);
  EXPECT_EQ(std::vector<float>(f, f + 5), (std::vector<float>{0, 1, 1, 1, 0}));
  int64_t i[5];
  convert(raw, DType::boolean, i, DType::i64, 5);
  EXPECT_EQ(std::vector<int64_t>(i, i + 5), (std::vector<int64_t>{0, 1, 1, 1, 0}));
}

// ---- names and sizes ---------------------------------------------------------------------------

TEST(DTypeInfo, NamesBitsAndBytes) {
  struct Case {
    DType t;
    const char* name;
    const char* safetensors;
    int bits;
    bool floating;
  };
  const Case cases[] = {
      {DType::f32, "f32", "F32", 32, true},
      {DType::f16, "f16", "F16", 16, true},
      {DType::bf16, "bf16", "BF16", 16, true},
      {DType::f8_e4m3, "f8_e4m3", "F8_E4M3", 8, true},
      {DType::f8_e5m2, "f8_e5m2", "F8_E5M2", 8, true},
      {DType::i8, "i8", "I8", 8, false},
      {DType::u8, "u8", "U8", 8, false},
      {DType::i32, "i32", "I32", 32, false},
      {DType::i64, "i64", "I64", 64, false},
      {DType::boolean, "bool", "BOOL", 8, false},
      {DType::i4, "i4", "I4", 4, false},
  };
  for (const Case& c : cases) {
    EXPECT_STREQ(dtype_name(c.t), c.name);
    EXPECT_EQ(dtype_bits(c.t), c.bits);
    EXPECT_EQ(is_floating(c.t), c.floating) << c.name;
    DType parsed = DType::u8;
    EXPECT_TRUE(dtype_from_name(c.name, &parsed));
    EXPECT_EQ(parsed, c.t);
    parsed = DType::u8;
    EXPECT_TRUE(dtype_from_name(c.safetensors, &parsed));
    EXPECT_EQ(parsed, c.t);
  }
  DType unused;
  EXPECT_FALSE(dtype_from_name("F64", &unused));
  EXPECT_FALSE(dtype_from_name("", &unused));
  EXPECT_EQ(dtype_bytes(DType::i4, 3), 2);
  EXPECT_EQ(dtype_bytes(DType::i4, 4), 2);
  EXPECT_EQ(dtype_bytes(DType::bf16, 3), 6);
  EXPECT_EQ(dtype_bytes(DType::i64, 0), 0);
}

}  // namespace
}  // namespace mindiesd
