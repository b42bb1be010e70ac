// Parity of models::WanTransformer3DModel with diffusers' WanTransformer3DModel on the tiny
// random-weight models of tests/data/golden/wan_transformer (tools/golden/
// make_wan_transformer_golden.py: 2 heads x 16, ffn 64, 2 layers, text_dim 32, freq_dim 32,
// 4 -> 4 channels, patch (1, 2, 2)): condition embeddings, every block's output and the model
// output, for
//   t2v.*       B=2, 4 x 2 x 4 x 4 latents, 8 text tokens, int64 timesteps (999, 437), f32
//   odd.*       B=1, 4 x 3 x 6 x 10 latents (a 3 x 3 x 5 token grid), 5 text tokens, f32
//   bf16.*      the t2v run with the model in bfloat16 as from_pretrained(torch_dtype) loads it
//   i2v.*, i2v_bf16.*  the I2V model (image_dim 24, added_kv_proj_dim 32), 512 text tokens and
//               6 image tokens, f32 and bf16
//   flf2v.*     a 1-layer FLF2V model (pos_embed_seq_len 12): two images of 6 tokens, f32
// Plus the errors a bad checkpoint or bad inputs give.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/wan/wan_transformer.h"
#include "parity/parity.h"
#include "test_util.h"

namespace mindiesd {
namespace {

using test::expect_close;

const std::string kWan = MINDIESD_SOURCE_DIR "/tests/data/golden/wan_transformer";

models::WanTransformer3DModel load_model(const std::string& sub, DType dt) {
  const io::DiffusersFolder folder = io::DiffusersFolder::open(kWan + "/" + sub);
  return models::WanTransformer3DModel::load(folder.component(sub), dt);
}

io::WanTransformer3DModelConfig read_config(const std::string& sub) {
  io::ConfigReader r = io::ConfigReader::from_file(kWan + "/" + sub + "/config.json");
  return io::WanTransformer3DModelConfig::read(r);
}

models::WanForwardInputs inputs(const io::WeightStore& g, const std::string& run, DType dt) {
  models::WanForwardInputs in;
  in.hidden_states = g.get(run + ".hidden_states").to(dt);
  in.timestep = g.get(run + ".timestep");  // int64, as WanPipeline passes it
  in.encoder_hidden_states = g.get(run + ".encoder_hidden_states").to(dt);
  if (g.has(run + ".encoder_hidden_states_image"))
    in.encoder_hidden_states_image = g.get(run + ".encoder_hidden_states_image").to(dt);
  return in;
}

// Runs `run` and compares the condition embeddings, every block output and the output.
void check_run(const std::string& sub, const std::string& run, DType dt, double max_abs,
               double min_cos, Device device = Device::cpu()) {
  const io::WeightStore g = io::WeightStore::open(kWan + "/io.safetensors");
  const models::WanTransformer3DModel model = load_model(sub, dt).to(device);
  models::WanTrace trace;
  const Tensor out = model.forward(inputs(g, run, dt), {}, &trace);
  EXPECT_EQ(out.dtype(), dt);
  EXPECT_EQ(out.device(), device);
  expect_close(trace.timestep_proj, g.get(run + ".timestep_proj"), max_abs, min_cos,
               run + ".timestep_proj");
  if (g.has(run + ".text_emb"))
    expect_close(trace.text_emb, g.get(run + ".text_emb"), max_abs, min_cos, run + ".text_emb");
  ASSERT_EQ(static_cast<int64_t>(trace.blocks.size()), model.config().num_layers);
  for (size_t i = 0; i < trace.blocks.size(); ++i) {
    const std::string b = run + ".block." + std::to_string(i);
    expect_close(trace.blocks[i], g.get(b), max_abs, min_cos, b);
  }
  expect_close(out, g.get(run + ".out"), max_abs, min_cos, run + ".out");
}

// f32: both sides compute in f32 and differ by summation order (measured max |diff| 3.6e-7 on
// the output, 4.8e-7 on the odd grid, 6e-7 for I2V; cosine 1.0 to 9 digits).
TEST(WanTransformerParity, T2vMatchesDiffusersInF32) {
  check_run("t2v", "t2v", DType::f32, 1e-5, 0.9999999);
}

TEST(WanTransformerParity, OddGridMatchesDiffusersInF32) {
  check_run("t2v", "odd", DType::f32, 1e-5, 0.9999999);
}

TEST(WanTransformerParity, T2vMatchesDiffusersInBf16) {
  // The timestep projection and text embedding are bit-identical. In the blocks PyTorch rounds
  // each GEMM output to bf16 before the f32 gated residual, the fused epilogues here round
  // once, and GEMM / attention sum in another order: about one bf16 ulp of the largest
  // activations (measured max |diff| 0.0078 on blocks and output, cosine >= 0.999993).
  check_run("t2v", "bf16", DType::bf16, 0.03125, 0.9999);
}

TEST(WanTransformerParity, I2vMatchesDiffusersInF32) {
  check_run("i2v", "i2v", DType::f32, 1e-5, 0.9999999);
}

TEST(WanTransformerParity, I2vMatchesDiffusersInBf16) {
  // Measured max |diff| 0.0117 on the output, cosine >= 0.99999.
  check_run("i2v", "i2v_bf16", DType::bf16, 0.03125, 0.9999);
}

TEST(WanTransformerParity, Flf2vMatchesDiffusersInF32) {
  // pos_embed over the first- and last-frame image tokens, (2 * B, 6, 24) viewed as (B, 12, 24).
  check_run("flf2v", "flf2v", DType::f32, 1e-5, 0.9999999);
}

TEST(WanTransformerParity, F16StaysCloseToTheF32Golden) {
  // No f16 golden (diffusers runs Wan in bf16); f16 keeps 3 more mantissa bits than bf16.
  const io::WeightStore g = io::WeightStore::open(kWan + "/io.safetensors");
  const models::WanTransformer3DModel model = load_model("t2v", DType::f16);
  const Tensor out = model.forward(inputs(g, "t2v", DType::f16));
  EXPECT_EQ(out.dtype(), DType::f16);
  expect_close(out, g.get("t2v.out"), 0.01, 0.9999, "f16 t2v.out");
}

// The same models with their weights uploaded to a GPU (inputs given on the host); bounds as
// on the CPU.
TEST(WanTransformerParity, CudaMatchesDiffusers) {
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  check_run("t2v", "t2v", DType::f32, 1e-5, 0.9999999, Device::cuda());
  check_run("t2v", "odd", DType::f32, 1e-5, 0.9999999, Device::cuda());
  check_run("t2v", "bf16", DType::bf16, 0.03125, 0.9999, Device::cuda());
  check_run("i2v", "i2v", DType::f32, 1e-5, 0.9999999, Device::cuda());
  check_run("i2v", "i2v_bf16", DType::bf16, 0.03125, 0.9999, Device::cuda());
}

TEST(WanTransformerParity, ConfigParamsAndTimestepForms) {
  const models::WanTransformer3DModel model = load_model("t2v", DType::f32);
  EXPECT_EQ(model.config().num_layers, 2);
  EXPECT_EQ(model.inner_dim(), 32);
  EXPECT_FALSE(model.is_i2v());
  EXPECT_EQ(model.num_params(), io::WeightStore::open(kWan + "/t2v").num_params());
  EXPECT_TRUE(load_model("i2v", DType::f32).is_i2v());
  EXPECT_EQ(load_model("i2v", DType::f32).num_params(),
            io::WeightStore::open(kWan + "/i2v").num_params());

  // float timesteps and one value for the whole batch give what int64 ones give.
  const io::WeightStore g = io::WeightStore::open(kWan + "/io.safetensors");
  models::WanForwardInputs in = inputs(g, "t2v", DType::f32);
  const std::vector<float> want = model.forward(in).to_vector();
  in.timestep = in.timestep.to(DType::f32);
  EXPECT_EQ(model.forward(in).to_vector(), want);
  in.hidden_states = in.hidden_states.narrow(0, 1, 1);
  in.encoder_hidden_states = in.encoder_hidden_states.narrow(0, 1, 1);
  in.timestep = in.timestep.narrow(0, 1, 1);
  const std::vector<float> second = model.forward(in).to_vector();
  in.timestep = ops::full({}, 437.0, DType::f32);
  EXPECT_EQ(model.forward(in).to_vector(), second);
}

// ---- bad checkpoints ----

template <typename Edit>
void bind_edited(Edit&& edit, std::initializer_list<std::string_view> needles) {
  const io::WeightStore store = io::WeightStore::open(kWan + "/t2v");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : store.names()) tensors.emplace_back(name, store.get(name));
  edit(tensors);
  test::TempDir dir("wan_transformer");
  io::save_safetensors(dir / "w.safetensors", tensors);
  test::expect_error(
      [&] {
        models::WanTransformer3DModel::from_weights(
            read_config("t2v"), io::WeightStore::open(dir / "w.safetensors"), DType::f32);
      },
      ErrorKind::InvalidArgument, needles);
}

TEST(WanTransformerParity, CorruptCheckpointNamesEveryProblem) {
  bind_edited(
      [](auto& t) {
        std::erase_if(t, [](const auto& p) { return p.first == "blocks.1.attn2.norm_k.weight"; });
        for (auto& [name, tensor] : t) {
          if (name == "blocks.0.ffn.net.2.weight") tensor = ops::full({32, 63}, 0.5);
          if (name == "blocks.0.attn1.to_out.0.bias") name = "blocks.0.attn1.to_out.bias";
        }
      },
      {"missing", "blocks.1.attn2.norm_k.weight", "blocks.0.attn1.to_out.0.bias", "wrong shape",
       "blocks.0.ffn.net.2.weight", "(32, 63)", "unexpected", "blocks.0.attn1.to_out.bias"});
}

TEST(WanTransformerParity, LegacyNormAddedQIsIgnored) {
  // diffusers' _keys_to_ignore_on_load_unexpected: old checkpoints carry attn2.norm_added_q.
  const io::WeightStore store = io::WeightStore::open(kWan + "/t2v");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : store.names()) tensors.emplace_back(name, store.get(name));
  tensors.emplace_back("blocks.0.attn2.norm_added_q.weight", ops::full({32}, 1.0));
  test::TempDir dir("wan_transformer");
  io::save_safetensors(dir / "w.safetensors", tensors);
  const models::WanTransformer3DModel model = models::WanTransformer3DModel::from_weights(
      read_config("t2v"), io::WeightStore::open(dir / "w.safetensors"), DType::f32);
  EXPECT_EQ(model.num_params(), store.num_params());
}

