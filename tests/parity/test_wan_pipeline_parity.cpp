// Parity of pipelines::WanPipeline with diffusers' WanPipeline on a tiny random-weight Wan 2.1
// T2V folder (tools/golden/make_wan_pipeline_golden.py -> tests/data/golden/wan_pipeline/t2v:
// the tiny UMT5 + tokenizer of the umt5 golden, a 2-layer WanTransformer3DModel, a tiny
// AutoencoderKLWan, Wan2.1's UniPC scheduler config): prompt cleaning, prompt embeddings, every
// step's latents of a guided run from the same noise, the decoded video and the frames, in f32,
// with a bf16 transformer / text encoder, and for a batch of two prompts; plus the request
// checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/png.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/pipelines/wan_pipeline.h"
#include "parity/parity.h"
#include "test_util.h"

namespace mindiesd {
namespace {

using pipelines::WanPipeline;
using pipelines::WanPipelineOptions;
using pipelines::WanRequest;
using test::expect_close;

const std::string kDir = MINDIESD_SOURCE_DIR "/tests/data/golden/wan_pipeline";

const io::WeightStore& golden() {
  static const io::WeightStore g = io::WeightStore::open(kDir + "/io.safetensors");
  return g;
}

// The run settings and prompts the generator stored in the file's __metadata__.
const std::map<std::string, std::string>& meta() { return golden().files().front()->metadata(); }

WanPipeline load(DType dt) {
  WanPipelineOptions o;
  o.dtype = dt;
  return WanPipeline::load(kDir + "/t2v", o);
}

// The golden's t2v settings (its t2v_run metadata).
WanRequest t2v_request() {
  WanRequest r;
  r.prompts = {meta().at("prompt")};
  r.negative_prompts = {meta().at("negative_prompt")};
  r.height = 32;
  r.width = 48;
  r.num_frames = 9;
  r.num_inference_steps = 4;
  r.guidance_scale = 5.0;
  r.max_sequence_length = 16;
  r.latents = golden().get("t2v.noise");
  return r;
}

// (B, F, 3, H, W) -> diffusers' np frames layout (B, F, H, W, 3).
Tensor frames_last(const Tensor& videos) { return videos.permute({0, 1, 3, 4, 2}).contiguous(); }

TEST(WanPipelineParity, PromptCleanMatchesDiffusers) {
  const auto& m = meta();
  EXPECT_EQ(pipelines::wan_prompt_clean(m.at("prompt2")), m.at("prompt2_clean"));
  EXPECT_EQ(pipelines::wan_prompt_clean(m.at("prompt")), m.at("prompt_clean"));
  // Python's html.unescape and \s: numeric references, legacy entities without ';', Unicode
  // spaces (U+00A0, U+3000) collapse like ASCII ones.
  EXPECT_EQ(pipelines::wan_prompt_clean("&#65;&#x42;&ampC &lt;d&gt;"), "AB&C <d>");
  EXPECT_EQ(pipelines::wan_prompt_clean("\xC2\xA0 a\xE3\x80\x80\x62  \n"), "a b");
  EXPECT_EQ(pipelines::wan_prompt_clean("&unknown; &#0;"), "&unknown; \xEF\xBF\xBD");
}

TEST(WanPipelineParity, PromptEmbedsMatchDiffusers) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipeline pipe = load(DType::f32);
  const Tensor e = pipe.encode_prompt({meta().at("prompt"), meta().at("prompt2")}, 1, 16);
  EXPECT_FALSE(pipe.text_encoder_resident());  // freed after encoding
  expect_close(e.narrow(0, 0, 1), golden().get("t2v.prompt_embeds"), 1e-5, 0.9999999,
               "prompt embeds (truncated to 16)");
  expect_close(e.narrow(0, 1, 1), golden().get("t2v.prompt2_embeds"), 1e-5, 0.9999999,
               "prompt 2 embeds (cleaned, padded)");
}

TEST(WanPipelineParity, T2vRunMatchesDiffusersInF32) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipeline pipe = load(DType::f32);
  WanRequest r = t2v_request();
  std::vector<Tensor> steps;
  r.on_step = [&](const pipelines::StepInfo& s) { steps.push_back(s.latents); };
  const pipelines::WanResult out = pipe.generate(r);
  ASSERT_EQ(steps.size(), 4u);
  for (size_t i = 0; i < steps.size(); ++i) {
    expect_close(steps[i], golden().get(str_cat("t2v.latents.", i)), 5e-5, 0.9999999,
                 str_cat("t2v latents after step ", i));
  }
  EXPECT_EQ(out.videos.shape(), (Shape{1, 9, 3, 32, 48}));
  expect_close(frames_last(out.videos), golden().get("t2v.frames"), 5e-5, 0.9999999,
               "t2v frames (1, 9, 32, 48, 3)");
}

