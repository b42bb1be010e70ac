// Sparse attention on the CPU at DiT shapes, measured against the dense kernel in the same run:
// for each sparse type and sparsity, the block-sparse kernel's time on the mask the estimator
// chose, its speedup over dense, the target 0.8 / density (near-linear in kept blocks), the
// estimator's own time (scores + selection), the kept fraction, the relative RMS error of the
// output against dense, and the kernel's effective GFLOP/s (the kept pairs' FLOPs) as a fraction
// of the measured f32 FMA peak.
//
//   bench_sparse [--shapes BxHxTxHxW+TXT,...] [--sparsity 0.5,0.7,0.8,0.9] [--types rf,ada_bsa]
//                [--dtype bf16|f32] [--block 128] [--reps N] [--wan-layers L [--frames F]]
// --wan-layers: also one transformer forward (a denoising step, batch 1) of Wan2.1-T2V-1.3B's
// width (12 x 128 heads, FFN 8960, random N(0, 0.02) bf16 weights) with L blocks at 832 x 480 x F
// frames (default 81), dense and through the SparseAttention policy at each type and sparsity.
// Defaults: FLUX 1024^2 (1 x 64 x 64 image tokens + 512 text = 4,608) and Wan2.1 480p 81 frames
// (21 x 30 x 52 = 32,760), 2 heads of 128 each (time is linear in heads; the real models have
// 24 and 12). Inputs are random normal: their scores are flatter than a trained model's, so the
// error column is pessimistic; quality is measured on real pipelines (tests, benchmark notes).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "machine_peak.h"
#include "peer.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/parallel.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/sparse_attention.h"
#include "mindiesd/sparse/sparse_attention_policy.h"
#include "random_weights.h"

