// A full-depth Wan2.1 transformer forward from a folder on disk, with the process's memory
// accounted: does the model run in this machine's memory, and how fast, when its weights do
// not fit (Wan2.1-14B: 26.7 GiB of bf16/f32 weights on a 24 GiB machine)?
//
// The weights are mmapped and used in place (bf16 tensors stored in bf16 are never copied), so
// they are page cache, not process memory: the kernel reads them in as the blocks run and drops
// them again under pressure; only activations (and the few tensors converted at load) are
// anonymous memory. Reported: load and forward times, the allocator's peak, the process's peak
// RSS (VmHWM) and its anonymous / file-backed resident split after the forward.
//
// Make the folder with benchmark/make_random_wan.py (random weights, written one tensor at a
// time). Usage: bench_wan_full DIR [--frames 5] [--size 832x480] [--repeats 1]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "mindiesd/core/allocator.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/models/wan/wan_transformer.h"

namespace {

using namespace mindiesd;

// A /proc/self/status or /proc/meminfo field in bytes (0 when absent).
int64_t proc_kb(const char* file, const std::string& key) {
  std::ifstream f(file);
  std::string k;
  int64_t v = 0;
  std::string unit;
  while (f >> k) {
    if (k == key + ":") {
      f >> v;
      return v * 1024;
    }
  }
  return 0;
}

double gib(int64_t b) { return static_cast<double>(b) / (1 << 30); }

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_wan_full DIR [--frames 5] [--size 832x480] [--repeats 1]\n");
    return 2;
  }
  const std::string dir = argv[1];
  int64_t frames = 5, width = 832, height = 480, repeats = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--frames")
      frames = std::stoll(v);
    else if (a == "--repeats")
      repeats = std::stoll(v);
    else if (a == "--size") {
      width = std::stoll(v.substr(0, v.find('x')));
      height = std::stoll(v.substr(v.find('x') + 1));
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const int64_t mem_total = proc_kb("/proc/meminfo", "MemTotal");
  auto t0 = std::chrono::steady_clock::now();
  const io::DiffusersFolder folder = io::DiffusersFolder::open(dir);
  const models::WanTransformer3DModel model =
      models::WanTransformer3DModel::load(folder.components().front(), DType::bf16);
  const double load_s = since(t0);
  const auto& c = model.config();
  const int64_t lf = (frames - 1) / 4 + 1, lh = height / 8, lw = width / 8;
  models::WanForwardInputs in;
  in.hidden_states = ops::randn({1, c.in_channels, lf, lh, lw}, 1).to(DType::bf16);
  in.encoder_hidden_states = ops::randn({1, 512, c.text_dim}, 2).to(DType::bf16);
  in.timestep = ops::full({1}, 999.0, DType::i64);
  cpu_allocator().reset_peak();
  std::printf(
      "Wan transformer at %s: %.2f B parameters, %lld layers, dim %lld; machine memory "
      "%.2f GiB\n",
      dir.c_str(), static_cast<double>(model.num_params()) / 1e9,
      static_cast<long long>(c.num_layers),
      static_cast<long long>(c.num_attention_heads * c.attention_head_dim), gib(mem_total));
  std::printf("load (map + bind): %.2f s\n", load_s);
  for (int64_t r = 0; r < repeats; ++r) {
    t0 = std::chrono::steady_clock::now();
    const Tensor out = model.forward(in);
    std::printf(
        "forward %lld: %lld frames at %lldx%lld (%lld tokens), bf16, batch 1: %.1f s "
        "(a guided step is two)\n",
        static_cast<long long>(r), static_cast<long long>(frames), static_cast<long long>(width),
        static_cast<long long>(height), static_cast<long long>(lf * (lh / 2) * (lw / 2)),
        since(t0));
  }
  std::printf("allocator peak (activations and converted tensors): %.2f GiB\n",
              gib(cpu_allocator().stats().peak_allocated_bytes));
  std::printf(
      "process peak RSS (VmHWM): %.2f GiB; now resident: %.2f GiB anonymous, %.2f GiB "
      "file-backed (mapped weights)\n",
      gib(proc_kb("/proc/self/status", "VmHWM")), gib(proc_kb("/proc/self/status", "RssAnon")),
      gib(proc_kb("/proc/self/status", "RssFile")));
  return 0;
}
