// Parity of models::FluxTransformer2DModel with diffusers' FluxTransformer2DModel on the tiny
// random-weight FLUX.1-dev-style transformer of tests/data/golden/flux (2 double + 2 single
// blocks, guidance embedding, RoPE axes (2, 2, 4); tools/golden/make_flux_golden.py): the
// output of every block and the noise prediction of denoising step 0, for
//   b.*     two prompts at 32x32 (8x8 packed latent grid), f32
//   r.*     one prompt at 40x24 (6 rows x 10 columns of packed latents), f32
//   bf16.*  the batch run with the pipeline in bfloat16
// The inputs are what FluxPipeline handed the transformer: packed noise, T5 and pooled CLIP
// embeddings, timesteps[0] / 1000 in the latents' dtype, guidance 3.5 (f32), zero text ids and
// (0, row, col) image ids. Plus the errors a bad checkpoint or bad inputs give.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "parity/parity.h"
#include "test_util.h"

namespace mindiesd {
namespace {

using test::expect_close;

const std::string kFlux = MINDIESD_SOURCE_DIR "/tests/data/golden/flux";
const std::string kTransformer = kFlux + "/pipeline/transformer";
constexpr double kGuidance = 3.5;  // the golden run's guidance_scale

models::FluxTransformer2DModel load_model(DType dt) {
  const io::DiffusersFolder folder = io::DiffusersFolder::open(kFlux + "/pipeline");
  return models::FluxTransformer2DModel::load(folder.component("transformer"), dt);
}

io::FluxTransformer2DModelConfig read_config() {
  io::ConfigReader r = io::ConfigReader::from_file(kTransformer + "/config.json");
  return io::FluxTransformer2DModelConfig::read(r);
}

// The transformer inputs of step 0 of golden run `run` (packed grid h2 x w2) in `dt`, cast
// exactly as FluxPipeline casts them: latents and embeddings to the pipeline dtype,
// `t.expand(B).to(latents.dtype) / 1000`, guidance an f32 tensor.
models::FluxForwardInputs step0_inputs(const io::WeightStore& g, const std::string& run, int64_t h2,
                                       int64_t w2, DType dt) {
  models::FluxForwardInputs in;
  in.hidden_states = g.get(run + ".noise").to(dt);
  in.encoder_hidden_states = g.get(run + ".prompt_embeds").to(dt);
  in.pooled_projections = g.get(run + ".pooled_prompt_embeds").to(dt);
  const int64_t b = in.hidden_states.size(0);
  const Tensor t0 = g.get(run + ".timesteps").narrow(0, 0, 1).expand({b}).to(dt);
  in.timestep = ops::div(t0, ops::full({b}, 1000.0, dt));
  in.guidance = ops::full({b}, kGuidance, DType::f32);
  in.txt_ids = models::flux_text_ids(in.encoder_hidden_states.size(1));
  in.img_ids = models::flux_latent_image_ids(h2, w2);
  return in;
}

// Runs step 0 of `run` and compares every block output and the noise prediction.
void check_run(const std::string& run, int64_t h2, int64_t w2, DType dt, double max_abs,
               double min_cos, Device device = Device::cpu()) {
  const io::WeightStore g = io::WeightStore::open(kFlux + "/io.safetensors");
  const models::FluxTransformer2DModel model = load_model(dt).to(device);
  const models::FluxForwardInputs in = step0_inputs(g, run, h2, w2, dt);
  models::FluxTrace trace;
  const Tensor out = model.forward(in, {}, &trace);
  EXPECT_EQ(out.dtype(), dt);
  EXPECT_EQ(out.device(), device);
  ASSERT_EQ(trace.double_img.size(), 2u);
  ASSERT_EQ(trace.single_img.size(), 2u);
  const std::string p = run + ".step0.";
  for (size_t i = 0; i < 2; ++i) {
    const std::string d = p + "double." + std::to_string(i), s = p + "single." + std::to_string(i);
    expect_close(trace.double_txt[i], g.get(d + ".txt"), max_abs, min_cos, d + ".txt");
    expect_close(trace.double_img[i], g.get(d + ".img"), max_abs, min_cos, d + ".img");
    expect_close(trace.single_txt[i], g.get(s + ".txt"), max_abs, min_cos, s + ".txt");
    expect_close(trace.single_img[i], g.get(s + ".img"), max_abs, min_cos, s + ".img");
  }
  expect_close(out, g.get(p + "noise_pred"), max_abs, min_cos, p + "noise_pred");
}

TEST(FluxTransformerParity, BatchStep0MatchesDiffusersInF32) {
  check_run("b", 8, 8, DType::f32, 1e-4, 0.9999999);
}

TEST(FluxTransformerParity, RectangularStep0MatchesDiffusersInF32) {
  // height 24, width 40 with vae_scale_factor 2: a 12 x 20 latent, 6 x 10 packed tokens.
  check_run("r", 6, 10, DType::f32, 1e-4, 0.9999999);
}

TEST(FluxTransformerParity, BatchStep0MatchesDiffusersInBf16) {
  // PyTorch rounds to bf16 after every op, the fused epilogues here round once: the blocks
  // differ by about one bf16 ulp of their largest activations (measured 0.0156, cosine
  // >= 0.99999; the noise prediction 0.0117, cosine 0.99998).
  check_run("bf16", 8, 8, DType::bf16, 0.0625, 0.9999);
}

// The same model with its weights uploaded to a GPU: every op of the forward on the CUDA
// backend (cuBLASLt GEMMs, the flash / generic attention kernels, fused norms, RoPE), inputs
// given on the host. Bounds as on the CPU (f32: both differ from PyTorch by summation order).
TEST(FluxTransformerParity, CudaMatchesDiffusers) {
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  check_run("b", 8, 8, DType::f32, 1e-4, 0.9999999, Device::cuda());
  check_run("r", 6, 10, DType::f32, 1e-4, 0.9999999, Device::cuda());
  check_run("bf16", 8, 8, DType::bf16, 0.0625, 0.9999, Device::cuda());
}

TEST(FluxTransformerParity, F16StaysCloseToTheF32Golden) {
  // No f16 golden: diffusers runs FLUX in bf16. f16 keeps 3 more mantissa bits than bf16, so
  // the f32 golden bounds it more tightly than the bf16 run is bounded.
  const io::WeightStore g = io::WeightStore::open(kFlux + "/io.safetensors");
  const models::FluxTransformer2DModel model = load_model(DType::f16);
  const Tensor out = model.forward(step0_inputs(g, "b", 8, 8, DType::f16));
  EXPECT_EQ(out.dtype(), DType::f16);
  expect_close(out, g.get("b.step0.noise_pred"), 0.01, 0.9999, "f16 b.step0.noise_pred");
}

TEST(FluxTransformerParity, ConfigParamsAndIds) {
  const models::FluxTransformer2DModel model = load_model(DType::f32);
  EXPECT_EQ(model.config().num_layers, 2);
  EXPECT_EQ(model.config().num_single_layers, 2);
  EXPECT_TRUE(model.config().guidance_embeds);
  EXPECT_EQ(model.inner_dim(), 16);
  EXPECT_EQ(model.dtype(), DType::f32);
  EXPECT_EQ(model.num_params(), io::WeightStore::open(kTransformer).num_params());

  // FluxPipeline._prepare_latent_image_ids(2, 3): rows [0, row, col].
  const Tensor ids = models::flux_latent_image_ids(2, 3);
  ASSERT_EQ(ids.shape(), Shape({6, 3}));
  EXPECT_EQ(ids.to_vector(),
            std::vector<float>({0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 2}));
  const Tensor txt = models::flux_text_ids(4);
  ASSERT_EQ(txt.shape(), Shape({4, 3}));
  EXPECT_EQ(txt.to_vector(), std::vector<float>(12, 0.0f));
}

TEST(FluxTransformerParity, OneTimestepAndGuidanceValueServeTheBatch) {
  const io::WeightStore g = io::WeightStore::open(kFlux + "/io.safetensors");
  const models::FluxTransformer2DModel model = load_model(DType::f32);
  models::FluxForwardInputs in = step0_inputs(g, "b", 8, 8, DType::f32);
  const Tensor want = model.forward(in);
  in.timestep = in.timestep.narrow(0, 0, 1);
  in.guidance = ops::full({}, kGuidance, DType::f32);
  in.txt_ids = in.txt_ids.unsqueeze(0);  // diffusers' deprecated 3-d ids
  EXPECT_EQ(model.forward(in).to_vector(), want.to_vector());
}

// ---- bad checkpoints ----

// The golden weights with `edit` applied, written to a temp file and bound.
template <typename Edit>
void bind_edited(Edit&& edit, std::initializer_list<std::string_view> needles) {
  const io::WeightStore store = io::WeightStore::open(kTransformer);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : store.names()) tensors.emplace_back(name, store.get(name));
  edit(tensors);
  test::TempDir dir("flux_transformer");
  io::save_safetensors(dir / "w.safetensors", tensors);
  test::expect_error(
      [&] {
        models::FluxTransformer2DModel::from_weights(
            read_config(), io::WeightStore::open(dir / "w.safetensors"), DType::f32);
      },
      ErrorKind::InvalidArgument, needles);
}

TEST(FluxTransformerParity, MissingTensorIsNamed) {
  bind_edited(
      [](auto& t) {
        std::erase_if(t, [](const auto& p) {
          return p.first == "single_transformer_blocks.1.attn.norm_k.weight";
        });
      },
      {"missing", "single_transformer_blocks.1.attn.norm_k.weight"});
}

TEST(FluxTransformerParity, RenamedTensorIsNamed) {
  bind_edited(
      [](auto& t) {
        for (auto& [name, tensor] : t)
          if (name == "transformer_blocks.0.attn.to_add_out.weight")
            name = "transformer_blocks.0.attn.to_add_out.w";
      },
      {"missing", "transformer_blocks.0.attn.to_add_out.weight", "unexpected",
       "transformer_blocks.0.attn.to_add_out.w"});
}

TEST(FluxTransformerParity, MisshapedTensorIsNamed) {
  bind_edited(
      [](auto& t) {
        for (auto& [name, tensor] : t)
          if (name == "transformer_blocks.1.ff.net.2.weight") tensor = ops::full({16, 63}, 0.5);
      },
      {"wrong shape", "transformer_blocks.1.ff.net.2.weight", "(16, 63)"});
}

TEST(FluxTransformerParity, ConfigWithoutGuidanceEmbedsRejectsTheGuidanceWeights) {
  io::FluxTransformer2DModelConfig c = read_config();
  c.guidance_embeds = false;
  test::expect_error(
      [&] {
        models::FluxTransformer2DModel::from_weights(c, io::WeightStore::open(kTransformer),
                                                     DType::f32);
      },
      ErrorKind::InvalidArgument,
      {"unexpected", "time_text_embed.guidance_embedder.linear_1.weight"});
}

// ---- bad inputs ----

TEST(FluxTransformerParity, MismatchedInputsAreInvalidArgument) {
  const io::WeightStore g = io::WeightStore::open(kFlux + "/io.safetensors");
  const models::FluxTransformer2DModel model = load_model(DType::f32);
  const models::FluxForwardInputs good = step0_inputs(g, "b", 8, 8, DType::f32);
  auto expect_bad = [&](auto&& change, std::initializer_list<std::string_view> needles) {
    models::FluxForwardInputs in = good;
    change(in);
    test::expect_error([&] { model.forward(in); }, ErrorKind::InvalidArgument, needles);
  };
  using In = models::FluxForwardInputs;
  expect_bad([](In& in) { in.hidden_states = ops::full({2, 64, 15}, 0.0); }, {"hidden_states"});
  expect_bad([](In& in) { in.hidden_states = ops::full({64, 16}, 0.0); }, {"hidden_states"});
  expect_bad(
      [](In& in) {
        in.encoder_hidden_states = ops::full({1, 32, 32}, 0.0);
      },
      {"encoder_hidden_states"});
  expect_bad(
      [](In& in) {
        in.encoder_hidden_states = ops::full({2, 32, 31}, 0.0);
      },
      {"encoder_hidden_states"});
  expect_bad(
      [](In& in) {
        in.pooled_projections = ops::full({2, 31}, 0.0);
      },
      {"pooled_projections"});
  expect_bad([](In& in) { in.pooled_projections = Tensor(); }, {"pooled_projections"});
  expect_bad([](In& in) { in.timestep = ops::full({3}, 0.5); }, {"timestep"});
  expect_bad([](In& in) { in.timestep = Tensor(); }, {"timestep"});
  expect_bad([](In& in) { in.guidance = Tensor(); }, {"guidance", "guidance_embeds"});
  expect_bad([](In& in) { in.txt_ids = models::flux_text_ids(31); }, {"txt_ids"});
  expect_bad([](In& in) { in.img_ids = models::flux_latent_image_ids(8, 7); }, {"img_ids"});
  expect_bad([](In& in) { in.img_ids = ops::full({64, 2}, 0.0); }, {"img_ids"});
  expect_bad(
      [](In& in) {
        in.hidden_states = ops::full({2, 64, 16}, 0.0, DType::i32);
      },
      {"hidden_states", "f32"});
}

}  // namespace
}  // namespace mindiesd
