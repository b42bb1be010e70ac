// Checks the CUDA copy/fill/elementwise kernels on a machine WITHOUT a GPU.
//
// Built with MINDIESD_CUDA_EMULATE together with copy.cu and elementwise.cu (see
// launch.cuh): every grid then runs serially on the host over host memory, executing the
// same per-thread bodies, index math (32- and 64-bit), vector paths, tails, alignment
// fallbacks and dtype conversions that run on the device. Each case is compared with the CPU
// kernel on identical inputs: copies and fills bit for bit (NaN payloads aside), math within
// the tolerance table. What this cannot check is the device's own math library and
// conversion instructions; tests/unit/test_cuda_backend.cpp does that on a GPU.
//
// Not part of the library (kernel/cuda/*.cu is globbed; this subfolder is not).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cuda/copy.h"
#include "mindiesd/kernel/cuda/elementwise.h"
#include "mindiesd/kernel/cuda/launch.cuh"
#include "tests/tolerance.h"

#if !defined(MINDIESD_CUDA_EMULATE)
#error "build with -DMINDIESD_CUDA_EMULATE (and copy.cu, elementwise.cu compiled the same way)"
#endif

namespace mindiesd::cuda {
namespace {

int g_failures = 0;
int g_cases = 0;

constexpr DType kElementTypes[] = {DType::f32,     DType::f16,    DType::bf16, DType::f8_e4m3,
                                   DType::f8_e5m2, DType::i8,     DType::u8,   DType::i32,
                                   DType::i64,     DType::boolean};
constexpr DType kFloat3[] = {DType::f32, DType::f16, DType::bf16};

Tensor random_tensor(const Shape& shape, DType t, uint32_t seed, float lo, float hi, bool special) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (float& x : v) x = u(rng);
  if (special && v.size() >= 16) {
    const float sp[] = {0.0f,  -0.0f,  INFINITY, -INFINITY, NAN,    1e-40f, 70000.0f, 470.0f,
                        1e20f, -1e20f, 3e9f,     -129.0f,   255.5f, 0.5f,   -2.5f,    65519.0f};
    for (size_t i = 0; i < 16; ++i) v[(i * 7919) % v.size()] = sp[i];
  }
  return Tensor::from_vector(v, shape, t);
}

// Layouts of a logical (R, C) view, each steering the launchers to a different path.
enum class Layout { dense, transposed, strided, misaligned };
constexpr Layout kLayouts[] = {Layout::dense, Layout::transposed, Layout::strided,
                               Layout::misaligned};
const char* layout_name(Layout l) {
  switch (l) {
    case Layout::dense:
      return "dense";
    case Layout::transposed:
      return "transposed";
    case Layout::strided:
      return "strided";
    case Layout::misaligned:
      return "misaligned";
  }
  return "?";
}
Shape base_shape(Layout l, int64_t r, int64_t c) {
  switch (l) {
    case Layout::dense:
      return {r, c};
    case Layout::transposed:
      return {c, r};
    case Layout::strided:
      return {r, 2 * c};
    case Layout::misaligned:
      return {r * c + 1};
  }
  return {};
}
Tensor view_of(const Tensor& base, Layout l, int64_t r, int64_t c) {
  switch (l) {
    case Layout::dense:
      return base;
    case Layout::transposed:
      return base.transpose(0, 1);
    case Layout::strided:
      return base.slice(1, 0, 2 * c, 2);
    case Layout::misaligned:
      return base.slice(0, 1, r * c + 1).view({r, c});
  }
  return base;
}

// An output buffer twice over with identical bytes: the CPU kernel writes one view, the
// emulated CUDA kernel the other, then the whole buffers (gaps included) are compared.
struct Twin {
  Tensor cpu_base, emu_base, cpu, emu;
};
Twin make_twin(Layout l, int64_t r, int64_t c, DType t, uint32_t seed) {
  Twin w;
  w.cpu_base = random_tensor(base_shape(l, r, c), t, seed, -2.0f, 2.0f, false);
  w.emu_base = w.cpu_base.clone();
  w.cpu = view_of(w.cpu_base, l, r, c);
  w.emu = view_of(w.emu_base, l, r, c);
  return w;
}

StridedIn in_arg(const Tensor& t) { return {t.data_ptr(), t.dtype(), t.strides().data()}; }
StridedOut out_arg(const Tensor& t) { return {t.data_ptr(), t.dtype(), t.strides().data()}; }

void expect_same(const Tensor& cpu, const Tensor& emu, test::Tolerance tol,
                 const std::string& what) {
  ++g_cases;
  const std::vector<float> a = cpu.to_vector(), b = emu.to_vector();
  const bool exact_bytes = !is_floating(cpu.dtype());  // integers: compare the stored bits
  const int64_t es = dtype_bits(cpu.dtype()) / 8;
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    bool ok;
    if (exact_bytes) {
      ok = std::memcmp(static_cast<const char*>(cpu.data_ptr()) + i * es,
                       static_cast<const char*>(emu.data_ptr()) + i * es, es) == 0;
    } else if (std::isnan(a[i]) || std::isnan(b[i])) {
      ok = std::isnan(a[i]) && std::isnan(b[i]);
    } else if (std::isinf(a[i]) || std::isinf(b[i])) {
      ok = a[i] == b[i];
    } else {
      ok = std::fabs(a[i] - b[i]) <= tol.atol + tol.rtol * std::fabs(a[i]);
    }
    if (!ok && ++bad <= 3)
      std::printf("  %s: [%zu] cpu %.9g, cuda (emulated) %.9g\n", what.c_str(), i, a[i], b[i]);
  }
  if (bad) {
    ++g_failures;
    std::printf("FAIL %s: %d of %zu elements differ\n", what.c_str(), bad, a.size());
  }
}

