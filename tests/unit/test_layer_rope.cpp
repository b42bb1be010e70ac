// RoPE against the float64 reference (the differential harness: modes, layouts, odd sizes,
// strided views, dtypes, in place), the table builders against float64 formulas, the cache,
// the argument errors, and parity with diffusers recorded by
// tools/golden/make_layer_rope_golden.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "compare.h"
#include "harness.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/rope.h"

namespace mindiesd::test {
namespace {

const char* mode_name(RopeMode m) {
  return m == RopeMode::rotate_half ? "rotated_half" : "rotated_interleaved";
}

// Array permutation: out dim i takes in dim order[i].
Array permute(const Array& a, std::initializer_list<int> order) {
  const std::vector<int> ord(order);
  Shape s;
  for (int d : ord) s.push_back(a.shape[d]);
  Array out(s);
  if (out.numel() == 0) return out;
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  do {
    int64_t src[kMaxDims];
    for (size_t d = 0; d < ord.size(); ++d) src[ord[d]] = idx[d];
    out.v[i++] = a.at(src, a.shape.size());
  } while (ref::next_index(s, idx));
  return out;
}

Array reshaped(Array a, const Shape& s) {
  a.shape = s;
  return a;
}

// The reference for x in `layout` (4-d) with tables given as (S, D), (B, S, D) or 4-d in x's
// layout; the result in x's layout.
Array rope_ref(const Array& x, const Array& cos, const Array& sin, RopeMode mode, bool bnsd) {
  const Array x4 = bnsd ? permute(x, {0, 2, 1, 3}) : x;
  auto table = [&](const Array& t) {
    if (t.shape.size() == 2) return reshaped(t, Shape{1, t.shape[0], 1, t.shape[1]});
    if (t.shape.size() == 3) return reshaped(t, Shape{t.shape[0], t.shape[1], 1, t.shape[2]});
    return bnsd ? permute(t, {0, 2, 1, 3}) : t;
  };
  const Array out = ref::rope(x4, table(cos), table(sin), mode);
  return bnsd ? permute(out, {0, 2, 1, 3}) : out;
}

struct Shape4 {
  int64_t b, s, h, d;
};

Case rope_case(const std::string& tag, Shape4 sh, RopeMode mode, DType dt, bool bnsd,
               bool in_place = false) {
  Case c;
  c.name = str_cat("rope_", mode == RopeMode::rotate_half ? "half" : "interleaved", "_", tag, "_",
                   bnsd ? "bnsd" : "bsnd", in_place ? "_inplace" : "", "_", dtype_name(dt));
  const Shape xs = bnsd ? Shape{sh.b, sh.h, sh.s, sh.d} : Shape{sh.b, sh.s, sh.h, sh.d};
  c.inputs = {Input{xs, dt}, Input{{sh.s, sh.d}, DType::f32}, Input{{sh.s, sh.d}, DType::f32}};
  const char* layout = bnsd ? "BNSD" : "BSND";
  c.run = [=](const std::vector<Tensor>& x) {
    if (!in_place)
      return layer::rotary_position_embedding(x[0], x[1], x[2], mode_name(mode), layout);
    const Tensor y = x[0].clone();
    layer::rotary_position_embedding_(y, x[1], x[2], mode_name(mode), layout);
    return y;
  };
  c.reference = [=](const std::vector<Array>& x) { return rope_ref(x[0], x[1], x[2], mode, bnsd); };
  c.tol_dtype = dt;
  // Two rounded f32 products and a sum that may cancel: a length-2 dot product.
  c.cls = OpClass::reduction;
  return c;
}

std::vector<Case> rope_cases() {
  std::vector<Case> cs;
  const std::pair<int64_t, int64_t> sd[] = {{1, 16}, {7, 64}, {111, 128}};
  for (RopeMode mode : {RopeMode::rotate_half, RopeMode::interleaved}) {
    for (DType dt : kFloats) {
      for (auto [s, d] : sd)
        for (bool bnsd : {false, true})
          cs.push_back(rope_case(str_cat("s", s, "_d", d), {2, s, 3, d}, mode, dt, bnsd));
      cs.push_back(rope_case("s7_d64", {2, 7, 3, 64}, mode, dt, false, /*in_place=*/true));
      cs.push_back(rope_case("s7_d64", {2, 7, 3, 64}, mode, dt, true, /*in_place=*/true));
    }
    // Tails and chunking: D/2 < 16, D not a multiple of 16, D/2 > the 256-channel chunk.
    for (int64_t d : {2, 6, 36, 600}) {
      cs.push_back(rope_case(str_cat("s5_d", d), {1, 5, 2, d}, mode, DType::f32, false));
      cs.push_back(rope_case(str_cat("s5_d", d), {1, 5, 2, d}, mode, DType::bf16, true,
                             /*in_place=*/true));
    }
    // Enough rows to split across threads.
    cs.push_back(rope_case("s500_d128", {1, 500, 4, 128}, mode, DType::f32, false));
    cs.push_back(rope_case("s500_d128", {1, 500, 4, 128}, mode, DType::bf16, true));

    const std::string m = mode == RopeMode::rotate_half ? "half" : "interleaved";
    const char* mn = mode_name(mode);
    // q sliced out of a fused QKV projection (B, S, H, 3D): rows strided, channels contiguous.
    {
      Case c;
      c.name = str_cat("rope_", m, "_qkv_slice_f32");
      c.inputs = {Input{{2, 9, 3, 3 * 32},
                        DType::f32,
                        Domain::normal,
                        [](const Tensor& t) { return t.narrow(-1, 32, 32); }},
                  Input{{9, 32}}, Input{{9, 32}}};
      c.run = [=](const std::vector<Tensor>& x) {
        return layer::rotary_position_embedding(x[0], x[1], x[2], mn);
      };
      c.reference = [=](const std::vector<Array>& x) {
        return rope_ref(x[0], x[1], x[2], mode, false);
      };
      c.cls = OpClass::reduction;
      cs.push_back(c);
    }
    // Channel stride 2 (the gather path) with bf16 tables stored transposed.
    for (DType dt : {DType::f32, DType::f16}) {
      Case c;
      c.name = str_cat("rope_", m, "_channel_strided_bf16_tables_", dtype_name(dt));
      c.inputs = {Input{{2, 5, 2, 2 * 24}, dt, Domain::normal, strided},
                  Input{{24, 5}, DType::bf16, Domain::normal, transposed},
                  Input{{24, 5}, DType::bf16, Domain::normal, transposed}};
      c.run = [=](const std::vector<Tensor>& x) {
        return layer::rotary_position_embedding(x[0], x[1], x[2], mn);
      };
      c.reference = [=](const std::vector<Array>& x) {
        return rope_ref(x[0], x[1], x[2], mode, false);
      };
      c.tol_dtype = dt;
      c.cls = OpClass::reduction;
      cs.push_back(c);
    }
    // Per-batch tables (B, S, D), and Wan's 4-d (1, S, 1, D), on a 3-d and a 4-d x.
    {
      Case c;
      c.name = str_cat("rope_", m, "_per_batch_tables_bf16");
      c.inputs = {Input{{3, 11, 2, 16}, DType::bf16}, Input{{3, 11, 16}}, Input{{3, 11, 16}}};
      c.run = [=](const std::vector<Tensor>& x) {
        return layer::rotary_position_embedding(x[0], x[1], x[2], mn);
      };
      c.reference = [=](const std::vector<Array>& x) {
        return rope_ref(x[0], x[1], x[2], mode, false);
      };
      c.tol_dtype = DType::bf16;
      c.cls = OpClass::reduction;
      cs.push_back(c);
      Case w;
      w.name = str_cat("rope_", m, "_wan_4d_tables_f32");
      w.inputs = {Input{{1, 13, 4, 32}}, Input{{1, 13, 1, 32}}, Input{{1, 13, 1, 32}}};
      w.run = c.run;
      w.reference = c.reference;
      w.cls = OpClass::reduction;
      cs.push_back(w);
      Case t;
      t.name = str_cat("rope_", m, "_3d_x_f32");
      t.inputs = {Input{{13, 4, 32}}, Input{{13, 32}}, Input{{13, 32}}};
      t.run = c.run;
      t.reference = [=](const std::vector<Array>& x) {
        const Array r = rope_ref(reshaped(x[0], Shape{1, 13, 4, 32}), x[1], x[2], mode, false);
        return reshaped(r, Shape{13, 4, 32});
      };
      t.cls = OpClass::reduction;
      cs.push_back(t);
    }
  }
  return cs;
}

MINDIESD_HARNESS_SUITE(Rope, RopeHarness, rope_cases);

// ---- kernel properties ----

TEST(Rope, OutputHasInputLayoutAndDtype) {
  const Tensor x = ops::randn({2, 3, 5, 16}, 1).to(DType::bf16);  // BNSD
  const auto t = layer::rope_1d(16, 5);
  const Tensor y = layer::rotary_position_embedding(x, t.cos, t.sin, "rotated_interleaved", "BNSD");
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.dtype(), DType::bf16);
  EXPECT_TRUE(y.is_contiguous());
}

TEST(Rope, InPlaceEqualsOutOfPlaceBitForBit) {
  for (const char* mode : {"rotated_half", "rotated_interleaved"}) {
    const Tensor x = ops::randn({2, 9, 3, 64}, 7);
    const auto t = layer::rope_1d(64, 9);
    const Tensor want = layer::rotary_position_embedding(x, t.cos, t.sin, mode);
    const Tensor y = x.clone();
    EXPECT_EQ(&layer::rotary_position_embedding_(y, t.cos, t.sin, mode), &y);
    EXPECT_EQ(y.to_vector(), want.to_vector()) << mode;
  }
}

TEST(Rope, PositionZeroIsIdentityAndNormsArePreserved) {
  // Real tables: position 0 has cos 1 / sin 0; every rotation keeps each pair's norm.
  const Tensor x = ops::randn({1, 6, 2, 32}, 3);
  for (bool interleave : {true, false}) {
    layer::Rope1dOptions o;
    o.repeat_interleave_real = interleave;
    const auto t = layer::rope_1d(32, 6, o);
    const Tensor y = layer::rotary_position_embedding(
        x, t.cos, t.sin, interleave ? "rotated_interleaved" : "rotated_half");
    const std::vector<float> xv = x.to_vector(), yv = y.to_vector();
    for (int64_t j = 0; j < 64; ++j) EXPECT_EQ(yv[j], xv[j]) << j;  // position 0, both heads
    for (int64_t r = 0; r < 12; ++r)
      for (int64_t k = 0; k < 16; ++k) {
        const int64_t a = r * 32 + (interleave ? 2 * k : k);
        const int64_t b = r * 32 + (interleave ? 2 * k + 1 : k + 16);
        EXPECT_NEAR(std::hypot(yv[a], yv[b]), std::hypot(xv[a], xv[b]), 1e-5);
      }
  }
}

TEST(Rope, KernelWritesAnyFloatOutputDtype) {
  // The op contract (op_params.h) lets out differ from x in dtype; the layer never asks for it
  // but a fused caller may. Compare with the same-dtype result converted.
  const auto t = layer::rope_1d(48, 5);
  const Tensor cos = t.cos.unsqueeze(0).unsqueeze(2).expand({2, 5, 3, 48});
  const Tensor sin = t.sin.unsqueeze(0).unsqueeze(2).expand({2, 5, 3, 48});
  for (DType xt : {DType::f32, DType::bf16})
    for (DType ot : {DType::f32, DType::bf16, DType::f16})
      for (RopeMode mode : {RopeMode::rotate_half, RopeMode::interleaved}) {
        const Tensor x = ops::randn({2, 5, 3, 48}, 4).to(xt);
        const Tensor out = Tensor::empty(x.shape(), ot);
        const RopeParams p{mode};
        const Tensor in[] = {x, cos, sin};
        dispatch(OpId::rope, in, {&out, 1}, &p);
        const Tensor want =
            layer::rotary_position_embedding(x.to(DType::f32), t.cos, t.sin, mode_name(mode));
        EXPECT_EQ(out.to_vector(), want.to(ot).to_vector())
            << dtype_name(xt) << "->" << dtype_name(ot);
      }
}

TEST(Rope, NonFiniteValuesPropagate) {
  std::vector<float> v(2 * 32, 1.0f);
  v[3] = NAN;
  v[32 + 5] = INFINITY;
  const auto t = layer::rope_1d(32, 2);
  for (DType dt : {DType::f32, DType::bf16})
    for (const char* mode : {"rotated_half", "rotated_interleaved"}) {
      const Tensor x = Tensor::from_vector(v, {1, 2, 1, 32}, dt);
      const std::vector<float> y =
          layer::rotary_position_embedding(x, t.cos, t.sin, mode).to_vector();
      EXPECT_TRUE(std::isnan(y[3])) << mode;
      EXPECT_FALSE(std::isfinite(y[32 + 5])) << mode;
      EXPECT_TRUE(std::isfinite(y[1])) << mode;
    }
}

// ---- errors ----

template <typename F>
void expect_error(F&& f, ErrorKind kind, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Rope, ArgumentErrors) {
  const Tensor x = ops::randn({2, 7, 3, 16}, 1);
  const auto t = layer::rope_1d(16, 7);
  using layer::rotary_position_embedding;
  expect_error([&] { rotary_position_embedding(x, t.cos, t.sin, "rotate_half"); },
               ErrorKind::InvalidArgument, "rotated_half, rotated_interleaved");
  expect_error([&] { rotary_position_embedding(x, t.cos, t.sin, "rotated_half", "BSH"); },
               ErrorKind::InvalidArgument, "BSND, BNSD");
  expect_error([&] { rotary_position_embedding(x, t.cos.narrow(0, 0, 6), t.sin); },
               ErrorKind::InvalidArgument,
               "cos of shape (6, 16) does not match x of shape (2, 7, 3, 16)");
  expect_error([&] { rotary_position_embedding(x, t.cos, t.sin.narrow(1, 0, 8)); },
               ErrorKind::InvalidArgument, "sin of shape (7, 8)");
  // BNSD reads dim 2 as the sequence: 3 != 7.
  expect_error([&] { rotary_position_embedding(x, t.cos, t.sin, "rotated_half", "BNSD"); },
               ErrorKind::InvalidArgument, "sequence length 3");
  expect_error(
      [&] {
        rotary_position_embedding(ops::randn({2, 7, 3, 15}, 1), t.cos, t.sin);
      },
      ErrorKind::InvalidArgument, "head_dim must be even");
  expect_error(
      [&] {
        rotary_position_embedding(ops::randn({7, 16}, 1), t.cos, t.sin);
      },
      ErrorKind::InvalidArgument, "must be 4-d");
  expect_error([&] { rotary_position_embedding(x.to(DType::i32), t.cos, t.sin); },
               ErrorKind::InvalidArgument, "x must be f32, bf16 or f16");
  expect_error([&] { rotary_position_embedding(x, t.cos.to(DType::i64), t.sin); },
               ErrorKind::InvalidArgument, "cos must be f32, bf16 or f16");
  expect_error([&] { rotary_position_embedding(x, Tensor(), t.sin); }, ErrorKind::InvalidArgument,
               "cos is undefined");
  const Tensor broadcast = ops::randn({1, 7, 1, 16}, 1).expand({2, 7, 3, 16});
  expect_error([&] { layer::rotary_position_embedding_(broadcast, t.cos, t.sin); },
               ErrorKind::InvalidArgument, "broadcast view");
}

// ---- tables ----

TEST(RopeTables, OneDimensionalF64IsTheExactTableRoundedToF32) {
  std::vector<double> pos;
  for (int i = 0; i < 300; ++i) pos.push_back(i * 13.0);
  for (bool interleave : {true, false}) {
    layer::Rope1dOptions o;
    o.repeat_interleave_real = interleave;
    o.freqs_dtype = layer::FreqsDtype::f64;
    const auto t = layer::rope_1d(128, pos, o);
    Array c, s;
    ref::rope_table_1d(128, pos, 10000.0, interleave, &c, &s);
    // Bound: one f32 rounding of a value in [-1, 1] (2^-25) plus libm's double error.
    EXPECT_LE(max_abs_diff(t.cos, c), 3.0e-8);
    EXPECT_LE(max_abs_diff(t.sin, s), 3.0e-8);
  }
}

TEST(RopeTables, OneDimensionalF32FollowsF32Angles) {
  // The float32 path rounds theta^(2k/D), its reciprocal and position * frequency to f32, as
  // PyTorch does, so it drifts from the exact table by up to ~3 ulp of the angle:
  // |diff| <= 3 * 2^-24 * max(position) (here 4095 -> 7.3e-4).
  std::vector<double> pos;
  for (int i = 0; i < 4096; i += 7) pos.push_back(i);
  pos.push_back(4095);
  const auto t = layer::rope_1d(64, pos);
  Array c, s;
  ref::rope_table_1d(64, pos, 10000.0, true, &c, &s);
  const double bound = 3 * std::ldexp(1.0, -24) * 4095 + 6e-8;
  EXPECT_LE(max_abs_diff(t.cos, c), bound);
  EXPECT_LE(max_abs_diff(t.sin, s), bound);
  // Small positions stay within an ulp or two of the exact values.
  const auto small = layer::rope_1d(64, 4);
  ref::rope_table_1d(64, {0, 1, 2, 3}, 10000.0, true, &c, &s);
  EXPECT_LE(max_abs_diff(small.cos, c), 4e-7);
  EXPECT_LE(max_abs_diff(small.sin, s), 4e-7);
}

TEST(RopeTables, PositionsTensorAndDevice) {
  const Tensor pos = Tensor::from_vector(std::vector<float>{0, 3, 5}, {3}).to(DType::i64);
  const auto a = layer::rope_1d(8, pos);
  const double p[] = {0, 3, 5};
  const auto b = layer::rope_1d(8, std::span<const double>(p, 3));
  EXPECT_EQ(a.cos.to_vector(), b.cos.to_vector());
  EXPECT_EQ(a.sin.to_vector(), b.sin.to_vector());
  EXPECT_EQ(a.cos.shape(), (Shape{3, 8}));
  EXPECT_EQ(a.cos.dtype(), DType::f32);
}

TEST(RopeTables, FluxConcatenatesAxesOverIds) {
  const int64_t axes[] = {16, 56, 56};
  const Tensor ids = layer::flux_ids(3, 4, 5);
  ASSERT_EQ(ids.shape(), (Shape{23, 3}));
  const std::vector<float> iv = ids.to_vector();
  EXPECT_EQ(iv[(3 + 1 * 5 + 2) * 3 + 1], 1.0f);  // image token (1, 2): row
  EXPECT_EQ(iv[(3 + 1 * 5 + 2) * 3 + 2], 2.0f);  // column
  EXPECT_EQ(iv[2 * 3 + 1], 0.0f);                // text tokens are zeros
  const auto t = layer::flux_rope(ids, axes);
  ASSERT_EQ(t.cos.shape(), (Shape{23, 128}));
  // Each axis is a 1-d table over that column of ids, placed side by side.
  int64_t col = 0;
  for (int a = 0; a < 3; ++a) {
    std::vector<double> pos;
    for (int64_t i = 0; i < 23; ++i) pos.push_back(iv[i * 3 + a]);
    Array c, s;
    ref::rope_table_1d(axes[a], pos, 10000.0, true, &c, &s);
    EXPECT_LE(max_abs_diff(t.cos.narrow(1, col, axes[a]), c), 3e-8) << a;
    EXPECT_LE(max_abs_diff(t.sin.narrow(1, col, axes[a]), s), 3e-8) << a;
    col += axes[a];
  }
  const int64_t two[] = {16, 56};
  expect_error([&] { layer::flux_rope(ids, two); }, ErrorKind::InvalidArgument,
               "3 axes but axes_dim has 2");
}

TEST(RopeTables, ThreeDimensionalSplitsHeadDimLikeWan) {
  EXPECT_EQ(layer::wan_rope_axes(128), (std::array<int64_t, 3>{44, 42, 42}));
  EXPECT_EQ(layer::wan_rope_axes(64), (std::array<int64_t, 3>{24, 20, 20}));
  const int64_t f = 3, h = 4, w = 5, d = 64;
  const auto t = layer::rope_3d(f, h, w, d);
  ASSERT_EQ(t.cos.shape(), (Shape{f * h * w, d}));
  const int64_t axes[] = {24, 20, 20}, sizes[] = {f, h, w};
  Array ac[3], as[3];
  for (int a = 0; a < 3; ++a) {
    std::vector<double> pos;
    for (int64_t i = 0; i < sizes[a]; ++i) pos.push_back(i);
    ref::rope_table_1d(axes[a], pos, 10000.0, true, &ac[a], &as[a]);
  }
  Array wc(Shape{f * h * w, d}), ws(Shape{f * h * w, d});
  for (int64_t i = 0; i < f; ++i)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t k = 0; k < w; ++k) {
        const int64_t row = (i * h + j) * w + k, idx[3] = {i, j, k};
        int64_t col = 0;
        for (int a = 0; a < 3; ++a) {
          for (int64_t q = 0; q < axes[a]; ++q) {
            wc.v[row * d + col + q] = ac[a].v[idx[a] * axes[a] + q];
            ws.v[row * d + col + q] = as[a].v[idx[a] * axes[a] + q];
          }
          col += axes[a];
        }
      }
  EXPECT_LE(max_abs_diff(t.cos, wc), 3e-8);
  EXPECT_LE(max_abs_diff(t.sin, ws), 3e-8);
  layer::Rope3dOptions bad;
  bad.axes_dim = {16, 56, 50};
  expect_error([&] { layer::rope_3d(2, 2, 2, 128, bad); }, ErrorKind::InvalidArgument,
               "does not add up to head_dim 128");
}

