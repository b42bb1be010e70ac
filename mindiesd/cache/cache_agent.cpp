#include "mindiesd/cache/cache_agent.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "mindiesd/cache/teacache.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::cache {

namespace {

// mean(|x|) over every element, in f32 (one host read).
double mean_abs(const Tensor& x) {
  std::vector<int> dims(x.dim());
  for (int d = 0; d < x.dim(); ++d) dims[d] = d;
  return ops::reduce(ops::abs(x.to(DType::f32)), dims, ReduceKind::mean).item();
}

// mean|a - b| / mean|b|: the relative L1 distance TeaCache, FBCache and DBCache compare.
double relative_l1(const Tensor& a, const Tensor& b) {
  const double den = mean_abs(b);
  const double num = mean_abs(ops::sub(a.to(DType::f32), b.to(DType::f32)));
  return den > 0 ? num / den : (num > 0 ? INFINITY : 0.0);
}

// The suite's step rule (mindiesd.cache_agent): off when a range is empty or every step would
// compute; otherwise a step in [step_start, step_end) reuses unless it falls on the interval.
// step_end is honoured (the suite's DiTBlockCache never reads it).
struct StepRule {
  const CacheConfig& c;
  bool active(int64_t num_blocks, int64_t num_steps) const {
    return !(c.step_start >= num_steps || c.step_end == c.step_start ||
             c.block_start >= num_blocks || c.block_end == c.block_start || c.step_interval == 1);
  }
  bool reuses(int64_t step) const {
    return step >= c.step_start && step < c.step_end &&
           (step - c.step_start) % c.step_interval != 0;
  }
  bool stores(int64_t step) const { return step >= c.step_start && step < c.step_end; }
};

// A residual kept across steps, reused as stored or forecast by TaylorSeer (Liu et al. 2025,
// "From Reusing to Forecasting: Accelerating Diffusion Models with TaylorSeers"): on each
// computed step f[0] is the new value and f[k + 1] = (f[k] - f_prev[k]) / (steps between the
// two computations); a cached step at distance x from the last computation predicts
// sum_k f[k] x^k / k!. Before enough computations exist the series is shorter (order 0 is
// plain reuse).
class ResidualForecast {
 public:
  explicit ResidualForecast(int64_t order = 0) : order_(order) {}

  bool ready() const { return !f_.empty(); }
  const Shape& shape() const { return f_.front().shape(); }
  void clear() {
    f_.clear();
    last_step_ = -1;
  }
  void update(Tensor value, int64_t step) {
    std::vector<Tensor> g{std::move(value)};
    if (order_ > 0 && last_step_ >= 0 && step > last_step_) {
      const float inv_dt = 1.0f / static_cast<float>(step - last_step_);
      for (size_t k = 0; k < f_.size() && static_cast<int64_t>(k) < order_; ++k) {
        g.push_back(ops::affine(ops::sub(g[k], f_[k]), inv_dt, 0.0f));
      }
    }
    f_ = std::move(g);
    last_step_ = step;
  }
  // Whether predict() extrapolates (has a derivative) rather than reusing.
  bool forecasts() const { return f_.size() > 1; }
  Tensor predict(int64_t step) const {
    Tensor out = f_[0];
    const double x = static_cast<double>(step - last_step_);
    double coef = 1.0;
    for (size_t k = 1; k < f_.size(); ++k) {
      coef *= x / static_cast<double>(k);
      out = ops::add(out, ops::affine(f_[k], static_cast<float>(coef), 0.0f));
    }
    return out;
  }
  int64_t bytes() const {
    int64_t n = 0;
    for (const Tensor& t : f_) n += t.nbytes();
    return n;
  }

 private:
  int64_t order_;
  std::vector<Tensor> f_;
  int64_t last_step_ = -1;
};

// TeaCache (ali-vilab/TeaCache): rel = mean|m_t - m_prev| / mean|m_prev| of the indicator m,
// rescaled by the model's polynomial and accumulated; a step reuses the stored residual while the
// accumulation stays below the threshold, computes (and resets it to 0) otherwise. m_prev is
// updated on every call, reused or not. Forced computations: the first step and the last
// (TeaCache4FLUX, TeaCache4Wan2.1 without ret-steps); with use_ret_steps the first 5 steps and
// not the last (Wan2.1's ret_steps = 10 calls over both CFG branches, cutoff = all steps).
class TeaCacheRule {
 public:
  TeaCacheRule(std::vector<double> coefficients, double threshold, bool ret_steps)
      : coef_(std::move(coefficients)), threshold_(threshold), ret_steps_(ret_steps) {}

