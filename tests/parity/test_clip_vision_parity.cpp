// Parity of models::CLIPVisionModel with transformers' CLIPVisionModel on the tiny image encoder
// of the Wan I2V golden (tools/golden/make_wan_pipeline_golden.py: 32x32 images, 8x8 patches,
// hidden 24, 2 layers, gelu): hidden_states[-2] as WanImageToVideoPipeline takes it, plus
// config and input errors.
#include <gtest/gtest.h>

#include <string>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/encoders/clip_vision_model.h"
#include "parity/parity.h"
#include "test_util.h"

namespace mindiesd {
namespace {

const std::string kDir = MINDIESD_SOURCE_DIR "/tests/data/golden/wan_pipeline";

models::CLIPVisionModel load(DType dt) {
  const io::DiffusersFolder folder = io::DiffusersFolder::open(kDir + "/i2v");
  return models::CLIPVisionModel::load(folder.component("image_encoder"), dt);
}

TEST(ClipVisionParity, PenultimateHiddenStateMatchesTransformers) {
  const auto golden = io::WeightStore::open(kDir + "/io.safetensors");
  const models::CLIPVisionModel m = load(DType::f32);
  EXPECT_EQ(m.config().num_patches(), 16);
  const Tensor h = m.hidden_state(golden.get("i2v.pixel_values"), -2);
  EXPECT_EQ(h.shape(), (Shape{1, 17, 24}));
  test::expect_close(h, golden.get("i2v.image_embeds"), 2e-6, 0.9999999,
                     "clip vision hidden_states[-2]");
  // hidden_states[1] is the same state counted from the front; a batch of two is two rows.
  const Tensor two = ops::cat(
      std::vector<Tensor>{golden.get("i2v.pixel_values"), golden.get("i2v.pixel_values")}, 0);
  const Tensor hb = m.hidden_state(two, 1);
  test::expect_close(hb.narrow(0, 1, 1), golden.get("i2v.image_embeds"), 2e-6, 0.9999999,
                     "clip vision batch row 1");
  // bf16 weights and activations stay close (transformers rounds per op).
  const Tensor hb16 = load(DType::bf16).hidden_state(golden.get("i2v.pixel_values"), -2);
  EXPECT_EQ(hb16.dtype(), DType::bf16);
  test::expect_close(hb16, golden.get("i2v.image_embeds"), 0.06, 0.9995, "clip vision bf16");
}

TEST(ClipVisionParity, RunsOnCudaLikeTransformers) {
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  const auto golden = io::WeightStore::open(kDir + "/io.safetensors");
  const models::CLIPVisionModel m = load(DType::f32).to(Device::cuda());
  const Tensor h = m.hidden_state(golden.get("i2v.pixel_values"), -2);
  EXPECT_EQ(h.device(), Device::cuda());
  test::expect_close(h, golden.get("i2v.image_embeds"), 2e-6, 0.9999999,
                     "clip vision hidden_states[-2] (cuda)");
}

TEST(ClipVisionParity, BadInputsAreNamed) {
  const models::CLIPVisionModel m = load(DType::f32);
  test::expect_error(
      [&] {
        m.hidden_state(ops::full({1, 3, 28, 32}, 0.0), -2);
      },
      ErrorKind::InvalidArgument, {"pixel_values must be (B, 3, 32, 32)"});
  test::expect_error(
      [&] {
        m.hidden_state(ops::full({1, 3, 32, 32}, 0.0), 3);
      },
      ErrorKind::InvalidArgument, {"hidden state 3"});
  io::ConfigReader r = io::ConfigReader::from_string(
      R"({"model_type": "clip_vision_model", "image_size": 30, "patch_size": 8})", "config.json");
  test::expect_error([&] { models::CLIPVisionConfig::read(r); }, ErrorKind::InvalidArgument,
                     {"not a multiple of patch_size"});
}

}  // namespace
}  // namespace mindiesd
