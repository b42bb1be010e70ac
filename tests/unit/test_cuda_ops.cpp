// The CUDA reduce / softmax / random / layout / interpolate kernels against the CPU kernels on
// identical inputs: Philox noise bit for bit (including the Box-Muller transcendental math),
// layout ops bit for bit, reductions, softmax and interpolation within the tolerance table.
// Shapes cover every launch path (a thread, a warp or a block per row; 32- and 64-bit index
// math is chosen by size and not forced here), strided / transposed / broadcast views, every
// dim, several dims at once, odd sizes and degenerate extents.
//
// Skips itself without a visible CUDA device (and compiles to nothing without MINDIESD_CUDA).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/tensor.h"
#include "tolerance.h"
#if defined(MINDIESD_CUDA)
#include "mindiesd/kernel/cuda/cuda_backend.h"
#endif

namespace mindiesd::test {
namespace {

#if defined(MINDIESD_CUDA)

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda::visible_device_count(&why) < 1 || find_backend(DeviceType::CUDA) == nullptr)
      GTEST_SKIP() << "no CUDA device: " << why;
  }
};

Device gpu() { return Device::cuda(0); }

// The raw bytes of a (CPU or CUDA) tensor, densely.
std::vector<uint8_t> bytes_of(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  std::vector<uint8_t> b(static_cast<size_t>(c.nbytes()));
  if (!b.empty()) std::memcpy(b.data(), c.data_ptr(), b.size());
  return b;
}

void expect_bit_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const std::vector<uint8_t> g = bytes_of(got), w = bytes_of(want);
  ASSERT_EQ(g.size(), w.size()) << what;
  const size_t es = static_cast<size_t>(dtype_bits(want.dtype()) / 8);
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); i += es) {
    if (std::memcmp(&g[i], &w[i], es) != 0) {
      if (first < 0) first = static_cast<int64_t>(i / es);
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " elements differ, first at " << first;
}

void expect_close(const Tensor& got, const Tensor& want, Tolerance tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<float> g = got.to(Device::cpu()).to_vector();
  const std::vector<float> w = want.to(Device::cpu()).to_vector();
  ASSERT_EQ(g.size(), w.size()) << what;
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < w.size(); ++i) {
    const bool ok = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i] ||
                    std::fabs(static_cast<double>(g[i]) - w[i]) <=
                        tol.atol + tol.rtol * std::fabs(static_cast<double>(w[i]));
    if (!ok) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << w.size() << " out of tolerance; first at "
                    << first << ": got " << (first >= 0 ? g[first] : 0.0f) << ", want "
                    << (first >= 0 ? w[first] : 0.0f);
}

// ---- random ---------------------------------------------------------------------------------

TEST_F(CudaOpsTest, RandomIsBitIdenticalToTheCpu) {
  const uint64_t offsets[] = {0, 1, 2, 3, 5, (uint64_t{1} << 40) + 3};
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    for (uint64_t off : offsets) {
      const std::string tag = std::string(dtype_name(t)) + " offset " + std::to_string(off);
      expect_bit_identical(ops::randn({1000003}, 1234567, off, t, gpu()),
                           ops::randn({1000003}, 1234567, off, t), "randn " + tag);
      expect_bit_identical(ops::rand({1000003}, 99, off, -2.0f, 3.0f, t, gpu()),
                           ops::rand({1000003}, 99, off, -2.0f, 3.0f, t), "rand " + tag);
    }
  }
  // A non-trivial mean / std (the CPU fuses a + b * z), tiny and odd shapes, a 64-bit seed.
  RandomParams p{RandomKind::normal, 0xfedcba9876543210ull, 7, 0.5f, 2.5f};
  for (const Shape& s : {Shape{1}, Shape{3}, Shape{5, 7}, Shape{2, 3, 333}}) {
    const Tensor want = Tensor::empty(s, DType::f32);
    const Tensor got = Tensor::empty(s, DType::f32, gpu());
    dispatch(OpId::random, {}, {&want, 1}, &p);
    dispatch(OpId::random, {}, {&got, 1}, &p);
    expect_bit_identical(got, want, "normal(0.5, 2.5) " + s.str());
  }
  // Global element indices that wrap around 2^64.
  RandomParams w{RandomKind::normal, 42, ~uint64_t{0} - 5, 0.0f, 1.0f};
  const Tensor want = Tensor::empty({23}, DType::f32);
  const Tensor got = Tensor::empty({23}, DType::f32, gpu());
  dispatch(OpId::random, {}, {&want, 1}, &w);
  dispatch(OpId::random, {}, {&got, 1}, &w);
  expect_bit_identical(got, want, "offset wrapping 2^64");
}