  bool reuse(const Tensor& indicator, int64_t step, int64_t num_steps, bool ready) {
    const bool forced = step < (ret_steps_ ? 5 : 1) || (!ret_steps_ && step == num_steps - 1);
    bool reuse = false;
    if (forced || !prev_.defined() || prev_.shape() != indicator.shape()) {
      acc_ = 0.0;
    } else {
      acc_ += rescale(relative_l1(indicator, prev_));
      if (acc_ < threshold_ && ready)
        reuse = true;
      else
        acc_ = 0.0;
    }
    prev_ = indicator;
    return reuse;
  }
  void clear() {
    prev_ = Tensor();
    acc_ = 0.0;
  }
  int64_t bytes() const { return prev_.defined() ? prev_.nbytes() : 0; }

 private:
  double rescale(double x) const {  // numpy.poly1d: highest power first
    double y = 0.0;
    for (double k : coef_) y = y * x + k;
    return y;
  }
  std::vector<double> coef_;
  double threshold_;
  bool ret_steps_;
  Tensor prev_;
  double acc_ = 0.0;
};

// First-Block cache (ParaAttention) and DBCache (cache-dit): the residual of the first Fn blocks
// rF = H_Fn - H_in is compared with the one of the last computed step; a step reuses while
// mean|rF_prev - rF| / mean|rF_prev| < threshold, outside the warmup steps and within the limits
// on cached steps (in total, and in a row). rF_prev is replaced only on computed steps.
// cache-dit's consecutive counter resets only when it hits its limit; here it counts the
// current run of cached steps and restarts at every computed step.
class ResidualDiffRule {
 public:
  ResidualDiffRule(const CacheConfig& c, double threshold) : c_(&c), threshold_(threshold) {}

  bool reuse(const Tensor& first_residual, int64_t step, bool ready) {
    const CacheConfig& c = *c_;
    bool reuse = ready && step >= c.warmup_steps && prev_.defined() &&
                 prev_.shape() == first_residual.shape() &&
                 (c.max_cached_steps < 0 || cached_ < c.max_cached_steps) &&
                 (c.max_continuous_cached_steps < 0 || continuous_ < c.max_continuous_cached_steps);
    if (reuse) reuse = relative_l1(first_residual, prev_) < threshold_;
    if (reuse) {
      ++cached_;
      ++continuous_;
    } else {
      prev_ = first_residual;
      continuous_ = 0;
    }
    return reuse;
  }
  void clear() {
    prev_ = Tensor();
    cached_ = continuous_ = 0;
  }
  int64_t bytes() const { return prev_.defined() ? prev_.nbytes() : 0; }

 private:
  const CacheConfig* c_;
  double threshold_;
  Tensor prev_;
  int64_t cached_ = 0, continuous_ = 0;
};

}  // namespace

struct CacheAgent::Impl {
  // The state of one CFG branch.
  struct Branch {
    ResidualForecast hidden, encoder;  // the residual over the cached block range
    std::optional<TeaCacheRule> teacache;
    std::optional<ResidualDiffRule> diff;
    std::vector<Tensor> attention;  // attention_cache: per block
    int64_t last_step = -1;
    bool reused = false;  // this step reused an attention output
    BranchStats stats;
  };

  const CacheConfig& c;
  std::array<Branch, 2> branches;
  double flops_total = 0, flops_saved = 0;
  int64_t peak_bytes = 0;
  const BlockLoop* loop = nullptr;  // of the forward in progress (attention_cache's savings)
  int64_t checked_blocks = -1, checked_steps = -1;

  explicit Impl(const CacheConfig& config) : c(config) {
    for (Branch& b : branches) init(b);
  }

  void init(Branch& b) {
    b = Branch();
    b.hidden = ResidualForecast(c.taylorseer_order);
    b.encoder = ResidualForecast(c.taylorseer_order);
    if (c.method == "teacache") {
      const std::vector<double> coef =
          c.coefficients.empty() ? teacache_coefficients(c.teacache_model, c.use_ret_steps)
                                 : c.coefficients;
      b.teacache.emplace(coef, threshold(), c.use_ret_steps);
    }
    if (c.method == "fbcache" || c.method == "dbcache") b.diff.emplace(c, threshold());
  }

  double threshold() const {
    if (c.threshold) return *c.threshold;
    if (c.method == "teacache")
      return teacache_default_threshold(c.teacache_model, c.use_ret_steps);
    return 0.08;  // FBCache's FLUX setting and cache-dit's default residual_diff_threshold
  }

