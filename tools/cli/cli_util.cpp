#include "cli_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "mindiesd/core/error.h"

namespace mindiesd::cli {

namespace fs = std::filesystem;

std::pair<int64_t, int64_t> parse_size(const std::string& text) {
  const size_t x = text.find_first_of("x*");
  if (x == std::string::npos) throw UsageError{"--size: expected WxH, got '" + text + "'"};
  return {parse_number<int64_t>("--size", text.substr(0, x)),
          parse_number<int64_t>("--size", text.substr(x + 1))};
}

DType parse_dtype(const std::string& d) {
  if (d == "bf16") return DType::bf16;
  if (d == "f32") return DType::f32;
  throw UsageError{"--dtype: bf16 or f32, got '" + d + "'"};
}

Device parse_device(const std::string& d) {
  try {
    return Device::parse(d);
  } catch (const Error&) {
    throw UsageError{"--device: cpu, cuda or cuda:N, got '" + d + "'"};
  }
}

std::string format_seconds(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%.1fs", s);
  } else {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  }
  return buf;
}

std::string format_bytes(int64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(b) / (1 << 30));
  if (b < (int64_t{1} << 30))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

void print_progress(const pipelines::StepInfo& s, bool tty) {
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * s.step / s.total);
  const double rate = s.elapsed_s > 0 ? static_cast<double>(s.step) / s.elapsed_s : 0;
  const double eta = rate > 0 ? static_cast<double>(s.total - s.step) / rate : 0;
  char line[160];
  std::snprintf(line, sizeof(line), "denoising [%s%s] %lld/%lld  %s  ETA %s",
                std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                static_cast<long long>(s.step), static_cast<long long>(s.total),
                rate >= 1
                    ? (std::to_string(rate).substr(0, 5) + " it/s").c_str()
                    : (std::to_string(rate > 0 ? 1 / rate : 0).substr(0, 5) + " s/it").c_str(),
                format_seconds(eta).c_str());
  // On a terminal the bar redraws in place; in a log each step is its own line.
  std::cerr << (tty ? "\r" : "") << line << (tty && s.step < s.total ? "" : "\n") << std::flush;
}

void print_summary(const RunSummary& s) {
  std::fprintf(stderr,
               "load %.2fs | text encoding %.2fs | denoising %.2fs (%lld steps, %.3f s/step) | "
               "decoding %.2fs\npeak memory: %s in tensors (%s held by the allocator), %s resident "
               "(incl. mapped weights)\n",
               s.load_s, s.text_encoding_s, s.denoising_s, static_cast<long long>(s.steps),
               s.denoising_s / static_cast<double>(std::max<int64_t>(s.steps, 1)), s.decoding_s,
               format_bytes(s.peak_allocated_bytes).c_str(),
               format_bytes(s.peak_reserved_bytes).c_str(), format_bytes(s.peak_rss_bytes).c_str());
  if (s.quant) std::fprintf(stderr, "quant: %s\n", s.quant->str().c_str());
  if (s.attention_quant)
    std::fprintf(stderr, "quant: %s\n", quant::describe(*s.attention_quant).c_str());
  if (s.sparse && s.sparse_stats) {
    std::fprintf(stderr, "attention: %s; %lld calls sparse (mean kept blocks %.1f%%, %lld masks "
                 "estimated, %lld reused), %lld dense\n",
                 sparse::describe(*s.sparse).c_str(),
                 static_cast<long long>(s.sparse_stats->sparse_calls),
                 100.0 * s.sparse_stats->mean_density(),
                 static_cast<long long>(s.sparse_stats->estimated),
                 static_cast<long long>(s.sparse_stats->reused),
                 static_cast<long long>(s.sparse_stats->dense_calls));
  }
  if (s.cache && s.cache_stats) {
    std::fprintf(stderr, "cache: %s\n%s", cache::describe(*s.cache).c_str(),
                 cache::format_stats(*s.cache_stats, s.cfg).c_str());
  }
}

