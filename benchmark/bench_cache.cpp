// Step-cache cost per transformer call on CPU: the time of one forward of a real-width,
// reduced-depth FLUX.1-dev and Wan2.1-T2V-1.3B transformer (random bf16 weights, no PyTorch) with
// a cache::CacheAgent in its Context, on (a) a step the method computes and (b) a step it
// caches, for each method; the bytes the cache holds; and the computed step's block FLOPs as a
// fraction of this machine's measured bf16 peak (benchmark/machine_peak.h).
//
// Models (weights N(0, 0.02) in bf16, windows of one pool of noise (RandomWeights), bound by
// the diffusers names as bench_cuda.cpp binds them, through FluxTransformer2DModel /
// WanTransformer3DModel::from_weights on an in-memory io::WeightStore):
//   flux  FLUX.1-dev width: 3072 hidden (24 heads x 128), guidance embedding, 512 text tokens;
//         --size 1024 (default): 1024x1024 -> 4096 image tokens; --size 512: 1024 image tokens.
//         Depth --flux-blocks D,S (default 1,2: 1 double-stream + 2 single-stream blocks;
//         FLUX.1-dev has 19 + 38).
//   wan   Wan2.1-T2V-1.3B width: 1536 hidden (12 heads x 128), FFN 8960, 512 text tokens, at
//         832x480 with --frames F (default 5: 2 x 30 x 52 = 3120 tokens; 81 frames would be
//         32,760 tokens, too slow for a 2-core CPU). Depth --wan-blocks N (default 2; the model
//         has 30).
//
// Each method drives a fresh CacheAgent the way a denoising loop does, one call per step with
// Context{step, num_steps = 10, cond, &agent} and the same inputs every step (the cost of a
// call does not depend on the values), and times the calls:
//   dense        no cache (Context without a policy): the reference computed step
//   teacache     thresh=1e9 (model flux / wan2.1-t2v-1.3b): step 0 computes, step 1 reuses
//                the residual of all blocks (only the indicator, the embedders and the output
//                layer run)
//   fbcache      thresh=1e9: step 0 computes, step 1 computes block 0 and reuses the rest
//   dit_block    start=0, interval=2, a middle block range (blocks 1 .. N-2, or block 1 when
//                N <= 3): step 0 computes, step 1 skips the range
//   attention    start=0, interval=2, all blocks: step 1 reuses every block's attention output
//   taylorseer   order=2, start=0, interval=2: steps 0, 2, 4 compute, 1, 3, 5 forecast; the
//                computed step timed is step 4 and the cached step step 5, the first with a
//                full order-2 forecast (two stored derivatives)
// Before the methods, one uncached forward per model warms up (first touch of the weights,
// oneDNN primitives). --repeats R runs every sequence R times (the agent starts over at
// step 0) and takes the median of each timed step.
//
// Columns: computed / cached ms (one forward call); ratio = computed / cached; cache MiB: the
// tensors the agent holds after the cached step / its peak (CacheAgent::stats(), for the one CFG
// branch driven here; a guided run holds this per branch, i.e. twice); GFLOP: the transformer
// blocks' FLOPs in the computed / cached call as the model counts them (BlockLoop::block_flops;
// the embedders and the output layer, ~1% here, are not counted); %peak: the computed call's
// block FLOPs / its time / the measured peak. At reduced depth everything outside the blocks
// is a larger share of a call than at full depth, so a full-depth model's cached/computed
// ratio is lower (better) for the methods that skip whole blocks.
//
// Cost (2 vCPU Zen 4, idle): 9 computed forwards per model (warm-up, dense, one per method,
// three for taylorseer) plus the cached ones. --size 512 took 63 s (flux 3.2 s, wan 2.3 s per
// computed forward); the default --size 1024 (~12 s per flux forward, bench_flux's 4 s per
// block) is estimated at about 2.8 minutes. On a loaded machine the times grow and %peak falls.
//
// Usage: bench_cache [--size 1024|512] [--frames 5] [--models flux,wan]
//                    [--methods dense,teacache,fbcache,dit_block,attention,taylorseer]
//                    [--flux-blocks 1,2] [--wan-blocks 2] [--repeats 1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "machine_peak.h"
#include "mindiesd/cache/cache_agent.h"
#include "mindiesd/core/context.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "mindiesd/models/wan/wan_transformer.h"
#include "random_weights.h"

