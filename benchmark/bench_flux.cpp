// FLUX.1-dev transformer step on CPU next to diffusers' FluxTransformer2DModel on PyTorch, and
// the tiny FluxPipeline end to end next to diffusers' FluxPipeline.
//
// The real model (19 double + 38 single blocks at 3072 wide, 11.9B parameters, 23.8 GB in bf16)
// does not fit a 24 GiB machine twice over, so both engines run the real block width at two
// reduced depths — (1 double, 0 single) and (1 double, 2 single) — on the same default-init
// weights (PyTorch saves them, mindiesd loads the saved folder), and the full step is
// extrapolated per block: step = 19 * t(double) + 38 * t(single), t(double) = t(1,0),
// t(single) = (t(1,2) - t(1,0)) / 2. Blocks run one after another on the same activations,
// so activation memory does not depend on depth; the full model's peak is that plus its
// (mmapped) weights.
//
// Usage: bench_flux [--sizes 512,1024] [--repeats 2] [--python PY] [--skip-pipeline]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "machine_peak.h"
#include "mindiesd/core/allocator.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "mindiesd/pipelines/flux_pipeline.h"
#include "peer.h"

namespace {

namespace fs = std::filesystem;
using namespace mindiesd;

constexpr int64_t kHidden = 3072, kTextTokens = 512, kDoubleBlocks = 19, kSingleBlocks = 38;

// FLOPs of one block (double and single blocks do the same work per token): 12 H^2 MACs of
// projections per token plus 2 T^2 H MACs of attention.
double block_flops(int64_t tokens) {
  const double t = static_cast<double>(tokens), h = static_cast<double>(kHidden);
  return 2.0 * (12.0 * h * h * t + 2.0 * t * t * h);
}

struct Timing {
  double seconds = 0;
  int64_t peak_bytes = 0;
};

Timing time_forward(const models::FluxTransformer2DModel& model, int64_t size, int repeats) {
  const int64_t side = size / 16, s_img = side * side;
  models::FluxForwardInputs in;
  in.hidden_states = ops::randn({1, s_img, 64}, 1).to(DType::bf16);
  in.encoder_hidden_states = ops::randn({1, kTextTokens, 4096}, 2).to(DType::bf16);
  in.pooled_projections = ops::randn({1, 768}, 3).to(DType::bf16);
  in.timestep = ops::full({1}, 0.5, DType::bf16);
  in.guidance = ops::full({1}, 3.5, DType::f32);
  in.txt_ids = models::flux_text_ids(kTextTokens).to(DType::bf16);
  in.img_ids = models::flux_latent_image_ids(side, side).to(DType::bf16);
  model.forward(in);  // warm-up: first-touch of the mapped weights, oneDNN primitive creation
  cpu_allocator().reset_peak();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(in);
    t.push_back(bench::seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], cpu_allocator().stats().peak_allocated_bytes};
}