TEST(RopeCache, BuildsEachShapeOnceAndEvictsLeastRecentlyUsed) {
  layer::RopeCache cache(2);
  const auto a = cache.rope_3d(2, 3, 4, 64);
  const auto b = cache.rope_3d(2, 3, 4, 64);
  EXPECT_TRUE(a.cos.shares_storage(b.cos));  // the same tables, not a rebuild
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);
  const int64_t axes[] = {16, 56, 56};
  const auto f = cache.flux(4, 2, 3, axes);
  EXPECT_EQ(f.cos.shape(), (Shape{10, 128}));
  const auto g = cache.rope_1d(32, 9);
  EXPECT_EQ(cache.size(), 2u);  // capacity 2: the 3-d tables (least recent) went
  EXPECT_EQ(cache.misses(), 3);
  cache.flux(4, 2, 3, axes);
  EXPECT_EQ(cache.hits(), 2);
  cache.rope_3d(2, 3, 4, 64);
  EXPECT_EQ(cache.misses(), 4);
  // Options are part of the key.
  layer::Rope1dOptions o;
  o.theta = 500;
  const auto h = cache.rope_1d(32, 9, o);
  EXPECT_NE(h.cos.to_vector(), g.cos.to_vector());
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
}

// ---- parity with diffusers (tools/golden/make_layer_rope_golden.py) ----

class RopeParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    file_ =
        io::SafetensorsFile::open(MINDIESD_SOURCE_DIR "/tests/data/golden/layer/rope.safetensors");
  }
  static Tensor get(const std::string& name) { return file_->get(name); }
  // Checks max |got - want| <= bound and prints the measured value (the note quotes these).
  static void expect_within(const std::string& what, const Tensor& got, const Tensor& want,
                            double bound) {
    const double d = test::max_abs_diff(got, want);
    std::printf("  %-34s max |diff| %.3g (bound %.3g)\n", what.c_str(), d, bound);
    EXPECT_LE(d, bound) << what;
  }
  static std::shared_ptr<io::SafetensorsFile> file_;
};
std::shared_ptr<io::SafetensorsFile> RopeParity::file_;

TEST_F(RopeParity, ApplyRotaryEmbIsBitExact) {
  // Bound: 0. The kernel performs PyTorch's operations in its order and precision (f32
  // products, then the sum, rounded once to the output dtype).
  const Tensor x = get("apply.x");
  for (const char* m : {"interleaved", "half"}) {
    const std::string mode = std::string(m) == "half" ? "rotated_half" : "rotated_interleaved";
    const Tensor cos = get(str_cat("apply.", m, ".cos"));
    const Tensor sin = get(str_cat("apply.", m, ".sin"));
    for (DType dt : {DType::f32, DType::bf16}) {
      const std::string sfx = dt == DType::bf16 ? ".bf16" : "";
      const Tensor xi = x.to(dt);
      const Tensor bsnd = layer::rotary_position_embedding(xi, cos, sin, mode, "BSND");
      const Tensor bnsd =
          layer::rotary_position_embedding(xi.transpose(1, 2), cos, sin, mode, "BNSD");
      EXPECT_EQ(bsnd.dtype(), dt);
      expect_within(str_cat("apply ", m, " BSND ", dtype_name(dt)), bsnd,
                    get(str_cat("apply.", m, ".bsnd", sfx)), 0.0);
      expect_within(str_cat("apply ", m, " BNSD ", dtype_name(dt)), bnsd,
                    get(str_cat("apply.", m, ".bnsd", sfx)), 0.0);
    }
    // Our builder reproduces the float32 tables diffusers made for this case, to within the
    // ulp by which PyTorch's float32 cos/sin (SLEEF, 1 ulp) may differ from correct rounding.
    layer::Rope1dOptions o;
    o.repeat_interleave_real = std::string(m) == "interleaved";
    const auto t = layer::rope_1d(64, 12, o);
    expect_within(str_cat("rope_1d(64, 12) ", m, " cos"), t.cos, cos, 1.2e-7);
    expect_within(str_cat("rope_1d(64, 12) ", m, " sin"), t.sin, sin, 1.2e-7);
  }
}