namespace {

using namespace mindiesd;

struct Shape5 {
  int64_t b, h, t, rows, cols, txt;
  int64_t tokens() const { return txt + t * rows * cols; }
};

template <typename F>
double best_of(int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

double rel_rms(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to(DType::f32).contiguous().to_vector(),
                           y = b.to(DType::f32).contiguous().to_vector();
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "1x2x1x64x64+512,1x2x21x30x52+0", sparsities = "0.5,0.7,0.8,0.9",
              types = "rf,ada_bsa", dtype_name = "bf16";
  int64_t block = 128, wan_layers = 0, frames = 81;
  int reps = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
    else if (a == "--sparsity" && i + 1 < argc) sparsities = argv[++i];
    else if (a == "--types" && i + 1 < argc) types = argv[++i];
    else if (a == "--dtype" && i + 1 < argc) dtype_name = argv[++i];
    else if (a == "--block" && i + 1 < argc) block = std::atol(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--wan-layers" && i + 1 < argc) wan_layers = std::atol(argv[++i]);
    else if (a == "--frames" && i + 1 < argc) frames = std::atol(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: bench_sparse [--shapes BxHxTxHxW+TXT,...] [--sparsity S,...] "
                   "[--types rf,ada_bsa] [--dtype bf16|f32] [--block 128] [--reps N] "
                   "[--wan-layers L [--frames F]]\n");
      return 2;
    }
  }
  const DType dt = dtype_name == "f32" ? DType::f32 : DType::bf16;
  const double peak = bench::peak_f32_flops();
  std::printf("threads %d; measured f32 FMA peak %.1f GFLOP/s; %s, head_dim 128, blocks of %ld\n",
              num_threads(), peak / 1e9, dtype_name.c_str(), static_cast<long>(block));
  for (const std::string& spec : bench::split_list(shapes)) {
    Shape5 s{};
    if (std::sscanf(spec.c_str(), "%ldx%ldx%ldx%ldx%ld+%ld", &s.b, &s.h, &s.t, &s.rows, &s.cols,
                    &s.txt) != 6) {
      std::fprintf(stderr, "bad shape '%s' (want BxHxTxHxW+TXT)\n", spec.c_str());
      return 2;
    }
    const int64_t n = s.tokens(), d = 128;
    const Tensor q = ops::randn({s.b, n, s.h, d}, 1).to(dt), k = ops::randn({s.b, n, s.h, d}, 2).to(dt),
                 v = ops::randn({s.b, n, s.h, d}, 3).to(dt);
    const double flops = 4.0 * s.b * s.h * double(n) * double(n) * d;
    Tensor dense_out;
    const double dense_s = best_of(reps, [&] { dense_out = layer::attention_forward(q, k, v); });
    std::printf("\n%s: %ld tokens (grid %ld x %ld x %ld, text %ld), %ld heads\n", spec.c_str(),
                static_cast<long>(n), static_cast<long>(s.t), static_cast<long>(s.rows),
                static_cast<long>(s.cols), static_cast<long>(s.txt), static_cast<long>(s.h));
    std::printf("  dense: %.3f s, %.1f GFLOP/s (%.0f%% of peak)\n", dense_s, flops / dense_s / 1e9,
                100.0 * flops / dense_s / peak);
    std::printf("  %-8s %8s %7s %9s %7s %8s %9s %10s %7s %8s\n", "type", "sparsity", "kept",
                "kernel s", "speedup", "target", "estim. s", "e2e speed", "rel RMS", "eff.peak");
    for (const std::string& type_name : bench::split_list(types)) {
      for (const std::string& sp : bench::split_list(sparsities)) {
        layer::SparseAttentionOptions o;
        o.sparse_type = layer::parse_sparse_type(type_name);
        o.txt_len = s.txt;
        o.block_size = block;
        o.latent_shape_q = o.latent_shape_k = {s.t, s.rows, s.cols};
        o.sparsity = std::atof(sp.c_str());
        // The pieces, timed apart: reordering (three gathers and one un-gather), estimation,
        // the kernel; and the whole call.
        const Tensor perm = layer::tile_permutation(s.txt, o.latent_shape_q, block);
        const Tensor qp = ops::index_select(q, 1, perm), kp = ops::index_select(k, 1, perm),
                     vp = ops::index_select(v, 1, perm);
        Tensor mask;
        const double est_s = best_of(reps, [&] { mask = layer::block_mask(qp, kp, o); });
        const double kernel_s =
            best_of(reps, [&] { layer::block_sparse_attention(qp, kp, vp, mask, block, block); });
        Tensor out;
        const double total_s = best_of(reps, [&] { out = layer::sparse_attention(q, k, v, o); });
        const double kept = layer::mask_density(mask);
        std::printf("  %-8s %8.2f %6.1f%% %9.3f %6.2fx %7.2fx %9.3f %9.2fx %7.4f %7.0f%%\n",
                    type_name.c_str(), o.sparsity, 100.0 * kept, kernel_s, dense_s / kernel_s,
                    0.8 / kept, est_s, dense_s / total_s, rel_rms(out, dense_out),
                    100.0 * flops * kept / kernel_s / peak);
      }
    }
  }
  if (wan_layers > 0) {
    const models::WanTransformer3DModel wan = bench::random_wan_1_3b(wan_layers);
    models::WanForwardInputs in;
    const int64_t f = (frames - 1) / 4 + 1;
    in.hidden_states = ops::randn({1, 16, f, 60, 104}, 1).to(DType::bf16);
    in.encoder_hidden_states = ops::randn({1, 512, 4096}, 2).to(DType::bf16);
    in.timestep = ops::full({1}, 999.0, DType::i64);
    std::printf("\nWan2.1-T2V-1.3B width, %ld block(s), 832x480 x %ld frames (%ld x 30 x 52 = %ld "
                "tokens), one forward:\n",
                static_cast<long>(wan_layers), static_cast<long>(frames), static_cast<long>(f),
                static_cast<long>(f * 30 * 52));
    const double dense_s = best_of(reps, [&] { wan.forward(in); });
    std::printf("  dense: %.2f s\n", dense_s);
    std::printf("  %-8s %8s %7s %9s %8s\n", "type", "sparsity", "kept", "forward s", "speedup");
    for (const std::string& type_name : bench::split_list(types)) {
      for (const std::string& sp : bench::split_list(sparsities)) {
        sparse::SparseAttentionConfig c;
        c.type = layer::parse_sparse_type(type_name);
        c.sparsity = std::atof(sp.c_str());
        c.block_size = block;
        const sparse::SparseAttention policy(c);
        Context ctx;
        ctx.attention = &policy;
        const double s_sparse = best_of(reps, [&] { wan.forward(in, ctx); });
        std::printf("  %-8s %8.2f %6.1f%% %9.2f %7.2fx\n", type_name.c_str(), c.sparsity,
                    100.0 * policy.stats().mean_density(), s_sparse, dense_s / s_sparse);
      }
    }
  }
  return 0;
}
