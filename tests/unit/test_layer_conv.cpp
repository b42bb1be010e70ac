// Conv blocks (mindiesd/layer/conv.h) against float64 compositions of the reference kernels
// (kernel/ref): conv2d, Upsample2D (nearest / bilinear), Downsample2D, ResnetBlock2D, the VAE
// spatial attention block and WanCausalConv3d; then the causal conv's chunked decoding
// (chunks through the feature cache == the whole video), and the argument errors.
// Parity with diffusers' AutoencoderKL is tests/parity/test_autoencoder_kl_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "compare.h"
#include "harness.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/conv.h"
#include "test_util.h"

namespace mindiesd::test {
namespace {

// ModuleWeights over a name -> tensor map (prefix "" unless given).
layer::ModuleWeights weights(std::map<std::string, Tensor> m, std::string prefix = "") {
  return layer::module_weights(
      [m = std::move(m)](const std::string& name) {
        auto it = m.find(name);
        return it == m.end() ? Tensor() : it->second;
      },
      std::move(prefix));
}

Array rconv(const Array& x, const Array& w, const Array& b, int64_t stride, int64_t pad) {
  ConvParams p;
  p.spatial = 2;
  p.stride[0] = p.stride[1] = stride;
  p.padding[0] = p.padding[1] = pad;
  return ref::conv(x, w, b, p);
}
Array rsilu(const Array& x) { return ref::unary(x, UnaryKind::silu); }
Array radd(const Array& a, const Array& b) { return ref::binary(a, b, BinaryKind::add); }
Array rscale(const Array& a, double s) {
  Array y = a;
  for (double& v : y.v) v *= s;
  return y;
}

// Float64 VAE attention: tokens t[b][s][c] of the normed x, q/k/v linear, heads, softmax, out
// projection, residual.
Array rattention(const Array& x, const std::vector<Array>& w, int64_t groups, int64_t heads,
                 double eps) {
  // w: gn_w, gn_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b
  const Array n = ref::group_norm(x, groups, w[0], w[1], eps);
  const int64_t B = x.shape[0], C = x.shape[1], S = x.shape[2] * x.shape[3], D = C / heads;
  auto lin = [&](const Array& W, const Array& bias) {  // (B, S, C)
    std::vector<double> out(B * S * C);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t o = 0; o < C; ++o) {
          double acc = bias.v[o];
          for (int64_t c = 0; c < C; ++c) acc += W.v[o * C + c] * n.v[(b * C + c) * S + s];
          out[(b * S + s) * C + o] = acc;
        }
    return out;
  };
  const auto q = lin(w[2], w[3]), k = lin(w[4], w[5]), v = lin(w[6], w[7]);
  std::vector<double> attn(B * S * C, 0.0), logits(S);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < S; ++i) {
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          double d = 0;
          for (int64_t e = 0; e < D; ++e)
            d += q[(b * S + i) * C + h * D + e] * k[(b * S + j) * C + h * D + e];
          logits[j] = d * scale;
          mx = std::max(mx, logits[j]);
        }
        for (int64_t j = 0; j < S; ++j) sum += (logits[j] = std::exp(logits[j] - mx));
        for (int64_t j = 0; j < S; ++j)
          for (int64_t e = 0; e < D; ++e)
            attn[(b * S + i) * C + h * D + e] += logits[j] / sum * v[(b * S + j) * C + h * D + e];
      }
  Array y(x.shape);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t o = 0; o < C; ++o) {
        double acc = w[9].v[o];
        for (int64_t c = 0; c < C; ++c) acc += w[8].v[o * C + c] * attn[(b * S + s) * C + c];
        y.v[(b * C + o) * S + s] = acc + x.v[(b * C + o) * S + s];
      }
  return y;
}

