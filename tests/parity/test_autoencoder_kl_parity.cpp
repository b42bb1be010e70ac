// Parity with diffusers on a real component: the tiny random-weight AutoencoderKL recorded by
// tools/golden/make_vae_golden.py, loaded from its diffusers folder with the engine's
// safetensors reader and run with the layer blocks (layer::conv2d, resnet_block2d,
// upsample2d, downsample2d, group_norm). Every intermediate the script hooked is compared, so
// a mismatch points at the block that diverged. The VAE proper lives in models/ later; this
// test pins the layer semantics it will be built on.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/conv.h"
#include "mindiesd/layer/embedding.h"
#include "mindiesd/layer/norm.h"
#include "parity/parity.h"

namespace mindiesd {
namespace {

const std::string kDir = MINDIESD_SOURCE_DIR "/tests/data/golden/autoencoder_kl";

// The tiny VAE composed from the layer blocks (layer/conv.h, layer/norm.h), weights read by
// their diffusers names; every weight is cast to the run dtype, as `vae.to(dtype)` does.
class TinyVae {
 public:
  TinyVae(const io::WeightStore& w, DType dtype, int groups)
      : w_(layer::module_weights([w, dtype](const std::string& name) {
          return w.has(name) ? w.get(name).to(dtype) : Tensor();
        })),
        dtype_(dtype),
        groups_(groups) {}

  layer::ModuleWeights module(const std::string& name) const { return w_.child(name); }
  bool has(const std::string& name) const { return w_.get_optional(name).defined(); }

  Tensor conv(const Tensor& x, const std::string& name) const {
    return layer::conv2d(x, module(name));
  }

  // torch.nn.GroupNorm(groups, eps=1e-6) with its affine.
  Tensor group_norm(const Tensor& x, const std::string& name) const {
    const layer::ModuleWeights m = module(name);
    return layer::group_norm(x, groups_, m.get("weight"), m.get("bias"), 1e-6f);
  }

  // diffusers ResnetBlock2D (output_scale_factor 1, no time embedding).
  Tensor resnet(const Tensor& x, const std::string& name) const {
    layer::ResnetBlockOptions o;
    o.groups = groups_;
    o.eps = 1e-6f;
    return layer::resnet_block2d(x, module(name), o);
  }

  Tensor mid_block(const Tensor& x, const std::string& name) const {
    return resnet(resnet(x, name + ".resnets.0"), name + ".resnets.1");
  }

  struct Trace {
    Tensor post_quant_conv, conv_in, mid_block, up0, up1, conv_norm_out, conv_out;
  };

  Trace decode(const Tensor& z) const {
    Trace t;
    t.post_quant_conv = conv(z.to(dtype_), "post_quant_conv");
    t.conv_in = conv(t.post_quant_conv, "decoder.conv_in");
    t.mid_block = mid_block(t.conv_in, "decoder.mid_block");
    Tensor h = t.mid_block;
    for (int b = 0; b < 2; ++b) {
      const std::string name = "decoder.up_blocks." + std::to_string(b);
      h = resnet(resnet(h, name + ".resnets.0"), name + ".resnets.1");
      if (has(name + ".upsamplers.0.conv.weight")) {  // Upsample2D: nearest x2, then conv
        h = layer::upsample2d(h, module(name + ".upsamplers.0"));
      }
      (b == 0 ? t.up0 : t.up1) = h;
    }
    t.conv_norm_out = group_norm(h, "decoder.conv_norm_out");
    t.conv_out = conv(ops::silu(t.conv_norm_out), "decoder.conv_out");
    return t;
  }

