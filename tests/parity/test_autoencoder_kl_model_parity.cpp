// Parity of models::AutoencoderKL with diffusers' AutoencoderKL on three tiny random-weight VAEs:
//   tests/data/golden/flux/pipeline/vae   FLUX-style (mid-block attention, no quant convs),
//                                         decoding the latents FluxPipeline handed its VAE
//   tests/data/golden/autoencoder_kl      SD-style (quant convs, no mid attention): decode and
//                                         encode (tools/golden/make_vae_golden.py)
//   tests/data/golden/autoencoder_kl_tiled three blocks, layers_per_block 2, attention,
//                                         quant_conv without post_quant_conv: plain and tiled
//                                         decode / encode (tools/golden/make_vae_tiled_golden.py)
// plus the errors a bad checkpoint or input gives.
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
#include "mindiesd/layer/embedding.h"
#include "mindiesd/models/vae/autoencoder_kl.h"
#include "parity/parity.h"
#include "test_util.h"

namespace mindiesd {
namespace {

using test::expect_close;

const std::string kGolden = MINDIESD_SOURCE_DIR "/tests/data/golden";
const std::string kFlux = kGolden + "/flux";
const std::string kSd = kGolden + "/autoencoder_kl";
const std::string kTiled = kGolden + "/autoencoder_kl_tiled";

void expect_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_EQ(got.to_vector(), want.to_vector()) << what;
}

models::AutoencoderKL load_vae(const std::string& dir, const std::string& component, DType dt) {
  const io::DiffusersFolder folder = io::DiffusersFolder::open(dir);
  return models::AutoencoderKL::load(folder.component(component), dt);
}

io::AutoencoderKLConfig read_config(const std::string& component_dir) {
  io::ConfigReader r = io::ConfigReader::from_file(component_dir + "/config.json");
  return io::AutoencoderKLConfig::read(r);
}

// ---- FLUX-style VAE: the latents FluxPipeline decoded ----

TEST(AutoencoderKlModelParity, FluxVaeDecodesLikeDiffusersInF32) {
  const auto golden = io::WeightStore::open(kFlux + "/io.safetensors");
  const models::AutoencoderKL vae = load_vae(kFlux + "/pipeline", "vae", DType::f32);
  EXPECT_EQ(vae.scale_factor(), 2);
  EXPECT_TRUE(vae.config().mid_block_add_attention);
  EXPECT_FALSE(vae.config().use_post_quant_conv);
  const Tensor image = vae.decode(golden.get("b.vae_in"));
  EXPECT_EQ(image.dtype(), DType::f32);
  // f32 on both sides, summation orders differ: a few ulps of activations of size ~1-10.
  expect_close(image, golden.get("b.image"), 2e-5, 0.9999999, "flux vae f32 (2x32x32)");
  expect_close(vae.decode(golden.get("r.vae_in")), golden.get("r.image"), 5e-5, 0.9999999,
               "flux vae f32 (24x40)");
}

TEST(AutoencoderKlModelParity, FluxVaeDecodesLikeDiffusersInBf16) {
  const auto golden = io::WeightStore::open(kFlux + "/io.safetensors");
  const models::AutoencoderKL vae = load_vae(kFlux + "/pipeline", "vae", DType::bf16);
  EXPECT_EQ(vae.dtype(), DType::bf16);
  const Tensor image = vae.decode(golden.get("bf16.vae_in").to(DType::bf16));
  EXPECT_EQ(image.dtype(), DType::bf16);
  // bf16 activations round at every layer on both sides, in different places. The golden has
  // diffusers' f32 decode of the f32 run's latents only, so the f32 result of these latents is
  // ours (FluxVaeDecodesLikeDiffusersInF32: within 1e-4 of diffusers').
  const Tensor f32 = load_vae(kFlux + "/pipeline", "vae", DType::f32)
                         .decode(golden.get("bf16.vae_in").to(DType::bf16).to(DType::f32));
  test::expect_bf16_like_diffusers(image, golden.get("bf16.image"), f32, "flux vae bf16");
}

TEST(AutoencoderKlModelParity, FluxLatentScalingMatchesThePipeline) {
  // FluxPipeline: latents = unpack(latents) / scaling_factor + shift_factor before decode.
  const auto golden = io::WeightStore::open(kFlux + "/io.safetensors");
  for (const DType dt : {DType::f32, DType::bf16}) {
    const std::string p = dt == DType::f32 ? "b." : "bf16.";
    const models::AutoencoderKL vae = load_vae(kFlux + "/pipeline", "vae", dt);
    const Tensor z = layer::unpatchify_2d(golden.get(p + "latents.3").to(dt), 16, 16);
    const Tensor in = vae.denormalize_latents(z);
    EXPECT_EQ(in.dtype(), dt);
    expect_identical(in.to(DType::f32), golden.get(p + "vae_in"), p + "vae_in");
    // normalize is its inverse up to rounding.
    expect_close(vae.normalize_latents(in), z, dt == DType::f32 ? 1e-5 : 0.05, 0.9999,
                 p + "normalize(denormalize(z))");
  }
}

TEST(AutoencoderKlModelParity, LatentScalingWithLatentsMeanAndStd) {
  // SDXL-style configs: z * std / scaling_factor + mean per channel, and its inverse.
  io::AutoencoderKLConfig c = read_config(kFlux + "/pipeline/vae");
  c.latents_mean = std::vector<double>{0.5, -1.0, 0.25, 2.0};
  c.latents_std = std::vector<double>{2.0, 0.5, 1.5, 4.0};
  const auto vae = models::AutoencoderKL::from_weights(
      c, io::WeightStore::open(kFlux + "/pipeline/vae/diffusion_pytorch_model.safetensors"),
      DType::f32);
  const Tensor z = ops::randn({2, 4, 3, 5}, 7);
  const Tensor d = vae.denormalize_latents(z);
  const std::vector<float> zv = z.to_vector();
  std::vector<double> want(zv.size());
  for (size_t i = 0; i < zv.size(); ++i) {
    const size_t ch = (i / 15) % 4;
    want[i] = zv[i] * (*c.latents_std)[ch] / c.scaling_factor + (*c.latents_mean)[ch];
  }
  EXPECT_LE(test::diff_values(d.to_vector(), want).max_abs, 1e-5);
  expect_close(vae.normalize_latents(d), z, 1e-5, 0.9999999, "sdxl-style round trip");
}

// ---- SD-style VAE (quant convs, no mid attention): the golden the layer test uses ----

TEST(AutoencoderKlModelParity, SdVaeDecodesAndEncodesLikeDiffusers) {
  const auto golden = io::WeightStore::open(kSd + "/io.safetensors");
  const models::AutoencoderKL vae = load_vae(kSd, "vae", DType::f32);
  EXPECT_FALSE(vae.config().mid_block_add_attention);
  expect_close(vae.decode(golden.get("z")), golden.get("sample"), 2e-5, 0.999999, "sd decode");
  const auto [mean, logvar] = vae.encode(golden.get("encode.image"));
  expect_close(mean, golden.get("encode.mean"), 2e-5, 0.999999, "sd encode mean");
  expect_close(logvar, golden.get("encode.logvar"), 2e-5, 0.999999, "sd encode logvar");

  const models::AutoencoderKL vae16 = load_vae(kSd, "vae", DType::bf16);
  const Tensor sample = vae16.decode(golden.get("z"));  // f32 latents are cast to bf16
  EXPECT_EQ(sample.dtype(), DType::bf16);
  test::expect_bf16_like_diffusers(sample, golden.get("sample_bf16"), golden.get("sample"),
                                   "sd decode bf16");
}

// ---- tiling ----

class AutoencoderKlTiled : public ::testing::Test {
 protected:
  static models::AutoencoderKL vae(DType dt, models::VaeTiling tiling = {}) {
    models::AutoencoderKL v = load_vae(kTiled + "/vae", "vae", dt);
    v.set_tiling(tiling);
    return v;
  }
  static models::VaeTiling on(int64_t tile = 0, double overlap = 0.25) {
    models::VaeTiling t;
    t.enabled = true;
    t.tile_sample_min_size = tile;
    t.tile_overlap_factor = overlap;
    return t;
  }
  io::WeightStore golden_ = io::WeightStore::open(kTiled + "/io.safetensors");
};

TEST_F(AutoencoderKlTiled, PlainDecodeAndEncodeMatchDiffusers) {
  const models::AutoencoderKL v = vae(DType::f32);
  EXPECT_EQ(v.scale_factor(), 4);
  expect_close(v.decode(golden_.get("z")), golden_.get("decode"), 2e-5, 0.999999, "decode");
  const auto [mean, logvar] = v.encode(golden_.get("image"));
  expect_close(mean, golden_.get("encode.mean"), 2e-5, 0.999999, "encode mean");
  expect_close(logvar, golden_.get("encode.logvar"), 2e-5, 0.999999, "encode logvar");
}

TEST_F(AutoencoderKlTiled, TiledDecodeMatchesDiffusers) {
  // tile 32 px = 8 latents, overlap 0.25: 3 x 4 tiles every 6 latents, blended over 8 px.
  const Tensor got = vae(DType::f32, on()).decode(golden_.get("z"));
  expect_close(got, golden_.get("tiled_decode"), 2e-5, 0.999999, "tiled decode");
  // tile 16 px = 4 latents, overlap 0.5: 8 x 12 tiles every 2 latents, blended over 8 px.
  expect_close(vae(DType::f32, on(16, 0.5)).decode(golden_.get("z")),
               golden_.get("t16.tiled_decode"), 2e-5, 0.999999, "tiled decode (16, 0.5)");
  // And the tiles really were blended: the result is not the plain decode.
  EXPECT_GT(test::diff(got, golden_.get("decode")).max_abs, 0.1);
}

TEST_F(AutoencoderKlTiled, TiledDecodeMatchesDiffusersInBf16) {
  const Tensor got = vae(DType::bf16, on()).decode(golden_.get("z").to(DType::bf16));
  EXPECT_EQ(got.dtype(), DType::bf16);
  test::expect_bf16_like_diffusers(got, golden_.get("tiled_decode_bf16"),
                                   golden_.get("tiled_decode"), "tiled decode bf16");
}

TEST_F(AutoencoderKlTiled, TiledEncodeMatchesDiffusers) {
  const auto [mean, logvar] = vae(DType::f32, on()).encode(golden_.get("image"));
  expect_close(mean, golden_.get("tiled_encode.mean"), 2e-5, 0.999999, "tiled encode mean");
  expect_close(logvar, golden_.get("tiled_encode.logvar"), 2e-5, 0.999999, "tiled encode logvar");
  const auto [mean16, logvar16] = vae(DType::f32, on(16, 0.5)).encode(golden_.get("image"));
  expect_close(mean16, golden_.get("t16.tiled_encode.mean"), 1e-4, 0.999999,
               "tiled encode mean (16, 0.5)");
  expect_close(logvar16, golden_.get("t16.tiled_encode.logvar"), 1e-4, 0.999999,
               "tiled encode logvar (16, 0.5)");
}

TEST_F(AutoencoderKlTiled, RunsOnCudaLikeDiffusers) {
  // AutoencoderKL::to(cuda): weights uploaded once, host inputs in, host results out; plain and
  // tiled (the blends on the device) decode and encode, f32 (cuDNN without TF32) and bf16.
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  const models::AutoencoderKL plain = vae(DType::f32).to(Device::cuda());
  EXPECT_EQ(plain.device(), Device::cuda());
  const Tensor decoded = plain.decode(golden_.get("z"));
  EXPECT_TRUE(decoded.device().is_cpu());
  expect_close(decoded, golden_.get("decode"), 1e-4, 0.999999, "decode (cuda)");
  const auto [mean, logvar] = plain.encode(golden_.get("image"));
  expect_close(mean, golden_.get("encode.mean"), 1e-4, 0.999999, "encode mean (cuda)");
  expect_close(logvar, golden_.get("encode.logvar"), 1e-4, 0.999999, "encode logvar (cuda)");
  const models::AutoencoderKL tiled = vae(DType::f32, on()).to(Device::cuda());
  expect_close(tiled.decode(golden_.get("z")), golden_.get("tiled_decode"), 1e-4, 0.999999,
               "tiled decode (cuda)");
  const auto [tmean, tlogvar] = tiled.encode(golden_.get("image"));
  expect_close(tmean, golden_.get("tiled_encode.mean"), 1e-4, 0.999999, "tiled encode (cuda)");
  // Device inputs stay on the device.
  const Tensor on_gpu = tiled.decode(golden_.get("z").to(Device::cuda()));
  EXPECT_EQ(on_gpu.device(), Device::cuda());
  const Tensor bf16 =
      vae(DType::bf16, on()).to(Device::cuda()).decode(golden_.get("z").to(DType::bf16));
  test::expect_bf16_like_diffusers(bf16, golden_.get("tiled_decode_bf16"),
                                   golden_.get("tiled_decode"), "tiled decode bf16 (cuda)");
}

TEST_F(AutoencoderKlTiled, InputsNoLargerThanATileAreNotTiled) {
  // diffusers tiles only when the input exceeds the tile (8 latents / 32 px here).
  const models::AutoencoderKL plain = vae(DType::f32), tiled = vae(DType::f32, on());
  const Tensor z = golden_.get("z").narrow(2, 0, 8).narrow(3, 3, 8).contiguous();
  expect_identical(tiled.decode(z), plain.decode(z), "decode of one tile");
  const Tensor image = golden_.get("image").narrow(2, 8, 32).narrow(3, 0, 24).contiguous();
  const auto [m1, l1] = tiled.encode(image);
  const auto [m2, l2] = plain.encode(image);
  expect_identical(m1, m2, "encode mean of one tile");
  expect_identical(l1, l2, "encode logvar of one tile");
  // One latent wider than a tile is tiled.
  const Tensor wide = golden_.get("z").narrow(2, 0, 8).narrow(3, 0, 9).contiguous();
  EXPECT_GT(test::diff(tiled.decode(wide), plain.decode(wide)).max_abs, 1e-3);
}

TEST_F(AutoencoderKlTiled, BadTilingIsRejected) {
  models::AutoencoderKL v = vae(DType::f32);
  // 4 px tiles are one latent: no stride left after a 0.25 overlap.
  test::expect_error([&] { v.set_tiling(on(4)); }, ErrorKind::InvalidArgument, {"tile", "overlap"});
  test::expect_error([&] { v.set_tiling(on(0, 1.0)); }, ErrorKind::InvalidArgument,
                     {"tile_overlap_factor"});
  models::VaeTiling off = on(4);
  off.enabled = false;
  v.set_tiling(off);  // not checked while disabled
}

// ---- errors ----

// The tiny FLUX VAE's tensors, to be modified and written back.
std::vector<std::pair<std::string, Tensor>> flux_vae_tensors() {
  const auto store =
      io::WeightStore::open(kFlux + "/pipeline/vae/diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& n : store.names()) out.emplace_back(n, store.get(n));
  return out;
}

models::AutoencoderKL from_tensors(const test::TempDir& dir,
                                   const std::vector<std::pair<std::string, Tensor>>& tensors) {
  const auto path = dir / "vae.safetensors";
  io::save_safetensors(path, tensors);
  return models::AutoencoderKL::from_weights(read_config(kFlux + "/pipeline/vae"),
                                             io::WeightStore::open(path), DType::f32);
}

TEST(AutoencoderKlModelErrors, BadWeightsAreListedInOneError) {
  test::TempDir dir("vae_weights");
  auto tensors = flux_vae_tensors();
  auto find = [&](const std::string& name) -> Tensor& {
    for (auto& [n, t] : tensors)
      if (n == name) return t;
    ADD_FAILURE() << "no tensor " << name;
    return tensors.front().second;
  };
  // missing
  std::erase_if(tensors, [](const auto& p) { return p.first == "decoder.conv_out.bias"; });
  // renamed
  for (auto& [n, t] : tensors)
    if (n == "encoder.mid_block.attentions.0.to_k.weight") n = "encoder.mid_block.attn.to_k.weight";
  // reshaped
  Tensor& w = find("decoder.up_blocks.1.resnets.0.conv1.weight");
  w = w.narrow(0, 0, w.size(0) - 1).contiguous();
  test::expect_error(
      [&] { from_tensors(dir, tensors); }, ErrorKind::InvalidArgument,
      {"AutoencoderKL", "decoder.conv_out.bias", "encoder.mid_block.attentions.0.to_k.weight",
       "encoder.mid_block.attn.to_k.weight", "decoder.up_blocks.1.resnets.0.conv1.weight",
       "missing", "wrong shape", "unexpected"});
}

TEST(AutoencoderKlModelErrors, EachKindOfBadWeightAlone) {
  test::TempDir dir("vae_weights1");
  {
    auto t = flux_vae_tensors();
    std::erase_if(t, [](const auto& p) { return p.first == "encoder.conv_in.weight"; });
    test::expect_error([&] { from_tensors(dir, t); }, ErrorKind::InvalidArgument,
                       {"missing", "encoder.conv_in.weight"});
  }
  {
    auto t = flux_vae_tensors();
    for (auto& [n, x] : t)
      if (n == "decoder.mid_block.resnets.1.norm2.bias")
        n = "decoder.mid_block.resnets.1.norm_2.bias";
    test::expect_error(
        [&] { from_tensors(dir, t); }, ErrorKind::InvalidArgument,
        {"decoder.mid_block.resnets.1.norm2.bias", "decoder.mid_block.resnets.1.norm_2.bias"});
  }
  {
    auto t = flux_vae_tensors();
    for (auto& [n, x] : t)
      if (n == "decoder.mid_block.attentions.0.to_q.weight") x = x.reshape({32, 32, 1, 1});
    test::expect_error([&] { from_tensors(dir, t); }, ErrorKind::InvalidArgument,
                       {"wrong shape", "decoder.mid_block.attentions.0.to_q.weight"});
  }
  {
    // A VAE with quant convs is not the FLUX config's (use_quant_conv false): unexpected.
    auto t = flux_vae_tensors();
    t.emplace_back("quant_conv.weight", Tensor::zeros({8, 8, 1, 1}, DType::f32));
    test::expect_error([&] { from_tensors(dir, t); }, ErrorKind::InvalidArgument,
                       {"unexpected", "quant_conv.weight"});
  }
}

TEST(AutoencoderKlModelErrors, DeprecatedAttentionNamesBind) {
  // Checkpoints saved before diffusers renamed the VAE attention (query/key/value/proj_attn).
  test::TempDir dir("vae_old_attn");
  auto t = flux_vae_tensors();
  const std::pair<std::string, std::string> renames[] = {{".to_q.", ".query."},
                                                         {".to_k.", ".key."},
                                                         {".to_v.", ".value."},
                                                         {".to_out.0.", ".proj_attn."}};
  for (auto& [n, x] : t) {
    for (const auto& [from, to] : renames) {
      const size_t at = n.find(from);
      if (at != std::string::npos) n.replace(at, from.size(), to);
    }
  }
  const models::AutoencoderKL old = from_tensors(dir, t);
  const models::AutoencoderKL now = load_vae(kFlux + "/pipeline", "vae", DType::f32);
  const auto golden = io::WeightStore::open(kFlux + "/io.safetensors");
  expect_identical(old.decode(golden.get("r.vae_in")), now.decode(golden.get("r.vae_in")),
                   "decode with deprecated attention names");
}

TEST(AutoencoderKlModelErrors, BadInputsAndConfigs) {
  const models::AutoencoderKL vae = load_vae(kFlux + "/pipeline", "vae", DType::f32);
  test::expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 16, 8, 8}, DType::f32));
      },
      ErrorKind::InvalidArgument, {"decode", "16 channels", "latent_channels", "4"});
  test::expect_error(
      [&] {
        vae.decode(Tensor::zeros({4, 8, 8}, DType::f32));
      },
      ErrorKind::InvalidArgument, {"decode", "(B, C, H, W)"});
  test::expect_error(
      [&] {
        vae.encode(Tensor::zeros({1, 4, 16, 16}, DType::f32));
      },
      ErrorKind::InvalidArgument, {"encode", "in_channels"});
  test::expect_error(
      [&] {
        vae.decode(Tensor::zeros({1, 4, 8, 8}, DType::i32));
      },
      ErrorKind::InvalidArgument, {"decode", "i32"});

  const auto store =
      io::WeightStore::open(kFlux + "/pipeline/vae/diffusion_pytorch_model.safetensors");
  io::AutoencoderKLConfig c = read_config(kFlux + "/pipeline/vae");
  c.up_block_types[1] = "AttnUpDecoderBlock2D";
  test::expect_error([&] { models::AutoencoderKL::from_weights(c, store, DType::f32); },
                     ErrorKind::Unsupported, {"AttnUpDecoderBlock2D"});
  c = read_config(kFlux + "/pipeline/vae");
  c.act_fn = "gelu";
  test::expect_error([&] { models::AutoencoderKL::from_weights(c, store, DType::f32); },
                     ErrorKind::Unsupported, {"act_fn", "gelu"});
  // A config that disagrees with the file: every tensor of the extra block is missing.
  c = read_config(kFlux + "/pipeline/vae");
  c.layers_per_block = 2;
  test::expect_error([&] { models::AutoencoderKL::from_weights(c, store, DType::f32); },
                     ErrorKind::InvalidArgument,
                     {"missing", "encoder.down_blocks.0.resnets.1.conv1.weight",
                      "decoder.up_blocks.0.resnets.2.norm1.weight"});
}

TEST(AutoencoderKlModelErrors, WeightsInTheComputeDtypeAreUsedInPlace) {
  // bf16 weights bound in bf16 are the file's own bytes (BoundWeights): decoding with them
  // equals decoding with the f32 file converted at bind time.
  test::TempDir dir("vae_bf16");
  auto t = flux_vae_tensors();
  for (auto& [n, x] : t) x = x.to(DType::bf16);
  const auto path = dir / "vae.safetensors";
  io::save_safetensors(path, t);
  const auto cfg = read_config(kFlux + "/pipeline/vae");
  const auto a = models::AutoencoderKL::from_weights(cfg, io::WeightStore::open(path), DType::bf16);
  const models::AutoencoderKL b = load_vae(kFlux + "/pipeline", "vae", DType::bf16);
  const auto golden = io::WeightStore::open(kFlux + "/io.safetensors");
  const Tensor z = golden.get("bf16.vae_in").to(DType::bf16);
  expect_identical(a.decode(z), b.decode(z), "bf16 file vs f32 file bound in bf16");
}

}  // namespace
}  // namespace mindiesd
