// Norms at DiT shapes: achieved GB/s (bytes read + written), the fraction of this machine's
// measured copy bandwidth (memcpy, and a copy with non-temporal stores, which the kernels use
// for outputs of 16 MiB and more), and PyTorch CPU on the same shapes in the same run
// (benchmark/torch_norm.py).
//
//   bench_norm [--shapes BxSxC,...] [--dtypes f32,bf16] [--ops rms_norm,...] [--reps N]
//              [--python PATH] [--no-peer]
// x (B, S, C) contiguous, normalised over C; ops (mindiesd/layer/norm.h, PyTorch peer):
//   rms_norm    rms_norm(x, weight)                        diffusers RMSNorm
//   layer_norm  layer_norm(x), no affine                    F.layer_norm
//   adaln       layernorm_scale_shift(x, scale, shift),     LayerNorm(x) * (1 + scale[:, None])
//               scale / shift (B, C)                          + shift[:, None]
//   add_adaln   add_layer_norm(x, residual, ..., scale,     h = x + residual; adaln(h)
//               shift): the sum is written too
// Bytes count every tensor read and written once (x, residual, outputs, weight, modulation);
// PyTorch's unfused chains move more, but its GB/s uses the same count, so the ratio is a
// ratio of times.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "machine_peak.h"
#include "peer.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/parallel.h"
#include "mindiesd/layer/norm.h"

namespace {

struct Shape3 {
  int64_t b, s, c;
};

std::vector<Shape3> parse_shapes(const std::string& s) {
  std::vector<Shape3> out;
  size_t at = 0;
  while (at < s.size()) {
    const size_t end = std::min(s.find(',', at), s.size());
    Shape3 sh{};
    if (std::sscanf(s.substr(at, end - at).c_str(), "%ldx%ldx%ld", &sh.b, &sh.s, &sh.c) != 3 ||
        sh.b <= 0 || sh.s <= 0 || sh.c <= 0) {
      std::fprintf(stderr, "bad shape '%s' (want BxSxC)\n", s.substr(at, end - at).c_str());
      std::exit(2);
    }
    out.push_back(sh);
    at = end + 1;
  }
  return out;
}

std::string key_of(const Shape3& s, const std::string& dtype, const std::string& op) {
  return op + " " + std::to_string(s.b) + "x" + std::to_string(s.s) + "x" + std::to_string(s.c) +
         "/" + dtype;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Copy bandwidth with non-temporal stores (bytes/s, read + write counted), measured like
// bench::copy_bandwidth(). memcpy's normal stores also read each destination line first
// (write-allocate), so a kernel that streams its output, as the norms do above 16 MiB, can
// beat memcpy; this is the ceiling for such a kernel.
double stream_copy_bandwidth() {
  const size_t n = size_t{256} << 20;
  // Streaming stores need 64-byte-aligned destinations.
  std::unique_ptr<char, decltype(&std::free)> a(static_cast<char*>(std::aligned_alloc(64, n)),
                                                std::free);
  std::unique_ptr<char, decltype(&std::free)> b(static_cast<char*>(std::aligned_alloc(64, n)),
                                                std::free);
  if (!a || !b) return 0.0;
  std::memset(a.get(), 1, n);
  std::memset(b.get(), 0, n);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel
    {
      const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t lo = (n * t / nt) & ~size_t{63}, hi = (n * (t + 1) / nt) & ~size_t{63};
      char* dst = b.get();
      const char* src = a.get();
      for (size_t i = lo; i < hi; i += 64) {
#if defined(__AVX512F__)
        _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_loadu_si512(src + i));
#else
        for (size_t k = 0; k < 64; k += 32)
          _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + k),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + k)));
#endif
      }
      _mm_sfence();
    }
    best = std::max(best, 2.0 * n / mindiesd::bench::seconds_since(t0));
  }
  if (b.get()[12345] != 1) std::abort();
  return best;
}

