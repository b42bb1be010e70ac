// The step cache (cache/cache_agent.h) on a synthetic block loop whose blocks add known,
// exactly representable values, so every comparison is exact: the suite's step patterns (and
// where we depart from them), bypass, per-branch state, TeaCache / FBCache / DBCache decisions,
// TaylorSeer's forecast, attention reuse, the statistics, and the spec parser's errors.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "mindiesd/cache/cache_agent.h"
#include "mindiesd/cache/cache_config.h"
#include "mindiesd/cache/teacache.h"
#include "mindiesd/core/ops.h"
#include "test_util.h"

namespace mindiesd {
namespace {

using cache::CacheAgent;
using cache::CacheConfig;
using cache::parse_cache_spec;

// A loop of `n` blocks on (1, 2, 4) f32 streams: block i adds delta(i, step) to hidden (and 2x
// to encoder); a block may also call ctx.cached_attention, whose compute adds 1000 * (i + 1).
struct Synthetic {
  int64_t n = 6;
  int64_t steps = 10;
  std::function<float(int64_t block, int64_t step)> delta = [](int64_t i, int64_t) {
    return static_cast<float>(i + 1);
  };
  std::function<float(int64_t step)> indicator = [](int64_t) { return 1.0f; };
  bool with_encoder = true;
  bool attention = false;
  std::vector<std::vector<int64_t>> runs;  // per call: the blocks that ran
  int64_t attention_computes = 0;

  BlockStreams input(float base) const {
    BlockStreams s;
    s.hidden = ops::full({1, 2, 4}, base, DType::f32);
    if (with_encoder) s.encoder = ops::full({1, 3, 4}, -base, DType::f32);
    return s;
  }

