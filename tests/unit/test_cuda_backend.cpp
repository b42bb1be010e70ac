// The CUDA backend: registration without a GPU, the caching allocator on device memory,
// copies, streams and events, and the copy/fill/elementwise kernels against the CPU kernels.
//
// Compiled in every build. Without MINDIESD_CUDA only the "no backend" behaviour is checked;
// with it, everything that needs a device skips itself when none is visible, so the suite
// passes on the GPU-less build machines and runs in full through the same ctest on a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/tensor.h"
#include "tolerance.h"
#if defined(MINDIESD_CUDA)
#include "mindiesd/kernel/cuda/cuda_backend.h"
#include "mindiesd/kernel/cuda/cuda_graph.h"
#include "mindiesd/layer/linear.h"
#include "test_util.h"
#endif

namespace mindiesd::test {
namespace {

TEST(CudaBackend, MissingBackendIsAnErrorNotACrash) {
  if (find_backend(DeviceType::CUDA) != nullptr) GTEST_SKIP() << "a CUDA device is present";
  try {
    (void)Tensor::empty({4}, DType::f32, Device::cuda());
    FAIL() << "allocating on a missing CUDA backend must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported) << e.what();
  }
  EXPECT_FALSE(find_backend(DeviceType::CPU) == nullptr);
}

#if defined(MINDIESD_CUDA)

TEST(CudaBackend, RegistersExactlyWhenADeviceIsVisible) {
  std::string why;
  const int n = cuda::visible_device_count(&why);
  Backend* b = find_backend(DeviceType::CUDA);
  EXPECT_EQ(b != nullptr, n > 0) << why;
  if (b == nullptr) {
    EXPECT_FALSE(why.empty());
    return;
  }
  EXPECT_EQ(b->device_count(), n);
  const DType f32[] = {DType::f32};
  EXPECT_TRUE(b->supports(OpId::copy, f32));
  EXPECT_TRUE(b->supports(OpId::unary, f32));
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda::visible_device_count(&why) < 1 || find_backend(DeviceType::CUDA) == nullptr)
      GTEST_SKIP() << "no CUDA device: " << why;
    backend_ = find_backend(DeviceType::CUDA);
  }
  Backend& cuda() { return *backend_; }

  Backend* backend_ = nullptr;
};

constexpr DType kAllTypes[] = {DType::f32,     DType::f16,     DType::bf16, DType::f8_e4m3,
                               DType::f8_e5m2, DType::i8,      DType::u8,   DType::i32,
                               DType::i64,     DType::boolean, DType::i4};
constexpr DType kElementTypes[] = {DType::f32,     DType::f16,    DType::bf16, DType::f8_e4m3,
                                   DType::f8_e5m2, DType::i8,     DType::u8,   DType::i32,
                                   DType::i64,     DType::boolean};
constexpr DType kFloatTypes3[] = {DType::f32, DType::f16, DType::bf16};

// Random values in [lo, hi) converted to `t`, with a few awkward ones (signed zero, inf, NaN,
// values that overflow f16/fp8 or saturate integers) where `special` is set.
Tensor random_cpu(const Shape& shape, DType t, uint32_t seed, float lo = -3.0f, float hi = 3.0f,
                  bool special = false) {
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

// Element-wise comparison of two CPU tensors of the same shape and dtype: bit-exact for
// integer dtypes; for floats NaN matches NaN, inf matches inf, else the tolerance.
void expect_close(const Tensor& got, const Tensor& want, Tolerance tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const std::vector<float> g = got.to_vector(), w = want.to_vector();
  int bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok;
    if (std::isnan(w[i]) || std::isnan(g[i])) {
      ok = std::isnan(w[i]) && std::isnan(g[i]);
    } else if (std::isinf(w[i]) || std::isinf(g[i])) {
      ok = g[i] == w[i];
    } else {
      ok = std::fabs(g[i] - w[i]) <= tol.atol + tol.rtol * std::fabs(w[i]);
    }
    if (!ok && ++bad <= 5) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU gives " << w[i];
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  return std::vector<uint8_t>(p, p + c.nbytes());
}

// ---- allocator ------------------------------------------------------------------------------

TEST_F(CudaBackendTest, AllocatorStatsAndSameStreamReuse) {
  Allocator& a = cuda().allocator(0);
  a.empty_cache();
  a.reset_peak();
  const AllocatorStats s0 = a.stats();

  void* p = a.allocate(1000);
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.allocated_bytes, s0.allocated_bytes + 1024);  // rounded to a 512-byte granule
  EXPECT_GE(s.peak_allocated_bytes, s.allocated_bytes);
  EXPECT_EQ(s.reserved_bytes, s0.reserved_bytes + 1024);
  a.deallocate(p);
  EXPECT_EQ(a.stats().allocated_bytes, s0.allocated_bytes);
  EXPECT_EQ(a.stats().peak_allocated_bytes, s0.allocated_bytes + 1024);

  // Same stream: the cached block comes back without a cudaMalloc.
  void* q = a.allocate(900);
  EXPECT_EQ(q, p);
  EXPECT_EQ(a.stats().num_cache_hits, s0.num_cache_hits + 1);
  EXPECT_EQ(a.stats().reserved_bytes, s0.reserved_bytes + 1024);
  a.deallocate(q);

  // Another stream must not be handed a block freed on the default stream.
  auto side = cuda().new_stream(0);
  const uintptr_t key = cuda::stream_key(*side);
  EXPECT_NE(key, 0u);
  EXPECT_EQ(cuda::stream_key(cuda().default_stream(0)), 0u);
  void* r = a.allocate(1000, key);
  EXPECT_NE(r, p);
  a.deallocate(r);

  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes, s0.reserved_bytes);
}

