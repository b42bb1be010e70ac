// The FLUX pipeline end to end against diffusers' FluxPipeline on the tiny random-weight
// pipeline recorded by tools/golden/make_flux_golden.py: prompt embeddings, the latents after
// every denoising step (initial noise passed in, as diffusers' `latents=`), and the decoded
// image, for a batch of two prompts (32x32, 4 steps), a rectangular image (40x24, 3 steps) and
// the whole pipeline in bf16. Also: request validation happens before any heavy work, and
// seeded noise is reproducible.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/pipelines/flux_pipeline.h"
#include "parity/parity.h"
#include "test_util.h"

namespace mindiesd {
namespace {

namespace fs = std::filesystem;
using pipelines::FluxPipeline;
using pipelines::FluxPipelineOptions;
using pipelines::FluxRequest;
using test::expect_error;

const fs::path kGolden = MINDIESD_SOURCE_DIR "/tests/data/golden/flux";

const io::WeightStore& golden() {
  static const io::WeightStore g = io::WeightStore::open(kGolden / "io.safetensors");
  return g;
}

FluxPipelineOptions options(DType dtype, Device device = Device::cpu()) {
  FluxPipelineOptions o;
  o.dtype = dtype;
  o.device = device;
  o.vae_tiling = FluxPipelineOptions::VaeTiling::off;
  return o;
}

FluxRequest golden_request(const std::string& prefix, std::vector<std::string> prompts,
                           int64_t width, int64_t height, int64_t steps) {
  FluxRequest r;
  r.prompts = std::move(prompts);
  r.width = width;
  r.height = height;
  r.num_inference_steps = steps;
  r.guidance_scale = 3.5;
  r.max_sequence_length = 32;
  r.latents = golden().get(prefix + ".noise");
  return r;
}

const std::vector<std::string> kPrompts = {
    "a small red circle at the top left on a blue background",
    "A photograph of an astronaut riding a horse, it's 3.5 times bigger!"};

struct Bounds {
  double max_abs;
  double min_cos;
};

void run_and_compare(DType dtype, const std::string& prefix, const FluxRequest& request,
                     Bounds embeds, Bounds latents, Bounds image, Device device = Device::cpu()) {
  FluxPipeline pipe = FluxPipeline::load(kGolden / "pipeline", options(dtype, device));
  const auto e = pipe.encode_prompt(request.prompts, {}, 1, request.max_sequence_length);
  test::expect_close(e.prompt_embeds, golden().get(prefix + ".prompt_embeds"), embeds.max_abs,
                     embeds.min_cos, prefix + " T5 prompt_embeds");
  test::expect_close(e.pooled, golden().get(prefix + ".pooled_prompt_embeds"), embeds.max_abs,
                     embeds.min_cos, prefix + " CLIP pooled");
  FluxRequest r = request;
  std::vector<Tensor> steps;
  r.on_step = [&](const pipelines::FluxStepInfo& s) { steps.push_back(s.latents); };
  const pipelines::FluxResult out = pipe.generate(r);
  ASSERT_EQ(static_cast<int64_t>(steps.size()), r.num_inference_steps);
  for (size_t i = 0; i < steps.size(); ++i) {
    test::expect_close(steps[i], golden().get(str_cat(prefix, ".latents.", i)), latents.max_abs,
                       latents.min_cos, str_cat(prefix, " latents after step ", i));
  }
  test::expect_close(out.images, golden().get(prefix + ".image01"), image.max_abs, image.min_cos,
                     prefix + " decoded image");
}

// The bf16 pipeline (the "bf16" golden: the "b" run's prompts and noise with the whole pipeline
// in bfloat16) against diffusers' bf16 run, each recorded tensor within 2x diffusers' own
// f32-vs-bf16 gap (measured in the goldens: T5 embeddings 0.039, CLIP pooled 0.021, latents
// 0.017 after step 0 to 0.044 after step 3, image 0.011).
void run_bf16_and_compare(Device device = Device::cpu()) {
  FluxPipeline pipe = FluxPipeline::load(kGolden / "pipeline", options(DType::bf16, device));
  FluxRequest r = golden_request("bf16", kPrompts, 32, 32, 4);
  const auto e = pipe.encode_prompt(r.prompts, {}, 1, r.max_sequence_length);
  const auto like = [](const Tensor& ours, const std::string& key, const std::string& name) {
    test::expect_bf16_like_diffusers(ours, golden().get("bf16." + key), golden().get("b." + key),
                                     name);
  };
  like(e.prompt_embeds, "prompt_embeds", "bf16 T5 prompt_embeds");
  like(e.pooled, "pooled_prompt_embeds", "bf16 CLIP pooled");
  std::vector<Tensor> steps;
  r.on_step = [&](const pipelines::FluxStepInfo& s) { steps.push_back(s.latents); };
  const pipelines::FluxResult out = pipe.generate(r);
  ASSERT_EQ(static_cast<int64_t>(steps.size()), r.num_inference_steps);
  for (size_t i = 0; i < steps.size(); ++i)
    like(steps[i], str_cat("latents.", i), str_cat("bf16 latents after step ", i));
  like(out.images, "image01", "bf16 decoded image");
}

TEST(FluxPipelineParity, BatchOfPromptsMatchesDiffusersInF32) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  // f32 end to end: differences come from summation order in GEMMs and attention only.
  run_and_compare(DType::f32, "b", golden_request("b", kPrompts, 32, 32, 4), {1e-5, 0.99999},
                  {1e-4, 0.99999}, {1e-4, 0.99999});
}

TEST(FluxPipelineParity, RectangularImageMatchesDiffusersInF32) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  // 40 wide, 24 high: a swapped width/height or image-id grid fails here.
  run_and_compare(DType::f32, "r",
                  golden_request("r",
                                 {"a large green triangle in the centre on a gradient from "
                                  "white to black"},
                                 40, 24, 3),
                  {1e-5, 0.99999}, {1e-4, 0.99999}, {1e-4, 0.99999});
}