std::vector<Case> conv_cases() {
  std::vector<Case> cs;
  // conv2d: odd sizes, stride 1 / 2, 3x3 and 1x1, with and without bias.
  for (DType t : kFloats) {
    for (int64_t stride : {1, 2}) {
      for (int64_t k : {1, 3}) {
        for (bool bias : {true, false}) {
          Case c;
          c.name = "conv2d_k" + std::to_string(k) + "_s" + std::to_string(stride) +
                   (bias ? "_bias_" : "_") + dtype_name(t);
          c.inputs = {Input{{2, 5, 9, 7}, t}, Input{{6, 5, k, k}, t}};
          if (bias) c.inputs.push_back(Input{{6}, t});
          c.run = [=](const std::vector<Tensor>& x) {
            std::map<std::string, Tensor> m{{"weight", x[1]}};
            if (bias) m["bias"] = x[2];
            return layer::conv2d(x[0], weights(m), {stride, -1, 1});
          };
          c.reference = [=](const std::vector<Array>& x) {
            return rconv(x[0], x[1], bias ? x[2] : Array(), stride, k / 2);
          };
          c.tol_dtype = t;
          c.cls = OpClass::matmul;
          cs.push_back(c);
        }
      }
    }
  }
  // conv2d on a non-contiguous input (a channel slice of a wider tensor).
  {
    Case c;
    c.name = "conv2d_strided_input_f32";
    c.inputs = {Input{{1, 6, 8, 5},
                      DType::f32,
                      Domain::normal,
                      [](const Tensor& t) { return t.slice(1, 0, 6, 2); }},
                Input{{4, 3, 3, 3}}, Input{{4}}};
    c.run = [](const std::vector<Tensor>& x) {
      return layer::conv2d(x[0], weights({{"weight", x[1]}, {"bias", x[2]}}));
    };
    c.reference = [](const std::vector<Array>& x) { return rconv(x[0], x[1], x[2], 1, 1); };
    c.cls = OpClass::matmul;
    cs.push_back(c);
  }
  // Upsample2D: nearest / bilinear x2, then the 3x3 conv; and without a conv.
  for (auto mode : {layer::UpsampleMode::nearest, layer::UpsampleMode::bilinear}) {
    for (bool conv : {true, false}) {
      const bool nearest = mode == layer::UpsampleMode::nearest;
      Case c;
      c.name = std::string("upsample2d_") + (nearest ? "nearest" : "bilinear") +
               (conv ? "_conv" : "_noconv") + "_f32";
      c.inputs = {Input{{2, 4, 5, 3}}, Input{{3, 4, 3, 3}}, Input{{3}}};
      c.run = [=](const std::vector<Tensor>& x) {
        std::map<std::string, Tensor> m;
        if (conv) m = {{"up.conv.weight", x[1]}, {"up.conv.bias", x[2]}};
        return layer::upsample2d(x[0], weights(m, "up."), mode);
      };
      c.reference = [=](const std::vector<Array>& x) {
        InterpolateParams p;
        p.mode = nearest ? InterpolateMode::nearest : InterpolateMode::bilinear;
        const Array h = ref::interpolate(x[0], 10, 6, p);
        return conv ? rconv(h, x[1], x[2], 1, 1) : h;
      };
      c.cls = OpClass::matmul;
      cs.push_back(c);
    }
  }
  // Downsample2D(padding=0): even and odd sizes.
  for (DType t : {DType::f32, DType::bf16}) {
    for (Shape s : {Shape{2, 4, 8, 6}, Shape{1, 4, 7, 5}}) {
      Case c;
      c.name =
          "downsample2d_" + std::to_string(s[2]) + "x" + std::to_string(s[3]) + "_" + dtype_name(t);
      c.inputs = {Input{s, t}, Input{{5, 4, 3, 3}, t}, Input{{5}, t}};
      c.run = [](const std::vector<Tensor>& x) {
        return layer::downsample2d(x[0], weights({{"conv.weight", x[1]}, {"conv.bias", x[2]}}));
      };
      c.reference = [](const std::vector<Array>& x) {
        PadParams p;
        p.after[2] = p.after[3] = 1;
        return rconv(ref::pad(x[0], p), x[1], x[2], 2, 0);
      };
      c.tol_dtype = t;
      c.cls = OpClass::matmul;
      cs.push_back(c);
    }
  }
  // ResnetBlock2D: same channels (identity skip) and 6 -> 10 with a 1x1 conv_shortcut;
  // output_scale_factor 1 and 2.
  for (bool shortcut : {false, true}) {
    for (float scale : {1.0f, 2.0f}) {
      const int64_t ci = 6, co = shortcut ? 10 : 6;
      Case c;
      c.name = std::string("resnet_block2d") + (shortcut ? "_shortcut" : "") + "_scale" +
               std::to_string(static_cast<int>(scale)) + "_f32";
      c.inputs = {Input{{2, ci, 7, 5}},  Input{{ci}},           Input{{ci}},
                  Input{{co, ci, 3, 3}}, Input{{co}},           Input{{co}},
                  Input{{co}},           Input{{co, co, 3, 3}}, Input{{co}}};
      if (shortcut) {
        c.inputs.push_back(Input{{co, ci, 1, 1}});
        c.inputs.push_back(Input{{co}});
      }
      c.run = [=](const std::vector<Tensor>& x) {
        std::map<std::string, Tensor> m{{"r.norm1.weight", x[1]}, {"r.norm1.bias", x[2]},
                                        {"r.conv1.weight", x[3]}, {"r.conv1.bias", x[4]},
                                        {"r.norm2.weight", x[5]}, {"r.norm2.bias", x[6]},
                                        {"r.conv2.weight", x[7]}, {"r.conv2.bias", x[8]}};
        if (shortcut) {
          m["r.conv_shortcut.weight"] = x[9];
          m["r.conv_shortcut.bias"] = x[10];
        }
        layer::ResnetBlockOptions o;
        o.groups = 3;
        o.groups_out = shortcut ? 5 : 3;
        o.output_scale_factor = scale;
        return layer::resnet_block2d(x[0], weights(m, "r."), o);
      };
      c.reference = [=](const std::vector<Array>& x) {
        Array h = rsilu(ref::group_norm(x[0], 3, x[1], x[2], 1e-6));
        h = rconv(h, x[3], x[4], 1, 1);
        h = rsilu(ref::group_norm(h, shortcut ? 5 : 3, x[5], x[6], 1e-6));
        h = rconv(h, x[7], x[8], 1, 1);
        const Array skip = shortcut ? rconv(x[0], x[9], x[10], 1, 0) : x[0];
        return rscale(radd(skip, h), 1.0 / scale);
      };
      c.cls = OpClass::matmul;
      cs.push_back(c);
    }
  }
  // Spatial attention block: one head (AutoencoderKL) and two.
  for (int64_t heads : {1, 2}) {
    const int64_t C = 8;
    Case c;
    c.name = "spatial_attention_heads" + std::to_string(heads) + "_f32";
    c.inputs = {Input{{2, C, 5, 3}}, Input{{C}},    Input{{C}}, Input{{C, C}},
                Input{{C}},          Input{{C, C}}, Input{{C}}, Input{{C, C}},
                Input{{C}},          Input{{C, C}}, Input{{C}}};
    c.run = [=](const std::vector<Tensor>& x) {
      const char* names[] = {"group_norm.weight", "group_norm.bias", "to_q.weight", "to_q.bias",
                             "to_k.weight",       "to_k.bias",       "to_v.weight", "to_v.bias",
                             "to_out.0.weight",   "to_out.0.bias"};
      std::map<std::string, Tensor> m;
      for (int i = 0; i < 10; ++i) m[std::string("mid.attentions.0.") + names[i]] = x[i + 1];
      layer::SpatialAttentionOptions o;
      o.groups = 4;
      o.heads = heads;
      return layer::spatial_attention_block(x[0], weights(m, "mid.attentions.0."), o);
    };
    c.reference = [=](const std::vector<Array>& x) {
      return rattention(x[0], std::vector<Array>(x.begin() + 1, x.end()), 4, heads, 1e-6);
    };
    c.cls = OpClass::matmul;
    cs.push_back(c);
  }
  // WanCausalConv3d: kernel 3 / padding 1 (time padded by 2 in front), kernel (3, 1, 1) with
  // padding (1, 0, 0), spatial stride 2; and with a cache of 1 or 2 frames.
  struct C3 {
    const char* name;
    int64_t kt, kh;
    std::array<int64_t, 3> stride, padding;
    int64_t cache_frames;
  };
  for (const C3& k :
       {C3{"k3", 3, 3, {1, 1, 1}, {1, 1, 1}, 0}, C3{"k311", 3, 1, {1, 1, 1}, {1, 0, 0}, 0},
        C3{"k3_s2", 3, 3, {1, 2, 2}, {1, 1, 1}, 0}, C3{"k3_cache1", 3, 3, {1, 1, 1}, {1, 1, 1}, 1},
        C3{"k3_cache2", 3, 3, {1, 1, 1}, {1, 1, 1}, 2}}) {
    Case c;
    c.name = std::string("causal_conv3d_") + k.name + "_f32";
    c.inputs = {Input{{2, 3, 4, 5, 6}}, Input{{4, 3, k.kt, k.kh, k.kh}}, Input{{4}}};
    if (k.cache_frames) c.inputs.push_back(Input{{2, 3, k.cache_frames, 5, 6}});
    c.run = [=](const std::vector<Tensor>& x) {
      layer::CausalConv3d conv(weights({{"weight", x[1]}, {"bias", x[2]}}), k.stride, k.padding);
      return conv.forward(x[0], k.cache_frames ? x[3] : Tensor());
    };
    c.reference = [=](const std::vector<Array>& x) {
      Array in = x[0];
      int64_t front = 2 * k.padding[0];
      if (k.cache_frames) {
        in = ref::concat({x[3], x[0]}, 2);
        front -= k.cache_frames;
      }
      PadParams pp;
      pp.before[2] = front;
      pp.before[3] = pp.after[3] = k.padding[1];
      pp.before[4] = pp.after[4] = k.padding[2];
      ConvParams p;
      p.spatial = 3;
      for (int i = 0; i < 3; ++i) p.stride[i] = k.stride[i];
      return ref::conv(ref::pad(in, pp), x[1], x[2], p);
    };
    c.cls = OpClass::matmul;
    cs.push_back(c);
  }
  return cs;
}

