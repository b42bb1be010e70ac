// Device memory allocators with statistics.
//
// Every tensor buffer comes from an Allocator. The CachingAllocator keeps freed blocks in
// size classes for reuse (allocation in a denoising loop is then a map lookup, not a syscall
// or a cudaMalloc), is stream-aware (a block is reused only on the stream that freed it, so
// a CUDA kernel still reading it cannot be overtaken), can be capped with a byte limit, and
// reports current and peak bytes in use and reserved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

namespace mindiesd {

struct AllocatorStats {
  int64_t allocated_bytes = 0;       // handed out and not yet freed
  int64_t peak_allocated_bytes = 0;
  int64_t reserved_bytes = 0;        // obtained from the device (in use + cached)
  int64_t peak_reserved_bytes = 0;
  int64_t num_allocs = 0;
  int64_t num_cache_hits = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // `stream` is an opaque stream key (0 = the default stream / host).
  virtual void* allocate(size_t bytes, uintptr_t stream = 0) = 0;
  virtual void deallocate(void* ptr) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  // Returns cached, unused blocks to the device.
  virtual void empty_cache() = 0;
};

class CachingAllocator final : public Allocator {
 public:
  using RawAlloc = std::function<void*(size_t)>;  // returns nullptr when out of memory
  using RawFree = std::function<void(void*)>;

  CachingAllocator(std::string name, RawAlloc raw_alloc, RawFree raw_free);
  ~CachingAllocator() override;

  void* allocate(size_t bytes, uintptr_t stream = 0) override;
  void deallocate(void* ptr) override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  void empty_cache() override;
  // Caps reserved bytes; 0 = no limit. Allocation past the cap fails with OutOfMemory.
  void set_limit(int64_t bytes);

  // Private pools, for CUDA graphs (as PyTorch's graph memory pools). Between
  // begin_private_pool(key) and end_private_pool(), every allocation is made under `key`
  // whatever stream asks for it, and no cached block is given back to the device (a free can
  // synchronise, which a stream capture forbids). The blocks cached under `key` then stay
  // reserved, out of reach of every other key, until release_private_pool(key) gives them
  // back: a captured graph replays into them for as long as it exists. InvalidArgument when a
  // pool is already open.
  void begin_private_pool(uintptr_t key);
  void end_private_pool();
  void release_private_pool(uintptr_t key);

  // The size class a request is rounded to (512 B granules below 1 MiB, 2 MiB above).
  static size_t round_size(size_t bytes);

 private:
  struct Block {
    size_t size;
    uintptr_t stream;
  };
  void release_cached_locked();

  std::string name_;
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mu_;
  std::unordered_map<void*, Block> live_;
  std::multimap<std::pair<uintptr_t, size_t>, void*> cached_;  // (stream, size) -> block
  AllocatorStats stats_;
  int64_t limit_ = 0;
  bool pool_open_ = false;
  uintptr_t pool_key_ = 0;          // while pool_open_: the key of every allocation
  std::set<uintptr_t> pool_keys_;  // private pools whose cached blocks stay reserved
};

// The host allocator: 64-byte aligned blocks from the C heap, cached.
CachingAllocator& cpu_allocator();

}  // namespace mindiesd
