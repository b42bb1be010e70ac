// Checks the tensor-core attention kernel (flash_attention.cuh) on a machine WITHOUT a GPU: each
// block runs thread by thread in the warp emulator (warp_emulator.h) with the same body the GPU
// runs, and every output is compared with a float64 reference computed from the same 16-bit
// inputs, within the attention tolerance of tests/tolerance.h. The cases cover both head dims,
// both dtypes, both block sizes, causal with Sq <, = and > Sk (rows that see no key), partial
// tiles, GQA, (B, S, H, D) strided views, logits large enough to move the running max, and the
// block-sparse form (a kept-block mask with query / key blocks of 64-256, rows keeping nothing).
//
// What this cannot check is the hardware itself (instruction semantics beyond the documented
// fragment layouts, timing, races the lockstep schedule hides); the CUDA harness tests do that on
// a GPU.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mindiesd/kernel/cuda/emulation/warp_emulator.h"
#include "mindiesd/kernel/cuda/flash_attention.cuh"
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
  int d;
  int warps;
  bool causal;
  int64_t batch, hq, hkv, sq, sk;
  bool bshd;  // (B, S, H, D) storage viewed as (B, H, S, D)
  float scale;
  int64_t block_q = 0, block_k = 0;  // block-sparse with a random kept-block mask; 0: dense
};

template <typename T, int D, int kWarps, bool kCausal>
void run_blocks(const FlashArgs& a) {
  using Tile = FlashTile<D, kWarps>;
  BlockEmulator emu(Tile::kThreads, Tile::kSmemBytes);
  const int64_t q_blocks = (a.sq + Tile::kBr - 1) / Tile::kBr;
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t h = 0; h < a.hq; ++h) {
      for (int64_t qb = 0; qb < q_blocks; ++qb) {
        emu.run([&](int tid) {
          EmulatedWarpOps<T> ops{&emu};
          flash_attention_block<T, D, kWarps, kCausal>(a, ops, qb, h, b, tid, emu.smem());
        });
      }
    }
  }
}

template <typename T, int D>
void run_warps(const Case& c, const FlashArgs& a) {
  if (c.warps == 4) {
    c.causal ? run_blocks<T, D, 4, true>(a) : run_blocks<T, D, 4, false>(a);
  } else {
    c.causal ? run_blocks<T, D, 8, true>(a) : run_blocks<T, D, 8, false>(a);
  }
}

template <typename T>
void run_dims(const Case& c, const FlashArgs& a) {
  c.d == 64 ? run_warps<T, 64>(c, a) : run_warps<T, 128>(c, a);
}

// A (B, H, S, D) tensor of 16-bit values, stored BHSD or BSHD, with the values as doubles.
struct Operand {
  std::vector<uint16_t> bits;
  std::vector<double> value;  // logical (B, H, S, D) order
  int64_t stride[3];          // B, H, S
};

Operand make_operand(const Case& c, int64_t heads, int64_t seq, std::mt19937& rng, float range,
                     bool fill) {
  Operand o;
  const int64_t d = c.d;
  o.bits.assign(static_cast<size_t>(c.batch * heads * seq * d), 0x7fff);  // NaN: unwritten
  o.value.assign(o.bits.size(), 0.0);
  if (c.bshd) {
    o.stride[0] = seq * heads * d, o.stride[1] = d, o.stride[2] = heads * d;
  } else {
    o.stride[0] = heads * seq * d, o.stride[1] = seq * d, o.stride[2] = d;
  }
  std::uniform_real_distribution<float> u(-range, range);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t s = 0; s < seq; ++s)
        for (int64_t e = 0; e < d; ++e) {
          const size_t at =
              static_cast<size_t>(b * o.stride[0] + h * o.stride[1] + s * o.stride[2] + e);
          const size_t logical = static_cast<size_t>(((b * heads + h) * seq + s) * d + e);
          if (!fill) continue;
          const float x = u(rng);
          o.bits[at] = c.dtype == DType::bf16 ? f32_to_bf16(x) : f32_to_f16(x);
          o.value[logical] =
              c.dtype == DType::bf16 ? bf16_to_f32(o.bits[at]) : f16_to_f32(o.bits[at]);
        }
  return o;
}

