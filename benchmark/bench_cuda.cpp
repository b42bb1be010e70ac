// GPU GEMM and attention at FLUX.1 / Wan2.1 shapes: TFLOP/s, the fraction of the device's
// measured bf16 matmul peak (PyTorch's 8192^3 product in the same run), and PyTorch
// (benchmark/torch_cuda.py: torch.matmul, F.scaled_dot_product_attention) on the same shapes in
// the same run. Timed with CUDA events on the op's stream, median of --reps after a warm-up.
// Attention rows: "sdpa/" is the op (cuDNN's fused attention where the build has
// cudnn-frontend, else mindiesd's flash kernel), "flash4w/" and "flash8w/" mindiesd's own kernel
// with 64- and 128-row blocks. MoE rows: "grouped/" is ops::grouped_matmul (one launch for all
// experts) beside torch._grouped_mm, "grouped_loop/" one matmul per expert beside torch's loop.
// Then one FLUX.1-dev transformer step at 1024^2 (19 + 38 blocks at 3072 wide, random bf16
// weights made on the GPU, 4096 image + 512 text tokens) next to diffusers' eager and
// regionally compiled FluxTransformer2DModel (torch_cuda.py flux), with the GPU memory peak.
// The FLUX step is timed eager and as one CUDA graph launch (kernel/cuda/cuda_graph.h).
// Then one Wan2.1-T2V-1.3B transformer forward at 832x480, 81 frames (32,760 tokens) next to
// diffusers (torch_cuda.py wan).
//
//   bench_cuda [--reps N] [--python PATH] [--no-peer] [--no-flux] [--no-wan]
// GEMM MxNxK: C[M,N] = A[M,K] @ B[K,N], row-major bf16. Attention BxHxSxD: q, k, v (B,H,S,D).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "mindiesd/models/wan/wan_transformer.h"
#include "peer.h"
#include "random_weights.h"

#if defined(MINDIESD_CUDA)
#include <cuda_runtime_api.h>

#include "mindiesd/kernel/cuda/cuda_graph.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"

