// The grouped GEMM of mixture-of-experts layers on tensor cores: out[r] = x[r] @ w[e]^T for the
// rows r in [offsets[e], offsets[e+1]) of each group (expert) e, in one launch for all groups,
// written over warp_ops.cuh's primitives so that the body also runs in the host warp emulator.
//
// The group sizes stay on the device: the grid has one row of blocks per possible 64-row tile
// (ceil(R / 64) + E bounds the tiles of any split of R rows into E groups), and each block finds
// its group and row range by walking the offsets; blocks past the last tile return. No host
// synchronisation, no per-expert launches, empty experts cost nothing.
//
// A block of 4 warps computes a 64 x 64 output tile (16 rows per warp) over K in steps of 64:
// x and w tiles go global -> shared with cp.async (16 bytes, zero-filled past the group's rows,
// N and K), double buffered; A fragments by ldmatrix.x4 from the x tile, B fragments by
// ldmatrix.x4 from the w tile (w's rows are B's columns, as K is in attention's Q K^T);
// mma.m16n8k16 with f32 accumulation; rows padded by 16 bytes so every ldmatrix phase is
// conflict-free. Requires 16-bit x and w, K, the row strides and the base addresses multiples
// of 8 elements (16 bytes); other problems take the SIMT kernel in matmul.cu.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "mindiesd/core/dtype.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/warp_ops.cuh"

namespace mindiesd::cuda {

struct GroupedGemmArgs {
  const void* x;          // (R, K), unit column stride
  const void* w;          // (E, N, K), unit column stride
  const int64_t* offsets;  // E + 1 row offsets (see grouped_gemm_group_rows for bad ones)
  void* out;              // (R, N), unit column stride
  int64_t x_stride, w_stride[2], out_stride;
  int64_t rows, n, k, groups;
};

struct GroupedGemmTile {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBm = 16 * kWarps, kBn = 64, kBk = 64;
  static constexpr int kStride = kBk + 8;  // shared-memory row, elements (16 bytes of padding)
  // x and w tiles, two stages each, of 2-byte elements.
  static constexpr size_t kSmemBytes = size_t{2} * (kBm + kBn) * kStride * 2;
  // Blocks along the rows: enough for any split of `rows` into `groups`.
  static int64_t max_row_tiles(int64_t rows, int64_t groups) { return (rows + kBm - 1) / kBm + groups; }
};

// Group e's rows [begin, end) given where group e - 1 ended: offsets are clamped into
// [prev_end, R], so whatever they hold, the groups are disjoint, ascending and inside [0, R).
MINDIESD_HD void grouped_gemm_group_rows(const GroupedGemmArgs& a, int64_t e, int64_t prev_end,
                                         int64_t& begin, int64_t& end) {
  auto clamp = [](int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); };
  begin = clamp(a.offsets[e], prev_end, a.rows);
  end = clamp(a.offsets[e + 1], begin, a.rows);
}

// The group, first row and row end of row tile `tile`; false past the last tile.
MINDIESD_HD bool grouped_gemm_find_tile(const GroupedGemmArgs& a, int64_t tile, int64_t& group,
                                        int64_t& row0, int64_t& row_end) {
  constexpr int kBm = GroupedGemmTile::kBm;
  int64_t first = 0, end = 0;  // tiles of the groups before e; where they ended
  for (int64_t e = 0; e < a.groups; ++e) {
    int64_t begin;
    grouped_gemm_group_rows(a, e, end, begin, end);
    const int64_t tiles = (end - begin + kBm - 1) / kBm;
    if (tile < first + tiles) {
      group = e;
      row0 = begin + (tile - first) * kBm;
      row_end = end;
      return true;
    }
    first += tiles;
  }
  return false;
}

// Issues the cp.async copies of K-slice `kt` of the x rows [row0, row_end) and the w rows
// [n0, N) of `group` into one stage; everything outside is zero-filled.
#pragma nv_exec_check_disable
template <typename T, typename Ops>
MINDIESD_HD void grouped_gemm_load(const GroupedGemmArgs& a, Ops& ops, int64_t group, int64_t row0,
                                   int64_t row_end, int64_t n0, int64_t kt, T* x_stage, T* w_stage,
                                   int tid) {
  using Tile = GroupedGemmTile;
  constexpr int kChunksPerRow = Tile::kBk / 8;  // 16-byte chunks
  const int64_t k0 = kt * Tile::kBk;
  const T* x = static_cast<const T*>(a.x);
  const T* w = static_cast<const T*>(a.w) + group * a.w_stride[0];
  MINDIESD_UNROLL
  for (int c = tid; c < (Tile::kBm + Tile::kBn) * kChunksPerRow; c += Tile::kThreads) {
    const int r = c / kChunksPerRow, k8 = (c % kChunksPerRow) * 8;
    const bool in_k = k0 + k8 < a.k;
    if (r < Tile::kBm) {
      const bool valid = in_k && row0 + r < row_end;
      const T* src = x + (valid ? (row0 + r) * a.x_stride + k0 + k8 : 0);
      ops.cp_async_16(x_stage + r * Tile::kStride + k8, src, valid ? 16 : 0);
    } else {
      const int j = r - Tile::kBm;
      const bool valid = in_k && n0 + j < a.n;
      const T* src = w + (valid ? (n0 + j) * a.w_stride[1] + k0 + k8 : 0);
      ops.cp_async_16(w_stage + j * Tile::kStride + k8, src, valid ? 16 : 0);
    }
  }
}