TEST_F(CudaBackendTest, OutOfMemoryIsARecoverableError) {
  Allocator& a = cuda().allocator(0);
  try {
    (void)a.allocate(size_t{1} << 46);  // 64 TiB
    FAIL() << "a 64 TiB allocation must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::OutOfMemory) << e.what();
  }
  // The failure must not poison the runtime: allocation and kernels still work.
  const Tensor t = ops::full({1000}, 2.5, DType::f32, Device::cuda());
  EXPECT_FLOAT_EQ(t.to(Device::cpu()).to_vector()[999], 2.5f);
}

TEST_F(CudaBackendTest, PinnedHostAllocator) {
  CachingAllocator& pinned = cuda::pinned_host_allocator();
  void* p = pinned.allocate(4096);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5a, 4096);  // host-accessible
  EXPECT_GE(pinned.stats().allocated_bytes, 4096);
  pinned.deallocate(p);
}

// ---- copies, streams, events ----------------------------------------------------------------

TEST_F(CudaBackendTest, HostDeviceRoundTripOfEveryDType) {
  for (DType t : kAllTypes) {
    const Shape shape{3, 258};  // even count: i4 packs two per byte
    Tensor h = Tensor::empty(shape, t);
    auto* p = static_cast<uint8_t*>(h.data_ptr());
    for (int64_t i = 0; i < h.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 131 + 7);
    if (t == DType::boolean)
      for (int64_t i = 0; i < h.nbytes(); ++i) p[i] &= 1;
    const Tensor d = h.to(Device::cuda());
    EXPECT_EQ(d.device(), Device::cuda());
    const Tensor back = d.to(Device::cpu());
    ASSERT_EQ(back.nbytes(), h.nbytes());
    EXPECT_EQ(std::memcmp(back.data_ptr(), h.data_ptr(), static_cast<size_t>(h.nbytes())), 0)
        << dtype_name(t);
    // Device-side clone (the copy kernel, or a memcpy for i4) keeps the bytes too.
    EXPECT_EQ(bytes_of(d.clone()), bytes_of(h)) << dtype_name(t);
  }
}

