// Checks the tensor-core grouped GEMM (grouped_gemm.cuh) on a machine WITHOUT a GPU: every block
// of the launch grid runs thread by thread in the warp emulator (warp_emulator.h) with the body
// the GPU runs, and every output is compared with a float64 product of the same 16-bit inputs,
// within the matmul tolerance of tests/tolerance.h. The cases cover empty groups, groups smaller
// than a tile and spanning several, N and K that are not multiples of the 64-wide tiles, strided
// rows, f32 and 16-bit outputs, and offsets outside [0, R] (clamped, nothing read out of range).
// Rows outside every group must stay untouched (the op zero-fills them before the launch).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "mindiesd/kernel/cuda/emulation/warp_emulator.h"
#include "mindiesd/kernel/cuda/grouped_gemm.cuh"
#include "tests/tolerance.h"

#if !defined(MINDIESD_CUDA_EMULATE)
#error "build with -DMINDIESD_CUDA_EMULATE"
#endif

namespace mindiesd::cuda {
namespace {

using emulation::BlockEmulator;
using emulation::EmulatedWarpOps;

int g_failures = 0;
int g_cases = 0;

struct Case {
  DType dtype;
  bool f32_out;
  int64_t n, k;
  std::vector<int64_t> offsets;  // E + 1 entries
  int64_t row_pad = 0;           // extra elements at the end of each x / out row
  int64_t rows = 0;              // R; 0: the largest offset
};

template <typename T, typename OutT>
void run_grid(const GroupedGemmArgs& a) {
  BlockEmulator emu(GroupedGemmTile::kThreads, GroupedGemmTile::kSmemBytes);
  const int64_t tiles = GroupedGemmTile::max_row_tiles(a.rows, a.groups);
  const int64_t n_blocks = (a.n + GroupedGemmTile::kBn - 1) / GroupedGemmTile::kBn;
  // Blocks run in any order on a GPU; last tile first here, so that a tile writing rows of the
  // group after it is not hidden by that group's tile running later.
  for (int64_t nb = 0; nb < n_blocks; ++nb) {
    for (int64_t t = tiles - 1; t >= 0; --t) {
      emu.run([&](int tid) {
        EmulatedWarpOps<T> ops{&emu};
        grouped_gemm_block<T, OutT>(a, ops, nb, t, tid, emu.smem());
      });
    }
  }
}

void check_case(const Case& c, uint32_t seed) {
  ++g_cases;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t groups = static_cast<int64_t>(c.offsets.size()) - 1;
  int64_t rows = c.rows;
  for (int64_t o : c.offsets) rows = c.rows ? rows : std::max(rows, o);
  const bool bf = c.dtype == DType::bf16;
  auto round16 = [&](float v, uint16_t& bits) {
    bits = bf ? f32_to_bf16(v) : f32_to_f16(v);
    return static_cast<double>(bf ? bf16_to_f32(bits) : f16_to_f32(bits));
  };
  const int64_t xs = c.k + c.row_pad, os = c.n + c.row_pad;
  std::vector<uint16_t> x(static_cast<size_t>(rows * xs), 0x7fff), w(groups * c.n * c.k);
  std::vector<double> xv(rows * c.k), wv(w.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < c.k; ++k) xv[r * c.k + k] = round16(u(rng), x[r * xs + k]);
  for (size_t i = 0; i < w.size(); ++i) wv[i] = round16(u(rng), w[i]);
  const float sentinel = 12345.0f;
  std::vector<float> out32(static_cast<size_t>(rows * os), sentinel);
  uint16_t sentinel16;
  round16(sentinel, sentinel16);
  std::vector<uint16_t> out16(static_cast<size_t>(rows * os), sentinel16);

  GroupedGemmArgs a{};
  a.x = x.data();
  a.w = w.data();
  a.offsets = c.offsets.data();
  a.out = c.f32_out ? static_cast<void*>(out32.data()) : static_cast<void*>(out16.data());
  a.x_stride = xs;
  a.w_stride[0] = c.n * c.k;
  a.w_stride[1] = c.k;
  a.out_stride = os;
  a.rows = rows, a.n = c.n, a.k = c.k, a.groups = groups;
  if (bf) {
    c.f32_out ? run_grid<__nv_bfloat16, float>(a) : run_grid<__nv_bfloat16, __nv_bfloat16>(a);
  } else {
    c.f32_out ? run_grid<__half, float>(a) : run_grid<__half, __half>(a);
  }

  // The group of each row under the kernel's clamping; -1: none.
  std::vector<int64_t> group_of(rows, -1);
  int64_t end = 0;
  for (int64_t e = 0; e < groups; ++e) {
    int64_t b;
    grouped_gemm_group_rows(a, e, end, b, end);
    for (int64_t r = b; r < end; ++r) group_of[r] = e;
  }
  const test::Tolerance tol =
      test::tolerance(c.f32_out ? DType::f32 : c.dtype, test::OpClass::matmul);
  double worst = 0.0;
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < os; ++j) {
      const double got = c.f32_out ? out32[r * os + j]
                                   : (bf ? bf16_to_f32(out16[r * os + j])
                                         : f16_to_f32(out16[r * os + j]));
      const int64_t e = group_of[r];
      double want = sentinel;  // padding and rows of no group: untouched
      if (e >= 0 && j < c.n) {
        want = 0.0;
        for (int64_t k = 0; k < c.k; ++k) want += xv[r * c.k + k] * wv[(e * c.n + j) * c.k + k];
      }
      const double err = std::fabs(got - want);
      if (!(err <= tol.atol + tol.rtol * std::fabs(want))) {
        if (bad++ < 3)
          std::printf("    (row %ld, col %ld, group %ld): got %.6g want %.6g\n",
                      static_cast<long>(r), static_cast<long>(j), static_cast<long>(e), got, want);
      }
      if (want != sentinel && (err > worst || err != err)) worst = err;
    }
  }
  std::printf("%s %s -> %s R%ld N%ld K%ld groups %ld%s: max |err| %.3g\n", bad ? "FAIL" : "ok  ",
              bf ? "bf16" : "f16 ", c.f32_out ? "f32 " : (bf ? "bf16" : "f16 "),
              static_cast<long>(rows), static_cast<long>(c.n), static_cast<long>(c.k),
              static_cast<long>(groups), c.row_pad ? " (padded rows)" : "", worst);
  if (bad) ++g_failures;
}

}  // namespace
}  // namespace mindiesd::cuda

int main() {
  using mindiesd::DType;
  using mindiesd::cuda::Case;
  const Case cases[] = {
      // one group, one full tile
      {DType::bf16, true, 64, 64, {0, 64}},
      // empty groups, a 1-row group, a group spanning three tiles; N, K past the tiles
      {DType::bf16, true, 72, 136, {0, 0, 1, 1, 150, 170, 170}},
      {DType::f16, false, 40, 24, {0, 30, 100, 101}},
      {DType::bf16, false, 130, 72, {0, 65, 65, 129}, 8},
      {DType::f16, true, 8, 8, {0, 3, 5}, 16},
      // rows before the first offset and after the last belong to no group
      {DType::bf16, true, 64, 64, {10, 40, 60}, 0, 100},
      // offsets outside [0, R] and decreasing: clamped into disjoint ascending groups
      {DType::f16, true, 24, 32, {-5, 20, 7, 400}, 0, 300},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) mindiesd::cuda::check_case(c, seed++);
  std::printf("%d cases, %d failed\n", mindiesd::cuda::g_cases, mindiesd::cuda::g_failures);
  return mindiesd::cuda::g_failures == 0 ? 0 : 1;
}
