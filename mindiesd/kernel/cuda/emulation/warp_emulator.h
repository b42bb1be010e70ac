// Runs a CUDA thread block on the host, one coroutine per thread, for kernels written over the
// warp primitives of warp_ops.cuh (ldmatrix, mma.sync, cp.async, shuffles, barriers).
//
// Every thread runs until its next synchronising primitive and yields; the scheduler resumes
// the threads round-robin, so a round is one step of the block in lockstep. A warp primitive
// posts this thread's operand (a row address, fragments, a value) in an exchange slot, yields,
// and then computes its result from the 32 posted operands, exactly as the hardware's lanes
// exchange data. Slots are double buffered by the parity of the thread's yield count: a thread
// that runs ahead into the next primitive cannot overwrite what the others still read.
//
// What it checks beyond the arithmetic: all threads of the block reach the same primitive in
// the same round (a divergent barrier or warp op aborts with the thread and primitive named);
// ldmatrix and cp.async addresses lie inside the block's shared memory and are 16-byte aligned;
// shared memory starts as NaN bytes, so a read before a write shows; cp.async copies land only
// when the issuing thread waits for their group, so a missing wait reads stale data; no copy
// is left unwaited at exit. Races on shared memory (16-byte granules, counted in barrier
// epochs): an ldmatrix of a granule whose copy is still in flight, or that another thread's
// wait landed without a barrier since; a cp.async into a granule another warp read since the
// last barrier.
//
// Host-only (ucontext); used by emulation/check_attention.cu, never by the library.
#pragma once

#include <cuda_bf16.h>
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "mindiesd/core/dtype.h"

namespace mindiesd::cuda::emulation {

enum class Sync : uint8_t { none, barrier, ldsm, ldsm_trans, mma, shfl };

inline const char* sync_name(Sync s) {
  switch (s) {
    case Sync::none:
      return "exit";
    case Sync::barrier:
      return "__syncthreads";
    case Sync::ldsm:
      return "ldmatrix";
    case Sync::ldsm_trans:
      return "ldmatrix.trans";
    case Sync::mma:
      return "mma";
    case Sync::shfl:
      return "shfl";
  }
  return "?";
}

[[noreturn]] inline void emulation_fail(const char* what, int tid) {
  std::fprintf(stderr, "warp emulator: thread %d: %s\n", tid, what);
  std::abort();
}

class BlockEmulator {
 public:
  struct Slot {
    uint64_t w[4];
  };

  BlockEmulator(int threads, size_t smem_bytes)
      : n_(threads),
        smem_bytes_(smem_bytes),
        smem_(static_cast<char*>(std::aligned_alloc(128, (smem_bytes + 127) / 128 * 128))),
        threads_(static_cast<size_t>(threads)),
        slots_(2 * static_cast<size_t>(threads)) {
    for (Thread& t : threads_) t.stack.resize(kStackBytes);
  }
  ~BlockEmulator() { std::free(smem_); }
  BlockEmulator(const BlockEmulator&) = delete;
  BlockEmulator& operator=(const BlockEmulator&) = delete;

  char* smem() { return smem_; }
  int current() const { return current_; }

  // Runs body(tid) for every thread of one block to completion.
  void run(const std::function<void(int)>& body) {
    std::memset(smem_, 0xff, smem_bytes_);  // NaN in every 16-bit float type
    granules_.assign((smem_bytes_ + 15) / 16, Granule{});
    epoch_ = 0;
    body_ = &body;
    for (int i = 0; i < n_; ++i) {
      Thread& t = threads_[i];
      t.finished = false;
      t.yields = 0;
      t.kind = Sync::none;
      t.groups.clear();
      t.pending.clear();
      getcontext(&t.ctx);
      t.ctx.uc_stack.ss_sp = t.stack.data();
      t.ctx.uc_stack.ss_size = t.stack.size();
      t.ctx.uc_link = &scheduler_;
      active_ = this;
      makecontext(&t.ctx, &BlockEmulator::entry, 0);
    }
    for (;;) {
      int live = 0;
      for (int i = 0; i < n_; ++i) {
        if (threads_[i].finished) continue;
        current_ = i;
        active_ = this;
        swapcontext(&scheduler_, &threads_[i].ctx);
        if (!threads_[i].finished) ++live;
      }
      if (live == 0) break;
      if (threads_[0].kind == Sync::barrier) ++epoch_;  // lockstep is checked below
      // Lockstep: every thread (a finished one counts as Sync::none) met the same primitive.
      auto at = [&](int i) { return threads_[i].finished ? Sync::none : threads_[i].kind; };
      for (int i = 1; i < n_; ++i) {
        if (at(i) != at(0)) {
          char msg[160];
          std::snprintf(msg, sizeof msg, "divergent sync: thread 0 at %s, this one at %s",
                        sync_name(at(0)), sync_name(at(i)));
          emulation_fail(msg, i);
        }
      }
    }
    for (int i = 0; i < n_; ++i) {
      for (const auto& g : threads_[i].groups) {
        if (!g.empty()) emulation_fail("exited with cp.async copies never waited for", i);
      }
      if (!threads_[i].pending.empty())
        emulation_fail("exited with uncommitted cp.async copies", i);
    }
  }