// One thread's part of the block for output columns [64 n_block, +64) and row tile `tile`.
// `smem` holds GroupedGemmTile::kSmemBytes, 16-byte aligned. OutT: float or T.
#pragma nv_exec_check_disable
template <typename T, typename OutT, typename Ops>
MINDIESD_HD void grouped_gemm_block(const GroupedGemmArgs& a, Ops& ops, int64_t n_block,
                                    int64_t tile, int tid, void* smem) {
  using Tile = GroupedGemmTile;
  constexpr int kStride = Tile::kStride, kBm = Tile::kBm, kBn = Tile::kBn, kBk = Tile::kBk;
  static_assert(sizeof(T) == 2);
  int64_t group = 0, row0 = 0, row_end = 0;
  if (!grouped_gemm_find_tile(a, tile, group, row0, row_end)) return;  // the whole block agrees
  T* const x_tiles = static_cast<T*>(smem);        // [2][kBm][kStride]
  T* const w_tiles = x_tiles + 2 * kBm * kStride;  // [2][kBn][kStride]
  const int64_t n0 = n_block * kBn;
  const int warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t k_tiles = (a.k + kBk - 1) / kBk;

  // ldmatrix row addresses of this lane: for x (A), matrices (rows 0-7, k 0-7), (rows 8-15,
  // k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) give a[0..3]; for w (B, its rows are the
  // output columns), (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) give b0,
  // b1 of two 8-column n-tiles.
  const int mat = lane / 8, mrow = lane % 8;
  const int a_lane_off = (warp * 16 + (mat % 2) * 8 + mrow) * kStride + (mat / 2) * 8;
  const int b_lane_off = ((mat / 2) * 8 + mrow) * kStride + (mat % 2) * 8;

  float acc[kBn / 8][4];
  MINDIESD_UNROLL
  for (int n = 0; n < kBn / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

  if (k_tiles > 0) grouped_gemm_load<T>(a, ops, group, row0, row_end, n0, 0, x_tiles, w_tiles, tid);
  ops.cp_async_commit();
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    const int stage = static_cast<int>(kt & 1);
    if (kt + 1 < k_tiles) {
      grouped_gemm_load<T>(a, ops, group, row0, row_end, n0, kt + 1,
                           x_tiles + (stage ^ 1) * kBm * kStride,
                           w_tiles + (stage ^ 1) * kBn * kStride, tid);
    }
    ops.cp_async_commit();
    ops.template cp_async_wait<1>();  // this slice has landed (the next may be in flight)
    ops.sync_block();
    const T* xt = x_tiles + stage * kBm * kStride;
    const T* wt = w_tiles + stage * kBn * kStride;
    MINDIESD_UNROLL
    for (int kk = 0; kk < kBk / 16; ++kk) {
      uint32_t af[4];
      ops.ldsm_x4(af, xt + kk * 16 + a_lane_off);
      MINDIESD_UNROLL
      for (int np = 0; np < kBn / 16; ++np) {
        uint32_t r[4];
        ops.ldsm_x4(r, wt + np * 16 * kStride + kk * 16 + b_lane_off);
        ops.mma(acc[2 * np], af, r[0], r[1]);
        ops.mma(acc[2 * np + 1], af, r[2], r[3]);
      }
    }
    ops.sync_block();  // every warp is done with this stage before it is refilled
  }
  ops.template cp_async_wait<0>();

  // c[0..1] = (row g, columns 2t, 2t+1), c[2..3] = (row g + 8, same columns).
  OutT* out = static_cast<OutT*>(a.out);
  MINDIESD_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int64_t row = row0 + warp * 16 + g + 8 * half;
    if (row >= row_end) continue;
    MINDIESD_UNROLL
    for (int n = 0; n < kBn / 8; ++n) {
      MINDIESD_UNROLL
      for (int e = 0; e < 2; ++e) {
        const int64_t col = n0 + n * 8 + 2 * t + e;
        if (col >= a.n) continue;
        const float v = acc[n][2 * half + e];
        OutT* dst = out + row * a.out_stride + col;
        if constexpr (std::is_same_v<OutT, float>) {
          *dst = v;
        } else {
          const uint16_t bits =
              std::is_same_v<T, __nv_bfloat16> ? f32_to_bf16(v) : f32_to_f16(v);
          *reinterpret_cast<uint16_t*>(dst) = bits;
        }
      }
    }
  }
}

}  // namespace mindiesd::cuda