TEST_F(RopeParity, OneDimensionalTables) {
  // Bounds: float64 path, one f32 ulp of a value in [-1, 1] (6e-8): PyTorch's double cos/sin
  // and ours may round to neighbouring floats. float32 path, the same ulp after identical f32
  // angle rounding, except where PyTorch's powf/reciprocal land an ulp away from the correctly
  // rounded value: the angle then moves by position * 2^-24 * frequency (<= 2.5e-4 at 4095).
  const Tensor pos = get("rope1d.pos");
  for (const char* dt : {"f32", "f64"})
    for (const char* m : {"interleaved", "half"}) {
      layer::Rope1dOptions o;
      o.repeat_interleave_real = std::string(m) == "interleaved";
      o.freqs_dtype = std::string(dt) == "f64" ? layer::FreqsDtype::f64 : layer::FreqsDtype::f32;
      const auto t = layer::rope_1d(64, pos, o);
      const double bound = o.freqs_dtype == layer::FreqsDtype::f64 ? 6e-8 : 2.5e-4;
      const std::string base = str_cat("rope1d.", dt, ".", m);
      expect_within(str_cat(base, ".cos"), t.cos, get(str_cat(base, ".cos")), bound);
      expect_within(str_cat(base, ".sin"), t.sin, get(str_cat(base, ".sin")), bound);
    }
  layer::Rope1dOptions o;
  o.linear_factor = 2.0;
  o.ntk_factor = 1.5;
  const auto t = layer::rope_1d(64, pos, o);
  expect_within("rope1d.ntk.cos", t.cos, get("rope1d.ntk.cos"), 2.5e-4);
  expect_within("rope1d.ntk.sin", t.sin, get("rope1d.ntk.sin"), 2.5e-4);
}