MINDIESD_HARNESS_SUITE(ConvBlocks, ConvLayerHarness, conv_cases);

// ---- chunked causal decoding ----

// Two causal convs with a SiLU between them (a slice of the Wan decoder), run over the video
// whole and over temporal chunks, each conv keeping its own feature cache.
TEST(LayerConv, CausalConv3dChunkedEqualsWhole) {
  const Tensor x = ops::randn({1, 4, 9, 6, 5}, 1);
  const auto w1 =
      weights({{"a.weight", ops::randn({6, 4, 3, 3, 3}, 2)}, {"a.bias", ops::randn({6}, 3)}});
  const auto w2 =
      weights({{"b.weight", ops::randn({3, 6, 3, 1, 1}, 4)}, {"b.bias", ops::randn({3}, 5)}});
  layer::CausalConv3d c1(w1.child("a"), {1, 1, 1}, {1, 1, 1});
  layer::CausalConv3d c2(w2.child("b"), {1, 1, 1}, {1, 0, 0});
  const Tensor whole = c2.forward(ops::silu(c1.forward(x)));
  ASSERT_EQ(whole.shape(), Shape({1, 3, 9, 6, 5}));
  // Wan decodes one latent frame at a time; also uneven chunks, one of length 1 after a longer
  // one (the cache then mixes the old cache's last frame with the new one).
  for (const std::vector<int64_t>& chunks :
       {std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1}, std::vector<int64_t>{1, 4, 1, 3},
        std::vector<int64_t>{2, 7}, std::vector<int64_t>{5, 1, 1, 2}}) {
    c1.reset_cache();
    c2.reset_cache();
    std::vector<Tensor> outs;
    int64_t t0 = 0;
    for (int64_t n : chunks) {
      outs.push_back(c2(ops::silu(c1(x.slice(2, t0, t0 + n)))));
      t0 += n;
      EXPECT_EQ(c1.cache().size(2), std::min<int64_t>(t0, layer::kCausalCacheFrames));
    }
    const Tensor chunked = ops::cat(outs, 2);
    const double d = max_abs_diff(chunked, whole);
    // Each output frame is the same sums over the same inputs; only the GEMM's blocking may
    // differ with the shapes: f32 rounding of activations of magnitude ~10.
    EXPECT_LE(d, 1e-5) << "chunks of " << chunks.size();
  }
}

