#include "mindiesd/core/allocator.h"

#include <algorithm>
#include <cstdlib>

#include "mindiesd/core/error.h"

namespace mindiesd {

namespace {
constexpr size_t kSmallGranule = 512;
constexpr size_t kLargeGranule = size_t{2} << 20;
constexpr size_t kLargeThreshold = size_t{1} << 20;
}  // namespace

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t g = bytes < kLargeThreshold ? kSmallGranule : kLargeGranule;
  return (bytes + g - 1) / g * g;
}

CachingAllocator::CachingAllocator(std::string name, RawAlloc raw_alloc, RawFree raw_free)
    : name_(std::move(name)), raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
  // Live blocks at exit belong to tensors that outlive the allocator (static objects in
  // tests); leaking them is safer than freeing memory that is still referenced.
}

void* CachingAllocator::allocate(size_t bytes, uintptr_t stream) {
  MINDIESD_CHECK(bytes <= (size_t{1} << 47), OutOfMemory, name_, ": absurd allocation of ", bytes,
                 " bytes");
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (pool_open_) stream = pool_key_;
  ++stats_.num_allocs;
  // Reuse the smallest cached block on this stream that fits without wasting more than 1/8.
  auto it = cached_.lower_bound({stream, size});
  if (it != cached_.end() && it->first.first == stream && it->first.second <= size + size / 8) {
    void* p = it->second;
    const size_t got = it->first.second;
    cached_.erase(it);
    live_[p] = Block{got, stream};
    ++stats_.num_cache_hits;
    stats_.allocated_bytes += static_cast<int64_t>(got);
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    return p;
  }
  auto over_limit = [&] {
    return limit_ > 0 && stats_.reserved_bytes + static_cast<int64_t>(size) > limit_;
  };
  // Blocks cached for sizes a phase no longer asks for (a text encoder's, before denoising)
  // would otherwise stay reserved forever: when the cache outgrows the live set, give it back.
  const int64_t cached_bytes = stats_.reserved_bytes - stats_.allocated_bytes;
  if (over_limit() || cached_bytes > stats_.allocated_bytes + static_cast<int64_t>(size)) {
    release_cached_locked();
  }
  void* p = over_limit() ? nullptr : raw_alloc_(size);
  if (p == nullptr && !cached_.empty()) {
    release_cached_locked();
    p = over_limit() ? nullptr : raw_alloc_(size);
  }
  MINDIESD_CHECK(p != nullptr, OutOfMemory, name_, ": cannot allocate ", bytes, " bytes (",
                 stats_.allocated_bytes, " bytes in use, limit ",
                 limit_ > 0 ? std::to_string(limit_) : std::string("none"), ")");
  live_[p] = Block{size, stream};
  stats_.reserved_bytes += static_cast<int64_t>(size);
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
  stats_.allocated_bytes += static_cast<int64_t>(size);
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return p;
}

void CachingAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  MINDIESD_ASSERT(it != live_.end(), name_, ": freeing a pointer it did not allocate");
  const Block b = it->second;
  live_.erase(it);
  stats_.allocated_bytes -= static_cast<int64_t>(b.size);
  cached_.emplace(std::make_pair(b.stream, b.size), ptr);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

void CachingAllocator::set_limit(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  limit_ = bytes;
}

void CachingAllocator::begin_private_pool(uintptr_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  MINDIESD_CHECK(!pool_open_, InvalidArgument, name_, ": private pool ", key,
                 " opened while pool ", pool_key_, " is open");
  pool_open_ = true;
  pool_key_ = key;
  pool_keys_.insert(key);
}

void CachingAllocator::end_private_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  pool_open_ = false;
}

void CachingAllocator::release_private_pool(uintptr_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  MINDIESD_CHECK(!(pool_open_ && pool_key_ == key), InvalidArgument, name_, ": private pool ",
                 key, " released while open");
  pool_keys_.erase(key);
  for (auto it = cached_.lower_bound({key, 0}); it != cached_.end() && it->first.first == key;) {
    raw_free_(it->second);
    stats_.reserved_bytes -= static_cast<int64_t>(it->first.second);
    it = cached_.erase(it);
  }
}

void CachingAllocator::release_cached_locked() {
  if (pool_open_) return;  // a free can synchronise the device, which a capture forbids
  for (auto it = cached_.begin(); it != cached_.end();) {
    if (pool_keys_.count(it->first.first)) {  // a private pool's: a graph may replay into it
      ++it;
      continue;
    }
    raw_free_(it->second);
    stats_.reserved_bytes -= static_cast<int64_t>(it->first.second);
    it = cached_.erase(it);
  }
}

CachingAllocator& cpu_allocator() {
  static CachingAllocator alloc(
      "cpu", [](size_t n) { return std::aligned_alloc(64, n); }, [](void* p) { std::free(p); });
  return alloc;
}

}  // namespace mindiesd