TEST(WanPipelineParity, T2vRunWithBf16TransformerStaysClose) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipeline pipe = load(DType::bf16);
  WanRequest r = t2v_request();
  std::vector<Tensor> steps;
  r.on_step = [&](const pipelines::StepInfo& s) { steps.push_back(s.latents); };
  const pipelines::WanResult out = pipe.generate(r);
  // bf16 transformer and text encoder on both sides, rounded in different places (fused ops
  // here), f32 latents and VAE: each bf16 run drifts from the f32 run by about a bf16 ulp of the
  // velocity per step, in its own direction; within 2x diffusers' own gap, step by step.
  for (size_t i = 0; i < steps.size(); ++i) {
    test::expect_bf16_like_diffusers(steps[i], golden().get(str_cat("t2v_bf16.latents.", i)),
                                     golden().get(str_cat("t2v.latents.", i)),
                                     str_cat("bf16 latents after step ", i));
  }
  const Tensor video = ops::affine(out.videos.permute({0, 2, 1, 3, 4}), 2.0f, -1.0f);
  test::expect_bf16_like_diffusers(video, golden().get("t2v_bf16.video"),
                                   golden().get("t2v.video"), "bf16 video");
}

TEST(WanPipelineParity, BatchOfTwoPromptsMatchesDiffusers) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipeline pipe = load(DType::f32);
  WanRequest r;
  r.prompts = {meta().at("prompt"), meta().at("prompt2")};
  r.negative_prompts = {meta().at("negative_prompt")};
  r.height = 32;
  r.width = 48;
  r.num_frames = 9;
  r.num_inference_steps = 3;
  r.guidance_scale = 3.0;
  r.max_sequence_length = 16;
  r.latents = golden().get("t2v_b2.noise");
  std::vector<Tensor> steps;
  r.on_step = [&](const pipelines::StepInfo& s) { steps.push_back(s.latents); };
  const pipelines::WanResult out = pipe.generate(r);
  ASSERT_EQ(steps.size(), 3u);
  expect_close(steps.back(), golden().get("t2v_b2.latents.2"), 5e-5, 0.9999999,
               "batch latents after the last step");
  expect_close(ops::affine(out.videos.permute({0, 2, 1, 3, 4}), 2.0f, -1.0f),
               golden().get("t2v_b2.video"), 1e-4, 0.9999999, "batch videos");
}

TEST(WanPipelineParity, SeededNoiseIsReproducibleAndBadRequestsFailEarly) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipeline pipe = load(DType::f32);
  WanRequest r = t2v_request();
  r.latents = Tensor();
  r.num_inference_steps = 2;
  r.seed = 7;
  const Tensor a = pipe.generate(r).latents, b = pipe.generate(r).latents;
  EXPECT_EQ(a.to_vector(), b.to_vector());
  r.seed = 8;
  EXPECT_NE(pipe.generate(r).latents.to_vector(), a.to_vector());

  WanRequest bad = t2v_request();
  bad.num_frames = 8;
  test::expect_error([&] { pipe.validate(bad); }, ErrorKind::InvalidArgument,
                     {"num_frames must be 4k + 1", "got 8"});
  bad = t2v_request();
  bad.height = 40;
  test::expect_error([&] { pipe.validate(bad); }, ErrorKind::InvalidArgument,
                     {"not a multiple of 16x16"});
  bad = t2v_request();
  bad.prompts = {" \n"};
  test::expect_error([&] { pipe.validate(bad); }, ErrorKind::InvalidArgument,
                     {"prompt 0 is empty"});
  bad = t2v_request();
  bad.latents = ops::full({1, 4, 2, 4, 6}, 0.0);
  test::expect_error([&] { pipe.validate(bad); }, ErrorKind::InvalidArgument, {"latents"});
  bad = t2v_request();
  bad.num_frames = 4 * 1000 + 1;
  test::expect_error([&] { pipe.validate(bad); }, ErrorKind::InvalidArgument, {"at most"});
}

// The t2v folder with FlowMatchEulerDiscreteScheduler as its scheduler (links to the t2v
// components, the golden's euler_scheduler/ as scheduler/, model_index.json naming the class).
std::filesystem::path euler_folder() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / str_cat("wan_euler_", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kDir + "/t2v")) {
    const std::string name = e.path().filename().string();
    if (name != "scheduler" && name != "model_index.json") fs::create_symlink(e.path(), dir / name);
  }
  fs::create_symlink(kDir + "/euler_scheduler", dir / "scheduler");
  std::ifstream in(kDir + "/t2v/model_index.json");
  nlohmann::json index = nlohmann::json::parse(in);
  index["scheduler"] = {"diffusers", "FlowMatchEulerDiscreteScheduler"};
  std::ofstream(dir / "model_index.json") << index.dump(2);
  return dir;
}