std::map<std::string, double> run_torch(const std::string& python, const std::string& shapes,
                                        const std::string& dtypes, int reps) {
  std::map<std::string, double> result;
  const std::string args = "--shapes " + mindiesd::bench::as_args(shapes) + " --dtypes " +
                           mindiesd::bench::as_args(dtypes) + " --warmup 1 --repeats " +
                           std::to_string(reps) + " --threads " +
                           std::to_string(mindiesd::num_threads());
  for (const auto& j : mindiesd::bench::run_peer(python, "torch_norm.py", args)) {
    const Shape3 s{j.value("b", 0L), j.value("s", 0L), j.value("c", 0L)};
    result[key_of(s, j.value("dtype", std::string()), j.value("op", std::string()))] =
        j["seconds"].get<double>();
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mindiesd;
  std::string shapes = "1x4608x3072,4x4608x3072";  // FLUX 1024^2 tokens; 4x: beyond L3
  std::string python = bench::default_python();
  std::string dtypes = "f32,bf16";
  std::string op_list = "rms_norm,layer_norm,adaln,add_adaln";
  int reps = 10;
  bool peer = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shapes" && i + 1 < argc)
      shapes = argv[++i];
    else if (a == "--dtypes" && i + 1 < argc)
      dtypes = argv[++i];
    else if (a == "--ops" && i + 1 < argc)
      op_list = argv[++i];
    else if (a == "--reps" && i + 1 < argc)
      reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--python" && i + 1 < argc)
      python = argv[++i];
    else if (a == "--no-peer")
      peer = false;
    else {
      std::fprintf(stderr,
                   "usage: bench_norm [--shapes BxSxC,...] [--dtypes f32,bf16] "
                   "[--ops rms_norm,layer_norm,adaln,add_adaln] [--reps N] [--python PATH] "
                   "[--no-peer]\n");
      return 2;
    }
  }
  const double copy_bw = bench::copy_bandwidth();
  const double nt_bw = stream_copy_bandwidth();
  std::printf(
      "threads %d; measured copy bandwidth (read + write): memcpy %.1f GB/s, "
      "non-temporal copy %.1f GB/s\n",
      num_threads(), copy_bw / 1e9, nt_bw / 1e9);

  struct Row {
    std::string key;
    double secs, bytes;
  };
  std::vector<Row> rows;
  for (const Shape3& s : parse_shapes(shapes)) {
    for (DType t : {DType::f32, DType::bf16}) {
      const std::string dt = t == DType::f32 ? "f32" : "bf16";
      if (("," + dtypes + ",").find("," + dt + ",") == std::string::npos) continue;
      const Tensor x = ops::randn({s.b, s.s, s.c}, 1).to(t);
      const Tensor res = ops::randn({s.b, s.s, s.c}, 2).to(t);
      const Tensor w = ops::randn({s.c}, 3).to(t);
      const Tensor scale = ops::randn({s.b, s.c}, 4).to(t);
      const Tensor shift = ops::randn({s.b, s.c}, 5).to(t);
      const double xb = static_cast<double>(x.nbytes()), cb = static_cast<double>(w.nbytes());
      const std::pair<const char*, std::function<void()>> cases[] = {
          {"rms_norm", [&] { (void)layer::rms_norm(x, w, 1e-6f); }},
          {"layer_norm", [&] { (void)layer::layer_norm(x, Tensor(), Tensor(), 1e-6f); }},
          {"adaln", [&] { (void)layer::layernorm_scale_shift(x, scale, shift, 1e-6f); }},
          {"add_adaln",
           [&] { (void)layer::add_layer_norm(x, res, Tensor(), Tensor(), 1e-6f, scale, shift); }},
      };
      for (const auto& [op, fn] : cases) {
        const std::string name = op;
        if (("," + op_list + ",").find("," + name + ",") == std::string::npos) continue;
        double bytes = 2 * xb;  // x in, y out
        if (name == "rms_norm") bytes += cb;
        if (name == "adaln" || name == "add_adaln") bytes += 2 * s.b * cb;
        if (name == "add_adaln") bytes += 2 * xb;  // residual in, sum out
        fn();  // warm-up: first-touch pages of the output, allocator caches
        std::vector<double> times;
        for (int r = 0; r < reps; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          fn();
          times.push_back(bench::seconds_since(t0));
        }
        rows.push_back({key_of(s, dt, name), median(times), bytes});
      }
    }
  }
  std::map<std::string, double> torch;
  if (peer) torch = run_torch(python, shapes, dtypes, reps);

  std::printf("\n%-28s %8s %8s %8s %8s %10s %8s\n", "op shape/dtype", "ms", "GB/s", "%memcpy",
              "%nt-copy", "torch GB/s", "ratio");
  for (const Row& r : rows) {
    const double bps = r.bytes / r.secs;
    std::printf("%-28s %8.2f %8.1f %7.1f%% %7.1f%%", r.key.c_str(), r.secs * 1e3, bps / 1e9,
                100 * bps / copy_bw, 100 * bps / nt_bw);
    const auto it = torch.find(r.key);
    if (it != torch.end()) {
      std::printf(" %10.1f %7.2fx\n", r.bytes / it->second / 1e9, it->second / r.secs);
    } else {
      std::printf(" %10s %8s\n", "-", "-");
    }
  }
  // PyTorch's own fused RMSNorm op, for reference (diffusers' RMSNorm does not call it).
  for (const Row& r : rows) {
    if (!r.key.starts_with("rms_norm ")) continue;
    const auto it = torch.find("rms_norm_fused" + r.key.substr(8));
    if (it != torch.end())
      std::printf("torch F.rms_norm %-20s %8.2f ms %8.1f GB/s (ours %.2fx)\n",
                  r.key.substr(9).c_str(), it->second * 1e3, r.bytes / it->second / 1e9,
                  it->second / r.secs);
  }
  return 0;
}