TEST_F(RopeParity, FluxPosEmbedAndApply) {
  // Tables: float64 angles, bound one f32 ulp (6e-8). Apply: bit-exact on the golden tables;
  // on ours, the table difference times |x| (6e-8 * 2 * |x| <= 1e-6).
  const int64_t axes[] = {16, 56, 56};
  const auto t = layer::flux_rope(get("flux.ids"), axes, 10000.0);
  expect_within("FluxPosEmbed cos", t.cos, get("flux.cos"), 6e-8);
  expect_within("FluxPosEmbed sin", t.sin, get("flux.sin"), 6e-8);
  layer::RopeCache cache;
  expect_within("RopeCache::flux cos", cache.flux(3, 3, 4, axes).cos, get("flux.cos"), 6e-8);
  const Tensor x = get("flux.x");
  const Tensor cos = get("flux.cos"), sin = get("flux.sin");
  expect_within("FLUX apply f32",
                layer::rotary_position_embedding(x, cos, sin, "rotated_interleaved"),
                get("flux.out"), 0.0);
  expect_within(
      "FLUX apply bf16",
      layer::rotary_position_embedding(x.to(DType::bf16), cos, sin, "rotated_interleaved"),
      get("flux.out.bf16"), 0.0);
  expect_within("FLUX apply f32, our tables",
                layer::rotary_position_embedding(x, t.cos, t.sin, "rotated_interleaved"),
                get("flux.out"), 1e-6);
}

