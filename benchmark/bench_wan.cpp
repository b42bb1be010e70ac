// Wan2.1 T2V transformer step on CPU next to diffusers' WanTransformer3DModel on PyTorch.
//
// Models, as Wan-AI/Wan2.1-T2V-1.3B-Diffusers and Wan2.1-T2V-14B-Diffusers publish their
// transformer/config.json (and the Wan2.1 reference configs wan_t2v_1_3B.py / wan_t2v_14B.py):
//   both: patch_size (1, 2, 2), attention_head_dim 128, in/out_channels 16, text_dim 4096,
//         freq_dim 256, cross_attn_norm true, qk_norm "rms_norm_across_heads", eps 1e-6,
//         rope_max_seq_len 1024, no image_dim / added_kv_proj_dim (T2V)
//   1.3B: num_attention_heads 12 (dim 1536), ffn_dim 8960,  num_layers 30 (1.42 B parameters)
//   14B:  num_attention_heads 40 (dim 5120), ffn_dim 13824, num_layers 40 (14.3 B parameters)
// ("tiny", 2 heads x 128, ffn 512, 2 layers, only checks the harness.)
//
// Both engines run the real width at two reduced depths, 1 and 2 blocks, on the same default-init
// weights: PyTorch (benchmark/torch_wan.py) builds the model in bf16 as
// from_pretrained(torch_dtype=torch.bfloat16) holds it (_keep_in_fp32_modules: time_embedder,
// scale_shift_table, norm1/2/3 in f32) and saves it; mindiesd loads that folder in bf16. The
// full step is extrapolated per block for both engines:
//   t(block) = t(2 layers) - t(1 layer), t(outside) = t(1 layer) - t(block),
//   step = num_layers * t(block) + t(outside)
// (outside the blocks: RoPE tables, patch embedding, timestep and text embedders, norm_out,
// proj_out). Blocks run one after another on the same activations, so activation memory does
// not depend on depth; the full model's footprint is that plus its (mmapped) weights.
//
// Inputs, batch 1: latents (1, 16, (F - 1) / 4 + 1, H / 8, W / 8) for F frames at WxH (the
// VAE's 4x temporal and 8x spatial compression, as WanPipeline makes them), random bf16; 512
// random bf16 UMT5 embeddings (1, 512, 4096); timestep 999 as int64 (WanPipeline passes UniPC's
// int64 timesteps). 81 frames at 832x480 -> 21 x 60 x 104 latents -> 21 x 30 x 52 = 32,760
// tokens; 9 frames -> 3 x 30 x 52 = 4,680.
//
// FLOPs (2 per multiply-add) of one block, S video tokens, L = 512 text tokens, width D, FFN F:
//   projections 2 * [S * (4 D^2 (self-attn Q, K, V, O) + 2 D^2 (cross-attn Q, O)
//                         + 2 D F (FFN in, out)) + L * 2 D^2 (cross-attn K, V)]
//   attention   4 S^2 D (self: Q K^T and P V) + 4 S L D (cross)
// outside the blocks: 2 * [S * 2 * 64 D (patch embedding, proj_out) + L * (4096 D + D^2) (text
// embedder) + 256 D + 7 D^2 (timestep embedder, time_proj)]. Norms, RoPE, modulation, GELU and
// softmax exponentials are not counted. One 14B block at 32,760 tokens: 19.6 TFLOP of
// projections + 22.3 TFLOP of attention = 42.0 TFLOP (a full step 1678 TFLOP); a 1.3B block
// 2.7 + 6.7 = 9.4 TFLOP (a step 283 TFLOP). At 4,680 tokens: 14B 2.9 + 0.5, 1.3B 0.4 + 0.15.
//
// Memory: "our act peak" is mindiesd's allocator peak over the measured forwards (activations,
// plus the inputs and the few weights converted at load, e.g. f32 copies); "torch RSS" is the
// PyTorch process's peak RSS over its forwards at that shape (its 2-layer model's weights and
// the Python runtime included, model construction excluded; see torch_wan.py).
//
// Cost: one 14B block at 81 frames is ~42 TFLOP, minutes on a small CPU; a run does
// (warm-up + repeats) x (1 + 2) blocks per engine and frame count. A benchmark, never a test.
//
// Usage: bench_wan [--model 1.3b,14b] [--frames 9,81] [--size 832x480] [--repeats 1]
//                  [--warmup 1] [--python PY] [--skip-torch]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "machine_peak.h"
#include "mindiesd/core/allocator.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/models/wan/wan_transformer.h"
#include "peer.h"

