// The step-cache settings ("store instead of compute"): the suite's CacheConfig
// (mindiesd.cache_agent: dit_block_cache, attention_cache) and, in the same style, the field's
// newer methods: TeaCache, First-Block / Dual-Block cache and TaylorSeer forecasting. What each
// method computes is described at its class in cache_agent.cpp; the CLI form is parse_cache_spec.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mindiesd::cache {

struct CacheConfig {
  // "dit_block_cache", "attention_cache", "teacache", "fbcache", "dbcache" or "taylorseer".
  std::string method;
  // The suite's counts: blocks per forward and steps per generation. 0 takes them from the model
  // and the request; a non-zero value must agree with them.
  int64_t blocks_count = 0, steps_count = 0;
  // Step rule of dit_block_cache, attention_cache and taylorseer: a step in
  // [step_start, step_end) with (step - step_start) % step_interval != 0 reuses; every other step
  // computes. Blocks [block_start, block_end) are the ones skipped (dit_block_cache, taylorseer)
  // or whose attention is reused (attention_cache).
  int64_t step_start = 0, step_interval = 1, step_end = 10000;
  int64_t block_start = 0, block_end = 10000;
  // teacache: rel_l1_thresh of the accumulated rescaled indicator; fbcache / dbcache:
  // residual_diff_threshold. Unset: TeaCache's published "slow" setting for the model, 0.08 for
  // fbcache / dbcache. 0 never reuses.
  std::optional<double> threshold;
  // teacache: the coefficient table ("flux", "wan2.1-t2v-1.3b", "wan2.1-t2v-14b",
  // "wan2.1-i2v-480p", "wan2.1-i2v-720p"); empty: chosen by the pipeline from the model.
  std::string teacache_model;
  std::vector<double>
      coefficients;            // explicit polynomial, highest power first (replaces the table)
  bool use_ret_steps = false;  // teacache on Wan: the e0 indicator, first 5 steps computed
  // fbcache / dbcache: Fn blocks always computed (their residual is the indicator), Bn tail
  // blocks always computed; the blocks between are cached.
  int64_t fn_compute_blocks = 1, bn_compute_blocks = 0;
  int64_t warmup_steps = 0;  // fbcache / dbcache: the first steps always compute
  int64_t max_cached_steps = -1, max_continuous_cached_steps = -1;  // -1: no limit
  // TaylorSeer forecast of the cached residual (order 1 or 2) instead of reusing it as stored
  // (0); the "taylorseer" method is the dit_block step rule with order >= 1.
  int64_t taylorseer_order = 0;
};

// "method:key=value,key=value", the --cache form:
//   dit_block[_cache]:start=S,interval=I,end=E,blocks=A-B    (blocks A to B inclusive)
//   attention[_cache]:start=S,interval=I,end=E,blocks=A-B
//   teacache:thresh=T,model=M,ret_steps=0|1,coefficients=A;B;C,taylorseer=0|1|2
//   fbcache:thresh=T,warmup=W,max_cached=K,max_continuous=C,taylorseer=0|1|2
//   dbcache:fn=F,bn=B,thresh=T,warmup=W,max_cached=K,max_continuous=C,taylorseer=0|1|2
//   taylorseer:order=O,interval=I,warmup=W,end=E,blocks=A-B
// The suite's field names (step_start, step_interval, step_end, block_start, block_end,
// blocks_count, steps_count) are accepted too. InvalidArgument naming the method, key or value.
CacheConfig parse_cache_spec(std::string_view spec);

// InvalidArgument naming the first field out of range (independent of the model).
void validate(const CacheConfig& config);
// The same plus the checks against a model's blocks and a request's steps.
void validate(const CacheConfig& config, int64_t num_blocks, int64_t num_steps);

// One line: "teacache thresh=0.25 model=flux".
std::string describe(const CacheConfig& config);

}  // namespace mindiesd::cache