  // ---- called from inside a thread ----

  // Posts this thread's operand, meets the warp, returns the warp's 32 posted slots.
  const Slot* exchange(Sync kind, const Slot& mine) {
    Thread& t = threads_[current_];
    const size_t parity = t.yields & 1;
    const int tid = current_;
    slots_[parity * n_ + tid] = mine;
    yield(kind);
    return &slots_[parity * n_ + (tid / 32) * 32];
  }
  void barrier() { yield(Sync::barrier); }

  void check_smem(const void* p, size_t bytes, const char* what) const {
    const char* c = static_cast<const char*>(p);
    if (c < smem_ || c + bytes > smem_ + smem_bytes_) emulation_fail(what, current_);
    if (reinterpret_cast<uintptr_t>(c) % 16 != 0) emulation_fail(what, current_);
  }

  // A 16-byte read of shared memory by this thread (its lane's ldmatrix row).
  void note_read(const void* p, int reader) {
    Granule& g = granule(p);
    if (g.in_flight > 0)
      emulation_fail("ldmatrix reads a granule whose cp.async is in flight", reader);
    if (g.landed_epoch == epoch_ && g.writer != reader) {
      emulation_fail(
          "ldmatrix reads a granule another thread's cp.async landed in without a barrier", reader);
    }
    g.read_epoch = epoch_;
    g.reader_warp = reader / 32;
  }

  struct Copy {
    void* dst;
    const void* src;
    int src_bytes;
  };
  void cp_async(void* dst, const void* src, int src_bytes) {
    check_smem(dst, 16, "cp.async destination outside shared memory or misaligned");
    if (reinterpret_cast<uintptr_t>(src) % 16 != 0) {
      emulation_fail("cp.async source not 16-byte aligned", current_);
    }
    Granule& g = granule(dst);
    if (g.read_epoch == epoch_ && g.reader_warp != current_ / 32) {
      emulation_fail("cp.async overwrites a granule another warp read since the last barrier",
                     current_);
    }
    ++g.in_flight;
    threads_[current_].pending.push_back({dst, src, src_bytes});
  }
  void cp_async_commit() {
    Thread& t = threads_[current_];
    t.groups.push_back(std::move(t.pending));
    t.pending.clear();
  }
  void cp_async_wait(int n) {
    Thread& t = threads_[current_];
    while (static_cast<int>(t.groups.size()) > n) {
      for (const Copy& c : t.groups.front()) {
        std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
        std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0,
                    16 - static_cast<size_t>(c.src_bytes));
        Granule& g = granule(c.dst);
        --g.in_flight;
        g.landed_epoch = epoch_;
        g.writer = current_;
      }
      t.groups.pop_front();
    }
  }

 private:
  static constexpr size_t kStackBytes = 256 * 1024;

  struct Granule {
    int in_flight = 0;
    int64_t read_epoch = -1, landed_epoch = -1;
    int reader_warp = -1, writer = -1;
  };
  Granule& granule(const void* p) {
    return granules_[static_cast<size_t>(static_cast<const char*>(p) - smem_) / 16];
  }

  struct Thread {
    ucontext_t ctx{};
    std::vector<char> stack;
    bool finished = false;
    uint64_t yields = 0;
    Sync kind = Sync::none;
    std::vector<Copy> pending;
    std::deque<std::vector<Copy>> groups;
  };

  void yield(Sync kind) {
    Thread& t = threads_[current_];
    t.kind = kind;
    ++t.yields;
    swapcontext(&t.ctx, &scheduler_);
  }

  static void entry() {
    BlockEmulator* e = active_;
    const int tid = e->current_;
    (*e->body_)(tid);
    e->threads_[tid].finished = true;  // uc_link returns to the scheduler
  }

  static inline thread_local BlockEmulator* active_ = nullptr;

  int n_;
  size_t smem_bytes_;
  char* smem_;
  std::vector<Thread> threads_;
  std::vector<Slot> slots_;
  std::vector<Granule> granules_;
  int64_t epoch_ = 0;  // barriers the block has passed
  ucontext_t scheduler_{};
  const std::function<void(int)>* body_ = nullptr;
  int current_ = 0;
};