namespace {

namespace fs = std::filesystem;
using namespace mindiesd;

constexpr int64_t kHeadDim = 128, kTextTokens = 512, kTextDim = 4096, kFreqDim = 256;
constexpr int64_t kLatentChannels = 16, kPatchVolume = 1 * 2 * 2, kTimestep = 999;

struct Spec {
  const char* key;   // --model and torch_wan.py --model
  const char* name;  // printed
  int64_t heads, ffn, layers;
  int64_t dim() const { return heads * kHeadDim; }
};
constexpr Spec kSpecs[] = {{"1.3b", "Wan2.1-T2V-1.3B", 12, 8960, 30},
                           {"14b", "Wan2.1-T2V-14B", 40, 13824, 40},
                           {"tiny", "tiny (harness check)", 2, 512, 2}};

struct Latents {
  int64_t frames, f, h, w;  // video frames; latent frames, height, width
  int64_t tokens() const { return f * (h / 2) * (w / 2); }
};

double block_flops(const Spec& m, int64_t tokens) {
  const double s = static_cast<double>(tokens), l = kTextTokens, d = static_cast<double>(m.dim()),
               f = static_cast<double>(m.ffn);
  const double projections = 2.0 * (s * (4 * d * d + 2 * d * d + 2 * d * f) + l * 2 * d * d);
  return projections + 4.0 * s * s * d + 4.0 * s * l * d;
}

double outside_flops(const Spec& m, int64_t tokens) {
  const double s = static_cast<double>(tokens), l = kTextTokens, d = static_cast<double>(m.dim()),
               c = kLatentChannels * kPatchVolume;
  return 2.0 * (s * 2 * c * d + l * (kTextDim * d + d * d) + kFreqDim * d + 7 * d * d);
}

struct Timing {
  double seconds = 0;
  int64_t peak_bytes = 0;
};

Timing time_forward(const models::WanTransformer3DModel& model, const Latents& lat, int repeats,
                    int warmup) {
  models::WanForwardInputs in;
  in.hidden_states = ops::randn({1, kLatentChannels, lat.f, lat.h, lat.w}, 1).to(DType::bf16);
  in.encoder_hidden_states = ops::randn({1, kTextTokens, kTextDim}, 2).to(DType::bf16);
  in.timestep = ops::full({1}, static_cast<double>(kTimestep), DType::i64);
  // Warm-up: first touch of the mapped weights, the RoPE tables of this grid, oneDNN primitives.
  for (int i = 0; i < warmup; ++i) model.forward(in);
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

std::string percent(double flops, double seconds, double peak) {
  if (seconds <= 0 || peak <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * flops / seconds / peak);
  return buf;
}

std::string num(const char* fmt, double v, bool valid) {
  if (!valid) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_wan [--model 1.3b,14b] [--frames 9,81] [--size 832x480] "
               "[--repeats N] [--warmup N] [--python PY] [--skip-torch]\n"
               "  (--model tiny: a 256-wide model that only checks the harness)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string python = bench::default_python(), models_arg = "1.3b,14b", frames_arg = "9,81",
              size_arg = "832x480";
  int repeats = 1, warmup = 1;
  bool torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc)
      models_arg = argv[++i];
    else if (a == "--frames" && i + 1 < argc)
      frames_arg = argv[++i];
    else if (a == "--size" && i + 1 < argc)
      size_arg = argv[++i];
    else if (a == "--repeats" && i + 1 < argc)
      repeats = std::atoi(argv[++i]);
    else if (a == "--warmup" && i + 1 < argc)
      warmup = std::atoi(argv[++i]);
    else if (a == "--python" && i + 1 < argc)
      python = argv[++i];
    else if (a == "--skip-torch")
      torch = false;
    else
      return usage();
  }
  std::vector<const Spec*> specs;
  for (const std::string& key : bench::split_list(models_arg)) {
    const Spec* found = nullptr;
    for (const Spec& s : kSpecs)
      if (key == s.key) found = &s;
    if (!found) {
      std::fprintf(stderr, "bench_wan: unknown --model %s (1.3b, 14b or tiny)\n", key.c_str());
      return usage();
    }
    specs.push_back(found);
  }
  int width = 0, height = 0;
  if (std::sscanf(size_arg.c_str(), "%dx%d", &width, &height) != 2 || width <= 0 || height <= 0 ||
      width % 16 || height % 16) {
    std::fprintf(stderr, "bench_wan: --size WxH in pixels, multiples of 16 (got %s)\n",
                 size_arg.c_str());
    return usage();
  }
  std::vector<Latents> shapes;
  for (const std::string& s : bench::split_list(frames_arg)) {
    const int64_t f = std::atoll(s.c_str());
    if (f < 1 || (f - 1) % 4) {
      std::fprintf(stderr, "bench_wan: --frames %s: WanPipeline takes 4k + 1 frames\n", s.c_str());
      return usage();
    }
    shapes.push_back({f, (f - 1) / 4 + 1, height / 8, width / 8});
  }
  if (specs.empty() || shapes.empty() || repeats < 1 || warmup < 0) return usage();