TEST_F(CudaBackendTest, AsyncCopiesAreOrderedByEvents) {
  const size_t n = size_t{4} << 20;  // 16 MiB of floats: long enough to still be in flight
  const size_t bytes = n * sizeof(float);
  CachingAllocator& pinned = cuda::pinned_host_allocator();
  auto* src = static_cast<float*>(pinned.allocate(bytes));
  auto* dst = static_cast<float*>(pinned.allocate(bytes));
  for (size_t i = 0; i < n; ++i) src[i] = static_cast<float>(i % 9973) * 0.5f;
  std::memset(dst, 0, bytes);

  auto a = cuda().new_stream(0);
  auto b = cuda().new_stream(0);
  Allocator& alloc = cuda().allocator(0);
  void* d1 = alloc.allocate(bytes, cuda::stream_key(*a));
  void* d2 = alloc.allocate(bytes, cuda::stream_key(*b));
  auto done_a = cuda().new_event(0);

  cuda().copy(d1, src, bytes, CopyKind::HostToDevice, *a);
  done_a->record(*a);
  done_a->wait(*b);  // b's copies start only after a's upload
  cuda().copy(d2, d1, bytes, CopyKind::DeviceToDevice, *b);
  cuda().copy(dst, d2, bytes, CopyKind::DeviceToHost, *b);
  auto done_b = cuda().new_event(0);
  done_b->record(*b);
  done_b->synchronize();
  EXPECT_TRUE(done_b->query());
  EXPECT_TRUE(done_a->query());  // b waited for it
  EXPECT_EQ(std::memcmp(src, dst, bytes), 0);

  // An event cannot be recorded on another backend's stream.
  Backend* cpu = find_backend(DeviceType::CPU);
  EXPECT_THROW(done_a->record(cpu->default_stream(0)), Error);

  cuda().synchronize(0);
  alloc.deallocate(d1);
  alloc.deallocate(d2);
  pinned.deallocate(src);
  pinned.deallocate(dst);
}

TEST_F(CudaBackendTest, UploadsDoNotWaitAndKeepTheBytesOfTheirCall) {
  // Backend::upload stages the bytes: the source may change right after the call, and each
  // upload lands what the source held at its call, in stream order, however many are in flight
  // (their pinned buffers are recycled as their copies finish).
  const int64_t n = 1 << 16;
  std::vector<float> host(static_cast<size_t>(n));
  std::vector<Tensor> got;
  for (int r = 0; r < 40; ++r) {
    for (int64_t i = 0; i < n; ++i) host[static_cast<size_t>(i)] = static_cast<float>(r * n + i);
    const Tensor src = Tensor::from_blob(host.data(), {n}, DType::f32, Device::cpu(), nullptr);
    got.push_back(src.to(Device::cuda()));  // host is overwritten by the next round at once
  }
  for (int r = 0; r < 40; ++r) {
    const std::vector<float> v = got[static_cast<size_t>(r)].to_vector();
    ASSERT_EQ(v.front(), static_cast<float>(r * n)) << "upload " << r;
    ASSERT_EQ(v.back(), static_cast<float>(r * n + n - 1)) << "upload " << r;
  }
  // Past the staging limit an upload is a plain synchronous copy, with the same result.
  const int64_t big = int64_t{80} << 18;  // 80 MiB of floats
  const Tensor large = ops::full({big}, 3.5, DType::f32).to(Device::cuda());
  EXPECT_EQ(large.narrow(0, 0, 1).to_vector()[0], 3.5f);
  EXPECT_EQ(large.narrow(0, big - 1, 1).to_vector()[0], 3.5f);
}

// ---- CUDA graphs -----------------------------------------------------------------------------

TEST_F(CudaBackendTest, GraphReplaysCapturedOpsOnNewInputValues) {
  // A linear layer with a fused epilogue, a norm-like reduction and elementwise ops, captured
  // once; each replay after new values were copied into the static input gives what eager
  // execution gives on those values, bit for bit (same kernels, same order).
  const Device gpu = Device::cuda();
  Tensor x = ops::randn({64, 96}, 1, 0, DType::bf16, gpu);  // the static input
  const Tensor w = ops::randn({80, 96}, 2, 0, DType::bf16, gpu);
  const Tensor b = ops::randn({80}, 3, 0, DType::bf16, gpu);
  layer::LinearEpilogue gelu;
  gelu.activation = UnaryKind::gelu_tanh;
  auto step = [&] {
    const Tensor h = layer::linear(x, w, b, gelu);
    return ops::add(h, ops::mean(h, {1}, true));
  };
  (void)step();  // warm-up outside the capture: cuBLASLt plans, workspace
  Tensor y;
  const std::unique_ptr<cuda::CudaGraph> graph = cuda::CudaGraph::capture(gpu, [&] { y = step(); });
  for (uint64_t seed : {4, 5, 6}) {
    x.copy_(ops::randn({64, 96}, seed, 0, DType::bf16, gpu));
    graph->replay();
    EXPECT_EQ(bytes_of(y), bytes_of(step())) << "seed " << seed;
  }
  // Eager work after the capture never gets the graph's memory.
  const Tensor other = ops::full({64, 80}, 7.0, DType::bf16, gpu);
  graph->replay();
  EXPECT_EQ(other.to_vector()[0], 7.0f);
}

