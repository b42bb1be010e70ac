// Every step-cache method through the real pipelines (the tiny FLUX and Wan2.1 T2V / I2V golden
// folders, with classifier-free guidance so both branches cache), against the plain path on the
// same noise: bit-identical when the method is set to cache nothing, and within the stated
// PSNR / max-abs bounds when it caches (each bound is about twice the error measured when it
// was set, i.e. 6 dB under the measured PSNR), with the per-branch statistics showing it did.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compare.h"
#include "mindiesd/cache/cache_config.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/png.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/pipelines/flux_pipeline.h"
#include "mindiesd/pipelines/wan_pipeline.h"
#include "test_util.h"

namespace mindiesd {
namespace {

const std::string kFlux = MINDIESD_SOURCE_DIR "/tests/data/golden/flux/pipeline";
const std::string kWan = MINDIESD_SOURCE_DIR "/tests/data/golden/wan_pipeline";

struct Output {
  Tensor pixels;  // images / videos in [0, 1]
  std::optional<cache::CacheStats> stats;
};

double psnr(const Tensor& a, const Tensor& b) { return test::psnr01(a, b); }

class FluxCache : public ::testing::Test {
 protected:
  static pipelines::FluxPipeline& pipe() {
    static pipelines::FluxPipeline p = [] {
      pipelines::FluxPipelineOptions o;
      o.dtype = DType::f32;
      o.vae_tiling = pipelines::FluxPipelineOptions::VaeTiling::off;
      return pipelines::FluxPipeline::load(kFlux, o);
    }();
    return p;
  }
  static Output run(const std::string& spec) {
    pipelines::FluxRequest r;
    r.prompts = {"a small red circle at the top left on a blue background"};
    r.negative_prompts = {""};
    r.true_cfg_scale = 3.0;
    r.width = r.height = 32;
    r.num_inference_steps = 12;
    r.max_sequence_length = 16;
    r.seed = 7;
    if (!spec.empty()) r.cache = cache::parse_cache_spec(spec);
    const pipelines::FluxResult out = pipe().generate(r);
    return {out.images, out.cache_stats};
  }
};

class WanCache : public ::testing::TestWithParam<const char*> {
 protected:
  static pipelines::WanPipeline& pipe(const std::string& kind) {
    static std::map<std::string, pipelines::WanPipeline> pipes;
    auto it = pipes.find(kind);
    if (it == pipes.end()) {
      pipelines::WanPipelineOptions o;
      o.dtype = DType::f32;
      it = pipes.emplace(kind, pipelines::WanPipeline::load(kWan + "/" + kind, o)).first;
    }
    return it->second;
  }
  static Output run(const std::string& kind, const std::string& spec) {
    pipelines::WanRequest r;
    r.prompts = {"a cat walks on the grass"};
    r.height = 32;
    r.width = 48;
    r.num_frames = 5;
    r.num_inference_steps = 10;
    r.guidance_scale = 5.0;
    r.max_sequence_length = kind == "i2v" ? 512 : 16;
    r.seed = 3;
    if (kind == "i2v") r.image = io::read_png(kWan + "/i2v/input.png");
    if (!spec.empty()) r.cache = cache::parse_cache_spec(spec);
    const pipelines::WanResult out = pipe(kind).generate(r);
    return {out.videos, out.cache_stats};
  }
};

// Settings that cache nothing: the plain path, bit for bit.
const char* const kNothingCached[] = {"dit_block:interval=1",
                                      "attention:interval=1",
                                      "teacache:thresh=0",
                                      "fbcache:thresh=0",
                                      "dbcache:fn=1,bn=0,thresh=0",
                                      "dit_block:start=100,interval=2",
                                      "taylorseer:order=2,interval=1"};

// Bounds on the output in [0, 1]: the PSNR measured when they were set (f32, this machine)
// minus 6 dB and twice the measured max-abs difference; for Wan the worse of T2V and I2V.
struct Cached {
  const char* spec;
  double min_psnr, max_abs;
};

void expect_close_and_cached(const Output& plain, const Output& cached, const Cached& c) {
  SCOPED_TRACE(c.spec);
  ASSERT_TRUE(cached.stats.has_value());
  for (int b = 0; b < 2; ++b) {
    EXPECT_GT(cached.stats->branch[b].steps_cached, 0)
        << "branch " << b << " cached nothing: " << cached.stats->branch[b].pattern;
  }
  EXPECT_GT(cached.stats->flops_saved, 0.0);
  const double p = psnr(cached.pixels, plain.pixels),
               m = test::max_abs_diff(cached.pixels, plain.pixels);
  std::printf("  %-40s PSNR %6.2f dB  max-abs %.4f  [%s | %s]\n", c.spec, p, m,
              cached.stats->branch[0].pattern.c_str(), cached.stats->branch[1].pattern.c_str());
  EXPECT_GE(p, c.min_psnr);
  EXPECT_LE(m, c.max_abs);
}

TEST_F(FluxCache, NothingCachedIsBitIdentical) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const Output plain = run("");
  for (const char* spec : kNothingCached) {
    const Output r = run(spec);
    EXPECT_EQ(r.pixels.to_vector(), plain.pixels.to_vector()) << spec;
    EXPECT_EQ(r.stats->branch[0].steps_cached + r.stats->branch[1].steps_cached, 0) << spec;
  }
}

TEST_F(FluxCache, CachedStaysCloseToPlain) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const Output plain = run("");
  const Cached cases[] = {
      {"dit_block:start=2,interval=2,blocks=1-3", 59.0, 0.0052},
      {"attention:start=2,interval=2", 65.2, 0.0030},
      {"teacache:thresh=0.3", 60.2, 0.0044},
      {"fbcache:thresh=0.3", 47.0, 0.0254},
      {"dbcache:fn=1,bn=1,thresh=0.3", 48.3, 0.0226},
      {"dbcache:fn=1,bn=0,thresh=0.3,taylorseer=1", 37.5, 0.055},
      {"taylorseer:order=2,interval=3,warmup=3", 46.6, 0.0194},
  };
  for (const Cached& c : cases) expect_close_and_cached(plain, run(c.spec), c);
}