TEST(WanPipelineParity, FlowMatchEulerSchedulerMatchesDiffusers) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const std::filesystem::path dir = euler_folder();
  WanPipelineOptions o;
  o.dtype = DType::f32;
  WanPipeline pipe = WanPipeline::load(dir, o);
  WanRequest r = t2v_request();
  std::vector<Tensor> steps;
  r.on_step = [&](const pipelines::StepInfo& s) { steps.push_back(s.latents); };
  const pipelines::WanResult out = pipe.generate(r);
  ASSERT_EQ(steps.size(), 4u);
  for (size_t i = 0; i < steps.size(); ++i) {
    expect_close(steps[i], golden().get(str_cat("t2v_euler.latents.", i)), 5e-5, 0.9999999,
                 str_cat("euler latents after step ", i));
  }
  expect_close(ops::affine(out.videos.permute({0, 2, 1, 3, 4}), 2.0f, -1.0f),
               golden().get("t2v_euler.video"), 1e-4, 0.9999999, "euler video");
  std::filesystem::remove_all(dir);
}

// ---- image-to-video (the golden's i2v folder and i2v_run settings) ----

WanRequest i2v_request() {
  WanRequest r;
  r.prompts = {meta().at("prompt")};
  r.negative_prompts = {meta().at("negative_prompt")};
  r.image = io::read_png(kDir + "/i2v/input.png");
  r.height = 32;
  r.width = 48;
  r.num_frames = 5;
  r.num_inference_steps = 3;
  r.guidance_scale = 5.0;
  r.max_sequence_length = 512;
  r.latents = golden().get("i2v.noise");
  return r;
}

TEST(WanPipelineParity, I2vImageInputsMatchDiffusers) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipelineOptions o;
  o.dtype = DType::f32;
  const WanPipeline pipe = WanPipeline::load(kDir + "/i2v", o);
  EXPECT_TRUE(pipe.is_image_to_video());
  const Tensor image = io::read_png(kDir + "/i2v/input.png");
  // CLIPImageProcessor (PIL bicubic + crop + normalise) and CLIP hidden_states[-2].
  expect_close(pipe.encode_image(image), golden().get("i2v.image_embeds"), 2e-6, 0.9999999,
               "i2v image embeds");
  // Lanczos resize to 48x32, frame 0 of a zero video, VAE mean, normalised, with the mask.
  expect_close(pipe.image_condition(image, 32, 48, 5), golden().get("i2v.condition"), 1e-5,
               0.9999999, "i2v condition (mask ++ latents)");
}

TEST(WanPipelineParity, I2vRunMatchesDiffusersInF32) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipelineOptions o;
  o.dtype = DType::f32;
  WanPipeline pipe = WanPipeline::load(kDir + "/i2v", o);
  WanRequest r = i2v_request();
  std::vector<Tensor> steps;
  r.on_step = [&](const pipelines::StepInfo& s) { steps.push_back(s.latents); };
  const pipelines::WanResult out = pipe.generate(r);
  ASSERT_EQ(steps.size(), 3u);
  for (size_t i = 0; i < steps.size(); ++i) {
    expect_close(steps[i], golden().get(str_cat("i2v.latents.", i)), 5e-5, 0.9999999,
                 str_cat("i2v latents after step ", i));
  }
  expect_close(ops::affine(out.videos.permute({0, 2, 1, 3, 4}), 2.0f, -1.0f),
               golden().get("i2v.video"), 1e-4, 0.9999999, "i2v video (1, 3, 5, 32, 48)");
}

TEST(WanPipelineParity, CudaGraphStepsGiveTheEagerLoopsVideosAndLatents) {
  // cuda_graphs: step 0 eager, step 1 captured, later steps replayed (cond and uncond graphs);
  // the step reports keep their own latents although the graph reuses its input buffers.
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  for (const char* kind : {"t2v", "i2v"}) {
    WanPipelineOptions o;
    o.dtype = DType::bf16;
    o.device = Device::cuda();
    WanPipeline eager = WanPipeline::load(kDir + "/" + kind, o);
    o.cuda_graphs = true;
    WanPipeline graphs = WanPipeline::load(kDir + "/" + kind, o);
    WanRequest r = std::string(kind) == "i2v" ? i2v_request() : t2v_request();
    std::vector<std::vector<float>> eager_steps, graph_steps;
    r.on_step = [&](const pipelines::StepInfo& s) { eager_steps.push_back(s.latents.to_vector()); };
    const Tensor want = eager.generate(r).videos;
    r.on_step = [&](const pipelines::StepInfo& s) { graph_steps.push_back(s.latents.to_vector()); };
    EXPECT_EQ(graphs.generate(r).videos.to_vector(), want.to_vector()) << kind;
    EXPECT_EQ(graph_steps, eager_steps) << kind;
  }
}

