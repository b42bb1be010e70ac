// CPU attention at DiT shapes: GFLOP/s (4 * B * H * Sq * Sk * D), the fraction of the measured
// f32 FMA peak (the kernel computes in f32 whatever the storage dtype), and PyTorch CPU
// scaled_dot_product_attention on the same shapes in the same run (benchmark/torch_attention.py).
//
//   bench_attention [--shapes BxHxSxD,...] [--dtypes f32,bf16] [--reps N] [--python PATH] [--no-peer]
// Layout BSND as diffusers' FLUX/Wan attention processors hold q/k/v; self-attention Sq = Sk.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "machine_peak.h"
#include "peer.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/parallel.h"
#include "mindiesd/layer/attention.h"

namespace {

struct Problem {
  int64_t b, h, s, d;
  std::string key() const {
    return std::to_string(b) + "x" + std::to_string(h) + "x" + std::to_string(s) + "x" + std::to_string(d);
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace mindiesd;
  std::string shapes = "1x24x4608x128,1x12x32760x128", dtypes = "f32,bf16";
  std::string python = bench::default_python();
  int reps = 3;
  bool peer = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
    else if (a == "--dtypes" && i + 1 < argc) dtypes = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--python" && i + 1 < argc) python = argv[++i];
    else if (a == "--no-peer") peer = false;
    else {
      std::fprintf(stderr, "usage: bench_attention [--shapes BxHxSxD,...] [--dtypes f32,bf16] [--reps N] [--python PATH] [--no-peer]\n");
      return 2;
    }
  }
  std::vector<Problem> problems;
  for (const std::string& s : bench::split_list(shapes)) {
    Problem p{};
    if (std::sscanf(s.c_str(), "%ldx%ldx%ldx%ld", &p.b, &p.h, &p.s, &p.d) != 4) {
      std::fprintf(stderr, "bad shape '%s' (want BxHxSxD)\n", s.c_str());
      return 2;
    }
    problems.push_back(p);
  }
  const double peak = bench::peak_f32_flops();
  std::printf("threads %d; measured f32 FMA peak %.1f GFLOP/s\n", num_threads(), peak / 1e9);

  struct Row {
    std::string key;
    double secs, flops;
  };
  std::vector<Row> rows;
  for (const Problem& p : problems) {
    for (const std::string& dn : bench::split_list(dtypes)) {
      DType t;
      if (!dtype_from_name(dn, &t)) return 2;
      const Tensor q = ops::randn({p.b, p.s, p.h, p.d}, 1).to(t);
      const Tensor k = ops::randn({p.b, p.s, p.h, p.d}, 2).to(t);
      const Tensor v = ops::randn({p.b, p.s, p.h, p.d}, 3).to(t);
      std::vector<double> times;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const Tensor o = layer::attention_forward(q, k, v);
        times.push_back(bench::seconds_since(t0));
      }
      std::sort(times.begin(), times.end());
      rows.push_back({p.key() + "/" + dn, times[times.size() / 2], 4.0 * p.b * p.h * p.s * p.s * p.d});
      std::printf("  %s/%s: %.3f s\n", p.key().c_str(), dn.c_str(), rows.back().secs);
      std::fflush(stdout);
    }
  }
  std::map<std::string, double> torch;
  if (peer) {
    std::string args = "--threads " + std::to_string(num_threads()) + " --reps " +
                       std::to_string(reps) + " --dtypes " + bench::as_args(dtypes) + " --shapes";
    for (const Problem& p : problems) args += " " + p.key();
    for (const auto& j : bench::run_peer(python, "torch_attention.py", args))
      torch[j.value("shape", std::string()) + "/" + j.value("dtype", std::string())] =
          j["seconds"].get<double>();
  }
  std::printf("\n%-26s %9s %10s %8s %14s %8s\n", "BxHxSxD/dtype", "s", "GFLOP/s", "%peak", "torch GFLOP/s", "ratio");
  for (const Row& r : rows) {
    const double gf = r.flops / r.secs / 1e9;
    const auto it = torch.find(r.key);
    if (it != torch.end()) {
      const double tg = r.flops / it->second / 1e9;
      std::printf("%-26s %9.3f %10.1f %7.1f%% %14.1f %7.2fx\n", r.key.c_str(), r.secs, gf, 100 * gf * 1e9 / peak, tg, gf / tg);
    } else {
      std::printf("%-26s %9.3f %10.1f %7.1f%% %14s %8s\n", r.key.c_str(), r.secs, gf, 100 * gf * 1e9 / peak, "-", "-");
    }
  }
  return 0;
}
