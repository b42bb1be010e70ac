// Tensor views, the caching allocator, dispatch errors and the Philox generator.
#include <gtest/gtest.h>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/parallel.h"
#include "mindiesd/core/philox.h"
#include "mindiesd/core/tensor.h"
#include "test_util.h"

namespace mindiesd {
namespace {

Tensor iota(const Shape& s, DType t = DType::f32) {
  std::vector<float> v(s.numel());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(v, s, t);
}

TEST(Tensor, ViewsShareStorageAndNeverCopy) {
  const Tensor t = iota({2, 3, 4});
  const Tensor tr = t.transpose(0, 2);
  EXPECT_TRUE(tr.shares_storage(t));
  EXPECT_EQ(tr.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(tr.strides(), (Shape{1, 4, 12}));
  EXPECT_FALSE(tr.is_contiguous());
  const Tensor s = t.slice(2, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.to_vector()[0], 1.0f);
  EXPECT_EQ(s.to_vector()[1], 3.0f);
  const Tensor sel = t.select(1, -1);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_EQ(sel.to_vector()[0], 8.0f);
  const Tensor e = iota({3, 1}).expand({2, 3, 5});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(e.to_vector()[5], 1.0f);
  EXPECT_EQ(t.permute({1, 2, 0}).shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(t.unsqueeze(1).shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(t.unsqueeze(-1).squeeze(-1).shape(), t.shape());
}

TEST(Tensor, ViewWhenStridesAllowReshapeCopiesOtherwise) {
  const Tensor t = iota({2, 3, 4});
  EXPECT_TRUE(t.view({6, -1}).shares_storage(t));
  EXPECT_EQ(t.view({6, -1}).shape(), (Shape{6, 4}));
  const Tensor tr = t.transpose(1, 2);  // (2, 4, 3)
  EXPECT_TRUE(tr.can_view({2, 12}) == false);
  EXPECT_TRUE(tr.view({2, 1, 4, 3}).shares_storage(t));  // inserting unit dims is free
  const Tensor r = tr.reshape({2, 12});
  EXPECT_FALSE(r.shares_storage(t));
  EXPECT_EQ(r.to_vector()[1], 4.0f);  // row 0 of the transposed view: 0, 4, 8, 1, ...
  try {
    (void)tr.view({24});
    FAIL() << "view of a transposed tensor must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("(2, 4, 3)"), std::string::npos) << e.what();
  }
  // A slice along the outer dim stays viewable.
  EXPECT_TRUE(t.slice(0, 1, 2).view({12}).shares_storage(t));
}

TEST(Tensor, BadShapesAreClearErrors) {
  const Tensor t = iota({2, 3});
  EXPECT_THROW((void)t.view({5}), Error);
  EXPECT_THROW((void)t.view({-1, -1}), Error);
  EXPECT_THROW((void)t.expand({2, 4}), Error);
  EXPECT_THROW((void)t.select(0, 2), Error);
  EXPECT_THROW((void)t.transpose(0, 2), Error);
  EXPECT_THROW((void)Tensor::empty({1 << 30, 1 << 30, 1 << 30}, DType::f32), Error);
  EXPECT_THROW((void)Tensor::empty({-1}, DType::f32), Error);
  try {
    (void)ops::add(iota({2, 3}), iota({4}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("(2, 3) and (4,)"), std::string::npos) << e.what();
  }
}

TEST(Tensor, CopyConvertsAndBroadcasts) {
  const Tensor dst = Tensor::zeros({3, 4}, DType::bf16);
  dst.slice(1, 1, 3).copy_(iota({1, 2}));
  const std::vector<float> v = dst.to_vector();
  EXPECT_EQ(v, (std::vector<float>{0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0}));
}

TEST(Tensor, SplitAndChunkAreViews) {
  const Tensor t = iota({2, 7});
  const int64_t sizes[] = {3, 4};
  const std::vector<Tensor> parts = ops::split(t, sizes, 1);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_TRUE(parts[1].shares_storage(t));
  EXPECT_EQ(parts[1].shape(), (Shape{2, 4}));
  EXPECT_EQ(parts[1].to_vector()[0], 3.0f);
  const std::vector<Tensor> chunks = ops::chunk(t, 3, 1);  // 3 + 3 + 1, as torch.chunk
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[2].shape(), (Shape{2, 1}));
  EXPECT_EQ(chunks[2].to_vector(), (std::vector<float>{6, 13}));
  const int64_t bad[] = {3, 3};
  EXPECT_THROW((void)ops::split(t, bad, 1), Error);
}

TEST(Tensor, PackedInt4RoundTrips) {
  const std::vector<float> vals{-8, -3, 0, 7, 2.5f, -2.5f, 9, -9};
  const Tensor q = Tensor::from_vector(vals, {8}, DType::i4);
  EXPECT_EQ(q.nbytes(), 4);
  EXPECT_EQ(q.data<uint8_t>()[0], 0xd8);  // -8 low nibble, -3 high nibble
  EXPECT_EQ(q.to_vector(), (std::vector<float>{-8, -3, 0, 7, 2, -2, 7, -8}));
}

TEST(Ops, TypePromotion) {
  EXPECT_EQ(ops::promote_types(DType::bf16, DType::f32), DType::f32);
  EXPECT_EQ(ops::promote_types(DType::bf16, DType::f16), DType::f32);
  EXPECT_EQ(ops::promote_types(DType::i64, DType::bf16), DType::bf16);
  EXPECT_EQ(ops::promote_types(DType::i8, DType::u8), DType::i32);
  EXPECT_EQ(ops::promote_types(DType::u8, DType::i8), DType::i32);
  EXPECT_EQ(ops::promote_types(DType::i32, DType::i64), DType::i64);
  EXPECT_EQ(ops::promote_types(DType::boolean, DType::u8), DType::u8);
}

TEST(Allocator, CachesBlocksAndTracksPeak) {
  CachingAllocator alloc("test", [](size_t n) { return std::aligned_alloc(64, n); },
                         [](void* p) { std::free(p); });
  void* a = alloc.allocate(1000);
  void* b = alloc.allocate(5 << 20);
  EXPECT_EQ(alloc.stats().allocated_bytes, 1024 + (6 << 20));
  alloc.deallocate(a);
  void* c = alloc.allocate(900);  // same 1024-byte class: reused
  EXPECT_EQ(c, a);
  EXPECT_EQ(alloc.stats().num_cache_hits, 1);
  alloc.deallocate(b);
  alloc.deallocate(c);
  const AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.allocated_bytes, 0);
  EXPECT_EQ(s.peak_allocated_bytes, 1024 + (6 << 20));
  EXPECT_EQ(s.reserved_bytes, 1024 + (6 << 20));
  alloc.empty_cache();
  EXPECT_EQ(alloc.stats().reserved_bytes, 0);
}

TEST(Allocator, StaleCacheIsReleasedWhenItOutgrowsTheLiveSet) {
  // A phase with many blocks of one size (a text encoder) is followed by one with other sizes
  // (denoising): the cached blocks go back instead of staying reserved forever.
  CachingAllocator alloc("test", [](size_t n) { return std::aligned_alloc(64, n); },
                         [](void* p) { std::free(p); });
  std::vector<void*> phase1;
  for (int i = 0; i < 8; ++i) phase1.push_back(alloc.allocate(3 << 20));
  for (void* p : phase1) alloc.deallocate(p);
  EXPECT_EQ(alloc.stats().reserved_bytes, 8 * (4 << 20));  // cached (2 MiB granules)
  void* big = alloc.allocate(10 << 20);  // no cached block fits: the cache is released
  EXPECT_EQ(alloc.stats().reserved_bytes, 10 << 20);
  void* small = alloc.allocate(1 << 10);  // a small miss with a small cache keeps nothing new
  alloc.deallocate(small);
  void* again = alloc.allocate(1 << 10);  // and the cache still serves same-size reuse
  EXPECT_EQ(again, small);
  alloc.deallocate(again);
  alloc.deallocate(big);
}

TEST(Allocator, StreamsDoNotShareCachedBlocks) {
  CachingAllocator alloc("test", [](size_t n) { return std::aligned_alloc(64, n); },
                         [](void* p) { std::free(p); });
  void* a = alloc.allocate(4096, /*stream=*/1);
  alloc.deallocate(a);
  void* b = alloc.allocate(4096, /*stream=*/2);
  EXPECT_NE(a, b);
  alloc.deallocate(b);
}

TEST(Allocator, PrivatePoolKeepsItsBlocksFromEveryOtherKeyUntilReleased) {
  int64_t frees = 0;
  CachingAllocator alloc("test", [](size_t n) { return std::aligned_alloc(64, n); },
                         [&frees](void* p) {
                           ++frees;
                           std::free(p);
                         });
  constexpr uintptr_t kPool = uintptr_t{1} << 63;
  void* before = alloc.allocate(4096);  // an eager tensor freed during the capture
  alloc.begin_private_pool(kPool);
  void* t1 = alloc.allocate(4096, /*stream=*/0);  // a capture's intermediate, whatever stream
  alloc.deallocate(before);
  alloc.deallocate(t1);
  void* t2 = alloc.allocate(4096, 0);  // reused inside the capture: stream order holds
  EXPECT_EQ(t2, t1);
  void* out = alloc.allocate(1 << 20, 0);  // the graph's output, kept by the caller
  alloc.deallocate(t2);
  alloc.empty_cache();  // nothing is given back while the pool is open (a free may sync)
  EXPECT_EQ(frees, 0);
  alloc.end_private_pool();

  void* eager = alloc.allocate(4096, 0);  // eager work gets the block freed before, not t1
  EXPECT_EQ(eager, before);
  void* eager2 = alloc.allocate(4096, 0);
  EXPECT_NE(eager2, t1);
  alloc.deallocate(eager);
  alloc.deallocate(eager2);
  alloc.empty_cache();  // frees the eager blocks, keeps the pool's
  EXPECT_EQ(frees, 2);
  alloc.deallocate(out);
  EXPECT_EQ(alloc.stats().reserved_bytes, 4096 + (2 << 20));
  alloc.release_private_pool(kPool);
  EXPECT_EQ(frees, 4);
  EXPECT_EQ(alloc.stats().reserved_bytes, 0);

  alloc.begin_private_pool(kPool);
  test::expect_error([&] { alloc.begin_private_pool(kPool + 1); }, ErrorKind::InvalidArgument,
               {"opened while pool"});
  test::expect_error([&] { alloc.release_private_pool(kPool); }, ErrorKind::InvalidArgument,
               {"released while open"});
  alloc.end_private_pool();
}

TEST(Allocator, LimitGivesOutOfMemoryNamingTheRequest) {
  CachingAllocator alloc("capped", [](size_t n) { return std::aligned_alloc(64, n); },
                         [](void* p) { std::free(p); });
  alloc.set_limit(4 << 20);
  void* a = alloc.allocate(3 << 20);
  try {
    (void)alloc.allocate(3 << 20);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::OutOfMemory);
    EXPECT_NE(std::string(e.what()).find("3145728 bytes"), std::string::npos) << e.what();
  }
  alloc.deallocate(a);
}

TEST(Dispatch, UnsupportedDtypeNamesOpDeviceAndTypes) {
  const Tensor x = Tensor::zeros({2, 2, 3, 3}, DType::f8_e4m3);
  try {
    (void)ops::conv2d(x, x);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("conv has no cpu kernel for inputs (f8_e4m3, f8_e4m3)"),
              std::string::npos)
        << e.what();
  }
  const DType f8[] = {DType::f8_e4m3};
  EXPECT_FALSE(backend_for(Device::cpu()).supports(OpId::matmul, f8));
  const DType bf[] = {DType::bf16, DType::bf16};
  EXPECT_TRUE(backend_for(Device::cpu()).supports(OpId::matmul, bf));
}

TEST(Dispatch, MissingDeviceIsAClearError) {
#if !defined(MINDIESD_CUDA)
  EXPECT_THROW((void)Tensor::empty({2}, DType::f32, Device::cuda(0)), Error);
#endif
  EXPECT_THROW((void)Device::parse("tpu"), Error);
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
}

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of philox4x32-10 from the Random123 distribution (kat_vectors).
  const Philox4 z = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(z.v[0], 0x6627e8d5u);
  EXPECT_EQ(z.v[1], 0xe169c58du);
  EXPECT_EQ(z.v[2], 0xbc57ac4cu);
  EXPECT_EQ(z.v[3], 0x9b00dbd8u);
  const Philox4 f = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  EXPECT_EQ(f.v[0], 0x408f276du);
  EXPECT_EQ(f.v[1], 0x41c83b0eu);
  EXPECT_EQ(f.v[2], 0xa20bc7c6u);
  EXPECT_EQ(f.v[3], 0x6d5451fdu);
  const Philox4 p = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u,
                                  0x299f31d0u);
  EXPECT_EQ(p.v[0], 0xd16cfe09u);
  EXPECT_EQ(p.v[1], 0x94fdccebu);
  EXPECT_EQ(p.v[2], 0x5001e420u);
  EXPECT_EQ(p.v[3], 0x24126ea1u);
}

TEST(Philox, NoiseIsReproducibleAcrossSplitsAndThreads) {
  const std::vector<float> whole = ops::randn({1001}, 7).to_vector();
  const std::vector<float> tail = ops::randn({500}, 7, 501).to_vector();
  for (int i = 0; i < 500; ++i) ASSERT_EQ(whole[501 + i], tail[i]) << i;
  const int saved = num_threads();
  set_num_threads(1);
  const std::vector<float> serial = ops::randn({1001}, 7).to_vector();
  set_num_threads(saved);
  EXPECT_EQ(whole, serial);
  // Moments of 2^20 normal samples.
  const Tensor big = ops::randn({1 << 20}, 123);
  EXPECT_NEAR(ops::mean(big, {}).item(), 0.0, 5e-3);
  EXPECT_NEAR(ops::var(big, {}).item(), 1.0, 5e-3);
}

}  // namespace
}  // namespace mindiesd