TEST_F(CudaBackendTest, GraphCaptureRefusesHostCopiesAndLeavesTheDeviceUsable) {
  const Device gpu = Device::cuda();
  const Tensor host = ops::randn({16}, 1);
  expect_error([&] { (void)cuda::CudaGraph::capture(gpu, [&] { (void)host.to(gpu); }); },
               ErrorKind::Unsupported, {"CUDA graph capture"});
  const Tensor dev = ops::randn({16}, 2, 0, DType::f32, gpu);
  expect_error(
      [&] { (void)cuda::CudaGraph::capture(gpu, [&] { (void)ops::mul(dev, dev).to_vector(); }); },
      ErrorKind::Unsupported, {"CUDA graph capture"});
  // The stream is out of capture again: eager ops run.
  const std::vector<float> v = ops::add(dev, dev).to_vector();
  EXPECT_EQ(v[3], 2 * dev.to_vector()[3]);
}

// ---- copy / fill kernels --------------------------------------------------------------------

TEST_F(CudaBackendTest, CopyConvertsEveryDTypePairLikeTheCpu) {
  const Shape shape{5, 131};
  for (DType st : kElementTypes) {
    const Tensor src = random_cpu(shape, st, 11, -300.0f, 300.0f, /*special=*/true);
    const Tensor src_dev = src.to(Device::cuda());
    for (DType dt : kElementTypes) {
      const Tensor want = src.to(dt);                       // CPU copy kernel
      const Tensor got = src_dev.to(dt).to(Device::cpu());  // CUDA copy kernel
      expect_close(got, want, {0.0, 0.0},
                   std::string("copy ") + dtype_name(st) + " -> " + dtype_name(dt));
    }
  }
}

TEST_F(CudaBackendTest, CopyStridedAndBroadcastViews) {
  for (DType st : kFloatTypes3) {
    for (DType dt : kFloatTypes3) {
      const std::string what = std::string(dtype_name(st)) + " -> " + dtype_name(dt);
      const Tensor x = random_cpu({7, 33, 12}, st, 5);
      const Tensor xd = x.to(Device::cuda());

      // A permuted source into a dense destination (what contiguous() does).
      const Tensor perm_want = x.permute({2, 0, 1}).to(dt).contiguous();
      const Tensor perm_got = xd.permute({2, 0, 1}).to(dt).contiguous().to(Device::cpu());
      expect_close(perm_got, perm_want, {0.0, 0.0}, "permute " + what);

      // A broadcast row (stride 0) into a strided slice of a larger destination.
      const Tensor row = random_cpu({1, 12}, st, 6);
      Tensor big_cpu = Tensor::zeros({7, 24}, dt);
      Tensor big_dev = Tensor::zeros({7, 24}, dt, Device::cuda());
      big_cpu.slice(1, 0, 24, 2).copy_(row.expand({7, 12}));
      big_dev.slice(1, 0, 24, 2).copy_(row.to(Device::cuda()).expand({7, 12}));
      expect_close(big_dev.to(Device::cpu()), big_cpu, {0.0, 0.0}, "broadcast " + what);

      // A source offset by one element (no 16-byte alignment: the scalar fallback).
      const Tensor off_want = x.flatten().slice(0, 1, 1000).to(dt);
      const Tensor off_got = xd.flatten().slice(0, 1, 1000).to(dt).to(Device::cpu());
      expect_close(off_got, off_want, {0.0, 0.0}, "misaligned " + what);
    }
  }
}

TEST_F(CudaBackendTest, FillEveryDType) {
  for (DType t : kAllTypes) {
    for (double v : {0.0, 1.5, -3.0, 300.0, 1e10, -0.0}) {
      const std::string what = std::string("fill ") + dtype_name(t) + " " + std::to_string(v);
      const Tensor want = ops::full({3, 130}, v, t);
      const Tensor got = ops::full({3, 130}, v, t, Device::cuda());
      EXPECT_EQ(bytes_of(got), bytes_of(want)) << what;
    }
  }
  // A strided view is filled in place, its gaps untouched.
  Tensor d = Tensor::zeros({4, 10}, DType::bf16, Device::cuda());
  const FillParams fp{2.0};
  const Tensor view = d.slice(1, 1, 10, 3);
  dispatch(OpId::fill, {}, {&view, 1}, &fp);
  const std::vector<float> v = d.to_vector();
  for (int i = 0; i < 40; ++i) EXPECT_EQ(v[i], (i % 10) % 3 == 1 ? 2.0f : 0.0f) << i;
}