TEST(FluxPipelineParity, Bf16PipelineMatchesDiffusers) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  run_bf16_and_compare();
}

TEST(FluxPipelineParity, RunsOnCudaLikeDiffusers) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  // --device cuda: the transformer, the scheduler's loop and the VAE on the GPU, text encoding
  // on the host; same bounds.
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  run_and_compare(DType::f32, "b", golden_request("b", kPrompts, 32, 32, 4), {1e-5, 0.99999},
                  {1e-4, 0.99999}, {1e-4, 0.99999}, Device::cuda());
  run_bf16_and_compare(Device::cuda());
}

TEST(FluxPipeline, CudaGraphStepsGiveTheEagerLoopsImages) {
  // cuda_graphs: step 0 eager, step 1 captured, later steps replayed, with and without true
  // CFG (two graphs); the same kernels on the same values, so the same bits.
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  FluxPipelineOptions graphed = options(DType::bf16, Device::cuda());
  graphed.cuda_graphs = true;
  FluxPipeline eager = FluxPipeline::load(kGolden / "pipeline", options(DType::bf16, Device::cuda()));
  FluxPipeline graphs = FluxPipeline::load(kGolden / "pipeline", graphed);
  FluxRequest r = golden_request("bf16", kPrompts, 32, 32, 4);
  EXPECT_EQ(graphs.generate(r).images.to_vector(), eager.generate(r).images.to_vector());
  r.negative_prompts = {"blurry", "a dark room"};
  r.true_cfg_scale = 2.0;
  EXPECT_EQ(graphs.generate(r).images.to_vector(), eager.generate(r).images.to_vector());
}

TEST(FluxPipeline, SeededNoiseIsReproducibleAndBatchesExtendSingleRuns) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  FluxPipeline pipe = FluxPipeline::load(kGolden / "pipeline", options(DType::f32));
  FluxRequest r;
  r.prompts = {kPrompts[0]};
  r.width = r.height = 32;
  r.num_inference_steps = 2;
  r.max_sequence_length = 16;
  r.seed = 42;
  bool resident_while_denoising = true;
  r.on_step = [&](const pipelines::FluxStepInfo&) {
    resident_while_denoising = pipe.text_encoders_resident();
  };
  const Tensor a = pipe.generate(r).images;
  EXPECT_FALSE(resident_while_denoising) << "CLIP/T5 must be freed before denoising";
  r.on_step = nullptr;
  const Tensor b = pipe.generate(r).images;
  EXPECT_EQ(a.to_vector(), b.to_vector());
  r.num_images_per_prompt = 2;
  const Tensor pair = pipe.generate(r).images;
  ASSERT_EQ(pair.shape(), (Shape{2, 3, 32, 32}));
  test::expect_close(pair.narrow(0, 0, 1), a, 1e-5, 0.99999, "first of a batch vs single");
  EXPECT_NE(pair.narrow(0, 1, 1).contiguous().to_vector(), a.to_vector());
  r.num_images_per_prompt = 1;
  r.seed = 43;
  EXPECT_NE(pipe.generate(r).images.to_vector(), a.to_vector());
}