void check_case(const Case& c, uint32_t seed) {
  ++g_cases;
  std::mt19937 rng(seed);
  Operand q = make_operand(c, c.hq, c.sq, rng, 2.0f, true);
  Operand k = make_operand(c, c.hkv, c.sk, rng, 2.0f, true);
  Operand v = make_operand(c, c.hkv, c.sk, rng, 2.0f, true);
  Operand out = make_operand(c, c.hq, c.sq, rng, 0.0f, false);

  FlashArgs a{};
  a.q = q.bits.data();
  a.k = k.bits.data();
  a.v = v.bits.data();
  a.out = out.bits.data();
  for (int i = 0; i < 3; ++i) {
    a.q_stride[i] = q.stride[i];
    a.k_stride[i] = k.stride[i];
    a.v_stride[i] = v.stride[i];
    a.o_stride[i] = out.stride[i];
  }
  a.batch = c.batch, a.hq = c.hq, a.hkv = c.hkv, a.sq = c.sq, a.sk = c.sk;
  a.scale = c.scale;
  a.causal = c.causal;
  // Block-sparse: about half the blocks kept, (B, H, nQ, nK) dense; query block 1 keeps none.
  std::vector<uint8_t> blocks;
  const int64_t nqb = c.block_q ? (c.sq + c.block_q - 1) / c.block_q : 0;
  const int64_t nkb = c.block_k ? (c.sk + c.block_k - 1) / c.block_k : 0;
  if (c.block_q) {
    blocks.resize(static_cast<size_t>(c.batch * c.hq * nqb * nkb));
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = (rng() & 1) ? 1 : 0;
    for (int64_t bh = 0; bh < c.batch * c.hq && nqb > 1; ++bh)
      for (int64_t j = 0; j < nkb; ++j) blocks[static_cast<size_t>((bh * nqb + 1) * nkb + j)] = 0;
    a.block_mask = blocks.data();
    a.bm_stride[0] = c.hq * nqb * nkb, a.bm_stride[1] = nqb * nkb, a.bm_stride[2] = nkb,
    a.bm_stride[3] = 1;
    a.block_q = c.block_q, a.block_k = c.block_k;
  }
  auto visible = [&](int64_t b, int64_t h, int64_t i, int64_t j) {
    return blocks.empty() ||
           blocks[static_cast<size_t>(((b * c.hq + h) * nqb + i / c.block_q) * nkb + j / c.block_k)];
  };
  if (c.dtype == DType::bf16) {
    run_dims<__nv_bfloat16>(c, a);
  } else {
    run_dims<__half>(c, a);
  }

  const test::Tolerance tol = test::tolerance(c.dtype, test::OpClass::attention);
  const int64_t d = c.d;
  double worst = 0.0;
  int64_t bad = 0;
  std::vector<double> logit(static_cast<size_t>(c.sk));
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.hq; ++h) {
      const int64_t hk = h / (c.hq / c.hkv);
      for (int64_t i = 0; i < c.sq; ++i) {
        const int64_t last = c.causal ? std::min(c.sk, i + (c.sk - c.sq) + 1) : c.sk;
        const double* qi = &q.value[static_cast<size_t>(((b * c.hq + h) * c.sq + i) * d)];
        double mx = -INFINITY;
        for (int64_t j = 0; j < last; ++j) {
          if (!visible(b, h, i, j)) {
            logit[static_cast<size_t>(j)] = -INFINITY;
            continue;
          }
          const double* kj = &k.value[static_cast<size_t>(((b * c.hkv + hk) * c.sk + j) * d)];
          double dot = 0.0;
          for (int64_t e = 0; e < d; ++e) dot += qi[e] * kj[e];
          logit[static_cast<size_t>(j)] = dot * c.scale;
          mx = std::max(mx, logit[static_cast<size_t>(j)]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < last; ++j)
          if (mx != -INFINITY) sum += std::exp(logit[static_cast<size_t>(j)] - mx);
        for (int64_t e = 0; e < d; ++e) {
          double ref = 0.0;
          for (int64_t j = 0; j < last && sum > 0.0; ++j) {
            ref += std::exp(logit[static_cast<size_t>(j)] - mx) / sum *
                   v.value[static_cast<size_t>(((b * c.hkv + hk) * c.sk + j) * d + e)];
          }
          const uint16_t got_bits = out.bits[static_cast<size_t>(
              b * out.stride[0] + h * out.stride[1] + i * out.stride[2] + e)];
          const double got = c.dtype == DType::bf16 ? bf16_to_f32(got_bits) : f16_to_f32(got_bits);
          const double err = std::fabs(got - ref);
          if (!(err <= tol.atol + tol.rtol * std::fabs(ref))) {
            if (bad++ < 3) {
              std::printf("    (b %ld, h %ld, row %ld, d %ld): got %.6g want %.6g\n",
                          static_cast<long>(b), static_cast<long>(h), static_cast<long>(i),
                          static_cast<long>(e), got, ref);
            }
          }
          if (err > worst || err != err) worst = err;
        }
      }
    }
  }
  std::printf("%s %s d%d warps %d%s B%ld Hq%ld Hkv%ld Sq%ld Sk%ld scale %.3g%s: max |err| %.3g%s\n",
              bad ? "FAIL" : "ok  ", c.dtype == DType::bf16 ? "bf16" : "f16 ", c.d, c.warps,
              c.causal ? " causal" : "", static_cast<long>(c.batch), static_cast<long>(c.hq),
              static_cast<long>(c.hkv), static_cast<long>(c.sq), static_cast<long>(c.sk), c.scale,
              c.block_q ? (" block-sparse " + std::to_string(c.block_q) + "x" + std::to_string(c.block_k)).c_str() : "",
              worst, c.bshd ? " (BSHD views)" : "");
  if (bad) ++g_failures;
}

}  // namespace
}  // namespace mindiesd::cuda