TEST_F(CudaBackendTest, PackedInt4NeedsDenseTensors) {
  const Tensor q = Tensor::zeros({4, 8}, DType::i4, Device::cuda());
  EXPECT_EQ(bytes_of(q.clone()), bytes_of(q));
  try {
    (void)q.to(DType::f32);
    FAIL() << "i4 conversion on CUDA is unsupported for now";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported) << e.what();
  }
}

// ---- elementwise kernels --------------------------------------------------------------------

bool needs_positive(UnaryKind k) {
  return k == UnaryKind::log || k == UnaryKind::sqrt || k == UnaryKind::rsqrt ||
         k == UnaryKind::pow_scalar;
}

// Views of a 2-D input, each taking a different kernel path: dense (vectorised), transposed
// (strided), offset by one element (dense but misaligned: the scalar fallback). Views are
// taken on each device separately: moving a view to another device makes it dense.
const char* const kViewNames[] = {"dense", "transposed", "misaligned"};
Tensor view_of(const Tensor& x, int which) {
  if (which == 1) return x.transpose(0, 1);
  if (which == 2) return x.flatten().slice(0, 1, x.numel());
  return x;
}

TEST_F(CudaBackendTest, UnaryMatchesCpu) {
  for (int k = 0; k <= static_cast<int>(UnaryKind::clamp); ++k) {
    const auto kind = static_cast<UnaryKind>(k);
    const float alpha = kind == UnaryKind::clamp ? -0.5f : 0.7f;
    const float beta = kind == UnaryKind::clamp ? 0.8f : 1.3f;
    const float lo = needs_positive(kind) ? 0.25f : -4.0f;
    for (DType t : kFloatTypes3) {
      for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{111}, int64_t{4099}}) {
        const Tensor x = random_cpu({n, 3}, t, static_cast<uint32_t>(k * 31 + n), lo, 4.0f);
        const Tensor xd = x.to(Device::cuda());
        for (int v = 0; v < 3; ++v) {
          const Tensor want = ops::unary(view_of(x, v), kind, alpha, beta);
          const Tensor got = ops::unary(view_of(xd, v), kind, alpha, beta);
          expect_close(got.to(Device::cpu()), want, tolerance(t, OpClass::transcendental),
                       "unary " + std::to_string(k) + " " + dtype_name(t) + " " + kViewNames[v] +
                           " n=" + std::to_string(n));
        }
      }
    }
  }
}

TEST_F(CudaBackendTest, BinaryMatchesCpuWithBroadcasting) {
  const Shape shape{4, 9, 67};
  const Shape b_shapes[] = {{4, 9, 67}, {67}, {4, 1, 1}, {1}};
  for (int k = 0; k <= static_cast<int>(BinaryKind::ge); ++k) {
    const auto kind = static_cast<BinaryKind>(k);
    const bool positive = kind == BinaryKind::pow;
    for (DType t : kFloatTypes3) {
      const Tensor a = random_cpu(shape, t, 100 + k, positive ? 0.25f : -3.0f, 3.0f);
      for (const Shape& bs : b_shapes) {
        const Tensor b = random_cpu(bs, t, 200 + k, -3.0f, 3.0f);
        const Tensor want = ops::binary(a, b, kind);
        const Tensor got = ops::binary(a.to(Device::cuda()), b.to(Device::cuda()), kind);
        const OpClass cls = is_comparison(kind)       ? OpClass::exact
                            : kind == BinaryKind::pow ? OpClass::transcendental
                                                      : OpClass::elementwise;
        expect_close(got.to(Device::cpu()), want, tolerance(want.dtype(), cls),
                     "binary " + std::to_string(k) + " " + dtype_name(t) + " b" + bs.str());
      }
      // A transposed (strided) left operand against a broadcast row.
      const Tensor row = random_cpu({67}, t, 300 + k, 0.5f, 2.0f);
      const Tensor t_want = ops::binary(a.transpose(0, 1), row, kind);
      const Tensor t_got =
          ops::binary(a.to(Device::cuda()).transpose(0, 1), row.to(Device::cuda()), kind);
      expect_close(t_got.to(Device::cpu()), t_want,
                   tolerance(t_want.dtype(), OpClass::transcendental),
                   "binary transposed " + std::to_string(k) + " " + dtype_name(t));
      // Equal operands: comparisons must be exact, including eq/le/ge on identical values.
      const Tensor self_want = ops::binary(a, a, kind);
      const Tensor ad = a.to(Device::cuda());
      const Tensor self_got = ops::binary(ad, ad, kind);
      expect_close(self_got.to(Device::cpu()), self_want,
                   tolerance(self_want.dtype(), OpClass::transcendental),
                   "binary self " + std::to_string(k) + " " + dtype_name(t));
    }
  }
  // Mixed float widths and integer math.
  const Tensor x = random_cpu({5, 33}, DType::bf16, 1), y = random_cpu({33}, DType::f32, 2);
  expect_close(ops::add(x.to(Device::cuda()), y.to(Device::cuda())).to(Device::cpu()),
               ops::add(x, y), tolerance(DType::f32, OpClass::elementwise), "bf16 + f32");
  const Tensor i = random_cpu({5, 33}, DType::i32, 3, -1000.0f, 1000.0f);
  const Tensor j = random_cpu({33}, DType::i64, 4, -1000.0f, 1000.0f);
  for (BinaryKind kind : {BinaryKind::add, BinaryKind::mul, BinaryKind::maximum, BinaryKind::lt}) {
    const Tensor want = ops::binary(i, j, kind);
    const Tensor got = ops::binary(i.to(Device::cuda()), j.to(Device::cuda()), kind);
    expect_close(got.to(Device::cpu()), want, {0.0, 0.0},
                 "integer binary " + std::to_string(static_cast<int>(kind)));
  }
}