void expect_ok(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) {
    ++g_failures;
    std::printf("FAIL %s: launcher returned %d\n", what.c_str(), static_cast<int>(err));
  }
}

// ---- index math -----------------------------------------------------------------------------

void check_divmod() {
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> any(0, 0x7fffffffu);
  int bad = 0;
  for (uint32_t d = 1; d < 4096; ++d) {
    const FastDivmod f(d);
    for (uint32_t n : {0u, 1u, d - 1, d, d + 1, 2 * d - 1, 0x7ffffffeu, 0x7fffffffu, any(rng)})
      bad += f.div(n) != n / d;
  }
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t d = i % 2 ? 1 + any(rng) % 0xffff : 1 + any(rng) % 0x7fffffffu;
    const uint32_t n = any(rng);
    bad += FastDivmod(d).div(n) != n / d;
  }
  ++g_cases;
  if (bad) {
    ++g_failures;
    std::printf("FAIL FastDivmod: %d wrong quotients\n", bad);
  }
}

void check_offsets() {
  // A layout whose reach needs 64 bits takes the int64 indexer; both must agree with the
  // plain definition.
  const int64_t sizes[3] = {3, 5, 7};
  const int64_t dense[3] = {35, 7, 1};
  const int64_t far[3] = {int64_t{1} << 33, 0, 1};
  const auto l64 = collapse<2>(3, sizes, {dense, far});
  const auto l32 = collapse<2>(3, sizes, {dense, dense});
  int bad = (l64.fits_int32() ? 1 : 0) + (l32.fits_int32() ? 0 : 1);
  const OffsetCalc<2, int64_t> c64(l64);
  const OffsetCalc<2, uint32_t> c32(l32);
  for (int64_t i = 0; i < 105; ++i) {
    int64_t o[2];
    c64.get(i, o);
    bad += o[0] != i || o[1] != (i / 35) * far[0] + i % 7;
    uint32_t p[2];
    c32.get(static_cast<uint32_t>(i), p);
    bad += p[0] != i || p[1] != i;
  }
  ++g_cases;
  if (bad) {
    ++g_failures;
    std::printf("FAIL OffsetCalc: %d wrong offsets\n", bad);
  }
}

// ---- copy and fill --------------------------------------------------------------------------

