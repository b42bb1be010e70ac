// Parity with PyTorch on the attention and linear layers (tools/golden/make_layer_attention_golden.py):
// F.scaled_dot_product_attention with masks, causal, GQA and cross-attention, and F.linear with
// activations, FLUX's gated residual and diffusers GEGLU, in f32 and bf16.
#include <gtest/gtest.h>

#include "parity/parity.h"

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

void expect_close(const Tensor& got, const std::string& name, DType dt) {
  test::expect_parity(got, golden().get(name), name, dt);
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
