// The tensor-core attention kernel's body: FlashAttention-2 (Dao, 2023) for bf16 / f16 with
// head dims 64 and 128 and no mask, written once over a small set of warp primitives (`Ops`) so
// that the same code runs on the GPU (WarpOps below: ldmatrix, mma.sync, cp.async, shuffles)
// and, thread by thread, on a host without a GPU (emulation/warp_emulator.h), where fragment
// layouts, the pipeline's waits and every shared-memory address are checked.
//
// A block of kWarps warps owns 16 * kWarps query rows (16 per warp, Q kept in registers for
// the whole key loop) and walks the keys 64 at a time:
//  - K and V tiles go global -> shared with cp.async (16 bytes per copy, zero-filled past Sk),
//    double buffered: the next tile is in flight while the current one is used;
//  - S = Q K^T with mma.m16n8k16 in f32, the K fragments read with ldmatrix.x4;
//  - online softmax on the S accumulators (row max and sum in registers, exp2 with log2(e)
//    folded into the scale), masking only the tiles that need it (the last, partial one; the
//    causal diagonal);
//  - O += P V with P rounded to the input dtype (as FlashAttention and PyTorch's SDPA) and taken
//    straight from the S accumulators as A fragments; V stays row-major in shared memory and is
//    read transposed by ldmatrix.x4.trans.
// Shared-memory rows are padded by 16 bytes, so the 8 row addresses of every ldmatrix phase fall
// in 8 different bank groups.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "mindiesd/kernel/cuda/attention.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/warp_ops.cuh"