  // The block range a cached step skips.
  std::pair<int64_t, int64_t> range(int64_t n) const {
    if (c.method == "teacache") return {0, n};
    if (c.method == "fbcache") return {1, n};
    if (c.method == "dbcache") return {c.fn_compute_blocks, n - c.bn_compute_blocks};
    return {std::min(c.block_start, n), std::min(c.block_end, n)};
  }

  bool active(int64_t n, int64_t steps) const {
    if (c.method == "teacache" || c.method == "fbcache" || c.method == "dbcache") {
      return threshold() > 0;
    }
    return StepRule{c}.active(n, steps);
  }

  int64_t bytes_held() const {
    int64_t n = 0;
    for (const Branch& b : branches) {
      n += b.hidden.bytes() + b.encoder.bytes();
      if (b.teacache) n += b.teacache->bytes();
      if (b.diff) n += b.diff->bytes();
      for (const Tensor& t : b.attention) n += t.defined() ? t.nbytes() : 0;
    }
    return n;
  }

  Tensor indicator(const BlockLoop& loop, const BlockStreams& input) const {
    const bool modulated = c.coefficients.empty() ? teacache_uses_modulated_input(c.teacache_model)
                                                  : loop.modulated_input != nullptr;
    Tensor m;
    if (modulated && loop.modulated_input) m = loop.modulated_input(input);
    if (!modulated) m = c.use_ret_steps ? loop.timestep_proj : loop.timestep_embedding;
    MINDIESD_CHECK(m.defined(), InvalidArgument, "teacache: the '", c.teacache_model,
                   "' coefficients need ",
                   modulated ? "the block input modulated by the timestep (a FLUX-like model)"
                             : "a timestep embedding (a Wan-like model)",
                   ", which this model does not provide");
    return m;
  }
};

CacheAgent::CacheAgent(CacheConfig config) : config_(std::move(config)) {
  validate(config_);
  if (config_.method == "teacache") {
    MINDIESD_CHECK(!config_.teacache_model.empty() || !config_.coefficients.empty(),
                   InvalidArgument,
                   "teacache: no coefficient table; name one with model= (flux, wan2.1-t2v-1.3b, "
                   "wan2.1-t2v-14b, wan2.1-i2v-480p, wan2.1-i2v-720p)");
    MINDIESD_CHECK(!(config_.teacache_model == "flux" && config_.use_ret_steps), InvalidArgument,
                   "teacache: ret_steps is a Wan2.1 mode; FLUX has no ret-steps coefficients");
  }
  impl_ = std::make_unique<Impl>(config_);
}

CacheAgent::~CacheAgent() = default;

void CacheAgent::reset() {
  for (Impl::Branch& b : impl_->branches) impl_->init(b);
  impl_->flops_total = impl_->flops_saved = 0;
  impl_->peak_bytes = 0;
}

CacheStats CacheAgent::stats() const {
  CacheStats s;
  for (size_t i = 0; i < 2; ++i) s.branch[i] = impl_->branches[i].stats;
  s.flops_total = impl_->flops_total;
  s.flops_saved = impl_->flops_saved;
  s.bytes_held = impl_->bytes_held();
  s.peak_bytes_held = impl_->peak_bytes;
  return s;
}