// The primitives of warp_ops.cuh's WarpOps, emulated. T is __nv_bfloat16 or __half.
template <typename T>
struct EmulatedWarpOps {
  BlockEmulator* e;

  static float to_f32(uint16_t bits) {
    return std::is_same_v<T, __nv_bfloat16> ? bf16_to_f32(bits) : f16_to_f32(bits);
  }
  static uint16_t from_f32(float x) {
    return std::is_same_v<T, __nv_bfloat16> ? f32_to_bf16(x) : f32_to_f16(x);
  }
  int lane() const { return e->current() % 32; }

  void ldsm(uint32_t (&r)[4], const void* row, bool trans) {
    e->check_smem(row, 16, "ldmatrix row address outside shared memory or misaligned");
    BlockEmulator::Slot mine{};
    mine.w[0] = reinterpret_cast<uintptr_t>(row);
    const BlockEmulator::Slot* w = e->exchange(trans ? Sync::ldsm_trans : Sync::ldsm, mine);
    auto row_of = [&](int m, int rr) {
      return reinterpret_cast<const uint16_t*>(w[m * 8 + rr].w[0]);
    };
    const int l = lane();
    e->note_read(row, e->current());
    for (int m = 0; m < 4; ++m) {
      uint16_t lo, hi;
      if (trans) {  // rows 2(l%4), 2(l%4)+1 of matrix m, column l/4
        lo = row_of(m, 2 * (l % 4))[l / 4];
        hi = row_of(m, 2 * (l % 4) + 1)[l / 4];
      } else {  // row l/4, columns 2(l%4), 2(l%4)+1
        lo = row_of(m, l / 4)[2 * (l % 4)];
        hi = row_of(m, l / 4)[2 * (l % 4) + 1];
      }
      r[m] = lo | (static_cast<uint32_t>(hi) << 16);
    }
  }
  void ldsm_x4(uint32_t (&r)[4], const void* row) { ldsm(r, row, false); }
  void ldsm_x4_trans(uint32_t (&r)[4], const void* row) { ldsm(r, row, true); }

  // D = A B + C for m16n8k16 with the layouts in warp_ops.cuh, f32 accumulation.
  void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    BlockEmulator::Slot mine{};
    mine.w[0] = a[0] | (static_cast<uint64_t>(a[1]) << 32);
    mine.w[1] = a[2] | (static_cast<uint64_t>(a[3]) << 32);
    mine.w[2] = b0 | (static_cast<uint64_t>(b1) << 32);
    const BlockEmulator::Slot* w = e->exchange(Sync::mma, mine);
    auto half_of = [](uint32_t word, int k) {
      return static_cast<uint16_t>(k % 2 ? word >> 16 : word & 0xffff);
    };
    auto reg = [&](int src_lane, int index) {  // a[0..3] = 0..3, b0 = 4, b1 = 5
      return static_cast<uint32_t>(w[src_lane].w[index / 2] >> (32 * (index % 2)));
    };
    auto A = [&](int row, int k) {  // lane (row % 8) * 4 + (k % 8) / 2, a[(row >= 8) + 2 (k >= 8)]
      return to_f32(half_of(reg((row % 8) * 4 + (k % 8) / 2, (row >= 8) + 2 * (k >= 8)), k));
    };
    auto B = [&](int k, int n) {  // lane n * 4 + (k % 8) / 2, b[k >= 8]
      return to_f32(half_of(reg(n * 4 + (k % 8) / 2, 4 + (k >= 8)), k));
    };
    const int g = lane() / 4, t = lane() % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
      float sum = d[i];
      for (int k = 0; k < 16; ++k) sum += A(row, k) * B(k, col);
      d[i] = sum;
    }
  }

  void cp_async_16(void* dst, const void* src, int src_bytes) { e->cp_async(dst, src, src_bytes); }
  void cp_async_commit() { e->cp_async_commit(); }
  template <int N>
  void cp_async_wait() {
    e->cp_async_wait(N);
  }
  void sync_block() { e->barrier(); }
  float shfl_xor(float v, int lane_mask) {
    BlockEmulator::Slot mine{};
    std::memcpy(&mine.w[0], &v, sizeof v);
    const BlockEmulator::Slot* w = e->exchange(Sync::shfl, mine);
    float out;
    std::memcpy(&out, &w[lane() ^ lane_mask].w[0], sizeof out);
    return out;
  }
  uint32_t pack(float lo, float hi) const {
    return from_f32(lo) | (static_cast<uint32_t>(from_f32(hi)) << 16);
  }
  float exp2(float x) const { return std::exp2(x); }
};

}  // namespace mindiesd::cuda::emulation
