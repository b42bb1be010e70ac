// Parity with diffusers / transformers on three layer blocks (tools/golden/make_layer_blocks_golden.py):
//   - spatial_attention_block vs diffusers Attention as UNetMidBlock2D builds it for the VAE mid
//     block (C = 32, 8 groups, one head), f32 and bf16;
//   - CausalConv3d vs diffusers WanCausalConv3d (4 -> 6, kernel 3, padding 1), whole video and in
//     chunks of 1 then 4 frames with AutoencoderKLWan's feat_cache convention;
//   - moe_route + moe_forward vs transformers MixtralSparseMoeBlock (hidden 32, intermediate 48,
//     4 experts, top 2). transformers 5.x stores the experts fused: experts.gate_up_proj (E, 2I, H)
//     whose rows [0, I) are the gate (w1) and [I, 2I) the up projection (w3), and
//     experts.down_proj (E, H, I); the test splits gate_up_proj into MoeExpert's w_gate / w_up.
// Weights are bound by their state-dict names through layer::module_weights.
#include <gtest/gtest.h>

#include "parity/parity.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/conv.h"
#include "mindiesd/layer/embedding.h"
#include "mindiesd/layer/linear.h"
#include "mindiesd/layer/moe.h"

namespace mindiesd {
namespace {

const io::WeightStore& golden() {
  static const io::WeightStore w =
      io::WeightStore::open(MINDIESD_SOURCE_DIR "/tests/data/golden/layer/blocks.safetensors");
  return w;
}

void expect_close(const Tensor& got, const std::string& name, DType dt) {
  test::expect_parity(got, golden().get(name), name, dt);
}

TEST(LayerBlocksParity, SpatialAttentionBlockF32) {
  layer::SpatialAttentionOptions o;
  o.groups = 8;
  o.eps = 1e-6f;
  o.heads = 1;
  o.rescale_output_factor = 1.0f;
  const Tensor y =
      layer::spatial_attention_block(golden().get("attn.x"), layer::module_weights(golden(), "attn."), o);
  expect_close(y, "attn.f32.out", DType::f32);
}

TEST(LayerBlocksParity, SpatialAttentionBlockBf16) {
  layer::SpatialAttentionOptions o;
  o.groups = 8;
  o.eps = 1e-6f;
  o.heads = 1;
  // Weights stay f32 in the store; the block casts them to x's dtype (bf16), as
  // attn.to(torch.bfloat16) does.
  const Tensor y = layer::spatial_attention_block(golden().get("attn.x").to(DType::bf16),
                                                  layer::module_weights(golden(), "attn."), o);
  expect_close(y, "attn.bf16.out", DType::bf16);
}

TEST(LayerBlocksParity, WanCausalConv3dWhole) {
  const layer::CausalConv3d conv(layer::module_weights(golden(), "conv."), {1, 1, 1}, {1, 1, 1});
  expect_close(conv.forward(golden().get("conv.x")), "conv.f32.out", DType::f32);
}

TEST(LayerBlocksParity, WanCausalConv3dChunked) {
  layer::CausalConv3d conv(layer::module_weights(golden(), "conv."), {1, 1, 1}, {1, 1, 1});
  const Tensor x = golden().get("conv.x");
  const Tensor parts[] = {conv(x.slice(2, 0, 1).contiguous()), conv(x.slice(2, 1, 5).contiguous())};
  expect_close(ops::cat(parts, 2), "conv.f32.chunked_out", DType::f32);
}

TEST(LayerBlocksParity, MixtralSparseMoe) {
  const Tensor x = golden().get("moe.x");
  const Tensor logits = layer::linear(x, golden().get("moe.gate.weight"));
  expect_close(logits, "moe.f32.router_logits", DType::f32);
  const layer::MoeRoute route = layer::moe_route(logits, 2, layer::MoeScoring::softmax, true);
  // Expert choice must agree exactly (slots by descending score, as torch.topk orders them).
  const std::vector<float> ids_want = golden().get("moe.f32.router_indices").to_vector();
  const std::vector<float> ids_got = route.expert_ids.to(DType::f32).to_vector();
  ASSERT_EQ(ids_got.size(), ids_want.size());
  for (size_t i = 0; i < ids_got.size(); ++i) EXPECT_EQ(ids_got[i], ids_want[i]) << "slot " << i;
  expect_close(route.weights, "moe.f32.router_weights", DType::f32);

  const Tensor gate_up = golden().get("moe.experts.gate_up_proj");  // (E, 2I, H)
  const Tensor down = golden().get("moe.experts.down_proj");        // (E, H, I)
  const int64_t experts = gate_up.size(0), inter = gate_up.size(1) / 2;
  std::vector<layer::MoeExpert> ex;
  for (int64_t e = 0; e < experts; ++e) {
    const Tensor gu = gate_up.select(0, e);
    ex.push_back({gu.slice(0, 0, inter).contiguous(), gu.slice(0, inter, 2 * inter).contiguous(),
                  down.select(0, e).contiguous()});
  }
  expect_close(layer::moe_forward(x, route, ex), "moe.f32.out", DType::f32);
}

}  // namespace
}  // namespace mindiesd