TEST(WanTransformerParity, T2vConfigRejectsI2vWeights) {
  test::expect_error(
      [&] {
        models::WanTransformer3DModel::from_weights(
            read_config("t2v"), io::WeightStore::open(kWan + "/i2v"), DType::f32);
      },
      ErrorKind::InvalidArgument,
      {"unexpected", "condition_embedder.image_embedder.norm1.weight", "add_k_proj"});
}

TEST(WanTransformerParity, BadConfigIsInvalidArgument) {
  io::WanTransformer3DModelConfig c = read_config("t2v");
  c.patch_size = {2, 2};
  test::expect_error(
      [&] {
        models::WanTransformer3DModel::from_weights(c, io::WeightStore::open(kWan + "/t2v"),
                                                    DType::f32);
      },
      ErrorKind::InvalidArgument, {"patch_size"});
}

// ---- bad inputs ----

TEST(WanTransformerParity, MismatchedInputsAreInvalidArgument) {
  const io::WeightStore g = io::WeightStore::open(kWan + "/io.safetensors");
  const models::WanTransformer3DModel model = load_model("t2v", DType::f32);
  const models::WanForwardInputs good = inputs(g, "t2v", DType::f32);
  auto expect_bad = [&](auto&& change, std::initializer_list<std::string_view> needles) {
    models::WanForwardInputs in = good;
    change(in);
    test::expect_error([&] { model.forward(in); }, ErrorKind::InvalidArgument, needles);
  };
  using In = models::WanForwardInputs;
  expect_bad(
      [](In& in) {
        in.hidden_states = ops::full({2, 3, 2, 4, 4}, 0.0);
      },
      {"hidden_states", "(batch, 4, frames, height, width)"});
  expect_bad(
      [](In& in) {
        in.hidden_states = ops::full({2, 4, 2, 5, 4}, 0.0);
      },
      {"hidden_states", "multiples of patch_size"});
  expect_bad(
      [](In& in) {
        in.hidden_states = ops::full({2, 4, 2, 4, 7}, 0.0);
      },
      {"multiples of patch_size"});
  expect_bad([](In& in) { in.hidden_states = ops::full({2, 4, 4, 4}, 0.0); }, {"hidden_states"});
  expect_bad(
      [](In& in) {
        in.hidden_states = ops::full({1, 4, 2, 4, 68}, 0.0);
      },
      {"rope_max_seq_len"});
  expect_bad(
      [](In& in) {
        in.encoder_hidden_states = ops::full({1, 8, 32}, 0.0);
      },
      {"encoder_hidden_states"});
  expect_bad(
      [](In& in) {
        in.encoder_hidden_states = ops::full({2, 8, 31}, 0.0);
      },
      {"encoder_hidden_states"});
  expect_bad([](In& in) { in.encoder_hidden_states = Tensor(); }, {"encoder_hidden_states"});
  expect_bad([](In& in) { in.timestep = ops::full({3}, 5.0); }, {"timestep"});
  expect_bad([](In& in) { in.timestep = ops::full({2, 8}, 5.0); }, {"timestep", "2-d"});
  expect_bad([](In& in) { in.timestep = Tensor(); }, {"timestep"});
  expect_bad(
      [](In& in) {
        in.encoder_hidden_states_image = ops::full({2, 6, 24}, 0.0);
      },
      {"encoder_hidden_states_image", "image_dim"});
  expect_bad(
      [](In& in) {
        in.hidden_states = ops::full({2, 4, 2, 4, 4}, 0.0, DType::i32);
      },
      {"hidden_states", "f32"});

  const models::WanTransformer3DModel i2v = load_model("i2v", DType::f32);
  models::WanForwardInputs in = inputs(g, "i2v", DType::f32);
  in.encoder_hidden_states_image = Tensor();
  test::expect_error([&] { i2v.forward(in); }, ErrorKind::InvalidArgument,
                     {"encoder_hidden_states_image"});
  in = inputs(g, "i2v", DType::f32);
  in.encoder_hidden_states = in.encoder_hidden_states.narrow(1, 0, 500);
  test::expect_error([&] { i2v.forward(in); }, ErrorKind::InvalidArgument, {"512"});
  in = inputs(g, "i2v", DType::f32);
  in.encoder_hidden_states_image = ops::full({1, 6, 23}, 0.0);
  test::expect_error([&] { i2v.forward(in); }, ErrorKind::InvalidArgument,
                     {"encoder_hidden_states_image", "(1, image tokens, 24)"});

  // FLF2V wants two images per sample.
  const models::WanTransformer3DModel flf2v = load_model("flf2v", DType::f32);
  in = inputs(g, "flf2v", DType::f32);
  in.encoder_hidden_states_image = in.encoder_hidden_states_image.narrow(0, 0, 1);
  test::expect_error([&] { flf2v.forward(in); }, ErrorKind::InvalidArgument,
                     {"encoder_hidden_states_image", "two images per sample"});
}

}  // namespace
}  // namespace mindiesd