TEST(LayerConv, CausalConv3dCacheKeepsInputFrames) {
  const Tensor x = ops::randn({1, 2, 3, 4, 4}, 7);
  layer::CausalConv3d c(weights({{"weight", ops::randn({2, 2, 3, 3, 3}, 8)}}));
  c(x);
  ASSERT_EQ(c.cache().shape(), Shape({1, 2, 2, 4, 4}));
  EXPECT_EQ(max_abs_diff(c.cache(), x.slice(2, 1, 3)), 0.0);
  c(x.slice(2, 0, 1));  // one frame: the old cache's last frame, then the new one
  EXPECT_EQ(max_abs_diff(c.cache().slice(2, 0, 1), x.slice(2, 2, 3)), 0.0);
  EXPECT_EQ(max_abs_diff(c.cache().slice(2, 1, 2), x.slice(2, 0, 1)), 0.0);
}

TEST(LayerConv, MixedDtypeWeightsFollowInput) {
  const Tensor x = ops::randn({1, 3, 5, 5}, 9).to(DType::bf16);
  const auto w = weights({{"weight", ops::randn({2, 3, 3, 3}, 10)}, {"bias", ops::randn({2}, 11)}});
  EXPECT_EQ(layer::conv2d(x, w).dtype(), DType::bf16);
}