TEST(FluxPipeline, BadRequestsFailBeforeAnyWork) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  FluxPipeline pipe = FluxPipeline::load(kGolden / "pipeline", options(DType::f32));
  auto base = [] {
    FluxRequest r;
    r.prompts = {"a red circle"};
    r.width = r.height = 32;
    r.num_inference_steps = 2;
    r.max_sequence_length = 16;
    return r;
  };
  auto expect_bad = [&](FluxRequest r, ErrorKind kind, const char* needle) {
    expect_error([&] { pipe.validate(r); }, kind, {needle});
    expect_error([&] { pipe.generate(r); }, kind, {needle});
  };
  FluxRequest r = base();
  r.width = 30;  // the tiny VAE has scale factor 2: sizes must be multiples of 4
  expect_bad(r, ErrorKind::InvalidArgument, "not a multiple of 4");
  r = base();
  r.num_inference_steps = 0;
  expect_bad(r, ErrorKind::InvalidArgument, "steps must be in [1, 1000]");
  r = base();
  r.prompts = {"   "};
  expect_bad(r, ErrorKind::InvalidArgument, "prompt 0 is empty");
  r = base();
  r.prompts = {};
  expect_bad(r, ErrorKind::InvalidArgument, "no prompt given");
  r = base();
  r.prompts = {std::string(100000, 'a')};
  expect_bad(r, ErrorKind::InvalidArgument, "bytes long");
  r = base();
  r.prompts = {"bad \xff utf-8"};
  expect_bad(r, ErrorKind::InvalidArgument, "prompt 0");
  r = base();
  r.width = r.height = 1 << 20;
  expect_bad(r, ErrorKind::InvalidArgument, "out of range");
  r = base();
  r.guidance_scale = std::nan("");
  expect_bad(r, ErrorKind::InvalidArgument, "guidance scale");
  r = base();
  r.true_cfg_scale = 4.0;
  expect_bad(r, ErrorKind::InvalidArgument, "needs a negative prompt");
  r = base();
  r.latents = ops::randn({1, 10, 16}, 0);
  expect_bad(r, ErrorKind::InvalidArgument, "do not match the request");

  FluxPipelineOptions small = options(DType::f32);
  small.memory_budget_bytes = 1 << 20;
  FluxPipeline tight = FluxPipeline::load(kGolden / "pipeline", small);
  r = base();
  r.width = r.height = 4096;
  expect_error([&] { tight.validate(r); }, ErrorKind::OutOfMemory, {"4096x4096", "GiB"});
}

TEST(FluxPipeline, FolderWithAMissingComponentIsAClearError) {
  test::TempDir tmp("flux_pipeline");
  const fs::path dir = tmp.path() / "flux";
  fs::copy(kGolden / "pipeline", dir, fs::copy_options::recursive);
  fs::remove_all(dir / "vae");
  expect_error([&] { FluxPipeline::load(dir, options(DType::f32)); }, ErrorKind::NotFound, {"vae"});
  // The same component marked absent in model_index.json.
  fs::copy(kGolden / "pipeline" / "vae", dir / "vae", fs::copy_options::recursive);
  std::string index = test::read_file(dir / "model_index.json");
  const size_t at = index.find("\"AutoencoderKL\"");
  ASSERT_NE(at, std::string::npos);
  index.replace(index.rfind("[", at), index.find("]", at) - index.rfind("[", at) + 1,
                "[null, null]");
  test::write_file(dir / "model_index.json", index);
  expect_error([&] { FluxPipeline::load(dir, options(DType::f32)); }, ErrorKind::NotFound,
               {"lacks components", "vae"});

  // A corrupt tokenizer is an error naming its file, not a crash (GCC 12 once freed a member of
  // the half-built pipeline twice on this path); a build without ICU / sentencepiece says so.
  fs::copy_file(kGolden / "pipeline" / "model_index.json", dir / "model_index.json",
                fs::copy_options::overwrite_existing);
  test::write_file(dir / "tokenizer" / "vocab.json", "{\"a\": 1,");
#if MINDIESD_CPU_DEPS
  expect_error([&] { FluxPipeline::load(dir, options(DType::f32)); }, ErrorKind::Corrupt,
               {"vocab.json"});
#else
  expect_error([&] { FluxPipeline::load(dir, options(DType::f32)); }, ErrorKind::Unsupported,
               {"ICU"});
#endif
}

TEST(FluxPipeline, PackingRoundTripsAndMatchesDiffusersLayout) {
  const Tensor x = ops::randn({2, 4, 6, 10}, 3);
  const Tensor p = pipelines::pack_flux_latents(x);
  ASSERT_EQ(p.shape(), (Shape{2, 15, 16}));
  // Token (i, j) holds channel c's 2x2 patch at features c*4 + 2*dy + dx.
  const Tensor xc = x.contiguous();
  for (int64_t c : {0, 3})
    for (int64_t dy : {0, 1})
      for (int64_t dx : {0, 1}) {
        const float want =
            xc.select(0, 1).select(0, c).select(0, 2 * 1 + dy).select(0, 2 * 4 + dx).item();
        const float got = p.select(0, 1).select(0, 1 * 5 + 4).select(0, c * 4 + 2 * dy + dx).item();
        EXPECT_EQ(got, want);
      }
  EXPECT_EQ(pipelines::unpack_flux_latents(p, 6, 10).to_vector(), xc.to_vector());
}

}  // namespace
}  // namespace mindiesd