TEST(WanPipelineParity, RunsOnCudaLikeDiffusers) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  // --device cuda: the transformer, the scheduler's loop and the VAE (I2V: its encode too) on
  // the GPU, text and image encoders on the host; the CPU run's bounds.
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  for (const char* kind : {"t2v", "i2v"}) {
    const bool i2v = std::string(kind) == "i2v";
    WanPipelineOptions o;
    o.dtype = DType::f32;
    o.device = Device::cuda();
    WanPipeline pipe = WanPipeline::load(kDir + "/" + kind, o);
    WanRequest r = i2v ? i2v_request() : t2v_request();
    std::vector<Tensor> steps;
    r.on_step = [&](const pipelines::StepInfo& s) { steps.push_back(s.latents); };
    const pipelines::WanResult out = pipe.generate(r);
    ASSERT_EQ(steps.size(), static_cast<size_t>(r.num_inference_steps));
    for (size_t i = 0; i < steps.size(); ++i) {
      expect_close(steps[i], golden().get(str_cat(kind, ".latents.", i)), 5e-5, 0.9999999,
                   str_cat(kind, " latents after step ", i, " (cuda)"));
    }
    const Tensor video = ops::affine(out.videos.permute({0, 2, 1, 3, 4}), 2.0f, -1.0f);
    if (i2v) {
      expect_close(video, golden().get("i2v.video"), 1e-4, 0.9999999, "i2v video (cuda)");
    } else {
      expect_close(frames_last(out.videos), golden().get("t2v.frames"), 5e-5, 0.9999999,
                   "t2v frames (cuda)");
    }
  }
  WanPipelineOptions o;
  o.dtype = DType::bf16;
  o.device = Device::cuda();
  WanPipeline pipe = WanPipeline::load(kDir + "/t2v", o);
  WanRequest r = t2v_request();
  Tensor last;
  r.on_step = [&](const pipelines::StepInfo& s) { last = s.latents; };
  pipe.generate(r);
  const test::Diff ours = test::diff(last, golden().get("t2v.latents.3"));
  const test::Diff ref =
      test::diff(golden().get("t2v_bf16.latents.3"), golden().get("t2v.latents.3"));
  EXPECT_LE(ours.max_abs, 2.0 * ref.max_abs) << "bf16 on cuda vs the f32 golden";
}

TEST(WanPipelineParity, I2vRequestsNeedAnImage) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  WanPipelineOptions o;
  o.dtype = DType::f32;
  const WanPipeline i2v = WanPipeline::load(kDir + "/i2v", o);
  WanRequest r = i2v_request();
  r.image = Tensor();
  test::expect_error([&] { i2v.validate(r); }, ErrorKind::InvalidArgument,
                     {"needs an input image"});
  r = i2v_request();
  r.max_sequence_length = 16;
  test::expect_error([&] { i2v.validate(r); }, ErrorKind::InvalidArgument,
                     {"max_sequence_length 512"});
  r = i2v_request();
  r.image = ops::full({4, 4}, 0.0);
  test::expect_error([&] { i2v.validate(r); }, ErrorKind::InvalidArgument, {"u8 (H, W"});
  const WanPipeline t2v = load(DType::f32);
  WanRequest t = t2v_request();
  t.image = io::read_png(kDir + "/i2v/input.png");
  test::expect_error([&] { t2v.validate(t); }, ErrorKind::InvalidArgument, {"text-to-video model"});
}

TEST(WanPipelineParity, FolderProblemsAreNamed) {
  test::expect_error([] { WanPipeline::load(kDir + "/t2v/vae"); }, ErrorKind::InvalidArgument,
                     {"single component"});
  // The t2v folder without its VAE (links to everything else): named before any weights load.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / str_cat("wan_no_vae_", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const auto& e : std::filesystem::directory_iterator(kDir + "/t2v")) {
    if (e.path().filename() != "vae") {
      std::filesystem::create_symlink(e.path(), dir / e.path().filename());
    }
  }
  test::expect_error([&] { WanPipeline::load(dir); }, ErrorKind::NotFound, {"vae"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mindiesd