TEST_F(CudaOpsTest, RandomSplitsReproduceTheWhole) {
  const Tensor whole = ops::randn({4097}, 7, 0, DType::f32, gpu());
  const Tensor tail = ops::randn({1000}, 7, 3001, DType::f32, gpu());
  expect_bit_identical(tail, whole.slice(0, 3001, 4001).contiguous(), "tail");
}

// ---- reduce ---------------------------------------------------------------------------------

using View = Tensor (*)(const Tensor&);

struct ReduceShape {
  Shape shape;
  std::vector<int> dims;
  View view;
  const char* name;
};

Tensor identity(const Tensor& x) { return x; }
Tensor transposed(const Tensor& x) { return x.transpose(0, x.dim() - 1); }
Tensor sliced(const Tensor& x) { return x.slice(x.dim() - 1, 1, x.size(x.dim() - 1) - 1); }
Tensor broadcast_rows(const Tensor& x) {
  return x.slice(0, 0, 1).expand(x.shape());  // stride 0 over dim 0
}

TEST_F(CudaOpsTest, ReduceMatchesTheCpu) {
  const ReduceShape shapes[] = {
      {{7, 111}, {-1}, identity, "last (warp per row)"},
      {{5, 9, 13}, {0, 2}, identity, "outer and inner"},
      {{31, 64}, {}, sliced, "all, strided"},
      {{33, 17}, {1}, transposed, "transposed"},
      {{3, 1 << 16}, {}, identity, "all, long (block per row)"},
      {{3, 70000}, {1}, identity, "long rows"},
      {{600, 4096}, {0}, identity, "over dim 0 (thread per output)"},
      {{6, 5, 4, 3}, {1, 3}, transposed, "two middle dims of a transposed 4-d view"},
      {{64, 50}, {0}, broadcast_rows, "broadcast view"},
      {{7, 1}, {1}, identity, "length-1 rows"},
      {{1}, {0}, identity, "single element"},
  };
  const std::pair<ReduceKind, const char*> kinds[] = {{ReduceKind::sum, "sum"},
                                                      {ReduceKind::mean, "mean"},
                                                      {ReduceKind::max, "max"},
                                                      {ReduceKind::min, "min"},
                                                      {ReduceKind::var, "var"}};
  for (const ReduceShape& rs : shapes) {
    // Not f8: the front end keeps a float input's dtype for the result, and neither backend
    // reduces into f8.
    for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8,
                    DType::boolean}) {
      const Tensor base = ops::randn(rs.shape, 17).to(t == DType::u8 ? DType::f32 : t);
      const Tensor src = t == DType::u8 ? ops::affine(base, 20.0f, 100.0f).to(t) : base;
      const Tensor x = rs.view(src);
      const Tensor xg = rs.view(src.to(gpu()));
      for (auto [k, kname] : kinds) {
        for (int corr : {1, 0}) {
          if (k != ReduceKind::var && corr == 0) continue;
          const std::span<const int> dims(rs.dims);
          const Tensor want = ops::reduce(x, dims, k, true, corr);
          const Tensor got = ops::reduce(xg, dims, k, true, corr);
          const DType ot = want.dtype();
          expect_close(got, want, tolerance(ot, OpClass::reduction),
                       std::string(kname) + " corr " + std::to_string(corr) + " " + rs.name + " " +
                           dtype_name(t));
        }
      }
    }
  }
}