namespace {

using namespace mindiesd;

constexpr int64_t kTextTokens = 512, kNumSteps = 10;
using bench::random_flux;
using bench::random_wan_1_3b;

std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

// One model under test: its forward with a given Context, and what the table prints about it.
struct Subject {
  std::string name, shape;  // "flux", "1 double + 2 single blocks, 4096 + 512 tokens"
  int64_t num_blocks = 0;
  std::string teacache_model;
  std::function<void(const Context&)> forward;
};

// A method's config and its step sequence: which step is timed as computed and which as cached.
struct Method {
  std::string name, label;
  std::optional<cache::CacheConfig> config;  // none: dense
  int64_t last_step = 0, computed_step = 0, cached_step = -1;
};

Method make_method(const std::string& name, const Subject& m) {
  Method r;
  r.name = r.label = name;
  cache::CacheConfig c;
  if (name == "dense") return r;
  if (name == "teacache") {
    c.method = "teacache";
    c.threshold = 1e9;
    c.teacache_model = m.teacache_model;
    r.last_step = 1;
    r.cached_step = 1;
  } else if (name == "fbcache") {
    c.method = "fbcache";
    c.threshold = 1e9;
    r.last_step = 1;
    r.cached_step = 1;
  } else if (name == "dit_block") {
    c.method = "dit_block_cache";
    c.step_start = 0;
    c.step_interval = 2;
    c.block_start = 1;
    c.block_end = std::max<int64_t>(2, m.num_blocks - 1);
    r.label = c.block_end - c.block_start == 1 ? "dit_block " + std::to_string(c.block_start)
                                               : "dit_block " + std::to_string(c.block_start) +
                                                     "-" + std::to_string(c.block_end - 1);
    r.last_step = 1;
    r.cached_step = 1;
  } else if (name == "attention") {
    c.method = "attention_cache";
    c.step_start = 0;
    c.step_interval = 2;
    r.last_step = 1;
    r.cached_step = 1;
  } else if (name == "taylorseer") {
    c.method = "taylorseer";
    c.taylorseer_order = 2;
    c.step_start = 0;
    c.step_interval = 2;
    r.label = "taylorseer o2";
    r.last_step = 5;
    r.computed_step = 4;
    r.cached_step = 5;
  } else {
    std::fprintf(stderr, "bench_cache: unknown method %s\n", name.c_str());
    std::exit(2);
  }
  r.config = c;
  return r;
}

struct Row {
  std::string model, method, pattern;
  double computed_s = 0, cached_s = 0;          // cached_s < 0: none
  double held = 0, peak_held = 0;               // bytes
  double flops_computed = 0, flops_cached = 0;  // block FLOPs of the two timed calls
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

Row run_method(const Subject& m, const Method& method, int repeats) {
  Row row;
  row.model = m.name;
  row.method = method.label;
  std::vector<double> computed, cached;
  std::unique_ptr<cache::CacheAgent> agent;
  if (method.config) agent = std::make_unique<cache::CacheAgent>(*method.config);
  for (int r = 0; r < repeats; ++r) {
    if (agent) agent->reset();
    for (int64_t step = 0; step <= method.last_step; ++step) {
      const cache::CacheStats before = agent ? agent->stats() : cache::CacheStats{};
      const Context ctx{step, kNumSteps, CfgBranch::cond, agent.get()};
      const auto t0 = std::chrono::steady_clock::now();
      m.forward(ctx);
      const double s = bench::seconds_since(t0);
      const cache::CacheStats after = agent ? agent->stats() : cache::CacheStats{};
      const double done =
          (after.flops_total - before.flops_total) - (after.flops_saved - before.flops_saved);
      if (step == method.computed_step) {
        computed.push_back(s);
        row.flops_computed = done;
      }
      if (step == method.cached_step) {
        cached.push_back(s);
        row.flops_cached = done;
        row.held = static_cast<double>(after.bytes_held);
        row.peak_held = static_cast<double>(after.peak_bytes_held);
      }
      std::fprintf(stderr, "[bench_cache] %s %s step %lld: %.3f s\n", m.name.c_str(),
                   method.label.c_str(), static_cast<long long>(step), s);
    }
    if (agent) row.pattern = agent->stats().branch[0].pattern;
  }
  row.computed_s = median(computed);
  row.cached_s = cached.empty() ? -1.0 : median(cached);
  return row;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_cache [--size 1024|512] [--frames 5] [--models flux,wan]\n"
               "                   [--methods dense,teacache,fbcache,dit_block,attention,"
               "taylorseer]\n"
               "                   [--flux-blocks D,S] [--wan-blocks N] [--repeats R]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t size = 1024, frames = 5, flux_double = 1, flux_single = 2, wan_blocks = 2;
  int repeats = 1;
  std::string models_arg = "flux,wan",
              methods_arg = "dense,teacache,fbcache,dit_block,attention,taylorseer";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--size" && has) {
      size = std::atoll(argv[++i]);
    } else if (a == "--frames" && has) {
      frames = std::atoll(argv[++i]);
    } else if (a == "--models" && has) {
      models_arg = argv[++i];
    } else if (a == "--methods" && has) {
      methods_arg = argv[++i];
    } else if (a == "--flux-blocks" && has) {
      const std::vector<std::string> p = split(argv[++i]);
      if (p.size() != 2) return usage();
      flux_double = std::atoll(p[0].c_str());
      flux_single = std::atoll(p[1].c_str());
    } else if (a == "--wan-blocks" && has) {
      wan_blocks = std::atoll(argv[++i]);
    } else if (a == "--repeats" && has) {
      repeats = std::atoi(argv[++i]);
    } else {
      return usage();
    }
  }
  if (size <= 0 || size % 16 || frames < 1 || (frames - 1) % 4 || repeats < 1 || flux_double < 0 ||
      flux_single < 0 || flux_double + flux_single < 2 || wan_blocks < 2) {
    std::fprintf(stderr,
                 "bench_cache: --size a multiple of 16, --frames 4k + 1, at least 2 blocks per "
                 "model (fbcache needs a block after the first)\n");
    return usage();
  }

