// GEMM at DiT shapes: achieved GFLOP/s, the fraction of this machine's measured peak, and
// PyTorch CPU on the same shapes in the same run (benchmark/torch_gemm.py).
//
//   bench_gemm [--shapes MxNxK,...] [--reps N] [--python PATH] [--no-peer]
// C[M,N] = A[M,K] @ B[K,N], all operands contiguous, the output in the input dtype.
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

namespace {

struct Shape3 {
  int64_t m, n, k;
};

std::vector<Shape3> parse_shapes(const std::string& s) {
  std::vector<Shape3> out;
  size_t at = 0;
  while (at < s.size()) {
    const size_t end = std::min(s.find(',', at), s.size());
    Shape3 sh{};
    if (std::sscanf(s.substr(at, end - at).c_str(), "%ldx%ldx%ld", &sh.m, &sh.n, &sh.k) != 3) {
      std::fprintf(stderr, "bad shape '%s' (want MxNxK)\n", s.substr(at, end - at).c_str());
      std::exit(2);
    }
    out.push_back(sh);
    at = end + 1;
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::map<std::string, double> run_torch(const std::string& python, const std::string& shapes, int reps) {
  std::map<std::string, double> result;
  const std::string args = "--shapes " + mindiesd::bench::as_args(shapes) +
                           " --dtypes f32 bf16 --warmup 1 --repeats " + std::to_string(reps) +
                           " --threads " + std::to_string(mindiesd::num_threads());
  for (const auto& j : mindiesd::bench::run_peer(python, "torch_gemm.py", args))
    result[std::to_string(j.value("m", 0L)) + "x" + std::to_string(j.value("n", 0L)) + "x" +
           std::to_string(j.value("k", 0L)) + "/" + j.value("dtype", std::string())] =
        j["seconds"].get<double>();
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mindiesd;
  std::string shapes = "4096x3072x3072,4608x3072x12288";
  std::string python = bench::default_python();
  int reps = 5;
  bool peer = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--python" && i + 1 < argc) python = argv[++i];
    else if (a == "--no-peer") peer = false;
    else {
      std::fprintf(stderr, "usage: bench_gemm [--shapes MxNxK,...] [--reps N] [--python PATH] [--no-peer]\n");
      return 2;
    }
  }
  const double peak_f32 = bench::peak_f32_flops();
  const double peak_bf16 = bench::peak_bf16_flops();
  std::printf("threads %d; measured peak: f32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n", num_threads(),
              peak_f32 / 1e9, peak_bf16 / 1e9);

  struct Row {
    std::string key;
    double secs, flops;
  };
  std::vector<Row> rows;
  for (const Shape3& s : parse_shapes(shapes)) {
    for (DType t : {DType::f32, DType::bf16}) {
      const Tensor a = ops::randn({s.m, s.k}, 1).to(t);
      const Tensor b = ops::randn({s.k, s.n}, 2).to(t);
      (void)ops::matmul(a, b);  // warm-up: oneDNN JIT and first-touch pages
      std::vector<double> times;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const Tensor c = ops::matmul(a, b);
        times.push_back(bench::seconds_since(t0));
      }
      const std::string key = std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                              std::to_string(s.k) + "/" + (t == DType::f32 ? "f32" : "bf16");
      rows.push_back({key, median(times), 2.0 * s.m * s.n * s.k});
    }
  }
  std::map<std::string, double> torch;
  if (peer) torch = run_torch(python, shapes, reps);

  std::printf("\n%-22s %10s %10s %8s %12s %8s\n", "shape/dtype", "ms", "GFLOP/s", "%peak",
              "torch GFLOP/s", "ratio");
  for (const Row& r : rows) {
    const double gf = r.flops / r.secs / 1e9;
    const bool bf = r.key.ends_with("bf16");
    const double pk = (bf && peak_bf16 > 0 ? peak_bf16 : peak_f32) / 1e9;
    const auto it = torch.find(r.key);
    if (it != torch.end()) {
      const double tg = r.flops / it->second / 1e9;
      std::printf("%-22s %10.1f %10.1f %7.1f%% %12.1f %7.2fx\n", r.key.c_str(), r.secs * 1e3, gf,
                  100 * gf / pk, tg, gf / tg);
    } else {
      std::printf("%-22s %10.1f %10.1f %7.1f%% %12s %8s\n", r.key.c_str(), r.secs * 1e3, gf,
                  100 * gf / pk, "-", "-");
    }
  }
  return 0;
}