int main() {
  using mindiesd::DType;
  using mindiesd::cuda::Case;
  const float s64 = 0.125f, s128 = 0.08838834764831845f;
  const Case cases[] = {
      // one full tile and block
      {DType::bf16, 128, 4, false, 1, 1, 1, 64, 64, false, s128},
      // partial tiles on both sides, several key tiles, both causal forms
      {DType::bf16, 128, 4, false, 1, 2, 2, 77, 130, false, s128},
      {DType::bf16, 128, 4, true, 1, 2, 2, 77, 130, false, s128},
      {DType::f16, 128, 8, true, 1, 1, 1, 150, 150, false, s128},
      // Sq > Sk causal: the first rows see no key and write zeros
      {DType::bf16, 64, 8, true, 1, 1, 1, 130, 40, false, s64},
      // GQA, more keys than queries, f16
      {DType::f16, 64, 4, false, 1, 4, 2, 33, 200, false, s64},
      // strided (B, S, H, D) views, batch 2
      {DType::bf16, 64, 4, false, 2, 3, 3, 70, 90, true, s64},
      {DType::f16, 128, 8, true, 2, 2, 1, 20, 140, true, s128},
      // one query, one key
      {DType::bf16, 64, 8, false, 1, 1, 1, 1, 1, false, s64},
      // large logits: the running max moves from tile to tile
      {DType::bf16, 64, 4, false, 1, 1, 1, 40, 260, false, 1.0f},
      // block-sparse: 128 x 128 blocks over partial tiles, GQA and BSHD views; 64 x 192; 256-row
      // query blocks with 8 warps
      {DType::bf16, 128, 4, false, 1, 2, 1, 300, 333, false, s128, 128, 128},
      {DType::f16, 64, 4, false, 2, 2, 2, 200, 450, true, s64, 64, 192},
      {DType::bf16, 64, 8, false, 1, 1, 1, 512, 300, false, s64, 256, 64},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) mindiesd::cuda::check_case(c, seed++);
  std::printf("%d cases, %d failed\n", mindiesd::cuda::g_cases, mindiesd::cuda::g_failures);
  return mindiesd::cuda::g_failures == 0 ? 0 : 1;
}