// ---- argument errors ----

TEST(LayerConv, BadInputsAreInvalidArgument) {
  const auto w = weights({{"block.conv1.weight", ops::randn({4, 3, 3, 3}, 1)}}, "block.");
  expect_error(
      [&] {
        layer::conv2d(ops::randn({1, 5, 6, 6}, 2), w.child("conv1"));
      },
      ErrorKind::InvalidArgument, {"block.conv1", "5 channels", "(4, 3, 3, 3)"});
  expect_error(
      [&] {
        layer::conv2d(ops::randn({5, 6, 6}, 2), w.child("conv1"));
      },
      ErrorKind::InvalidArgument, {"rank 4", "(5, 6, 6)"});
  expect_error(
      [&] {
        layer::conv2d(ops::randn({1, 3, 6, 6}, 2), w.child("conv2"));
      },
      ErrorKind::NotFound, {"block.conv2.weight"});
  // Bias of the wrong length.
  expect_error(
      [&] {
        layer::conv2d(ops::randn({1, 3, 6, 6}, 2), weights({{"weight", ops::randn({4, 3, 3, 3}, 1)},
                                                            {"bias", ops::randn({3}, 1)}}));
      },
      ErrorKind::InvalidArgument, {"bias", "(3,)"});
  // Groups that do not divide the channels.
  const auto r = weights({{"norm1.weight", ops::randn({6}, 1)},
                          {"conv1.weight", ops::randn({6, 6, 3, 3}, 1)},
                          {"conv2.weight", ops::randn({6, 6, 3, 3}, 1)}});
  layer::ResnetBlockOptions ro;
  ro.groups = 4;
  expect_error(
      [&] {
        layer::resnet_block2d(ops::randn({1, 6, 4, 4}, 3), r, ro);
      },
      ErrorKind::InvalidArgument, {"groups 4", "6 channels"});
  // in != out channels without conv_shortcut.
  const auto r2 = weights({{"conv1.weight", ops::randn({4, 6, 3, 3}, 1)},
                           {"conv2.weight", ops::randn({4, 4, 3, 3}, 1)}});
  ro.groups = 2;
  expect_error(
      [&] {
        layer::resnet_block2d(ops::randn({1, 6, 4, 4}, 3), r2, ro);
      },
      ErrorKind::InvalidArgument, {"conv_shortcut"});
  // Heads not dividing the channels.
  layer::SpatialAttentionOptions ao;
  ao.groups = 2;
  ao.heads = 4;
  expect_error(
      [&] {
        layer::spatial_attention_block(ops::randn({1, 6, 2, 2}, 4), r, ao);
      },
      ErrorKind::InvalidArgument, {"heads 4", "6 channels"});
  // Downsampling a single row.
  expect_error(
      [&] {
        layer::downsample2d(ops::randn({1, 3, 1, 6}, 5), w);
      },
      ErrorKind::InvalidArgument, {"(1, 3, 1, 6)", "too small"});
  // Causal conv: cache of another spatial size, and a 4-d input.
  layer::CausalConv3d c(weights({{"weight", ops::randn({2, 3, 3, 3, 3}, 6)}}, ""));
  expect_error(
      [&] {
        c.forward(ops::randn({1, 3, 2, 4, 4}, 7), ops::randn({1, 3, 2, 5, 4}, 8));
      },
      ErrorKind::InvalidArgument, {"cache", "(1, 3, 2, 5, 4)", "(1, 3, 2, 4, 4)"});
  expect_error([&] { c(ops::randn({1, 3, 4, 4}, 7)); }, ErrorKind::InvalidArgument, {"rank 5"});
  expect_error(
      [&] {
        c.forward(ops::randn({1, 2, 2, 4, 4}, 7));
      },
      ErrorKind::InvalidArgument, {"2 channels"});
}

}  // namespace
}  // namespace mindiesd::test