std::string gib(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1 << 30));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string python = bench::default_python(), sizes_arg = "512,1024";
  int repeats = 2;
  bool pipeline = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc)
      sizes_arg = argv[++i];
    else if (a == "--repeats" && i + 1 < argc)
      repeats = std::atoi(argv[++i]);
    else if (a == "--python" && i + 1 < argc)
      python = argv[++i];
    else if (a == "--skip-pipeline")
      pipeline = false;
    else {
      std::fprintf(stderr,
                   "usage: bench_flux [--sizes 512,1024] [--repeats N] [--python PY] "
                   "[--skip-pipeline]\n");
      return 2;
    }
  }
  std::vector<int64_t> sizes;
  for (const std::string& s : bench::split_list(sizes_arg)) sizes.push_back(std::stoll(s));
  const double peak = bench::peak_bf16_flops();
  std::printf(
      "FLUX.1-dev transformer, bf16, batch 1, %lld text tokens; measured bf16 peak "
      "%.0f GFLOP/s\n",
      static_cast<long long>(kTextTokens), peak / 1e9);

  const fs::path tmp =
      fs::temp_directory_path() / ("mindiesd_bench_flux_" + std::to_string(getpid()));
  struct Depth {
    int layers, single;
  };
  const Depth depths[] = {{1, 0}, {1, 2}};
  std::map<std::pair<int, int64_t>, Timing> ours, theirs;  // (depth index, size)
  int64_t weight_bytes[2] = {0, 0}, double_block_bytes = 0;
  for (int d = 0; d < 2; ++d) {
    const fs::path dir = tmp / ("d" + std::to_string(d));
    const std::string args = "transformer --sizes " + bench::as_args(sizes_arg) + " --layers " +
                             std::to_string(depths[d].layers) + " --single-layers " +
                             std::to_string(depths[d].single) + " --repeats " +
                             std::to_string(repeats) + " --save " + dir.string();
    for (const auto& j : bench::run_peer(python, "torch_flux.py", args)) {
      theirs[{d, j["size"].get<int64_t>()}] = {j["seconds"].get<double>(),
                                               j["peak_rss_bytes"].get<int64_t>()};
    }
    if (!fs::exists(dir / "config.json")) {
      std::printf("no weights saved by the peer (PyTorch needed to make them); stopping\n");
      return 1;
    }
    const io::DiffusersFolder folder = io::DiffusersFolder::open(dir);
    const auto model =
        models::FluxTransformer2DModel::load(folder.components().front(), DType::bf16);
    const io::WeightStore store = folder.components().front().open_weights();
    weight_bytes[d] = store.num_bytes();
    if (d == 0) {  // one double block's bytes, read from the file
      for (const std::string& name : store.names())
        if (name.starts_with("transformer_blocks.0."))
          double_block_bytes += store.info(name).end - store.info(name).begin;
    }
    for (int64_t size : sizes) ours[{d, size}] = time_forward(model, size, repeats);
  }
  fs::remove_all(tmp);

  // The (1, 0) model is the embedders + one double block; add the other 18 double blocks and
  // 38 single blocks.
  const double per_single_bytes = static_cast<double>(weight_bytes[1] - weight_bytes[0]) / 2;
  const double full_weights = static_cast<double>(weight_bytes[0]) +
                              (kDoubleBlocks - 1) * static_cast<double>(double_block_bytes) +
                              kSingleBlocks * per_single_bytes;
  std::printf("\n%-6s %7s | %10s %10s %11s %8s | %10s %8s | %12s %12s\n", "size", "tokens",
              "ours s/dbl", "ours s/sgl", "ours s/step", "%peak", "torch s/st", "ratio",
              "our act peak", "torch RSS*");
  for (int64_t size : sizes) {
    const int64_t tokens = (size / 16) * (size / 16) + kTextTokens;
    auto step = [&](std::map<std::pair<int, int64_t>, Timing>& m, double* dbl, double* sgl) {
      if (!m.count({0, size}) || !m.count({1, size})) return -1.0;
      *dbl = m[{0, size}].seconds;
      *sgl = (m[{1, size}].seconds - m[{0, size}].seconds) / 2;
      return kDoubleBlocks * *dbl + kSingleBlocks * *sgl;
    };
    double od = 0, os = 0, td = 0, ts = 0;
    const double o = step(ours, &od, &os), t = step(theirs, &td, &ts);
    const double flops = (kDoubleBlocks + kSingleBlocks) * block_flops(tokens);
    std::printf("%-6lld %7lld | %10.2f %10.2f %11.1f %7.1f%% | %10.1f %7.2fx | %12s %12s\n",
                static_cast<long long>(size), static_cast<long long>(tokens), od, os, o,
                100.0 * flops / o / peak, t, t > 0 ? t / o : 0.0,
                gib(static_cast<double>(ours[{1, size}].peak_bytes)).c_str(),
                t > 0 ? gib(static_cast<double>(theirs[{1, size}].peak_bytes)).c_str() : "-");
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "* peak RSS of the PyTorch process, with the (1 double, 2 single)-block model's "
      "weights; this process's peak RSS: %s (mapped weights of both reduced models "
      "included)\n",
      gib(static_cast<double>(usage.ru_maxrss) * 1024).c_str());
  std::printf(
      "full FLUX.1-dev weights: %s in bf16, mmapped and used in place; a full step "
      "needs that plus the activation peak above\n",
      gib(full_weights).c_str());

  if (pipeline) {
    const std::string folder = MINDIESD_SOURCE_DIR "/tests/data/golden/flux/pipeline";
    pipelines::FluxPipelineOptions o;
    o.dtype = DType::f32;
    o.keep_text_encoders = true;  // as a diffusers pipeline object keeps them
    pipelines::FluxPipeline pipe = pipelines::FluxPipeline::load(folder, o);
    pipelines::FluxRequest r;
    r.prompts = {"a small red circle at the top left on a blue background"};
    r.width = r.height = 32;
    r.num_inference_steps = 4;
    r.max_sequence_length = 32;
    pipe.generate(r);
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      pipe.generate(r);
      t.push_back(bench::seconds_since(t0));
    }
    std::sort(t.begin(), t.end());
    double torch_s = -1;
    for (const auto& j : bench::run_peer(python, "torch_flux.py",
                                         "pipeline --folder " + folder +
                                             " --sizes 32 --steps 4 --text-tokens 32 --dtype f32 "
                                             "--repeats 5"))
      torch_s = j["seconds"].get<double>();
    std::printf(
        "\ntiny FluxPipeline 32x32, 4 steps, f32, end to end: ours %.1f ms, diffusers %.1f "
        "ms (%.2fx)\n",
        t[2] * 1e3, torch_s * 1e3, torch_s > 0 ? torch_s / t[2] : 0.0);
  }
  return 0;
}
