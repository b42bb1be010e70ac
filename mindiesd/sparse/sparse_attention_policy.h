// Sparse attention behind the per-call seam: a model block's self-attention runs through
// layer::sparse_attention (rf or ada_bsa, layer/sparse_attention.h) once the denoising loop
// reaches start_step, dense before it (the suite's recommendation: the first steps set the
// layout and are the most sensitive). Which calls are sparse is decided from the call alone: q
// and k of one length S whose last t * h * w tokens are the model's token grid (Context::
// token_grid), the S - t h w tokens before them being text. Cross-attention (another key length)
// and calls without a grid stay dense, so the same policy serves FLUX's joint attention and
// Wan's self-attention without either model knowing about it.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mindiesd/core/context.h"
#include "mindiesd/layer/sparse_attention.h"

namespace mindiesd::sparse {

struct SparseAttentionConfig {
  layer::SparseType type = layer::SparseType::rf;
  double sparsity = 0.8;
  int64_t block_size = 128;
  int64_t start_step = 0;  // steps [0, start_step) are dense
  double cdf_threshold = 1.0;  // ada_bsa
  bool keep_sink = true;       // ada_bsa
  bool keep_recent = true;     // ada_bsa
  // Estimate the masks every mask_interval steps from start_step and reuse them in between
  // (per CFG branch and attention call; the suite's rf_v3 cached_mask). 1: every step.
  int64_t mask_interval = 1;
};

// "sparse:type=rf,sparsity=0.8,start_step=2[,block=128,cdf=0.9,sink=1,recent=1,mask_interval=N]",
// the --attention form ("dense" gives sparsity 0). InvalidArgument naming the key otherwise.
SparseAttentionConfig parse_sparse_attention_spec(std::string_view spec);
std::string describe(const SparseAttentionConfig& config);

// What the policy did over its lifetime (for reports and benchmarks).
struct SparseAttentionStats {
  int64_t sparse_calls = 0, dense_calls = 0, estimated = 0, reused = 0;
  double density_sum = 0.0;  // over sparse calls
  double mean_density() const { return sparse_calls ? density_sum / static_cast<double>(sparse_calls) : 1.0; }
};

class SparseAttention final : public AttentionPolicy {
 public:
  explicit SparseAttention(SparseAttentionConfig config);
  Tensor attention(const Context& ctx, const Tensor& q, const Tensor& k,
                   const Tensor& v) const override;
  const SparseAttentionConfig& config() const { return config_; }
  SparseAttentionStats stats() const;

 private:
  SparseAttentionConfig config_;
  mutable std::mutex mu_;
  mutable SparseAttentionStats stats_;
  // Mask reuse: the n-th attention call of a forward is the same layer at every step.
  mutable int64_t last_step_ = -2;
  mutable CfgBranch last_branch_ = CfgBranch::cond;
  mutable int64_t call_ = 0;
  mutable std::map<std::pair<int, int64_t>, Tensor> masks_;
};

}  // namespace mindiesd::sparse