  // One forward at `step` of `branch` through ctx (the agent or none).
  BlockStreams call(CachePolicy* policy, int64_t step, float base,
                    CfgBranch branch = CfgBranch::cond) {
    const Context ctx{step, steps, branch, policy};
    runs.emplace_back();
    BlockLoop loop;
    loop.num_blocks = n;
    loop.run = [&](int64_t i, const BlockStreams& s) {
      runs.back().push_back(i);
      const float d = delta(i, step);
      BlockStreams out;
      Tensor h = ops::affine(s.hidden, 1.0f, d);
      if (attention) {
        const Tensor a = ctx.cached_attention(i, [&] {
          ++attention_computes;
          return ops::full({1, 2, 4},
                           1000.0f * static_cast<float>(i + 1) + static_cast<float>(step),
                           DType::f32);
        });
        h = ops::add(h, a);
      }
      out.hidden = h;
      if (s.encoder.defined()) out.encoder = ops::affine(s.encoder, 1.0f, 2.0f * d);
      return out;
    };
    loop.modulated_input = [&](const BlockStreams&) {
      return ops::full({1, 2, 4}, indicator(step), DType::f32);
    };
    loop.timestep_embedding = ops::full({1, 4}, indicator(step), DType::f32);
    loop.block_flops.assign(n, 10.0);
    loop.attention_flops.assign(n, 4.0);
    return ctx.run_blocks(loop, input(base));
  }
};

float value(const Tensor& t) { return t.to_vector().front(); }

// Runs `steps` calls through an agent of `spec` and returns the cond pattern.
std::string pattern(const std::string& spec, Synthetic& s) {
  CacheAgent agent(parse_cache_spec(spec));
  s.attention = agent.config().method == "attention_cache";
  for (int64_t i = 0; i < s.steps; ++i) s.call(&agent, i, 0.0f);
  return agent.stats().branch[0].pattern;
}

std::string pattern(const std::string& spec, int64_t steps = 10, int64_t blocks = 6) {
  Synthetic s;
  s.steps = steps;
  s.n = blocks;
  return pattern(spec, s);
}

TEST(CacheSpec, ParsesTheExamplesAndTheSuiteNames) {
  CacheConfig c = parse_cache_spec("dit_block:start=2,interval=2,blocks=1-5");
  EXPECT_EQ(c.method, "dit_block_cache");
  EXPECT_EQ(c.step_start, 2);
  EXPECT_EQ(c.step_interval, 2);
  EXPECT_EQ(c.block_start, 1);
  EXPECT_EQ(c.block_end, 6);  // inclusive on the command line, half-open in the config
  c = parse_cache_spec(
      "dit_block_cache:step_start=1,step_interval=3,step_end=7,block_start=2,"
      "block_end=4,blocks_count=6,steps_count=10");
  EXPECT_EQ(c.step_end, 7);
  EXPECT_EQ(c.block_end, 4);
  EXPECT_EQ(c.blocks_count, 6);
  c = parse_cache_spec("teacache:thresh=0.4");
  EXPECT_EQ(c.method, "teacache");
  EXPECT_DOUBLE_EQ(*c.threshold, 0.4);
  c = parse_cache_spec("dbcache:fn=1,bn=0,thresh=0.08,taylorseer=1");
  EXPECT_EQ(c.fn_compute_blocks, 1);
  EXPECT_EQ(c.taylorseer_order, 1);
  c = parse_cache_spec("taylorseer");
  EXPECT_EQ(c.taylorseer_order, 1);
  EXPECT_EQ(c.step_start, 3);
  EXPECT_EQ(c.step_interval, 5);
  EXPECT_EQ(parse_cache_spec("attention").method, "attention_cache");
}

TEST(CacheSpec, BadSpecsNameTheField) {
  using test::expect_error;
  const auto bad = [](const char* spec, std::initializer_list<std::string_view> needles) {
    expect_error([&] { parse_cache_spec(spec); }, ErrorKind::InvalidArgument, needles);
  };
  bad("fastcache:thresh=1", {"unknown method 'fastcache'", "teacache"});
  bad("teacache:treshold=0.1", {"teacache", "unknown key 'treshold'"});
  bad("teacache:thresh=abc", {"thresh", "number", "abc"});
  bad("teacache:thresh=-0.1", {"threshold", "-0.1"});
  bad("teacache:model=sd3", {"unknown model 'sd3'"});
  bad("dit_block:interval=0", {"step_interval 0"});
  bad("dit_block:start=5,end=3", {"step_end 3", "step_start 5"});
  bad("dit_block:blocks=5-2", {"blocks '5-2'"});
  bad("dit_block:start=x", {"start", "integer", "'x'"});
  bad("dbcache:fn=0", {"fn", "at least 1"});
  bad("dbcache:taylorseer=3", {"taylorseer order 3"});
  bad("dbcache:thresh", {"'thresh' is not key=value"});
  bad("fbcache:fn=2", {"unknown key 'fn'"});  // FBCache is Fn = 1 by definition
  bad("taylorseer:order=0", {"order must be 1 or 2"});
  // Against the model and the request.
  expect_error([] { cache::validate(parse_cache_spec("dbcache:fn=4,bn=2"), 6, 10); },
               ErrorKind::InvalidArgument, {"fn 4 + bn 2", "6 blocks"});
  expect_error([] { cache::validate(parse_cache_spec("dit_block:blocks_count=8"), 6, 10); },
               ErrorKind::InvalidArgument, {"blocks_count 8", "6 blocks"});
  expect_error([] { cache::validate(parse_cache_spec("dit_block:steps_count=20"), 6, 10); },
               ErrorKind::InvalidArgument, {"steps_count 20", "10 steps"});
}

// The suite's DiTBlockCache step pattern: steps before step_start compute, then one in
// step_interval computes. step_end is honoured here (the suite's DiTBlockCache never reads it,
// so its steps 8 and 9 would be "C-").
TEST(CacheAgent, DitBlockStepPattern) {
  EXPECT_EQ(pattern("dit_block:start=2,interval=3,end=8"), "CCC--C--CC");
  EXPECT_EQ(pattern("dit_block:start=0,interval=2"), "C-C-C-C-C-");
  EXPECT_EQ(pattern("dit_block:start=1,interval=4,blocks=1-3"), "CC---C---C");
  EXPECT_EQ(pattern("attention:start=2,interval=3,end=8"), "CCC--C--CC");
  EXPECT_EQ(pattern("taylorseer:order=1,interval=3,warmup=2"), "CCCFFCFFCF");
}

TEST(CacheAgent, SkippedBlocksAndExactResidual) {
  Synthetic s;
  CacheAgent agent(parse_cache_spec("dit_block:start=0,interval=2,blocks=1-3"));
  Synthetic plain = s;
  for (int64_t step = 0; step < 4; ++step) {
    const BlockStreams c = s.call(&agent, step, 0.5f);
    const BlockStreams p = plain.call(nullptr, step, 0.5f);
    // Integer deltas: the reused residual equals the computed one exactly.
    EXPECT_EQ(c.hidden.to_vector(), p.hidden.to_vector()) << "step " << step;
    EXPECT_EQ(c.encoder.to_vector(), p.encoder.to_vector()) << "step " << step;
  }
  EXPECT_EQ(s.runs[0], (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(s.runs[1], (std::vector<int64_t>{0, 4, 5}));  // blocks 1-3 skipped
  const cache::CacheStats st = agent.stats();
  EXPECT_EQ(st.branch[0].blocks_skipped, 6);
  EXPECT_EQ(st.branch[0].blocks_computed, 18);
  EXPECT_DOUBLE_EQ(st.flops_total, 240.0);
  EXPECT_DOUBLE_EQ(st.flops_saved, 60.0);
  // One hidden (8 floats) and one encoder (12 floats) residual.
  EXPECT_EQ(st.bytes_held, (8 + 12) * 4);
}

// The suite never forms the residual of a one-block range (block_end - 1 == block_start).
TEST(CacheAgent, SingleBlockRangeFormsItsResidual) {
  Synthetic s;
  s.delta = [](int64_t i, int64_t step) { return static_cast<float>((i + 1) * (step + 1)); };
  CacheAgent agent(parse_cache_spec("dit_block:start=0,interval=2,blocks=2-2"));
  s.call(&agent, 0, 0.0f);
  const BlockStreams c = s.call(&agent, 1, 0.0f);
  EXPECT_EQ(s.runs[1], (std::vector<int64_t>{0, 1, 3, 4, 5}));
  // Step 1: blocks 0, 1, 3, 4, 5 add (i + 1) * 2 = 2 + 4 + 8 + 10 + 12; block 2's stored
  // residual from step 0 adds 3.
  EXPECT_EQ(value(c.hidden), 36.0f + 3.0f);
}

TEST(CacheAgent, BypassIsThePlainLoop) {
  for (const char* spec :
       {"dit_block:interval=1", "dit_block:start=10,interval=2",
        "dit_block:start=3,end=3,interval=2", "dit_block:interval=2,blocks=6-9",
        "dit_block:interval=2,block_start=2,block_end=2", "attention:interval=1",
        "teacache:thresh=0,model=flux", "fbcache:thresh=0", "dbcache:fn=1,bn=1,thresh=0"}) {
    Synthetic s;
    s.attention = true;
    s.delta = [](int64_t i, int64_t step) { return 0.25f * static_cast<float>(i + step); };
    Synthetic plain = s;
    CacheAgent agent(parse_cache_spec(spec));
    for (int64_t step = 0; step < s.steps; ++step) {
      EXPECT_EQ(s.call(&agent, step, 1.0f).hidden.to_vector(),
                plain.call(nullptr, step, 1.0f).hidden.to_vector())
          << spec << " step " << step;
    }
    EXPECT_EQ(agent.stats().branch[0].pattern, "CCCCCCCCCC") << spec;
    EXPECT_EQ(s.attention_computes, plain.attention_computes) << spec;
  }
}

TEST(CacheAgent, CfgBranchesKeepSeparateState) {
  Synthetic s;
  // The uncond branch's blocks add ten times as much: a residual shared across branches would
  // give the wrong branch's value.
  int64_t branch = 0;
  s.delta = [&](int64_t i, int64_t) { return static_cast<float>((i + 1) * (branch ? 10 : 1)); };
  CacheAgent agent(parse_cache_spec("dit_block:start=0,interval=2"));
  for (int64_t step = 0; step < 4; ++step) {
    branch = 0;
    EXPECT_EQ(value(s.call(&agent, step, 0.0f, CfgBranch::cond).hidden), 21.0f);
    branch = 1;
    EXPECT_EQ(value(s.call(&agent, step, 0.0f, CfgBranch::uncond).hidden), 210.0f);
  }
  EXPECT_EQ(agent.stats().branch[0].pattern, "C-C-");
  EXPECT_EQ(agent.stats().branch[1].pattern, "C-C-");
}

TEST(CacheAgent, StepZeroStartsANewGeneration) {
  Synthetic s;
  int64_t gen = 0;
  s.delta = [&](int64_t i, int64_t) { return static_cast<float>((i + 1) * (gen + 1)); };
  CacheAgent agent(parse_cache_spec("dit_block:start=0,interval=2"));
  s.call(&agent, 0, 0.0f);
  s.call(&agent, 1, 0.0f);
  gen = 1;  // a new generation with other weights: nothing of the first may be reused
  EXPECT_EQ(value(s.call(&agent, 0, 0.0f).hidden), 42.0f);
  EXPECT_EQ(value(s.call(&agent, 1, 0.0f).hidden), 42.0f);
  EXPECT_EQ(agent.stats().branch[0].pattern, "C-");
}

// TaylorSeer's forecast sum_k f[k] x^k / k! from backward differences of the computed steps:
// exact for a residual linear in the step at order 1; at order 2 on R(t) = 3 + 2t + t^2 the
// paper's formula (not the exact quadratic) is checked; plain reuse keeps the stale value.
TEST(CacheAgent, TaylorSeerForecastsTheResidual) {
  for (int order : {1, 2}) {
    Synthetic s;
    s.n = 3;
    s.with_encoder = false;
    s.delta = [order](int64_t i, int64_t t) {
      const float x = static_cast<float>(t);
      return i == 0 ? 1.0f : (order == 1 ? 2.0f + 3.0f * x : 1.0f + x + 0.5f * x * x);
    };
    Synthetic plain = s;
    CacheAgent agent(parse_cache_spec(str_cat("taylorseer:order=", order, ",interval=4,warmup=2")));
    std::vector<float> got;
    for (int64_t step = 0; step < s.steps; ++step) {
      const Tensor h = s.call(&agent, step, 0.0f).hidden;
      got.push_back(value(h));
      if (order == 1) {
        EXPECT_EQ(h.to_vector(), plain.call(nullptr, step, 0.0f).hidden.to_vector())
            << "step " << step;
      }
    }
    EXPECT_EQ(agent.stats().branch[0].pattern, "CCCFFFCFFF");
    if (order == 2) {
      // After steps 0, 1, 2: f = (11, 5, 2); steps 3, 4, 5 are 11 + 5x + x^2. After step 6
      // (R = 51): f1 = (51 - 11) / 4 = 10, f2 = (10 - 5) / 4 = 1.25.
      EXPECT_EQ(got[3], 17.0f);
      EXPECT_EQ(got[4], 25.0f);
      EXPECT_EQ(got[5], 35.0f);
      EXPECT_EQ(got[6], 51.0f);
      EXPECT_EQ(got[7], 51.0f + 10.0f + 0.625f);
    }
  }
  Synthetic s;
  s.n = 2;
  s.delta = [](int64_t, int64_t t) { return static_cast<float>(t); };
  CacheAgent agent(parse_cache_spec("dit_block:start=0,interval=4"));
  s.call(&agent, 0, 0.0f);
  EXPECT_EQ(value(s.call(&agent, 1, 0.0f).hidden), 0.0f);  // stale residual of step 0
}

// TeaCache with rescale(x) = x: rel = |m_t - m_prev| / |m_prev| accumulates until it reaches
// the threshold; the first and last steps always compute.
TEST(CacheAgent, TeaCacheAccumulatesTheIndicator) {
  Synthetic s;
  // m: 1, 1.1, 1.21, ... (rel 0.1 each step).
  s.indicator = [](int64_t t) {
    float m = 1.0f;
    for (int64_t i = 0; i < t; ++i) m *= 1.1f;
    return m;
  };
  CacheConfig c;
  c.method = "teacache";
  c.coefficients = {1.0, 0.0};
  c.threshold = 0.25;
  {
    CacheAgent agent(c);
    for (int64_t i = 0; i < s.steps; ++i) s.call(&agent, i, 0.0f);
    // acc 0.1 (reuse), 0.2 (reuse), 0.3 (compute, reset) ...; step 9 is forced.
    EXPECT_EQ(agent.stats().branch[0].pattern, "C--C--C--C");
  }
  c.use_ret_steps = true;  // the first 5 steps compute, the last is not forced
  {
    CacheAgent agent(c);
    for (int64_t i = 0; i < s.steps; ++i) s.call(&agent, i, 0.0f);
    EXPECT_EQ(agent.stats().branch[0].pattern, "CCCCC--C--");
  }
  // The published tables: FLUX's indicator is the modulated input, Wan's the timestep embedding.
  EXPECT_EQ(cache::teacache_coefficients("flux", false).size(), 5u);
  EXPECT_DOUBLE_EQ(cache::teacache_coefficients("wan2.1-t2v-1.3b", true)[0], -5.21862437e+04);
  EXPECT_DOUBLE_EQ(cache::teacache_coefficients("wan2.1-i2v-720p", false)[4], -0.23412683);
  EXPECT_TRUE(cache::teacache_uses_modulated_input("flux"));
  EXPECT_FALSE(cache::teacache_uses_modulated_input("wan2.1-t2v-14b"));
  test::expect_error([] { CacheAgent a(parse_cache_spec("teacache:thresh=0.1")); },
                     ErrorKind::InvalidArgument, {"teacache", "model="});
}

// FBCache / DBCache: the first block's residual decides; warmup and the limits force compute.
TEST(CacheAgent, ResidualDiffDecisionsAndLimits) {
  Synthetic s;
  // Block 0's residual drifts by 5% a step: diff vs the last computed step grows 0.05, 0.10, ...
  s.delta = [](int64_t i, int64_t t) {
    return i == 0 ? 1.0f + 0.05f * static_cast<float>(t) : 1.0f;
  };
  EXPECT_EQ(pattern("fbcache:thresh=0.07", s), "C-C-C-C-C-");
  EXPECT_EQ(pattern("fbcache:thresh=0.07,warmup=4", s), "CCCC-C-C-C");
  EXPECT_EQ(pattern("fbcache:thresh=0.5,max_cached=3", s), "C---CCCCCC");
  EXPECT_EQ(pattern("fbcache:thresh=0.5,max_continuous=2", s), "C--C--C--C");
  EXPECT_EQ(pattern("dbcache:fn=2,bn=1,thresh=0.5,max_continuous=1", s), "C-C-C-C-C-");
  // DBCache runs Fn and Bn blocks on a cached step.
  Synthetic d = s;
  d.runs.clear();
  CacheAgent agent(parse_cache_spec("dbcache:fn=2,bn=1,thresh=0.5"));
  d.call(&agent, 0, 0.0f);
  d.call(&agent, 1, 0.0f);
  EXPECT_EQ(d.runs[1], (std::vector<int64_t>{0, 1, 5}));
}

TEST(CacheAgent, AttentionReuse) {
  Synthetic s;
  s.attention = true;
  CacheAgent agent(parse_cache_spec("attention:start=1,interval=2,blocks=2-3"));
  std::vector<float> out;
  for (int64_t step = 0; step < 4; ++step) out.push_back(value(s.call(&agent, step, 0.0f).hidden));
  // Blocks 2 and 3 reuse their step-1 attention (which adds the step index) at step 2.
  const float blocks = 21.0f, attn = 1000.0f * 21.0f;
  EXPECT_EQ(out[1], blocks + attn + 6.0f * 1.0f);
  EXPECT_EQ(out[2], blocks + attn + 4.0f * 2.0f + 2.0f * 1.0f);
  EXPECT_EQ(out[3], blocks + attn + 6.0f * 3.0f);
  EXPECT_EQ(agent.stats().branch[0].pattern, "CC-C");
  EXPECT_EQ(s.attention_computes, 6 * 4 - 2);
  EXPECT_DOUBLE_EQ(agent.stats().flops_saved, 8.0);
  EXPECT_EQ(agent.stats().bytes_held, 2 * 8 * 4);  // two (1, 2, 4) f32 outputs
}

TEST(CacheAgent, RefusesAStepPastTheGeneration) {
  Synthetic s;
  CacheAgent agent(parse_cache_spec("dit_block:interval=2"));
  test::expect_error([&] { s.call(&agent, 10, 0.0f); }, ErrorKind::InvalidArgument,
                     {"step 10", "10 steps"});
}

}  // namespace
}  // namespace mindiesd
