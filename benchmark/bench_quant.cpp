// Quantized linear layers on CPU at DiT shapes: the time of one layer call for each scheme next to
// the bf16 float layer measured in the same run (speedup = bf16 time / scheme time), the
// scheme's error against the float layer on the same input (relative RMS; activations with a few
// 8x outlier channels, weights N(0, 0.02)), the weight bytes, and the fraction of this machine's
// measured peak (bf16 vdpbf16ps for the float-math schemes, int8 vpdpbusd for W8A8).
//
// Shapes (M tokens x N out x K in): FLUX.1 at 1024^2 has 4096 image + 512 text tokens, width 3072,
// MLP 12288; Wan2.1-1.3B at 832x480x5 frames has 3120 tokens, width 1536, FFN 8960. The default
// list is the FLUX attention projection (4608x3072x3072) and MLP down projection
// (4608x3072x12288), and the Wan FFN up projection (3120x8960x1536).
//
// Schemes: bf16 (layer::linear on bf16 weights), w8a8_dynamic (per-token activation quant +
// oneDNN s8s8s32 + epilogue; also the int8 GEMM alone, "int8 gemm"), w8a16 / w4a16 group 64
// (dequantize a slice of channels + bf16 GEMM), fp8 (emulated: e4m3 codes widened to bf16).
//
//   bench_quant [--shapes MxNxK,...] [--reps 3] [--schemes bf16,w8a8_dynamic,w8a16,w4a16,fp8]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "machine_peak.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/parallel.h"
#include "mindiesd/layer/linear.h"
#include "mindiesd/quant/quant_ops.h"
#include "mindiesd/quant/quantize.h"

namespace {

using namespace mindiesd;

struct Shape3 {
  int64_t m, n, k;
};

Tensor random_bf16(const Shape& shape, uint32_t seed, float stddev, float outlier) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(shape.numel());
  const int64_t k = shape[shape.size() - 1];
  for (size_t i = 0; i < v.size(); ++i) v[i] = d(g) * ((i % k) % 61 == 7 ? outlier : 1.0f);
  return Tensor::from_vector(v, shape).to(DType::bf16);
}

template <typename F>
double median_seconds(int reps, F&& f) {
  f();  // warm-up: oneDNN primitive creation, first touch
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(bench::seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double rel_rms(const Tensor& got, const Tensor& want) {
  const std::vector<float> a = got.to(DType::f32).to_vector(), b = want.to(DType::f32).to_vector();
  double se = 0, sw = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    sw += double(b[i]) * b[i];
  }
  return std::sqrt(se / sw);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Shape3> shapes = {{4608, 3072, 3072}, {4608, 3072, 12288}, {3120, 8960, 1536}};
  int reps = 3;
  std::vector<std::string> schemes = {"bf16", "w8a8_dynamic", "w8a16", "w4a16:group=64", "fp8"};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--shapes") {
      shapes.clear();
      for (size_t at = 0; at < v.size();) {
        const size_t end = std::min(v.find(',', at), v.size());
        Shape3 s{};
        if (std::sscanf(v.substr(at, end - at).c_str(), "%ldx%ldx%ld", &s.m, &s.n, &s.k) != 3) return 2;
        shapes.push_back(s);
        at = end + 1;
      }
    } else if (a == "--schemes") {
      schemes.clear();
      for (size_t at = 0; at < v.size();) {
        const size_t end = std::min(v.find(',', at), v.size());
        schemes.push_back(v.substr(at, end - at));
        at = end + 1;
      }
    } else {
      std::fprintf(stderr, "usage: bench_quant [--shapes MxNxK,...] [--reps N] [--schemes a,b]\n");
      return 2;
    }
  }
  const double peak_bf16 = bench::peak_bf16_flops(), peak_i8 = bench::peak_int8_ops();
  std::printf("threads %d; measured peak: bf16 %.0f GFLOP/s, int8 %.0f GOP/s\n", num_threads(), peak_bf16 / 1e9,
              peak_i8 / 1e9);
  std::printf("%-22s %-16s %9s %8s %8s %10s %9s\n", "shape MxNxK", "scheme", "ms", "speedup", "%peak",
              "rel RMS", "weight MB");
  for (const Shape3& s : shapes) {
    const Tensor x = random_bf16({s.m, s.k}, 1, 1.0f, 8.0f);
    layer::Linear fl;
    fl.name = "transformer_blocks.0.ff.net.2";
    fl.weight = random_bf16({s.n, s.k}, 2, 0.02f, 1.0f);
    fl.bias = random_bf16({s.n}, 3, 0.02f, 1.0f);
    const Context ctx;
    const Tensor ref = layer::linear(x, fl, ctx);
    const double flops = 2.0 * s.m * s.n * s.k;
    double t_bf16 = 0;
    const std::string shape = std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
    for (const std::string& name : schemes) {
      layer::Linear l = fl;
      double weight_mb = 2.0 * s.n * s.k / 1e6;
      bool int8 = false;
      if (name != "bf16") {
        const quant::QuantConfig c = quant::parse_quant_spec(name);
        auto q = quant::quantize_linear(fl, c);
        weight_mb = q->bytes() / 1e6;
        int8 = c.algo == quant::QuantAlgo::W8A8_DYNAMIC;
        l.impl = q;
        l.weight = l.bias = Tensor();
      }
      Tensor y;
      const double t = median_seconds(reps, [&] { y = layer::linear(x, l, ctx); });
      if (name == "bf16") t_bf16 = t;
      const double peak = int8 ? peak_i8 : peak_bf16;
      std::printf("%-22s %-16s %9.1f %8.2f %7.1f%% %10.5f %9.1f\n", shape.c_str(), name.c_str(), t * 1e3,
                  t_bf16 > 0 ? t_bf16 / t : 0.0, peak > 0 ? 100.0 * flops / t / peak : 0.0, rel_rms(y, ref),
                  weight_mb);
      if (int8) {  // the integer GEMM alone, on codes prepared outside the timing
        const quant::QuantizedRows xq = quant::quantize_per_row(x, DType::i8);
        const auto* ql = static_cast<const quant::QuantizedLinear*>(l.impl.get());
        const Tensor wq = ql->tensors().at("weight");
        const double tg = median_seconds(reps, [&] { quant::quant_matmul(xq.codes, wq, {}, DType::i32); });
        std::printf("%-22s %-16s %9.1f %8.2f %7.1f%% %10s %9s\n", shape.c_str(), "  int8 gemm", tg * 1e3,
                    t_bf16 > 0 ? t_bf16 / tg : 0.0, peak_i8 > 0 ? 100.0 * flops / tg / peak_i8 : 0.0, "-", "-");
      }
    }
  }
  return 0;
}
