// Sparse attention through the real pipelines (the tiny FLUX and Wan2.1 T2V golden folders, f32):
// sparsity 0, or a start_step past the last step, is bit-identical to dense; rf and ada_bsa stay
// within their stated PSNR bounds of the dense output on the same noise (each bound is the PSNR
// measured when it was set, on this machine, minus 6 dB: twice the error) while keeping a
// measured fraction of the blocks; sparse attention composes with a step cache and with
// quantization; it refuses FP8 attention beside it.
//
// The goldens are run above their test size so that there are blocks to drop: FLUX at 128 x 128
// (64 image + 16 text tokens, blocks of 16), Wan at 9 frames of 128 x 192 (a 3 x 8 x 12 token
// grid, blocks of 32).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "compare.h"
#include "mindiesd/cache/cache_config.h"
#include "mindiesd/pipelines/flux_pipeline.h"
#include "mindiesd/pipelines/wan_pipeline.h"
#include "mindiesd/quant/quant_config.h"
#include "test_util.h"

namespace mindiesd {
namespace {

const std::string kFlux = MINDIESD_SOURCE_DIR "/tests/data/golden/flux/pipeline";
const std::string kWan = MINDIESD_SOURCE_DIR "/tests/data/golden/wan_pipeline/t2v";

struct Generated {
  Tensor out;
  std::optional<sparse::SparseAttentionStats> stats;
};

pipelines::FluxPipeline flux(std::optional<std::string> quant = std::nullopt) {
  pipelines::FluxPipelineOptions o;
  o.dtype = DType::f32;
  o.vae_tiling = pipelines::FluxPipelineOptions::VaeTiling::off;
  if (quant) o.quant = quant::parse_quant_spec(*quant);
  return pipelines::FluxPipeline::load(kFlux, o);
}

Generated flux_run(pipelines::FluxPipeline& p, std::optional<std::string> attention,
             std::optional<std::string> cache = std::nullopt) {
  pipelines::FluxRequest r;
  r.prompts = {"a small red circle at the top left"};
  r.negative_prompts = {""};
  r.true_cfg_scale = 3.0;
  r.width = r.height = 128;
  r.num_inference_steps = 6;
  r.max_sequence_length = 16;
  r.seed = 7;
  if (attention) r.sparse_attention = sparse::parse_sparse_attention_spec(*attention);
  if (cache) r.cache = cache::parse_cache_spec(*cache);
  pipelines::FluxResult res = p.generate(r);
  return {res.images, res.sparse_stats};
}

pipelines::WanPipeline wan() {
  pipelines::WanPipelineOptions o;
  o.dtype = DType::f32;
  return pipelines::WanPipeline::load(kWan, o);
}

Generated wan_run(pipelines::WanPipeline& p, std::optional<std::string> attention) {
  pipelines::WanRequest r;
  r.prompts = {"a cat walks on the grass"};
  r.height = 128;
  r.width = 192;
  r.num_frames = 9;
  r.num_inference_steps = 6;
  r.guidance_scale = 5.0;
  r.max_sequence_length = 16;
  r.seed = 3;
  if (attention) r.sparse_attention = sparse::parse_sparse_attention_spec(*attention);
  pipelines::WanResult res = p.generate(r);
  return {res.videos, res.sparse_stats};
}

struct Bound {
  const char* spec;
  double min_psnr;
  double max_density;  // mean kept fraction of the blocks over the sparse calls
};

void check(const Generated& got, const Tensor& dense, const Bound& b) {
  ASSERT_TRUE(got.stats.has_value()) << b.spec;
  const double p = test::psnr01(got.out, dense), density = got.stats->mean_density();
  std::printf("  %-58s PSNR %6.2f dB, kept %5.1f%% of blocks (%lld sparse, %lld dense calls)\n",
              b.spec, p, 100.0 * density, static_cast<long long>(got.stats->sparse_calls),
              static_cast<long long>(got.stats->dense_calls));
  EXPECT_GT(got.stats->sparse_calls, 0) << b.spec;
  EXPECT_GE(p, b.min_psnr) << b.spec;
  EXPECT_LE(density, b.max_density) << b.spec;
}

TEST(SparsePipelines, FluxOffSettingsAreBitIdentical) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipeline p = flux();
  const std::vector<float> dense = flux_run(p, std::nullopt).out.to_vector();
  EXPECT_EQ(flux_run(p, "sparse:type=rf,sparsity=0,block=16").out.to_vector(), dense);
  const Generated late = flux_run(p, "sparse:type=ada_bsa,sparsity=0.6,block=16,start_step=6");
  EXPECT_EQ(late.out.to_vector(), dense);
  EXPECT_EQ(late.stats->sparse_calls, 0);
}

TEST(SparsePipelines, FluxStaysNearDense) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipeline p = flux();
  const Tensor dense = flux_run(p, std::nullopt).out;
  const Bound bounds[] = {
      {"sparse:type=rf,sparsity=0.6,block=16,start_step=1", 50.5, 0.45},
      {"sparse:type=ada_bsa,sparsity=0.6,block=16,start_step=1", 52.0, 0.5},
      {"sparse:type=rf,sparsity=0.6,block=16,start_step=1,mask_interval=2", 50.5, 0.45},
  };
  for (const Bound& b : bounds) check(flux_run(p, b.spec), dense, b);
}

TEST(SparsePipelines, FluxComposesWithCacheAndQuant) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipeline plain = flux(), q = flux("w8a8_dynamic");
  const Tensor dense = flux_run(plain, std::nullopt).out;
  const char* spec = "sparse:type=rf,sparsity=0.6,block=16,start_step=1";
  check(flux_run(plain, spec, "dit_block:start=2,interval=2"), dense, {spec, 49.1, 0.45});
  check(flux_run(q, spec), dense, {spec, 50.5, 0.45});
}

TEST(SparsePipelines, FluxRefusesFp8AttentionBesideIt) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipelineOptions o;
  o.dtype = DType::f32;
  o.attention_quant = quant::AttentionQuantConfig{};
  pipelines::FluxPipeline p = pipelines::FluxPipeline::load(kFlux, o);
  test::expect_error([&] { flux_run(p, "sparse:type=rf,sparsity=0.6,block=16"); },
                     ErrorKind::InvalidArgument, {"sparse attention", "FP8"});
}

TEST(SparsePipelines, WanStaysNearDense) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::WanPipeline p = wan();
  const Generated dense = wan_run(p, std::nullopt);
  EXPECT_EQ(wan_run(p, "sparse:type=rf,sparsity=0,block=32").out.to_vector(),
            dense.out.to_vector());
  const Bound bounds[] = {
      {"sparse:type=rf,sparsity=0.5,block=32,start_step=1", 69.3, 0.87},
      {"sparse:type=ada_bsa,sparsity=0.5,block=32,start_step=1", 47.1, 0.7},
      {"sparse:type=ada_bsa,sparsity=0.8,block=32,start_step=1,cdf=0.9", 43.1, 0.36},
  };
  for (const Bound& b : bounds) check(wan_run(p, b.spec), dense.out, b);
}

}  // namespace
}  // namespace mindiesd
