#include "mindiesd/sparse/sparse_attention_policy.h"

#include "mindiesd/layer/attention.h"

namespace mindiesd::sparse {

SparseAttention::SparseAttention(SparseAttentionConfig config) : config_(config) {}

SparseAttentionStats SparseAttention::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Tensor SparseAttention::attention(const Context& ctx, const Tensor& q, const Tensor& k,
                                  const Tensor& v) const {
  const auto& g = ctx.token_grid;
  const int64_t tokens = g[0] * g[1] * g[2];
  const bool self = q.size(1) == k.size(1) && tokens > 0 && tokens <= q.size(1);
  const bool active = ctx.step < 0 || ctx.step >= config_.start_step;
  const bool off = config_.sparsity == 0.0 && config_.cdf_threshold >= 1.0;
  if (!self || !active || off) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.dense_calls;
    return layer::attention_forward(q, k, v);
  }
  layer::SparseAttentionOptions o;
  o.sparse_type = config_.type;
  o.txt_len = q.size(1) - tokens;
  o.block_size = config_.block_size;
  o.latent_shape_q = o.latent_shape_k = g;
  o.keep_sink = config_.keep_sink;
  o.keep_recent = config_.keep_recent;
  o.cdf_threshold = config_.cdf_threshold;
  o.sparsity = config_.sparsity;

  std::unique_lock<std::mutex> lock(mu_);
  if (ctx.step != last_step_ || ctx.branch != last_branch_) {
    last_step_ = ctx.step;
    last_branch_ = ctx.branch;
    call_ = 0;
  }
  const std::pair<int, int64_t> key{static_cast<int>(ctx.branch), call_++};
  const bool estimate = config_.mask_interval <= 1 || ctx.step < 0 ||
                        (ctx.step - config_.start_step) % config_.mask_interval == 0;
  Tensor cached;
  if (!estimate) {
    const auto it = masks_.find(key);
    // A mask from another shape (a new resolution) is not reused.
    if (it != masks_.end() && it->second.size(0) == q.size(0) && it->second.size(1) == q.size(2) &&
        it->second.size(2) == (q.size(1) + o.block_size - 1) / o.block_size)
      cached = it->second;
  }
  lock.unlock();
  Tensor mask;
  Tensor out = layer::sparse_attention(q, k, v, o, "BSND", cached, &mask);
  const double density = layer::mask_density(mask);
  lock.lock();
  if (config_.mask_interval > 1 && !cached.defined()) masks_[key] = mask;
  ++stats_.sparse_calls;
  ++(cached.defined() ? stats_.reused : stats_.estimated);
  stats_.density_sum += density;
  return out;
}

}  // namespace mindiesd::sparse