TEST_F(CudaBackendTest, TernaryMatchesCpu) {
  for (TernaryKind kind : {TernaryKind::where, TernaryKind::fma, TernaryKind::lerp}) {
    for (DType t : kFloatTypes3) {
      Tensor a = random_cpu({6, 35}, t, 7);
      if (kind == TernaryKind::where) a = ops::binary(a, ops::full({1}, 0.0), BinaryKind::gt);
      const Tensor b = random_cpu({6, 35}, t, 8), c = random_cpu({35}, t, 9);
      const Tensor want = ops::ternary(a, b, c, kind);
      const Tensor got =
          ops::ternary(a.to(Device::cuda()), b.to(Device::cuda()), c.to(Device::cuda()), kind);
      expect_close(got.to(Device::cpu()), want, tolerance(t, OpClass::elementwise),
                   "ternary " + std::to_string(static_cast<int>(kind)) + " " + dtype_name(t));
    }
  }
}

TEST_F(CudaBackendTest, StridedOutputAndInPlace) {
  // A strided output view (every other column) and an in-place op.
  const Tensor x = random_cpu({8, 40}, DType::f16, 21);
  Tensor y_cpu = Tensor::zeros({8, 80}, DType::f16);
  Tensor y_dev = Tensor::zeros({8, 80}, DType::f16, Device::cuda());
  const UnaryParams p{UnaryKind::silu};
  const Tensor xd = x.to(Device::cuda());
  const Tensor yc = y_cpu.slice(1, 0, 80, 2), yd = y_dev.slice(1, 0, 80, 2);
  dispatch(OpId::unary, {&x, 1}, {&yc, 1}, &p);
  dispatch(OpId::unary, {&xd, 1}, {&yd, 1}, &p);
  expect_close(y_dev.to(Device::cpu()), y_cpu, tolerance(DType::f16, OpClass::transcendental),
               "strided output");

  const Tensor z_cpu = x.clone(), z_dev = xd.clone();
  const UnaryParams g{UnaryKind::gelu_tanh};
  dispatch(OpId::unary, {&z_cpu, 1}, {&z_cpu, 1}, &g);
  dispatch(OpId::unary, {&z_dev, 1}, {&z_dev, 1}, &g);
  expect_close(z_dev.to(Device::cpu()), z_cpu, tolerance(DType::f16, OpClass::transcendental),
               "in place");
}

TEST_F(CudaBackendTest, UnsupportedCombinationsAreClearErrors) {
  const Tensor i = ops::full({4}, 3.0, DType::i32, Device::cuda());
  Tensor out = Tensor::empty({4}, DType::i32, Device::cuda());
  const BinaryParams p{BinaryKind::div};
  const Tensor ins[] = {i, i};
  try {
    dispatch(OpId::binary, ins, {&out, 1}, &p);
    FAIL() << "integer div has no integer kernel";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported) << e.what();
  }
}

#endif  // MINDIESD_CUDA

}  // namespace
}  // namespace mindiesd::test
