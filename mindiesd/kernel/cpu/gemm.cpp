#include "mindiesd/kernel/cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "mindiesd/core/parallel.h"
#include "mindiesd/kernel/cpu/strided.h"

namespace mindiesd::cpu {

namespace {

// Register tile: 6 x 16 f32 accumulators are 12 AVX2 registers (6 AVX-512 ones), leaving room
// for the B row and the broadcast A value.
constexpr int64_t kMR = 6, kNR = 16;
// Cache blocking: a K-slice of kKC keeps an A strip (6 x 256 x 4 B = 6 KB) and a B strip
// (16 KB) in L1/L2; a B panel of kNC columns (3 MB) stays in L2/L3 while every A strip
// passes over it. Work is split into tiles of kTileM rows x kTileN columns.
constexpr int64_t kKC = 256, kNC = 3072, kTileM = 16 * kMR, kTileN = 16 * kNR;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;
Buffer aligned_floats(int64_t n) {
  const size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * 4 + 63) / 64 * 64;
  return Buffer(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

// Rows [i0, i0 + mc) x columns [p0, p0 + kc) of a into MR-row strips: strip s holds, for each
// p, the MR values of its rows (zero past row mc), so the micro-kernel reads it sequentially.
void pack_a(const GemmOperand& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  const int64_t strips = ceil_div(mc, kMR);
  parallel_for(0, strips, 4, [&](int64_t s0, int64_t s1) {
    std::vector<float> row(kc);
    for (int64_t s = s0; s < s1; ++s) {
      float* strip = dst + s * kc * kMR;
      for (int64_t r = 0; r < kMR; ++r) {
        const int64_t i = s * kMR + r;
        if (i < mc) {
          load_as_f32(a.data, a.dtype, (i0 + i) * a.row_stride + p0 * a.col_stride, a.col_stride,
                      kc, row.data());
        } else {
          std::fill(row.begin(), row.end(), 0.0f);
        }
        for (int64_t p = 0; p < kc; ++p) strip[p * kMR + r] = row[p];
      }
    }
  });
}

// Rows [p0, p0 + kc) x columns [j0, j0 + nc) of b into NR-column strips (zero past column nc).
void pack_b(const GemmOperand& b, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  const int64_t strips = ceil_div(nc, kNR);
  parallel_for(0, kc, 16, [&](int64_t q0, int64_t q1) {
    std::vector<float> row(strips * kNR, 0.0f);
    for (int64_t p = q0; p < q1; ++p) {
      load_as_f32(b.data, b.dtype, (p0 + p) * b.row_stride + j0 * b.col_stride, b.col_stride, nc,
                  row.data());
      for (int64_t s = 0; s < strips; ++s)
        std::copy_n(row.data() + s * kNR, kNR, dst + (s * kc + p) * kNR);
    }
  });
}

// c[0:mr, 0:nr] (= or +=) alpha * (packed A strip) @ (packed B strip) over kc.
void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b,
                  float* __restrict c, int64_t ldc, int64_t mr, int64_t nr, float alpha,
                  bool accumulate) {
  float t[kMR][kNR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* bp = b + p * kNR;
    const float* ap = a + p * kMR;
#pragma GCC unroll 6
    for (int64_t r = 0; r < kMR; ++r) {
      const float av = ap[r];
#pragma GCC unroll 16
      for (int64_t j = 0; j < kNR; ++j) t[r][j] += av * bp[j];
    }
  }
  for (int64_t r = 0; r < mr; ++r) {
    float* cr = c + r * ldc;
    if (accumulate) {
      for (int64_t j = 0; j < nr; ++j) cr[j] += alpha * t[r][j];
    } else {
      for (int64_t j = 0; j < nr; ++j) cr[j] = alpha * t[r][j];
    }
  }
}

}  // namespace

void gemm_f32(int64_t m, int64_t n, int64_t k, float alpha, const GemmOperand& a,
              const GemmOperand& b, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, 0.0f);
    return;
  }
  const int64_t kc_max = std::min(k, kKC);
  Buffer a_pack = aligned_floats(ceil_div(m, kMR) * kMR * kc_max);
  Buffer b_pack = aligned_floats(ceil_div(std::min(n, kNC), kNR) * kNR * kc_max);
  for (int64_t j0 = 0; j0 < n; j0 += kNC) {
    const int64_t nc = std::min(kNC, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKC) {
      const int64_t kc = std::min(kKC, k - p0);
      const bool acc = accumulate || p0 > 0;
      pack_b(b, p0, kc, j0, nc, b_pack.get());
      pack_a(a, 0, m, p0, kc, a_pack.get());
      const int64_t tiles_m = ceil_div(m, kTileM), tiles_n = ceil_div(nc, kTileN);
      parallel_for(0, tiles_m * tiles_n, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t ti = t / tiles_n, tj = t % tiles_n;
          const int64_t i_end = std::min(m, (ti + 1) * kTileM);
          const int64_t j_end = std::min(nc, (tj + 1) * kTileN);
          for (int64_t i = ti * kTileM; i < i_end; i += kMR) {
            const float* as = a_pack.get() + (i / kMR) * kc * kMR;
            for (int64_t j = tj * kTileN; j < j_end; j += kNR) {
              micro_kernel(kc, as, b_pack.get() + (j / kNR) * kc * kNR, c + i * ldc + j0 + j, ldc,
                           std::min(kMR, m - i), std::min(kNR, nc - j), alpha, acc);
            }
          }
        }
      });
    }
  }
}

}  // namespace mindiesd::cpu
