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
#include <utility>
#include <vector>

#include "mindiesd/core/context.h"
#include "mindiesd/sparse/sparse_config.h"

namespace mindiesd::sparse {

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