  const double peak = bench::peak_bf16_flops();
  std::printf(
      "Wan2.1 T2V transformer, bf16, batch 1, %dx%d, %lld text tokens, timestep %lld (int64); "
      "measured bf16 peak %.0f GFLOP/s\n",
      width, height, static_cast<long long>(kTextTokens), static_cast<long long>(kTimestep),
      peak / 1e9);
  std::fflush(stdout);

  const fs::path tmp =
      fs::temp_directory_path() / ("mindiesd_bench_wan_" + std::to_string(getpid()));
  using Key = std::tuple<size_t, int, int64_t>;  // (spec index, layers, frames)
  std::map<Key, Timing> ours, theirs;
  std::vector<int64_t> full_bytes(specs.size()), full_params(specs.size());
  try {
    for (size_t m = 0; m < specs.size(); ++m) {
      const Spec& spec = *specs[m];
      int64_t bytes[3] = {0, 0, 0}, params[3] = {0, 0, 0};
      for (int layers = 1; layers <= 2; ++layers) {
        const fs::path dir = tmp / (std::string(spec.key) + "_" + std::to_string(layers));
        std::string args = std::string("--model ") + spec.key + " --layers " +
                           std::to_string(layers) + " --frames " + bench::as_args(frames_arg) +
                           " --size " + std::to_string(width) + "x" + std::to_string(height) +
                           " --text-tokens " + std::to_string(kTextTokens) + " --timestep " +
                           std::to_string(kTimestep) + " --repeats " + std::to_string(repeats) +
                           " --warmup " + std::to_string(warmup) + " --save " + dir.string();
        std::vector<nlohmann::json> rows;
        if (torch) {
          rows = bench::run_peer(python, "torch_wan.py", args);
        } else {  // PyTorch still makes the weights
          const std::string cmd = python + " " MINDIESD_SOURCE_DIR "/benchmark/torch_wan.py " +
                                  args + " --skip-run >/dev/null 2>&1";
          if (std::system(cmd.c_str()) != 0) std::printf("(torch_wan.py --skip-run failed)\n");
        }
        for (const auto& j : rows) {
          const int64_t frames = j["frames"].get<int64_t>();
          theirs[{m, layers, frames}] = {j["seconds"].get<double>(),
                                         j["peak_rss_bytes"].get<int64_t>()};
          std::fprintf(stderr, "[bench_wan] %s, %d layer(s), %lld frames: torch %.2f s\n", spec.key,
                       layers, static_cast<long long>(frames), j["seconds"].get<double>());
        }
        if (!fs::exists(dir / "config.json")) {
          std::printf("no weights saved by the peer (PyTorch needed to make them); stopping\n");
          fs::remove_all(tmp);
          return 1;
        }
        {
          const io::DiffusersFolder folder = io::DiffusersFolder::open(dir);
          const io::Component& component = folder.components().front();
          const auto model = models::WanTransformer3DModel::load(component, DType::bf16);
          const io::WeightStore store = component.open_weights();
          bytes[layers] = store.num_bytes();
          params[layers] = store.num_params();
          for (const Latents& lat : shapes) {
            const Timing t = time_forward(model, lat, repeats, warmup);
            ours[{m, layers, lat.frames}] = t;
            std::fprintf(stderr, "[bench_wan] %s, %d layer(s), %lld frames: ours  %.2f s\n",
                         spec.key, layers, static_cast<long long>(lat.frames), t.seconds);
          }
        }
        cpu_allocator().empty_cache();  // leave the peer the memory
        fs::remove_all(dir);
      }
      // The 1-layer model is everything outside the blocks plus one block.
      full_bytes[m] = bytes[1] + (spec.layers - 1) * (bytes[2] - bytes[1]);
      full_params[m] = params[1] + (spec.layers - 1) * (params[2] - params[1]);
    }
  } catch (const std::exception& e) {  // leave no saved model behind
    std::printf("bench_wan: %s\n", e.what());
    fs::remove_all(tmp);
    return 1;
  }
  fs::remove_all(tmp);