TEST_F(RopeParity, WanRotaryPosEmbedAndApply) {
  // WanAttnProcessor applies rotary in real interleaved form (x1 * cos - x2 * sin,
  // x1 * sin + x2 * cos with f32 tables built in float64): the interleaved mode, bit-exact on
  // its tables; tables within one f32 ulp.
  const auto t = layer::rope_3d(2, 3, 4, 64);
  expect_within("WanRotaryPosEmbed cos", t.cos, get("wan.cos"), 6e-8);
  expect_within("WanRotaryPosEmbed sin", t.sin, get("wan.sin"), 6e-8);
  const Tensor x = get("wan.x");
  const Tensor cos = get("wan.cos"), sin = get("wan.sin");
  expect_within("Wan apply f32",
                layer::rotary_position_embedding(x, cos, sin, "rotated_interleaved"),
                get("wan.out"), 0.0);
  expect_within(
      "Wan apply bf16",
      layer::rotary_position_embedding(x.to(DType::bf16), cos, sin, "rotated_interleaved"),
      get("wan.out.bf16"), 0.0);
  // Wan's own table shape (1, S, 1, D) works as is.
  expect_within("Wan apply f32, (1, S, 1, D) tables",
                layer::rotary_position_embedding(x, cos.view({1, 24, 1, 64}),
                                                 sin.view({1, 24, 1, 64}), "rotated_interleaved"),
                get("wan.out"), 0.0);
  expect_within("Wan apply f32, our tables",
                layer::rotary_position_embedding(x, t.cos, t.sin, "rotated_interleaved"),
                get("wan.out"), 1e-6);
}

TEST_F(RopeParity, HunyuanVideoRotaryPosEmbed) {
  // float32 angles on small integer positions (< 8): within an f32 ulp or two.
  layer::Rope3dOptions o;
  o.theta = 256.0;
  o.axes_dim = {16, 56, 56};
  o.freqs_dtype = layer::FreqsDtype::f32;
  const auto t = layer::rope_3d(2, 3, 4, 128, o);
  expect_within("HunyuanVideoRotaryPosEmbed cos", t.cos, get("hunyuan.cos"), 1.2e-7);
  expect_within("HunyuanVideoRotaryPosEmbed sin", t.sin, get("hunyuan.sin"), 1.2e-7);
}

}  // namespace
}  // namespace mindiesd::test