BlockStreams CacheAgent::run_blocks(const Context& ctx, const BlockLoop& loop, BlockStreams s) {
  Impl& m = *impl_;
  const CacheConfig& c = config_;
  const int64_t n = loop.num_blocks, step = ctx.step;
  if (m.checked_blocks != n || m.checked_steps != ctx.num_steps) {
    validate(c, n, ctx.num_steps);
    m.checked_blocks = n;
    m.checked_steps = ctx.num_steps;
  }
  MINDIESD_CHECK(step < ctx.num_steps, InvalidArgument, c.method, ": step ", step, " is past the ",
                 ctx.num_steps, " steps of the generation");
  Impl::Branch& b = m.branches[static_cast<size_t>(ctx.branch)];
  if (step == 0 || step <= b.last_step) m.init(b);  // a new generation
  b.last_step = step;
  b.reused = false;
  for (double f : loop.block_flops) m.flops_total += f;
  auto flops = [&](int64_t from, int64_t to) {
    double f = 0;
    for (int64_t i = from; i < to && i < static_cast<int64_t>(loop.block_flops.size()); ++i)
      f += loop.block_flops[i];
    return f;
  };
  auto run = [&](int64_t from, int64_t to) {
    for (int64_t i = from; i < to; ++i) s = loop.run(i, s);
    b.stats.blocks_computed += std::max<int64_t>(0, to - from);
  };

  char mark = 'C';
  const auto [lo, hi] = m.range(n);
  if (c.method == "attention_cache" || !m.active(n, ctx.num_steps) || lo >= hi) {
    m.loop = &loop;
    run(0, n);
    m.loop = nullptr;
    if (b.reused) mark = '-';
  } else {
    const Tensor input = b.diff ? s.hidden : Tensor();  // FBCache / DBCache: H_in
    run(0, lo);
    const bool ready = b.hidden.ready() && b.hidden.shape() == s.hidden.shape() &&
                       (hi == n || !s.encoder.defined() ||
                        (b.encoder.ready() && b.encoder.shape() == s.encoder.shape()));
    bool reuse = false;
    if (b.teacache) {
      reuse = b.teacache->reuse(m.indicator(loop, s), step, ctx.num_steps, ready);  // s: input
    } else if (b.diff) {
      reuse = b.diff->reuse(ops::sub(s.hidden, input), step, ready);
    } else {
      reuse = ready && StepRule{c}.reuses(step);
    }
    if (reuse) {
      mark = b.hidden.forecasts() ? 'F' : '-';
      BlockStreams out;
      out.hidden = ops::add(s.hidden, b.hidden.predict(step));
      out.encoder =
          hi < n && s.encoder.defined() ? ops::add(s.encoder, b.encoder.predict(step)) : s.encoder;
      s = std::move(out);
      b.stats.blocks_skipped += hi - lo;
      m.flops_saved += flops(lo, hi);
    } else {
      const BlockStreams start = s;
      run(lo, hi);
      // dit_block_cache stores on the computed steps of its window only (the suite's refresh
      // steps); the other methods, and TaylorSeer's derivatives, on every computed step. The
      // range may be a single block (the suite never forms that residual).
      if (b.teacache || b.diff || c.taylorseer_order > 0 || StepRule{c}.stores(step)) {
        b.hidden.update(ops::sub(s.hidden, start.hidden), step);
        if (hi < n && s.encoder.defined())
          b.encoder.update(ops::sub(s.encoder, start.encoder), step);
      }
    }
    run(hi, n);
  }
  b.stats.pattern += mark;
  if (mark == 'C')
    ++b.stats.steps_computed;
  else
    ++b.stats.steps_cached;
  m.peak_bytes = std::max(m.peak_bytes, m.bytes_held());
  return s;
}

Tensor CacheAgent::cached_attention(const Context& ctx, int64_t block,
                                    const std::function<Tensor()>& compute) {
  const CacheConfig& c = config_;
  Impl& m = *impl_;
  if (c.method != "attention_cache" || m.loop == nullptr) return compute();
  Impl::Branch& b = m.branches[static_cast<size_t>(ctx.branch)];
  const StepRule rule{c};
  const bool in_range = rule.active(m.loop->num_blocks, ctx.num_steps) && block >= c.block_start &&
                        block < c.block_end;
  if (in_range && rule.reuses(ctx.step) && block < static_cast<int64_t>(b.attention.size()) &&
      b.attention[block].defined()) {
    b.reused = true;
    ++b.stats.blocks_skipped;
    if (block < static_cast<int64_t>(m.loop->attention_flops.size()))
      m.flops_saved += m.loop->attention_flops[block];
    return b.attention[block];
  }
  Tensor a = compute();
  if (in_range && rule.stores(ctx.step)) {
    if (static_cast<int64_t>(b.attention.size()) <= block) b.attention.resize(block + 1);
    b.attention[block] = a;
  }
  return a;
}

std::string format_stats(const CacheStats& s, bool cfg) {
  std::ostringstream o;
  const char* names[] = {"cond", "uncond"};
  for (size_t i = 0; i < (cfg ? 2u : 1u); ++i) {
    const BranchStats& b = s.branch[i];
    o << "  " << names[i] << ": " << b.steps_computed << " steps computed, " << b.steps_cached
      << " cached  [" << b.pattern << "]\n";
  }
  char line[256];
  const double pct = s.flops_total > 0 ? 100.0 * s.flops_saved / s.flops_total : 0.0;
  std::snprintf(line, sizeof(line),
                "  FLOP saved %.1f%% (%.3g of %.3g GFLOP); cache holds %.2f MiB (peak %.2f MiB)\n",
                pct, s.flops_saved / 1e9, s.flops_total / 1e9,
                static_cast<double>(s.bytes_held) / (1 << 20),
                static_cast<double>(s.peak_bytes_held) / (1 << 20));
  o << line;
  return o.str();
}

}  // namespace mindiesd::cache
