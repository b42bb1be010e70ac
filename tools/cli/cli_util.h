// What the generate commands share: flag parsing, the progress bar and the summary formats.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mindiesd/core/device.h"
#include "mindiesd/core/dtype.h"
#include "mindiesd/pipelines/pipeline_util.h"
#include "mindiesd/quant/attention_quant.h"
#include "mindiesd/quant/quant_config.h"
#include "mindiesd/quant/quantize.h"
#include "mindiesd/sparse/sparse_attention_policy.h"

namespace mindiesd::cli {

// A bad command line: printed with the command's help, exit code 2.
struct UsageError {
  std::string message;
};

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
  T v{};
  const char* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || p != end) throw UsageError{flag + ": '" + text + "' is not a number"};
  return v;
}

// "1024x768" (width x height), also "1024*768" as the suite's service spells it.
std::pair<int64_t, int64_t> parse_size(const std::string& text);
// --dtype bf16|f32 and --device cpu|cuda[:N] (UsageError naming the flag otherwise).
DType parse_dtype(const std::string& text);
Device parse_device(const std::string& text);
std::string format_seconds(double s);
std::string format_bytes(int64_t b);
// One progress line on stderr: redrawn in place on a terminal, one line per step in a log.
void print_progress(const pipelines::StepInfo& s, bool tty);
// The run's summary on stderr: where the time went and the memory peaks.
struct RunSummary {
  double load_s = 0, text_encoding_s = 0, denoising_s = 0, decoding_s = 0;
  int64_t steps = 0;
  int64_t peak_allocated_bytes = 0, peak_reserved_bytes = 0, peak_rss_bytes = 0;
  // With --cache: its settings, what it computed and saved, and whether CFG ran two branches.
  std::optional<cache::CacheConfig> cache;
  std::optional<cache::CacheStats> cache_stats;
  bool cfg = false;
  // With --quant or a quantized folder: what was quantized.
  std::optional<quant::QuantReport> quant;
  std::optional<quant::AttentionQuantConfig> attention_quant;  // with --quant-attention
  // With --attention sparse:...: its settings and what it did.
  std::optional<sparse::SparseAttentionConfig> sparse;
  std::optional<sparse::SparseAttentionStats> sparse_stats;
};
void print_summary(const RunSummary& s);
// --cache SPEC (cache::parse_cache_spec), a UsageError naming the problem otherwise.
cache::CacheConfig parse_cache(const std::string& spec);
// The --cache line of the commands' help.
extern const char* const kCacheHelp;
// --quant SPEC (quant::parse_quant_spec), a UsageError naming the problem otherwise.
quant::QuantConfig parse_quant(const std::string& spec);
// --quant-attention SPEC (quant::parse_attention_quant_spec), a UsageError otherwise.
quant::AttentionQuantConfig parse_attention_quant(const std::string& spec);
// The --quant lines of the commands' help.
extern const char* const kQuantHelp;
// --attention SPEC (sparse::parse_sparse_attention_spec), a UsageError otherwise; "dense" gives
// no policy at all.
std::optional<sparse::SparseAttentionConfig> parse_attention(const std::string& spec);
extern const char* const kAttentionHelp;
// The model folder: --model, else $MINDIESD_MODEL, else the model this repository ships.
std::string model_folder(const std::vector<std::string>& args);

}  // namespace mindiesd::cli