TEST_P(WanCache, NothingCachedIsBitIdentical) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const Output plain = run(GetParam(), "");
  for (const char* spec : kNothingCached) {
    const Output r = run(GetParam(), spec);
    EXPECT_EQ(r.pixels.to_vector(), plain.pixels.to_vector()) << spec;
  }
}

TEST_P(WanCache, CachedStaysCloseToPlain) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const Output plain = run(GetParam(), "");
  const Cached cases[] = {
      {"dit_block:start=2,interval=2,blocks=1-1", 53.0, 0.029},
      {"attention:start=2,interval=2", 51.2, 0.034},
      // The published Wan2.1 polynomials are fitted to the real models' indicator range: on
      // the tiny random model the raw relative distance (rescale x -> x) is accumulated.
      {"teacache:thresh=1,coefficients=1;0", 49.1, 0.038},
      {"teacache:thresh=0.5,coefficients=1;0,ret_steps=1", 49.9, 0.031},
      {"fbcache:thresh=0.1", 49.2, 0.061},
      {"dbcache:fn=1,bn=0,thresh=0.3,max_continuous=2,taylorseer=2", 46.0, 0.058},
      {"taylorseer:order=1,interval=3,warmup=3", 43.4, 0.058},
  };
  for (const Cached& c : cases) expect_close_and_cached(plain, run(GetParam(), c.spec), c);
}

INSTANTIATE_TEST_SUITE_P(T2vI2v, WanCache, ::testing::Values("t2v", "i2v"));

TEST_F(FluxCache, RefusesCudaGraphsAndAMismatchedModel) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxRequest r;
  r.prompts = {"x"};
  r.width = r.height = 32;
  r.num_inference_steps = 4;
  r.cache = cache::parse_cache_spec("dbcache:fn=3,bn=1");  // the golden has 2 + 2 blocks
  test::expect_error([&] { pipe().validate(r); }, ErrorKind::InvalidArgument,
                     {"fn 3 + bn 1", "4 blocks"});
  r.cache = cache::parse_cache_spec("dit_block:interval=2,steps_count=8");
  test::expect_error([&] { pipe().validate(r); }, ErrorKind::InvalidArgument,
                     {"steps_count 8", "4 steps"});
  pipelines::FluxPipelineOptions o;
  o.cuda_graphs = true;
  const pipelines::FluxPipeline graphs = pipelines::FluxPipeline::load(kFlux, o);
  r.cache = cache::parse_cache_spec("teacache:thresh=0.3");
  test::expect_error([&] { graphs.validate(r); }, ErrorKind::InvalidArgument,
                     {"teacache", "CUDA graphs"});
}

}  // namespace
}  // namespace mindiesd