  // Encoder -> quant_conv -> (mean, logvar) of diffusers' DiagonalGaussianDistribution.
  std::pair<Tensor, Tensor> encode(const Tensor& image) const {
    Tensor h = conv(image.to(dtype_), "encoder.conv_in");
    for (int b = 0; b < 2; ++b) {
      const std::string name = "encoder.down_blocks." + std::to_string(b);
      h = resnet(h, name + ".resnets.0");  // layers_per_block = 1
      if (has(name + ".downsamplers.0.conv.weight")) {
        // Downsample2D with padding 0: pad right/bottom by one, then a stride-2 conv.
        h = layer::downsample2d(h, module(name + ".downsamplers.0"));
      }
    }
    h = mid_block(h, "encoder.mid_block");
    h = conv(ops::silu(group_norm(h, "encoder.conv_norm_out")), "encoder.conv_out");
    h = conv(h, "quant_conv");
    const std::vector<Tensor> parts = ops::chunk(h, 2, 1);
    return {parts[0], ops::clamp(parts[1], -30.0f, 20.0f)};
  }

 private:
  layer::ModuleWeights w_;
  DType dtype_;
  int groups_;
};

using test::expect_close;

TEST(AutoencoderKlParity, DecoderMatchesDiffusersInF32) {
  const auto weights = io::WeightStore::open(kDir + "/vae/diffusion_pytorch_model.safetensors");
  const auto golden = io::WeightStore::open(kDir + "/io.safetensors");
  const TinyVae vae(weights, DType::f32, 8);
  const TinyVae::Trace t = vae.decode(golden.get("z"));
  // f32 end to end: bounds are a few f32 ulps of activations of magnitude ~1-10, grown
  // through ~12 convolutions.
  expect_close(t.post_quant_conv, golden.get("f32.post_quant_conv"), 1e-5, 0.999999,
               "post_quant_conv");
  expect_close(t.conv_in, golden.get("f32.decoder.conv_in"), 1e-4, 0.999999, "conv_in");
  expect_close(t.mid_block, golden.get("f32.decoder.mid_block"), 1e-4, 0.999999, "mid_block");
  expect_close(t.up0, golden.get("f32.decoder.up_blocks.0"), 1e-4, 0.999999, "up_blocks.0");
  expect_close(t.up1, golden.get("f32.decoder.up_blocks.1"), 1e-4, 0.999999, "up_blocks.1");
  expect_close(t.conv_norm_out, golden.get("f32.decoder.conv_norm_out"), 1e-4, 0.999999,
               "conv_norm_out");
  expect_close(t.conv_out, golden.get("sample"), 1e-4, 0.999999, "decoded sample");
}

TEST(AutoencoderKlParity, EncoderMatchesDiffusersInF32) {
  const auto weights = io::WeightStore::open(kDir + "/vae/diffusion_pytorch_model.safetensors");
  const auto golden = io::WeightStore::open(kDir + "/io.safetensors");
  const TinyVae vae(weights, DType::f32, 8);
  const auto [mean, logvar] = vae.encode(golden.get("encode.image"));
  expect_close(mean, golden.get("encode.mean"), 1e-4, 0.999999, "latent mean");
  expect_close(logvar, golden.get("encode.logvar"), 1e-4, 0.999999, "latent logvar");
}

TEST(AutoencoderKlParity, DecoderMatchesDiffusersInBf16) {
  const auto weights = io::WeightStore::open(kDir + "/vae/diffusion_pytorch_model.safetensors");
  const auto golden = io::WeightStore::open(kDir + "/io.safetensors");
  const TinyVae vae(weights, DType::bf16, 8);
  const TinyVae::Trace t = vae.decode(golden.get("z"));
  // bf16 activations round at every layer on both sides, in different places: within 2x
  // diffusers' own bf16-vs-f32 gap of the same latents, block by block.
  EXPECT_EQ(t.conv_out.dtype(), DType::bf16);
  test::expect_bf16_like_diffusers(t.mid_block, golden.get("bf16.decoder.mid_block"),
                                   golden.get("f32.decoder.mid_block"), "bf16 mid_block");
  test::expect_bf16_like_diffusers(t.up0, golden.get("bf16.decoder.up_blocks.0"),
                                   golden.get("f32.decoder.up_blocks.0"), "bf16 up_blocks.0");
  test::expect_bf16_like_diffusers(t.conv_out, golden.get("sample_bf16"), golden.get("sample"),
                                   "bf16 decoded sample");
}

}  // namespace
}  // namespace mindiesd
