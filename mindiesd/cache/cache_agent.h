// CacheAgent: the step cache a denoising loop puts in its Context (core/context.h), one per
// generation, with separate state per CFG branch. It runs the configured method (cache_config.h)
// over any model that writes its blocks as a BlockLoop, and reports what it saved.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "mindiesd/cache/cache_config.h"
#include "mindiesd/core/context.h"

namespace mindiesd::cache {

struct BranchStats {
  int64_t steps_computed = 0, steps_cached = 0;
  int64_t blocks_computed = 0, blocks_skipped = 0;  // block evaluations (attention: reused ones)
  // One character per step: 'C' computed, '-' reused (a skipped block range or a reused
  // attention output), 'F' forecast (TaylorSeer).
  std::string pattern;
};

struct CacheStats {
  std::array<BranchStats, 2> branch;        // indexed by CfgBranch
  double flops_total = 0, flops_saved = 0;  // of the transformer blocks, as the model counts them
  int64_t bytes_held = 0, peak_bytes_held = 0;  // tensors the cache keeps between steps
};

class CacheAgent final : public CachePolicy {
 public:
  // InvalidArgument for a config out of range (validate()).
  explicit CacheAgent(CacheConfig config);
  ~CacheAgent() override;

  const CacheConfig& config() const { return config_; }
  // Forgets every stored tensor and statistic (a new generation). Step 0 of a branch also
  // resets that branch's state.
  void reset();
  CacheStats stats() const;

  BlockStreams run_blocks(const Context& ctx, const BlockLoop& loop, BlockStreams in) override;
  Tensor cached_attention(const Context& ctx, int64_t block,
                          const std::function<Tensor()>& compute) override;

  struct Impl;

 private:
  CacheConfig config_;
  std::unique_ptr<Impl> impl_;
};

// The summary line per branch and the totals, for the CLI: "cond: 12 computed, 8 cached
// (C-C-...), blocks 60/120; FLOP saved 41% (1.2 of 2.9 TFLOP); cache holds 3.1 MiB (peak)".
std::string format_stats(const CacheStats& stats, bool cfg);

}  // namespace mindiesd::cache