namespace {

using namespace mindiesd;

const std::vector<std::string> kGemms = {"4608x3072x3072",  "4608x9216x3072",  "4608x12288x3072",
                                         "4608x3072x12288", "4096x3072x15360", "32760x1536x1536",
                                         "32760x8960x1536", "32760x1536x8960"};
const std::vector<std::string> kAttn = {"1x24x4608x128", "1x12x32760x128", "2x24x4608x128",
                                        "1x24x1024x128"};

// MoE grouped GEMMs RxNxKxE (DeepSeek-V2-Lite / Qwen-MoE sizes: H 2048, I 1408, 64 experts,
// 16384 routed rows): the gate/up and the down projection.
const std::vector<std::string> kMoe = {"16384x1408x2048x64", "16384x2048x1408x64"};

// Uneven expert loads, the same as torch_cuda.py's group_sizes: weight 1 + (37 e mod 11).
std::vector<int64_t> group_sizes(int64_t rows, int64_t groups) {
  std::vector<int64_t> w(groups), sizes(groups);
  int64_t total = 0, used = 0;
  for (int64_t e = 0; e < groups; ++e) total += w[e] = 1 + (37 * e) % 11;
  for (int64_t e = 0; e < groups; ++e) used += sizes[e] = rows * w[e] / total;
  sizes.back() += rows - used;
  return sizes;
}

std::vector<int64_t> dims_of(const std::string& s) {
  std::vector<int64_t> d;
  for (const std::string& p : bench::split_list(s, 'x')) d.push_back(std::stoll(p));
  return d;
}

// Median seconds of fn() over reps, each bracketed by events on the CUDA default stream.
template <typename F>
double time_cuda(F&& fn, int reps) {
  Backend& be = backend_for(Device::cuda());
  auto stream = static_cast<cudaStream_t>(be.default_stream(0).native());
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  fn();
  be.synchronize(0);
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(a, stream);
    fn();
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms / 1e3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// FLUX.1-dev's transformer with N(0, 0.02) bf16 weights generated on the GPU, bound by the
// diffusers names the model expects.
models::FluxTransformer2DModel random_flux(const Device& gpu) {
  io::FluxTransformer2DModelConfig c;  // FLUX.1-dev: 19 + 38 blocks, 24 x 128 heads
  c.guidance_embeds = true;
  uint64_t seed = 100;
  std::map<std::string, Tensor> w = bench::random_flux_state_dict(
      c,
      [&](const Shape& shape) {
        return ops::affine(ops::randn(shape, seed++, 0, DType::bf16, gpu), 0.02f, 0.0f);
      },
      gpu);
  return models::FluxTransformer2DModel::from_weights(
             c, io::WeightStore::from_tensors(std::move(w)), DType::bf16)
      .to(gpu);
}

// torch_cuda.py's rows for one model (`part`: flux or wan): mode -> {seconds, GPU peak bytes}.
using PeerRows = std::map<std::string, std::pair<double, double>>;
PeerRows model_peer(const std::string& python, const std::string& part) {
  PeerRows rows;
  for (const auto& j : bench::run_peer(python, "torch_cuda.py", part + " --model-repeats 5")) {
    rows[j.value("mode", std::string())] = {j["seconds"].get<double>(), j.value("peak_bytes", 0.0)};
  }
  return rows;
}

// Our step and the peer's, with TFLOP/s, the fraction of the peak and GPU memory.
void print_model_rows(double step, double flops, double peak, double peak_bytes, double weights_gib,
                      const PeerRows& torch) {
  std::printf(
      "  mindiesd          %8.1f ms  %6.1f TFLOP/s (%4.1f%% of peak)  GPU peak %.2f GiB "
      "(weights %.2f GiB)\n",
      step * 1e3, flops / step / 1e12, 100 * flops / step / 1e12 / peak,
      peak_bytes / double(1 << 30), weights_gib);
  for (const auto& [mode, r] : torch)
    std::printf("  diffusers %-7s %8.1f ms  %6.1f TFLOP/s  GPU peak %.2f GiB; mindiesd %.2fx\n",
                mode.c_str(), r.first * 1e3, flops / r.first / 1e12, r.second / double(1 << 30),
                r.first / step);
}

// One FLUX.1-dev transformer step at 1024^2 next to diffusers eager and compiled.
void flux_step(const std::string& python, bool peer, double peak, const Device& gpu) {
  const auto torch = peer ? model_peer(python, "flux") : PeerRows{};
  Allocator& alloc = backend_for(gpu).allocator(0);
  alloc.empty_cache();
  const models::FluxTransformer2DModel model = random_flux(gpu);
  const double weights_gib = alloc.stats().allocated_bytes / double(1 << 30);
  const int64_t side = 64, s_img = side * side, s_txt = 512;
  models::FluxForwardInputs in;
  in.hidden_states = ops::randn({1, s_img, 64}, 1, 0, DType::bf16, gpu);
  in.encoder_hidden_states = ops::randn({1, s_txt, 4096}, 2, 0, DType::bf16, gpu);
  in.pooled_projections = ops::randn({1, 768}, 3, 0, DType::bf16, gpu);
  in.timestep = ops::full({1}, 0.5, DType::bf16);
  in.guidance = ops::full({1}, 3.5, DType::f32);
  in.txt_ids = models::flux_text_ids(s_txt);
  in.img_ids = models::flux_latent_image_ids(side, side);
  alloc.reset_peak();
  const double step = time_cuda([&] { (void)model.forward(in); }, 5);
  const AllocatorStats fs = alloc.stats();
  // FLOPs: 12 H^2 MACs of projections per token per block plus 2 T^2 H of attention.
  const double t = s_img + s_txt, h = 3072;
  const double flops = 57 * 2.0 * (12.0 * h * h * t + 2.0 * t * t * h);
  std::printf("\nFLUX.1-dev transformer step, 1024x1024 (4096 + 512 tokens), bf16, %lld params\n",
              static_cast<long long>(model.num_params()));
  print_model_rows(step, flops, peak, fs.peak_allocated_bytes, weights_gib, torch);
  // The same step as one CUDA graph launch (FluxPipelineOptions::cuda_graphs): what the
  // per-kernel launch cost was.
  const models::FluxDeviceInputs dev_in = model.prepare(in);
  Tensor out;
  const std::unique_ptr<cuda::CudaGraph> graph =
      cuda::CudaGraph::capture(gpu, [&] { out = model.forward(dev_in); });
  const double graphed = time_cuda([&] { graph->replay(); }, 5);
  std::printf("  mindiesd graph    %8.1f ms  %6.1f TFLOP/s (%4.1f%% of peak); eager / graph %.3fx\n",
              graphed * 1e3, flops / graphed / 1e12, 100 * flops / graphed / 1e12 / peak,
              step / graphed);
}

// Wan2.1-T2V-1.3B's transformer with N(0, 0.02) bf16 weights generated on the GPU.
models::WanTransformer3DModel random_wan_1_3b(const Device& gpu) {
  io::WanTransformer3DModelConfig c;  // Wan2.1-T2V-1.3B: 30 blocks, 12 x 128 heads, FFN 8960
  c.num_attention_heads = 12;
  c.ffn_dim = 8960;
  c.num_layers = 30;
  uint64_t seed = 500;
  std::map<std::string, Tensor> w = bench::random_wan_state_dict(
      c,
      [&](const Shape& shape) {
        return ops::affine(ops::randn(shape, seed++, 0, DType::bf16, gpu), 0.02f, 0.0f);
      },
      gpu);
  return models::WanTransformer3DModel::from_weights(c, io::WeightStore::from_tensors(std::move(w)),
                                                     DType::bf16)
      .to(gpu);
}

// One Wan2.1-T2V-1.3B transformer forward at 832x480, 81 frames (32,760 tokens, 512 text
// tokens), next to diffusers eager and compiled (torch_cuda.py wan).
void wan_step(const std::string& python, bool peer, double peak, const Device& gpu) {
  const auto torch = peer ? model_peer(python, "wan") : PeerRows{};
  Allocator& alloc = backend_for(gpu).allocator(0);
  alloc.empty_cache();
  const models::WanTransformer3DModel model = random_wan_1_3b(gpu);
  const double weights_gib = alloc.stats().allocated_bytes / double(1 << 30);
  const int64_t frames = 21, lh = 60, lw = 104, text = 512;
  models::WanForwardInputs in;
  in.hidden_states = ops::randn({1, 16, frames, lh, lw}, 1, 0, DType::bf16, gpu);
  in.encoder_hidden_states = ops::randn({1, text, 4096}, 2, 0, DType::bf16, gpu);
  in.timestep = ops::full({1}, 500.0, DType::i64);
  alloc.reset_peak();
  const double step = time_cuda([&] { (void)model.forward(in); }, 5);
  const AllocatorStats st = alloc.stats();
  // Per block: projections 2 [S (4 D^2 + 2 D^2 + 2 D F) + L 2 D^2], attention 4 S^2 D + 4 S L D.
  const double s_tok = frames * (lh / 2) * (lw / 2), d = 1536, f = 8960, l = text;
  const double flops = 30 * (2 * (s_tok * (6 * d * d + 2 * d * f) + l * 2 * d * d) +
                             4 * s_tok * s_tok * d + 4 * s_tok * l * d);
  std::printf(
      "\nWan2.1-T2V-1.3B transformer step, 832x480x81 (%.0f + %.0f tokens), bf16, %lld "
      "params\n",
      s_tok, l, static_cast<long long>(model.num_params()));
  print_model_rows(step, flops, peak, st.peak_allocated_bytes, weights_gib, torch);
}

}  // namespace

int main(int argc, char** argv) {
  std::string python = bench::default_python();
  int reps = 20;
  bool peer = true, flux = true, wan = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc)
      reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--python" && i + 1 < argc)
      python = argv[++i];
    else if (a == "--no-peer")
      peer = false;
    else if (a == "--no-flux")
      flux = false;
    else if (a == "--no-wan")
      wan = false;
    else {
      std::fprintf(
          stderr,
          "usage: bench_cuda [--reps N] [--python PATH] [--no-peer] [--no-flux] [--no-wan]\n");
      return 2;
    }
  }
  if (find_backend(DeviceType::CUDA) == nullptr) {
    std::printf("bench_cuda: no CUDA device visible\n");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  const Device gpu = Device::cuda();

  std::map<std::string, double> torch;  // "gemm/MxNxK", "sdpa/BxHxSxD", "grouped/...", "peak"
  if (peer) {
    for (const auto& j : bench::run_peer(python, "torch_cuda.py",
                                         "ceilings gemm sdpa moe --repeats " + std::to_string(reps))) {
      const std::string what = j.value("what", std::string());
      if (what == "gemm")
        torch["gemm/" + std::to_string(j.value("m", 0L)) + "x" + std::to_string(j.value("n", 0L)) +
              "x" + std::to_string(j.value("k", 0L))] = j["seconds"].get<double>();
      else if (what == "sdpa" || what == "grouped" || what == "grouped_loop")
        torch[what + "/" + j.value("shape", std::string())] = j["seconds"].get<double>();
      else if (what == "gemm_peak")
        torch["peak"] = j.value("tflops", 0.0);
    }
  }
  // Our own 8192^3 product too: the peak through our path.
  const Tensor pa = ops::randn({8192, 8192}, 1, 0, DType::bf16, gpu);
  const Tensor pb = ops::randn({8192, 8192}, 2, 0, DType::bf16, gpu);
  const double own_peak =
      2.0 * 8192 * 8192 * 8192 / time_cuda([&] { (void)ops::matmul(pa, pb); }, reps) / 1e12;
  const double peak = torch.count("peak") ? torch["peak"] : own_peak;
  std::printf("measured bf16 matmul peak (8192^3): torch %.1f TFLOP/s, mindiesd %.1f TFLOP/s\n",
              torch.count("peak") ? torch["peak"] : 0.0, own_peak);

  std::printf("\n%-24s %9s %9s %7s %11s %7s\n", "op shape (bf16)", "ms", "TFLOP/s", "%peak",
              "torch TF/s", "ratio");
  auto row = [&](const std::string& key, double secs, double flops) {
    const double tf = flops / secs / 1e12;
    const auto it = torch.find(key);
    if (it != torch.end()) {
      const double ttf = flops / it->second / 1e12;
      std::printf("%-24s %9.3f %9.1f %6.1f%% %11.1f %6.2fx\n", key.c_str(), secs * 1e3, tf,
                  100 * tf / peak, ttf, tf / ttf);
    } else {
      std::printf("%-24s %9.3f %9.1f %6.1f%% %11s %7s\n", key.c_str(), secs * 1e3, tf,
                  100 * tf / peak, "-", "-");
    }
  };
  for (const std::string& s : kGemms) {
    const std::vector<int64_t> d = dims_of(s);
    const Tensor a = ops::randn({d[0], d[2]}, 3, 0, DType::bf16, gpu);
    const Tensor b = ops::randn({d[2], d[1]}, 4, 0, DType::bf16, gpu);
    row("gemm/" + s, time_cuda([&] { (void)ops::matmul(a, b); }, reps), 2.0 * d[0] * d[1] * d[2]);
  }
  for (const std::string& s : kAttn) {
    const std::vector<int64_t> d = dims_of(s);
    const Tensor q = ops::randn({d[0], d[1], d[2], d[3]}, 5, 0, DType::bf16, gpu);
    const Tensor k = ops::randn({d[0], d[1], d[2], d[3]}, 6, 0, DType::bf16, gpu);
    const Tensor v = ops::randn({d[0], d[1], d[2], d[3]}, 7, 0, DType::bf16, gpu);
    const double flops = 4.0 * d[0] * d[1] * d[2] * d[2] * d[3];
    const double secs =
        time_cuda([&] { (void)layer::attention_forward(q, k, v, Tensor(), "BNSD"); }, reps);
    row("sdpa/" + s, secs, flops);
    // The op takes cuDNN's fused attention where the build has it; mindiesd's own flash kernel
    // with both block shapes (4 warps / 64 query rows, 8 warps / 128), launched directly.
    const Tensor out = Tensor::empty(q.shape(), DType::bf16, gpu);
    cuda::FlashArgs fa =
        cuda::flash_args(q, k, v, out, 1.0f / std::sqrt(static_cast<float>(d[3])), false);
    auto stream = static_cast<cudaStream_t>(backend_for(gpu).default_stream(0).native());
    for (int warps : {4, 8}) {
      fa.block_warps = warps;
      row("flash" + std::to_string(warps) + "w/" + s,
          time_cuda([&] { cuda::launch_flash_attention(DType::bf16, d[3], fa, stream); }, reps),
          flops);
    }
  }
  // MoE: our grouped GEMM (one launch) against torch._grouped_mm, and the per-expert loop of
  // matmuls against torch's.
  for (const std::string& s : kMoe) {
    const std::vector<int64_t> d = dims_of(s);  // R, N, K, E
    const Tensor x = ops::randn({d[0], d[2]}, 8, 0, DType::bf16, gpu);
    const Tensor w = ops::randn({d[3], d[1], d[2]}, 9, 0, DType::bf16, gpu);
    const std::vector<int64_t> sizes = group_sizes(d[0], d[3]);
    Tensor off = Tensor::empty({d[3] + 1}, DType::i64);
    off.data<int64_t>()[0] = 0;
    for (int64_t e = 0; e < d[3]; ++e) off.data<int64_t>()[e + 1] = off.data<int64_t>()[e] + sizes[e];
    const Tensor off_gpu = off.to(gpu);
    const double flops = 2.0 * d[0] * d[1] * d[2];
    row("grouped/" + s, time_cuda([&] { (void)ops::grouped_matmul(x, w, off_gpu); }, reps), flops);
    row("grouped_loop/" + s, time_cuda([&] {
          for (int64_t e = 0; e < d[3]; ++e) {
            const int64_t b = off.data<int64_t>()[e];
            (void)ops::matmul(x.narrow(0, b, sizes[e]), w.select(0, e).transpose(0, 1));
          }
        }, reps), flops);
  }
  const AllocatorStats st = backend_for(gpu).allocator(0).stats();
  std::printf("\nGPU allocator peak: %.2f GiB allocated, %.2f GiB reserved\n",
              st.peak_allocated_bytes / double(1 << 30), st.peak_reserved_bytes / double(1 << 30));

  if (flux) flux_step(python, peer, peak, gpu);
  if (wan) wan_step(python, peer, peak, gpu);
  return 0;
}

#else

int main() {
  std::printf("bench_cuda: built without the CUDA backend (configure with the cuda preset)\n");
  return 0;
}

#endif