namespace mindiesd::cuda {

template <int D, int kWarps>
struct FlashTile {
  static constexpr int kBr = 16 * kWarps;  // query rows per block
  static constexpr int kBc = 64;           // keys per tile
  static constexpr int kStride = D + 8;    // shared-memory row, elements (16 bytes of padding)
  static constexpr int kThreads = 32 * kWarps;
  // K and V, two stages each, of 2-byte elements.
  static constexpr size_t kSmemBytes = size_t{4} * kBc * kStride * 2;
};


// Issues the cp.async copies of key tile `tile` (K and V rows [64 tile, 64 tile + 64)) into one
// stage; rows past Sk are zero-filled.
#pragma nv_exec_check_disable
template <typename T, int D, int kWarps, typename Ops>
MINDIESD_HD void flash_load_tile(const FlashArgs& a, Ops& ops, const T* k, const T* v, int64_t tile,
                                 T* k_stage, T* v_stage, int tid) {
  using Tile = FlashTile<D, kWarps>;
  const int64_t k0 = tile * Tile::kBc;
  constexpr int kChunks = Tile::kBc * D / 8;  // 16-byte chunks per tile
  MINDIESD_UNROLL
  for (int c = tid; c < kChunks; c += Tile::kThreads) {
    const int j = c / (D / 8), d8 = (c % (D / 8)) * 8;
    const bool valid = k0 + j < a.sk;
    const int64_t key = valid ? k0 + j : 0;  // a readable address; nothing is read from it
    const int at = j * Tile::kStride + d8;
    ops.cp_async_16(k_stage + at, k + key * a.k_stride[2] + d8, valid ? 16 : 0);
    ops.cp_async_16(v_stage + at, v + key * a.v_stride[2] + d8, valid ? 16 : 0);
  }
}

// One thread's part of the block (q_block, h, b). `smem` holds FlashTile::kSmemBytes, 16-byte
// aligned. Semantics as AttentionParams: scale on q.k, bottom-right aligned causal mask, GQA,
// rows that see no key write zeros. (__host__ __device__ only so that the host emulation can
// instantiate it with host primitives; each instantiation calls one side's Ops.)
#pragma nv_exec_check_disable
template <typename T, int D, int kWarps, bool kCausal, typename Ops>
MINDIESD_HD void flash_attention_block(const FlashArgs& a, Ops& ops, int64_t q_block, int64_t h,
                                       int64_t b, int tid, void* smem) {
  using Tile = FlashTile<D, kWarps>;
  constexpr int kBr = Tile::kBr, kBc = Tile::kBc, kStride = Tile::kStride;
  static_assert(sizeof(T) == 2 && D % 16 == 0);
  T* const k_tiles = static_cast<T*>(smem);        // [2][kBc][kStride]
  T* const v_tiles = k_tiles + 2 * kBc * kStride;  // [2][kBc][kStride]

  const int warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t hk = h / (a.hq / a.hkv);
  const int64_t q0 = q_block * kBr;
  const int64_t row0 = q0 + warp * 16 + g, row1 = row0 + 8;  // this thread's two query rows

  const T* q = static_cast<const T*>(a.q) + b * a.q_stride[0] + h * a.q_stride[1];
  const T* k = static_cast<const T*>(a.k) + b * a.k_stride[0] + hk * a.k_stride[1];
  const T* v = static_cast<const T*>(a.v) + b * a.v_stride[0] + hk * a.v_stride[1];
  T* o = static_cast<T*>(a.out) + b * a.o_stride[0] + h * a.o_stride[1];

  // Keys [0, k_end) can be visible to some row of this block.
  const int64_t shift = a.sk - a.sq;  // causal: row i sees keys j <= i + shift
  int64_t k_end = a.sk;
  if (kCausal) {
    const int64_t last_row = (q0 + kBr < a.sq ? q0 + kBr : a.sq) - 1;
    k_end = last_row + shift + 1 < k_end ? last_row + shift + 1 : k_end;
  }
  const int64_t n_tiles = k_end > 0 ? (k_end + kBc - 1) / kBc : 0;
  // Block-sparse: this block's row of the kept-block mask; tiles of dropped key blocks are
  // neither loaded nor computed. The next kept tile at or after t (t itself when dense).
  const uint8_t* kept = a.block_mask ? a.block_mask + b * a.bm_stride[0] + h * a.bm_stride[1] +
                                           (q0 / a.block_q) * a.bm_stride[2]
                                     : nullptr;
  auto next_tile = [&](int64_t t) {
    if (kept) {
      while (t < n_tiles && kept[(t * kBc / a.block_k) * a.bm_stride[3]] == 0) ++t;
    }
    return t;
  };

  int64_t tile = next_tile(0);
  if (tile < n_tiles) flash_load_tile<T, D, kWarps>(a, ops, k, v, tile, k_tiles, v_tiles, tid);
  ops.cp_async_commit();

  // Q fragments for the whole head dim, loaded once (rows past Sq are zeros).
  uint32_t qf[D / 16][4];
  {
    const uint32_t* r0 =
        row0 < a.sq ? reinterpret_cast<const uint32_t*>(q + row0 * a.q_stride[2]) : nullptr;
    const uint32_t* r1 =
        row1 < a.sq ? reinterpret_cast<const uint32_t*>(q + row1 * a.q_stride[2]) : nullptr;
    MINDIESD_UNROLL
    for (int s = 0; s < D / 16; ++s) {
      qf[s][0] = r0 ? r0[s * 8 + t] : 0u;
      qf[s][1] = r1 ? r1[s * 8 + t] : 0u;
      qf[s][2] = r0 ? r0[s * 8 + 4 + t] : 0u;
      qf[s][3] = r1 ? r1[s * 8 + 4 + t] : 0u;
    }
  }

  float acc[D / 8][4];
  MINDIESD_UNROLL
  for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  constexpr float kLog2e = 1.4426950408889634f;
  const float scale_log2 = a.scale * kLog2e;

  // ldmatrix row addresses of this lane: for K (non-transposed), matrices (keys 0-7, d 0-7),
  // (keys 0-7, d 8-15), (keys 8-15, d 0-7), (keys 8-15, d 8-15) give b0, b1 of two 8-key n-tiles;
  // for V (transposed), (keys 0-7, dv 0-7), (keys 8-15, dv 0-7), (keys 0-7, dv 8-15),
  // (keys 8-15, dv 8-15) give b0, b1 of two 8-wide dv n-tiles.
  const int mat = lane / 8, mrow = lane % 8;
  const int k_lane_off = ((mat / 2) * 8 + mrow) * kStride + (mat % 2) * 8;
  const int v_lane_off = ((mat % 2) * 8 + mrow) * kStride + (mat / 2) * 8;

  for (int stage = 0; tile < n_tiles; stage ^= 1) {
    const int64_t next = next_tile(tile + 1);
    if (next < n_tiles) {
      flash_load_tile<T, D, kWarps>(a, ops, k, v, next, k_tiles + (stage ^ 1) * kBc * kStride,
                                    v_tiles + (stage ^ 1) * kBc * kStride, tid);
    }
    ops.cp_async_commit();
    ops.template cp_async_wait<1>();  // this tile's group has landed (the next may be in flight)
    ops.sync_block();
    const T* kt = k_tiles + stage * kBc * kStride;
    const T* vt = v_tiles + stage * kBc * kStride;
    const int64_t k0 = tile * kBc;

    // S = Q K^T for this warp's 16 rows x 64 keys.
    float s[kBc / 8][4];
    MINDIESD_UNROLL
    for (int n = 0; n < kBc / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    MINDIESD_UNROLL
    for (int kk = 0; kk < D / 16; ++kk) {
      MINDIESD_UNROLL
      for (int np = 0; np < kBc / 16; ++np) {
        uint32_t r[4];
        ops.ldsm_x4(r, kt + np * 16 * kStride + kk * 16 + k_lane_off);
        ops.mma(s[2 * np], qf[kk], r[0], r[1]);
        ops.mma(s[2 * np + 1], qf[kk], r[2], r[3]);
      }
    }

    // Online softmax over the two rows this thread holds (the 4 threads of a quad share a row).
    // Masking: keys past Sk in the last tile, keys past the diagonal in causal tiles that reach
    // beyond the block's first row.
    const bool masked = k0 + kBc > a.sk || (kCausal && k0 + kBc - 1 > q0 + shift);
    MINDIESD_UNROLL
    for (int r = 0; r < 2; ++r) {
      const int64_t row = r == 0 ? row0 : row1;
      float mx = -INFINITY;
      MINDIESD_UNROLL
      for (int n = 0; n < kBc / 8; ++n) {
        MINDIESD_UNROLL
        for (int e = 0; e < 2; ++e) {
          float x = s[n][2 * r + e] * scale_log2;  // logits in log2 units
          if (masked) {
            const int64_t j = k0 + n * 8 + 2 * t + e;
            if (j >= a.sk || (kCausal && j > row + shift)) x = -INFINITY;
          }
          s[n][2 * r + e] = x;
          mx = fmaxf(mx, x);
        }
      }
      mx = fmaxf(mx, ops.shfl_xor(mx, 1));
      mx = fmaxf(mx, ops.shfl_xor(mx, 2));
      const float m_new = fmaxf(m_run[r], mx);
      // Nothing visible yet: keep the state; exp2(-inf - 0) makes every p zero.
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = ops.exp2(m_run[r] - base);
      float sum = 0.0f;
      MINDIESD_UNROLL
      for (int n = 0; n < kBc / 8; ++n) {
        MINDIESD_UNROLL
        for (int e = 0; e < 2; ++e) {
          const float p = ops.exp2(s[n][2 * r + e] - base);
          s[n][2 * r + e] = p;
          sum += p;
        }
      }
      sum += ops.shfl_xor(sum, 1);
      sum += ops.shfl_xor(sum, 2);
      l_run[r] = l_run[r] * alpha + sum;
      m_run[r] = m_new;
      MINDIESD_UNROLL
      for (int n = 0; n < D / 8; ++n) {
        acc[n][2 * r] *= alpha;
        acc[n][2 * r + 1] *= alpha;
      }
    }

    // O += P V: two 8-key S tiles make one 16-key A fragment.
    MINDIESD_UNROLL
    for (int kk = 0; kk < kBc / 16; ++kk) {
      const uint32_t pf[4] = {ops.pack(s[2 * kk][0], s[2 * kk][1]),
                              ops.pack(s[2 * kk][2], s[2 * kk][3]),
                              ops.pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              ops.pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      MINDIESD_UNROLL
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t r[4];
        ops.ldsm_x4_trans(r, vt + kk * 16 * kStride + dp * 16 + v_lane_off);
        ops.mma(acc[2 * dp], pf, r[0], r[1]);
        ops.mma(acc[2 * dp + 1], pf, r[2], r[3]);
      }
    }
    ops.sync_block();  // every warp is done with this stage before it is refilled
    tile = next;
  }
  ops.template cp_async_wait<0>();

  // Normalise and store; a row that saw no key writes zeros.
  MINDIESD_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t row = r == 0 ? row0 : row1;
    if (row >= a.sq) continue;
    const float inv = l_run[r] > 0.0f ? 1.0f / l_run[r] : 0.0f;
    uint32_t* dst = reinterpret_cast<uint32_t*>(o + row * a.o_stride[2]);
    MINDIESD_UNROLL
    for (int n = 0; n < D / 8; ++n) {
      dst[n * 4 + t] = ops.pack(acc[n][2 * r] * inv, acc[n][2 * r + 1] * inv);
    }
  }
}

}  // namespace mindiesd::cuda