  const double peak = bench::peak_bf16_flops();
  std::printf(
      "step-cache cost per transformer call, bf16, batch 1, CPU; measured bf16 peak %.0f "
      "GFLOP/s\n",
      peak / 1e9);
  std::fflush(stdout);

  std::vector<Row> rows;
  std::vector<std::string> notes;
  for (const std::string& model : split(models_arg)) {
    Subject m;
    // The model and its inputs live in these optionals for the subject's lifetime.
    std::optional<models::FluxTransformer2DModel> flux;
    models::FluxForwardInputs flux_in;
    std::optional<models::WanTransformer3DModel> wan;
    models::WanForwardInputs wan_in;
    const auto t0 = std::chrono::steady_clock::now();
    if (model == "flux") {
      flux = random_flux(flux_double, flux_single);
      const int64_t side = size / 16, s_img = side * side;
      flux_in.hidden_states = ops::randn({1, s_img, 64}, 1).to(DType::bf16);
      flux_in.encoder_hidden_states = ops::randn({1, kTextTokens, 4096}, 2).to(DType::bf16);
      flux_in.pooled_projections = ops::randn({1, 768}, 3).to(DType::bf16);
      flux_in.timestep = ops::full({1}, 0.5, DType::bf16);
      flux_in.guidance = ops::full({1}, 3.5, DType::f32);
      flux_in.txt_ids = models::flux_text_ids(kTextTokens).to(DType::bf16);
      flux_in.img_ids = models::flux_latent_image_ids(side, side).to(DType::bf16);
      m.name = "flux";
      m.num_blocks = flux_double + flux_single;
      m.teacache_model = "flux";
      m.shape = "FLUX.1-dev width (3072 = 24 x 128), " + std::to_string(flux_double) +
                " double + " + std::to_string(flux_single) + " single blocks, " +
                std::to_string(size) + "x" + std::to_string(size) + ": " + std::to_string(s_img) +
                " image + " + std::to_string(kTextTokens) + " text tokens";
      m.forward = [&](const Context& ctx) { (void)flux->forward(flux_in, ctx); };
    } else if (model == "wan") {
      wan = random_wan_1_3b(wan_blocks);
      const int64_t f = (frames - 1) / 4 + 1, h = 480 / 8, w = 832 / 8;
      wan_in.hidden_states = ops::randn({1, 16, f, h, w}, 1).to(DType::bf16);
      wan_in.encoder_hidden_states = ops::randn({1, kTextTokens, 4096}, 2).to(DType::bf16);
      wan_in.timestep = ops::full({1}, 999.0, DType::i64);
      m.name = "wan";
      m.num_blocks = wan_blocks;
      m.teacache_model = "wan2.1-t2v-1.3b";
      m.shape = "Wan2.1-T2V-1.3B width (1536 = 12 x 128, FFN 8960), " + std::to_string(wan_blocks) +
                " blocks, 832x480 x " + std::to_string(frames) + " frames: " + std::to_string(f) +
                "x" + std::to_string(h / 2) + "x" + std::to_string(w / 2) + " = " +
                std::to_string(f * (h / 2) * (w / 2)) + " video + " + std::to_string(kTextTokens) +
                " text tokens";
      m.forward = [&](const Context& ctx) { (void)wan->forward(wan_in, ctx); };
    } else {
      std::fprintf(stderr, "bench_cache: unknown model %s (flux or wan)\n", model.c_str());
      return usage();
    }
    std::fprintf(stderr, "[bench_cache] %s: random weights in %.1f s\n", m.name.c_str(),
                 bench::seconds_since(t0));
    {
      const auto t1 = std::chrono::steady_clock::now();
      m.forward(Context{});  // warm-up
      std::fprintf(stderr, "[bench_cache] %s: warm-up forward %.2f s\n", m.name.c_str(),
                   bench::seconds_since(t1));
    }
    notes.push_back(m.name + ": " + m.shape);
    const size_t first = rows.size();
    for (const std::string& name : split(methods_arg)) {
      rows.push_back(run_method(m, make_method(name, m), repeats));
    }
    // dense has no agent to count its FLOPs: a computed step of any method runs the same blocks.
    double block_flops = 0;
    for (size_t i = first; i < rows.size(); ++i)
      if (rows[i].method != "dense" && rows[i].flops_computed > 0) {
        block_flops = rows[i].flops_computed;
        break;
      }
    for (size_t i = first; i < rows.size(); ++i)
      if (rows[i].method == "dense") rows[i].flops_computed = block_flops;
  }