quant::QuantConfig parse_quant(const std::string& spec) {
  try {
    return quant::parse_quant_spec(spec);
  } catch (const Error& e) {
    throw UsageError{e.what()};
  }
}

quant::AttentionQuantConfig parse_attention_quant(const std::string& spec) {
  try {
    return quant::parse_attention_quant_spec(spec);
  } catch (const Error& e) {
    throw UsageError{e.what()};
  }
}

const char* const kQuantHelp =
    "  --quant SPEC             quantize the transformer's linear layers at load, "
    "ALGO[:key=value]:\n"
    "                             w8a8_dynamic     int8 per-token activations, per-channel "
    "weights\n"
    "                             fp8              e4m3 per-row activations and weights\n"
    "                             w8a16[:group=G]  int8 weights (G = 32, 64, 128; default per "
    "channel)\n"
    "                             w4a16[:group=G]  int4 weights\n"
    "                           keys: exclude=P;P include=P;P (layer name patterns), all=1 (no\n"
    "                           default exclusions). Static W8A8 / W8A8_TIMESTEP need "
    "calibration:\n"
    "                           `mindiesd quantize` writes a quantized folder "
    "(docs/quantization.md)\n"
    "  --quant-attention fp8[:rotate=1,block_q=128,block_kv=256]\n"
    "                           e4m3 block-quantized Q/K/V in the transformer blocks, Q and K\n"
    "                           optionally Hadamard-rotated (numerics of FP8 attention; no "
    "speedup)\n";

std::optional<sparse::SparseAttentionConfig> parse_attention(const std::string& spec) {
  try {
    sparse::SparseAttentionConfig c = sparse::parse_sparse_attention_spec(spec);
    if (c.sparsity == 0.0 && c.cdf_threshold >= 1.0) return std::nullopt;
    return c;
  } catch (const Error& e) {
    throw UsageError{e.what()};
  }
}

const char* const kAttentionHelp =
    "  --attention SPEC         self-attention of the transformer blocks: dense (default) or\n"
    "                           sparse:type=rf|ada_bsa,sparsity=S[,start_step=K,block=128,\n"
    "                                  cdf=C,sink=1,recent=1,mask_interval=N]\n"
    "                           block-sparse attention from step K on (dense before; suggested\n"
    "                           starts: sparsity 0.6 for images, 0.8 for video); "
    "docs/sparse_attention.md\n";

cache::CacheConfig parse_cache(const std::string& spec) {
  try {
    return cache::parse_cache_spec(spec);
  } catch (const Error& e) {
    throw UsageError{e.what()};
  }
}

const char* const kCacheHelp =
    "  --cache SPEC             step cache, METHOD[:key=value,...]:\n"
    "                             teacache:thresh=T[,model=M,ret_steps=1,\n"
    "                                      coefficients=A;B;...]        (TeaCache)\n"
    "                             fbcache:thresh=T[,warmup=W]              (First-Block cache)\n"
    "                             dbcache:fn=F,bn=B,thresh=T[,warmup=W,max_cached=K,\n"
    "                                     max_continuous=C,taylorseer=1|2] (DBCache)\n"
    "                             dit_block:start=S,interval=I[,end=E,blocks=A-B]\n"
    "                             attention:start=S,interval=I[,end=E,blocks=A-B]\n"
    "                             taylorseer:order=1|2,interval=I,warmup=W\n"
    "                           (docs/cache.md); the summary gives the steps computed and\n"
    "                           cached per CFG branch, the FLOP saved and the memory held\n";

std::string model_folder(const std::vector<std::string>& args) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--model") return args[i + 1];
  if (const char* env = std::getenv("MINDIESD_MODEL"); env != nullptr && *env) return env;
  if (fs::is_directory(MINDIESD_DEFAULT_MODEL)) return MINDIESD_DEFAULT_MODEL;
  throw UsageError{"--model DIR is required (the default model " MINDIESD_DEFAULT_MODEL
                   " is not there)"};
}

}  // namespace mindiesd::cli