void check_copy() {
  const int64_t r = 5, c = 131;
  uint32_t seed = 1;
  for (DType st : kElementTypes) {
    for (DType dt : kElementTypes) {
      for (Layout sl : kLayouts) {
        for (Layout dl : {Layout::dense, Layout::strided, Layout::misaligned}) {
          const std::string what = std::string("copy ") + dtype_name(st) + " " + layout_name(sl) +
                                   " -> " + dtype_name(dt) + " " + layout_name(dl);
          const Tensor src = view_of(
              random_tensor(base_shape(sl, r, c), st, ++seed, -300.0f, 300.0f, true), sl, r, c);
          Twin out = make_twin(dl, r, c, dt, ++seed);
          dispatch(OpId::copy, {&src, 1}, {&out.cpu, 1}, nullptr);
          expect_ok(launch_copy(2, out.emu.shape().data(), out_arg(out.emu), in_arg(src), nullptr),
                    what);
          expect_same(out.cpu_base, out.emu_base, {0.0, 0.0}, what);
        }
      }
      // A broadcast row (stride 0), a single element, and a long dense run.
      const Tensor row = random_tensor({1, 131}, st, ++seed, -300.0f, 300.0f, true);
      const Tensor bsrc = row.expand({5, 131});
      Twin out = make_twin(Layout::dense, 5, 131, dt, ++seed);
      dispatch(OpId::copy, {&bsrc, 1}, {&out.cpu, 1}, nullptr);
      expect_ok(launch_copy(2, out.emu.shape().data(), out_arg(out.emu), in_arg(bsrc), nullptr),
                "broadcast copy");
      expect_same(out.cpu_base, out.emu_base, {0.0, 0.0},
                  std::string("broadcast copy ") + dtype_name(st) + " -> " + dtype_name(dt));
      for (int64_t n : {int64_t{1}, int64_t{3} * 2048 + 5}) {
        const Tensor s = random_tensor({1, n}, st, ++seed, -300.0f, 300.0f, true);
        Twin o = make_twin(Layout::dense, 1, n, dt, ++seed);
        dispatch(OpId::copy, {&s, 1}, {&o.cpu, 1}, nullptr);
        expect_ok(launch_copy(2, o.emu.shape().data(), out_arg(o.emu), in_arg(s), nullptr), "copy");
        expect_same(o.cpu_base, o.emu_base, {0.0, 0.0},
                    std::string("copy n=") + std::to_string(n) + " " + dtype_name(st) + " -> " +
                        dtype_name(dt));
      }
    }
  }
}

void check_fill() {
  for (DType t : kElementTypes) {
    // NaN into i64 is left out: the CPU fill casts the double directly, which is undefined
    // for NaN; the CUDA fill follows core's f32_to_int rule (NaN -> 0).
    for (double v : {0.0, 1.5, -3.0, 300.0, 1e10, -0.0, 1e-3}) {
      for (Layout l : {Layout::dense, Layout::strided, Layout::misaligned}) {
        const std::string what =
            std::string("fill ") + dtype_name(t) + " " + std::to_string(v) + " " + layout_name(l);
        const Tensor ref = Tensor::empty({5, 37}, t);
        const FillParams p{v};
        dispatch(OpId::fill, {}, {&ref, 1}, &p);  // the CPU fill needs a dense tensor
        Twin out = make_twin(l, 5, 37, t, 7);
        expect_ok(launch_fill(v, 2, out.emu.shape().data(), out_arg(out.emu), nullptr), what);
        out.cpu.copy_(ref);
        expect_same(out.cpu_base, out.emu_base, {0.0, 0.0}, what);
      }
    }
  }
}

// ---- elementwise ----------------------------------------------------------------------------

bool positive_domain(UnaryKind k) {
  return k == UnaryKind::log || k == UnaryKind::sqrt || k == UnaryKind::rsqrt ||
         k == UnaryKind::pow_scalar;
}

void check_unary() {
  const int64_t r = 7, c = 53;
  for (int k = 0; k <= static_cast<int>(UnaryKind::clamp); ++k) {
    const auto kind = static_cast<UnaryKind>(k);
    UnaryParams p{kind, 0.7f, 1.3f};
    if (kind == UnaryKind::clamp) p = {kind, -0.5f, 0.8f};
    const float lo = positive_domain(kind) ? 0.25f : -4.0f;
    for (DType it : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::f8_e4m3}) {
      for (DType ot : kFloat3) {
        for (Layout xl : kLayouts) {
          for (Layout yl : {Layout::dense, Layout::misaligned}) {
            const Tensor x = view_of(
                random_tensor(base_shape(xl, r, c), it, 31u * k + 1, lo, 4.0f, false), xl, r, c);
            Twin y = make_twin(yl, r, c, ot, 5);
            dispatch(OpId::unary, {&x, 1}, {&y.cpu, 1}, &p);
            const std::string what = "unary " + std::to_string(k) + " " + dtype_name(it) + " " +
                                     layout_name(xl) + " -> " + dtype_name(ot) + " " +
                                     layout_name(yl);
            expect_ok(launch_unary(p, 2, y.emu.shape().data(), out_arg(y.emu), in_arg(x), nullptr),
                      what);
            expect_same(y.cpu_base, y.emu_base, test::tolerance(ot, test::OpClass::transcendental),
                        what);
          }
        }
      }
    }
  }
}

