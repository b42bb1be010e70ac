// Parity with PyTorch on the attention and linear layers (tools/golden/make_layer_attention_golden.py):
// F.scaled_dot_product_attention with masks, causal, GQA and cross-attention, and F.linear with
// activations, FLUX's gated residual and diffusers GEGLU, in f32 and bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/linear.h"

namespace mindiesd {
namespace {

const io::WeightStore& golden() {
  static const io::WeightStore w =
      io::WeightStore::open(MINDIESD_SOURCE_DIR "/tests/data/golden/layer/attention.safetensors");
  return w;
}

// f32: both sides compute in f32 and differ by summation order (bound 2e-5 absolute). bf16:
// PyTorch rounds to bf16 after every op (linear, then activation, then gate and residual),
// mindiesd once at the end, so up to a few bf16 ulps (bound 4 ulps of max(|x|, 1)).
void expect_close(const Tensor& got, const std::string& name, DType dt) {
  const Tensor want = golden().get(name);
  ASSERT_EQ(got.shape(), want.shape()) << name;
  EXPECT_EQ(got.dtype(), dt) << name;
  const std::vector<float> g = got.to_vector(), w = want.to_vector();
  double worst = 0, worst_ulps = 0, gw = 0, gg = 0, ww = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double d = std::fabs(g[i] - w[i]);
    worst = std::max(worst, d);
    // In bf16 ulps of max(|want|, 1) (bf16 keeps 8 significant bits: ulp = 2^-7 |x| or less).
    worst_ulps = std::max(worst_ulps, d / (std::ldexp(1.0, -7) * std::max(1.0, std::fabs(double(w[i])))));
    gw += double(g[i]) * w[i];
    gg += double(g[i]) * g[i];
    ww += double(w[i]) * w[i];
  }
  const double cosine = gw / std::sqrt(gg * ww);
  std::printf("  %-34s max |diff| %.3g (%.2f bf16 ulps), cosine %.8f\n", name.c_str(), worst,
              worst_ulps, cosine);
  if (dt == DType::f32) EXPECT_LE(worst, 2e-5) << name;
  else EXPECT_LE(worst_ulps, 4.0) << name;
  EXPECT_GE(cosine, dt == DType::f32 ? 0.9999999 : 0.9999) << name;
}

class LayerParity : public ::testing::TestWithParam<DType> {};

TEST_P(LayerParity, ScaledDotProductAttention) {
  const DType dt = GetParam();
  const std::string sfx = dt == DType::f32 ? ".f32.out" : ".bf16.out";
  auto in = [&](const std::string& n) { return golden().get(n).to(dt); };
  expect_close(layer::attention_forward(in("sdpa.q"), in("sdpa.k"), in("sdpa.v")), "sdpa" + sfx, dt);
  expect_close(layer::attention_forward(in("sdpa_cross_gqa.q"), in("sdpa_cross_gqa.k"), in("sdpa_cross_gqa.v")),
               "sdpa_cross_gqa" + sfx, dt);
  expect_close(layer::attention_forward(in("sdpa_bool_mask.q"), in("sdpa_bool_mask.k"), in("sdpa_bool_mask.v"),
                                        golden().get("sdpa_bool_mask.mask").to(DType::boolean)),
               "sdpa_bool_mask" + sfx, dt);
  layer::AttentionOptions scaled;
  scaled.scale = 0.2f;
  expect_close(layer::attention_forward(in("sdpa_add_mask.q"), in("sdpa_add_mask.k"), in("sdpa_add_mask.v"),
                                        in("sdpa_add_mask.mask"), "BSND", scaled),
               "sdpa_add_mask" + sfx, dt);
  layer::AttentionOptions causal;
  causal.causal = true;
  expect_close(layer::attention_forward(in("sdpa_causal.q"), in("sdpa_causal.k"), in("sdpa_causal.v"),
                                        Tensor(), "BSND", causal),
               "sdpa_causal" + sfx, dt);
}

TEST_P(LayerParity, LinearEpiloguesAndGeglu) {
  const DType dt = GetParam();
  const std::string sfx = dt == DType::f32 ? ".f32.out" : ".bf16.out";
  auto in = [&](const std::string& n) { return golden().get(n).to(dt); };
  const Tensor x = in("linear.x"), w = in("linear.weight"), b = in("linear.bias");
  expect_close(layer::linear(x, w, b, {UnaryKind::gelu_tanh, Tensor(), Tensor()}), "linear_gelu_tanh" + sfx, dt);
  expect_close(layer::linear(x, w, b, {UnaryKind::silu, Tensor(), Tensor()}), "linear_silu" + sfx, dt);
  expect_close(layer::linear(x, w, b, {std::nullopt, in("linear.gate"), in("linear.residual")}),
               "linear_gate_residual" + sfx, dt);
  expect_close(layer::gated_linear(x, in("geglu.proj.weight"), in("geglu.proj.bias"), UnaryKind::gelu),
               "geglu" + sfx, dt);
}

INSTANTIATE_TEST_SUITE_P(Torch, LayerParity, ::testing::Values(DType::f32, DType::bf16),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });

}  // namespace
}  // namespace mindiesd