  std::printf("\n");
  for (const std::string& n : notes) std::printf("%s\n", n.c_str());
  const char* const kHead = "%-5s %-14s %8s | %12s %10s %7s | %13s | %15s | %6s\n";
  std::printf(kHead, "model", "method", "pattern", "computed ms", "cached ms", "ratio", "cache MiB",
              "GFLOP comp/cach", "%peak");
  for (const Row& r : rows) {
    char cached[32] = "-", ratio[32] = "-", mib[48] = "-", gflop[48], pct[16] = "-";
    if (r.cached_s >= 0) {
      std::snprintf(cached, sizeof cached, "%.1f", r.cached_s * 1e3);
      std::snprintf(ratio, sizeof ratio, "%.2fx", r.computed_s / r.cached_s);
      std::snprintf(mib, sizeof mib, "%.1f / %.1f", r.held / (1 << 20), r.peak_held / (1 << 20));
      std::snprintf(gflop, sizeof gflop, "%.0f / %.0f", r.flops_computed / 1e9,
                    r.flops_cached / 1e9);
    } else {
      std::snprintf(gflop, sizeof gflop, "%.0f", r.flops_computed / 1e9);
    }
    if (peak > 0 && r.computed_s > 0 && r.flops_computed > 0)
      std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * r.flops_computed / r.computed_s / peak);
    std::printf("%-5s %-14s %8s | %12.1f %10s %7s | %13s | %15s | %6s\n", r.model.c_str(),
                r.method.c_str(), r.pattern.empty() ? "-" : r.pattern.c_str(), r.computed_s * 1e3,
                cached, ratio, mib, gflop, pct);
  }
  std::printf(
      "computed / cached ms: one forward on a step the method computes / caches (median of %d); "
      "ratio = computed / cached;\ncache MiB: held after the cached step / peak, one CFG branch "
      "(a guided run holds it per branch); GFLOP: transformer blocks only (BlockLoop::block_flops) "
      "in the two timed calls;\n%%peak: the computed call's block FLOPs / its time / the measured "
      "bf16 peak; pattern: the cond branch's steps, C computed, - reused, F forecast\n",
      repeats);
  return 0;
}