void check_binary() {
  const Shape shape{4, 9, 67};
  const Shape b_shapes[] = {{4, 9, 67}, {67}, {4, 1, 1}, {1}};
  for (int k = 0; k <= static_cast<int>(BinaryKind::ge); ++k) {
    const auto kind = static_cast<BinaryKind>(k);
    const bool cmp = is_comparison(kind);
    const bool int_ok = kind != BinaryKind::div && kind != BinaryKind::pow;
    struct Types {
      DType a, b, out;
    };
    std::vector<Types> types;
    for (DType t : kFloat3) types.push_back({t, t, cmp ? DType::boolean : t});
    types.push_back({DType::f32, DType::bf16, cmp ? DType::boolean : DType::f16});
    if (int_ok) types.push_back({DType::i32, DType::i64, cmp ? DType::boolean : DType::i64});
    if (int_ok) types.push_back({DType::i32, DType::i32, cmp ? DType::boolean : DType::i8});
    for (const Types& ty : types) {
      const float lo = kind == BinaryKind::pow ? 0.25f : -3.0f;
      const Tensor a = random_tensor(shape, ty.a, 100u + k, lo, 3.0f, false);
      for (const Shape& bs : b_shapes) {
        for (int transposed = 0; transposed < 2; ++transposed) {
          const Tensor av = transposed ? a.transpose(0, 1).contiguous().transpose(0, 1) : a;
          const Tensor b = random_tensor(bs, ty.b, 200u + k, -3.0f, 3.0f, false).expand(shape);
          // The output: dense, or every other element of a wider buffer.
          for (int strided = 0; strided < 2; ++strided) {
            Twin y = make_twin(strided ? Layout::strided : Layout::dense, 36, 67, ty.out, 3);
            const Tensor yc = y.cpu.view({4, 9, 67}), ye = y.emu.view({4, 9, 67});
            const BinaryParams p{kind};
            const Tensor ins[2] = {av, b};
            dispatch(OpId::binary, ins, {&yc, 1}, &p);
            const std::string what = "binary " + std::to_string(k) + " " + dtype_name(ty.a) + "," +
                                     dtype_name(ty.b) + " -> " + dtype_name(ty.out) + " b" +
                                     bs.str() + (transposed ? " transposed" : "") +
                                     (strided ? " strided-out" : "");
            expect_ok(
                launch_binary(kind, 3, shape.data(), out_arg(ye), in_arg(av), in_arg(b), nullptr),
                what);
            const test::OpClass cls = cmp                       ? test::OpClass::exact
                                      : kind == BinaryKind::pow ? test::OpClass::transcendental
                                                                : test::OpClass::elementwise;
            expect_same(y.cpu_base, y.emu_base, test::tolerance(ty.out, cls), what);
          }
        }
      }
    }
  }
}

void check_ternary() {
  for (TernaryKind kind : {TernaryKind::where, TernaryKind::fma, TernaryKind::lerp}) {
    for (DType t : kFloat3) {
      for (Layout l : kLayouts) {
        const DType at = kind == TernaryKind::where ? DType::boolean : t;
        const Tensor a =
            view_of(random_tensor(base_shape(l, 6, 33), at, 7, -1.0f, 1.0f, false), l, 6, 33);
        const Tensor b = random_tensor({6, 33}, t, 8, -3.0f, 3.0f, false);
        const Tensor c = random_tensor({33}, t, 9, -3.0f, 3.0f, false).expand({6, 33});
        Twin y = make_twin(l, 6, 33, t, 10);
        const TernaryParams p{kind};
        const Tensor ins[3] = {a, b, c};
        dispatch(OpId::ternary, ins, {&y.cpu, 1}, &p);
        const std::string what = "ternary " + std::to_string(static_cast<int>(kind)) + " " +
                                 dtype_name(t) + " " + layout_name(l);
        expect_ok(launch_ternary(kind, 2, y.emu.shape().data(), out_arg(y.emu), in_arg(a),
                                 in_arg(b), in_arg(c), nullptr),
                  what);
        expect_same(y.cpu_base, y.emu_base, test::tolerance(t, test::OpClass::elementwise), what);
      }
    }
  }
}

}  // namespace
}  // namespace mindiesd::cuda

int main() {
  using namespace mindiesd::cuda;
  check_divmod();
  check_offsets();
  check_copy();
  check_fill();
  check_unary();
  check_binary();
  check_ternary();
  std::printf("%d cases, %d failed\n", g_cases, g_failures);
  return g_failures == 0 ? 0 : 1;
}