TEST_F(CudaOpsTest, VarIsAccurateForFarOffMeans) {
  const Tensor x = ops::affine(ops::randn({4, 5000}, 3), 0.01f, 1.0e4f);  // mean 1e4, std 0.01
  const Tensor want = ops::var(x, {1});
  const Tensor got = ops::var(x.to(gpu()), {1});
  expect_close(got, want, {1e-9, 1e-4}, "var of far-off mean");
}

TEST_F(CudaOpsTest, ReducePropagatesNanAndHandlesEmpty) {
  std::vector<float> v(100, 1.0f);
  v[37] = NAN;
  const Tensor x = Tensor::from_vector(v, {2, 50});
  for (ReduceKind k : {ReduceKind::max, ReduceKind::min, ReduceKind::sum}) {
    const int d[] = {1};
    expect_close(ops::reduce(x.to(gpu()), d, k), ops::reduce(x, d, k), {0, 0}, "nan");
  }
  const Tensor e = Tensor::empty({3, 0}, DType::f32);
  for (ReduceKind k : {ReduceKind::sum, ReduceKind::mean, ReduceKind::max, ReduceKind::var}) {
    const int d[] = {1};
    expect_close(ops::reduce(e.to(gpu()), d, k), ops::reduce(e, d, k), {0, 0}, "empty");
  }
}

// ---- softmax --------------------------------------------------------------------------------

TEST_F(CudaOpsTest, SoftmaxMatchesTheCpuAlongEveryDim) {
  struct S {
    Shape shape;
    View view;
  };
  const S cases[] = {{{5, 300, 7}, identity},   {{7, 300, 5}, transposed}, {{3, 37, 129}, sliced},
                     {{2, 10000}, identity},    {{4096, 33}, identity},    {{5, 1}, identity},
                     {{64, 40}, broadcast_rows}};
  for (const S& s : cases) {
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
      const Tensor src = ops::affine(ops::randn(s.shape, 5), 4.0f, 0.0f).to(t);
      const Tensor x = s.view(src), xg = s.view(src.to(gpu()));
      for (int d = 0; d < x.dim(); ++d) {
        // The CPU sums a row sequentially in f32, the GPU as a tree: rows of 10^4 terms
        // differ by more than one rounding, hence the reduction tolerance.
        expect_close(ops::softmax(xg, d), ops::softmax(x, d), tolerance(t, OpClass::reduction),
                     "softmax dim " + std::to_string(d) + " of " + x.str());
      }
    }
  }
  // A fully masked row gives NaN, a partly masked one zeros, as on the CPU.
  std::vector<float> v(12, -INFINITY);
  v[7] = 1.0f;
  v[9] = 2.0f;
  const Tensor m = Tensor::from_vector(v, {2, 6});
  expect_close(ops::softmax(m.to(gpu()), 1), ops::softmax(m, 1), {0, 1e-6}, "masked rows");
}

// ---- layout ---------------------------------------------------------------------------------

