#include "mindiesd/sparse/sparse_attention_policy.h"

#include "mindiesd/core/error.h"
#include "mindiesd/core/spec.h"
#include "mindiesd/layer/attention.h"

namespace mindiesd::sparse {

namespace {
constexpr std::string_view kFlag = "--attention";
}

SparseAttentionConfig parse_sparse_attention_spec(std::string_view spec) {
  const OptionSpec s = parse_option_spec(kFlag, spec);
  SparseAttentionConfig c;
  if (s.name == "dense") {
    MINDIESD_CHECK(s.items.empty(), InvalidArgument, kFlag, " dense takes no options");
    c.sparsity = 0.0;
    return c;
  }
  MINDIESD_CHECK(s.name == "sparse", InvalidArgument, kFlag, ": unknown kind '", s.name,
                 "' (dense, sparse:type=rf|ada_bsa,...)");
  for (const auto& [key, v] : s.items) {
    if (key == "type") {
      MINDIESD_CHECK(v == "rf" || v == "rf_v2" || v == "rf_v3" || v == "ada_bsa", InvalidArgument,
                     kFlag, " ", s.name, ": type '", v, "' is not one of rf, ada_bsa");
      c.type = layer::parse_sparse_type(v);
    } else if (key == "sparsity") {
      c.sparsity = spec_double(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.sparsity >= 0.0 && c.sparsity < 1.0, InvalidArgument, kFlag, " ", s.name,
                     ": sparsity ", c.sparsity, " must be in [0, 1)");
    } else if (key == "start_step") {
      c.start_step = spec_int(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.start_step >= 0, InvalidArgument, kFlag, " ", s.name, ": start_step ",
                     c.start_step, " must be >= 0");
    } else if (key == "block" || key == "block_size") {
      c.block_size = spec_int(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.block_size >= 16 && c.block_size <= 1024 && c.block_size % 16 == 0,
                     InvalidArgument, kFlag, " ", s.name, ": ", key, " ", c.block_size,
                     " must be a multiple of 16 in [16, 1024]");
    } else if (key == "cdf" || key == "cdf_threshold") {
      c.cdf_threshold = spec_double(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.cdf_threshold > 0.0 && c.cdf_threshold <= 1.0, InvalidArgument, kFlag, " ",
                     s.name, ": ", key, " ", c.cdf_threshold, " must be in (0, 1]");
    } else if (key == "sink" || key == "keep_sink") {
      c.keep_sink = spec_bool(kFlag, s.name, key, v);
    } else if (key == "recent" || key == "keep_recent") {
      c.keep_recent = spec_bool(kFlag, s.name, key, v);
    } else if (key == "mask_interval") {
      c.mask_interval = spec_int(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.mask_interval >= 1, InvalidArgument, kFlag, " ", s.name,
                     ": mask_interval ", c.mask_interval, " must be >= 1");
    } else {
      MINDIESD_THROW(InvalidArgument, kFlag, " ", s.name, ": unknown key '", key,
                     "' (type, sparsity, start_step, block, cdf, sink, recent, mask_interval)");
    }
  }
  return c;
}

std::string describe(const SparseAttentionConfig& c) {
  if (c.sparsity == 0.0 && c.cdf_threshold >= 1.0) return "dense attention";
  std::string s = str_cat("sparse attention ", layer::sparse_type_name(c.type), ", sparsity ",
                          c.sparsity, ", blocks of ", c.block_size, ", from step ", c.start_step);
  if (c.type == layer::SparseType::ada_bsa)
    s += str_cat(", cdf ", c.cdf_threshold, c.keep_sink ? ", sink" : "", c.keep_recent ? ", recent" : "");
  if (c.mask_interval > 1) s += str_cat(", masks every ", c.mask_interval, " steps");
  return s;
}

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