  std::printf("\n");
  // Columns: the model, its video and token grid, a full step's TFLOP; per engine seconds per
  // block, outside the blocks and per full step with % of the bf16 peak; memory.
  const char* const kRow =
      "%-5s %6s %9s %6s %7s | %8s %8s %9s %6s | %9s %9s %10s %6s | %6s | %12s %11s\n";
  std::printf(kRow, "model", "frames", "grid", "tokens", "TFLOP", "ours s/b", "ours out",
              "ours s/st", "%peak", "torch s/b", "torch out", "torch s/st", "%peak", "ratio",
              "our act peak", "torch RSS*");
  for (size_t m = 0; m < specs.size(); ++m) {
    const Spec& spec = *specs[m];
    for (const Latents& lat : shapes) {
      // t(block), t(outside) and the full step; false when a depth is missing.
      auto step = [&](std::map<Key, Timing>& t, double* block, double* outside, double* full) {
        const Key k1{m, 1, lat.frames}, k2{m, 2, lat.frames};
        if (!t.count(k1) || !t.count(k2)) return false;
        *block = t[k2].seconds - t[k1].seconds;
        *outside = t[k1].seconds - *block;
        *full = static_cast<double>(spec.layers) * *block + *outside;
        return true;
      };
      double ob = 0, oo = 0, os = 0, tb = 0, to = 0, ts = 0;
      const bool have_ours = step(ours, &ob, &oo, &os), have_torch = step(theirs, &tb, &to, &ts);
      const double flops = static_cast<double>(spec.layers) * block_flops(spec, lat.tokens()) +
                           outside_flops(spec, lat.tokens());
      char grid[48];
      std::snprintf(grid, sizeof grid, "%lldx%lldx%lld", static_cast<long long>(lat.f),
                    static_cast<long long>(lat.h / 2), static_cast<long long>(lat.w / 2));
      const Key k2{m, 2, lat.frames};
      std::printf(
          kRow, spec.key, std::to_string(lat.frames).c_str(), grid,
          std::to_string(lat.tokens()).c_str(), num("%.1f", flops / 1e12, true).c_str(),
          num("%.2f", ob, have_ours).c_str(), num("%.2f", oo, have_ours).c_str(),
          num("%.1f", os, have_ours).c_str(), percent(flops, have_ours ? os : 0, peak).c_str(),
          num("%.2f", tb, have_torch).c_str(), num("%.2f", to, have_torch).c_str(),
          num("%.1f", ts, have_torch).c_str(), percent(flops, have_torch ? ts : 0, peak).c_str(),
          num("%.2fx", have_ours && have_torch ? ts / os : 0, have_ours && have_torch).c_str(),
          have_ours ? gib(static_cast<double>(ours[k2].peak_bytes)).c_str() : "-",
          theirs.count(k2) ? gib(static_cast<double>(theirs[k2].peak_bytes)).c_str() : "-");
    }
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "s/b: seconds per block, t(2 layers) - t(1 layer); out: outside the blocks, t(1 layer) - "
      "t(block); s/st: a full step, layers x s/b + out; TFLOP: a full step's count (see "
      "bench_wan.cpp); ratio: torch s/st / ours s/st\n"
      "* peak RSS of the PyTorch process over its forwards of the 2-layer model (its weights "
      "and the Python runtime included); this process's peak RSS: %s (mapped weights of the "
      "reduced models included)\n",
      gib(static_cast<double>(ru.ru_maxrss) * 1024).c_str());
  const double ram =
      static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  for (size_t m = 0; m < specs.size(); ++m) {
    const double b = static_cast<double>(full_bytes[m]);
    std::printf(
        "full %s (%lld layers): %.2f B parameters, %s of weights in bf16 (f32 for "
        "_keep_in_fp32_modules, as from_pretrained(torch_dtype=bfloat16) holds them), mmapped "
        "and used in place; a full step needs that plus the activation peak above%s\n",
        specs[m]->name, static_cast<long long>(specs[m]->layers),
        static_cast<double>(full_params[m]) / 1e9, gib(b).c_str(),
        b > ram ? ("; more than this machine's " + gib(ram) +
                   " of RAM, so pages of the weights are re-read from disk every step")
                      .c_str()
                : "");
  }
  return 0;
}