TEST_F(CudaOpsTest, LayoutOpsAreBitIdenticalToTheCpu) {
  for (DType t : {DType::f32, DType::bf16, DType::f8_e5m2, DType::i8, DType::i64,
                  DType::boolean}) {
    const Tensor a = ops::randn({3, 5, 7}, 1).to(t);
    const Tensor b = ops::randn({3, 1, 7}, 2).to(t);
    const Tensor c = ops::randn({7, 3, 2}, 3).to(t).permute({1, 2, 0});
    const std::string tag = dtype_name(t);
    {
      const Tensor cpu[] = {a, b, c};
      const Tensor dev[] = {a.to(gpu()), b.to(gpu()), c.to(gpu())};
      expect_bit_identical(ops::cat(dev, 1), ops::cat(cpu, 1), "cat dim 1 " + tag);
      const Tensor cpu0[] = {a, a.slice(0, 1, 2)};
      const Tensor dev0[] = {dev[0], dev[0].slice(0, 1, 2)};
      expect_bit_identical(ops::cat(dev0, 0), ops::cat(cpu0, 0), "cat dim 0 " + tag);
    }
    const Tensor x = ops::randn({2, 3, 6, 7}, 4).to(t).slice(3, 1, 6);
    const int64_t pads[] = {1, 2, 3, 0, 0, 1};
    for (PadMode m : {PadMode::constant, PadMode::reflect, PadMode::replicate}) {
      expect_bit_identical(ops::pad(x.to(gpu()), pads, m, 0.5f), ops::pad(x, pads, m, 0.5f),
                           "pad " + tag);
    }
    const int64_t pads1[] = {4, 4};
    expect_bit_identical(ops::pad(x.to(gpu()), pads1, PadMode::reflect),
                         ops::pad(x, pads1, PadMode::reflect), "reflect pad 4 " + tag);
    for (DType it : {DType::i32, DType::i64}) {
      const Tensor idx = ops::rand({77}, 9, 0, 0.0f, 50.0f).to(it);
      const Tensor emb = ops::randn({50, 16}, 5).to(t);
      expect_bit_identical(ops::index_select(emb.to(gpu()), 0, idx.to(gpu())),
                           ops::index_select(emb, 0, idx), "index_select dim 0 " + tag);
      const Tensor idx1 = ops::rand({9}, 10, 0, 0.0f, 16.0f).to(it);
      expect_bit_identical(ops::index_select(emb.to(gpu()).transpose(0, 1), 1, idx1.to(gpu())),
                           ops::index_select(emb.transpose(0, 1), 1, idx1),
                           "index_select dim 1 of a transposed view " + tag);
      const Tensor gx = ops::randn({4, 9, 6}, 6).to(t).transpose(0, 2);  // (6, 9, 4)
      const Tensor gi = ops::rand({5, 11, 3}, 7, 0, 0.0f, 9.0f).to(it);
      expect_bit_identical(ops::gather(gx.to(gpu()), 1, gi.to(gpu())), ops::gather(gx, 1, gi),
                           "gather dim 1 " + tag);
    }
  }
}

TEST_F(CudaOpsTest, OutOfRangeIndexIsAnError) {
  const Tensor x = ops::randn({5, 3}, 1, 0, DType::f32, gpu());
  const Tensor bad = Tensor::from_vector(std::vector<float>{0, 5, 1}, {3}, DType::i64).to(gpu());
  for (int op = 0; op < 2; ++op) {
    try {
      (void)(op == 0 ? ops::index_select(x, 0, bad)
                     : ops::gather(x, 0, bad.view({3, 1}).expand({3, 3})));
      ADD_FAILURE() << "an out-of-range index must throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument) << e.what();
    }
  }
}

// ---- interpolate ----------------------------------------------------------------------------

TEST_F(CudaOpsTest, InterpolateMatchesTheCpu) {
  struct I {
    InterpolateMode mode;
    bool align;
    int64_t oh, ow;
    double sf;
  };
  const I cases[] = {{InterpolateMode::nearest, false, 14, 18, 2.0},
                     {InterpolateMode::nearest, false, 11, 5, 0.0},
                     {InterpolateMode::nearest_exact, false, 11, 5, 0.0},
                     {InterpolateMode::nearest_exact, false, 3, 29, 0.0},
                     {InterpolateMode::bilinear, false, 13, 20, 0.0},
                     {InterpolateMode::bilinear, true, 13, 20, 0.0},
                     {InterpolateMode::bilinear, true, 1, 1, 0.0},
                     {InterpolateMode::bilinear, false, 3, 4, 0.0}};
  for (const I& c : cases) {
    for (DType t : {DType::f32, DType::bf16, DType::f16}) {
      const Tensor x = ops::randn({2, 3, 9, 7}, 8).to(t).transpose(2, 3);  // (2, 3, 7, 9) strided
      const Tensor want = ops::interpolate(x, c.oh, c.ow, c.mode, c.align, c.sf, c.sf);
      const Tensor got = ops::interpolate(x.to(gpu()), c.oh, c.ow, c.mode, c.align, c.sf, c.sf);
      const Tolerance tol = c.mode == InterpolateMode::bilinear
                                ? tolerance(t, OpClass::reduction)
                                : Tolerance{0.0, 0.0};  // nearest picks the very same pixels
      expect_close(got, want, tol, std::string("interpolate ") + dtype_name(t));
    }
  }
}

#endif  // MINDIESD_CUDA

}  // namespace
}  // namespace mindiesd::test
