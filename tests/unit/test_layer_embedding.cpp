// Embeddings and activations: the sinusoidal timestep embedding against float64 and diffusers,
// patchify / unpatchify against FLUX's and Wan's index arithmetic and against the patch
// convolutions, the timestep / guidance / text embedders against diffusers modules recorded by
// tools/golden/make_layer_rope_golden.py, and the activation layers and gated activations in
// the differential harness.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "compare.h"
#include "harness.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/activation.h"
#include "mindiesd/layer/embedding.h"

namespace mindiesd::test {
namespace {

template <typename F>
void expect_error(F&& f, ErrorKind kind, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// Checks max |got - want| <= bound and prints the measured value (the note quotes these).
void expect_within(const std::string& what, const Tensor& got, const Tensor& want, double bound) {
  const double d = test::max_abs_diff(got, want);
  std::printf("  %-40s max |diff| %.3g (bound %.3g)\n", what.c_str(), d, bound);
  EXPECT_LE(d, bound) << what;
}

// ---- timestep embedding ----

TEST(TimestepEmbedding, MatchesFloat64WithinF32AngleRounding) {
  const std::vector<float> tv = {0, 1, 2.5f, 17, 250.25f, 500, 999, 1000};
  const Tensor t = Tensor::from_vector(tv, {8});
  struct Cfg {
    int64_t dim;
    bool flip;
    double shift, scale, period;
  };
  for (const Cfg& c : {Cfg{256, true, 0, 1, 10000}, Cfg{320, false, 1, 1, 10000},
                       Cfg{33, true, 1, 1, 10000}, Cfg{64, false, 0.5, 2, 2000}}) {
    const Tensor got = layer::timestep_embedding(t, c.dim, c.flip, c.shift, c.scale, c.period);
    ASSERT_EQ(got.shape(), (Shape{8, c.dim}));
    ASSERT_EQ(got.dtype(), DType::f32);
    const Array want = ref::timestep_embedding(std::vector<double>(tv.begin(), tv.end()), c.dim,
                                               c.flip, c.shift, c.scale, c.period);
    const std::vector<float> g = got.to_vector();
    for (int64_t i = 0; i < 8; ++i) {
      // The angle scale * t * freq goes through ~4 f32 roundings (exponent, quotient, exp,
      // product): |error| <= 4 * 2^-24 * |angle| plus the f32 rounding of sin/cos.
      const double bound = 4 * std::ldexp(1.0, -24) * std::fabs(c.scale * tv[i]) + 1.2e-7;
      for (int64_t j = 0; j < c.dim; ++j)
        ASSERT_LE(std::fabs(g[i * c.dim + j] - want.v[i * c.dim + j]), bound)
            << "dim " << c.dim << " t " << tv[i] << " column " << j;
    }
    if (c.dim % 2) {  // odd: one zero column of padding
      for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(g[i * c.dim + c.dim - 1], 0.0f);
    }
  }
}

TEST(TimestepEmbedding, FlipSwapsHalvesAndAcceptsIntegerTimesteps) {
  const Tensor t = Tensor::from_vector(std::vector<float>{3, 40}, {2}).to(DType::i64);
  const std::vector<float> a = layer::timestep_embedding(t, 16, false).to_vector();
  const std::vector<float> b = layer::timestep_embedding(t, 16, true).to_vector();
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 8; ++k) {
      EXPECT_EQ(a[i * 16 + k], b[i * 16 + 8 + k]);
      EXPECT_EQ(a[i * 16 + 8 + k], b[i * 16 + k]);
    }
  expect_error(
      [] {
        layer::timestep_embedding(ops::randn({2, 1}, 0), 16);
      },
      ErrorKind::InvalidArgument, "timesteps must be 1-d");
  expect_error([&] { layer::timestep_embedding(t, 16, false, 8.0); }, ErrorKind::InvalidArgument,
               "division by zero");
}

// ---- patchify / unpatchify ----

TEST(Patchify, TwoDimensionalIsFluxPackLatents) {
  const int64_t b = 2, c = 3, h = 4, w = 6;
  const Tensor x = ops::randn({b, c, h, w}, 5);
  const Tensor t = layer::patchify_2d(x);
  ASSERT_EQ(t.shape(), (Shape{b, (h / 2) * (w / 2), c * 4}));
  const std::vector<float> xv = x.to_vector(), tv = t.to_vector();
  // _pack_latents: view(B, C, H/2, 2, W/2, 2).permute(0, 2, 4, 1, 3, 5).reshape(B, N, 4C).
  for (int64_t n = 0; n < b; ++n)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          const int64_t tok = (i / 2) * (w / 2) + j / 2, feat = ch * 4 + (i % 2) * 2 + j % 2;
          ASSERT_EQ(tv[(n * (h / 2) * (w / 2) + tok) * c * 4 + feat],
                    xv[((n * c + ch) * h + i) * w + j]);
        }
  EXPECT_EQ(layer::unpatchify_2d(t, h, w).to_vector(), xv);
  // channels_last and another patch size round-trip too; a transposed input needs no copy first.
  const Tensor xt = ops::randn({b, c, w, h}, 6).transpose(2, 3).to(DType::bf16);
  for (auto order : {layer::PatchOrder::channels_first, layer::PatchOrder::channels_last}) {
    const Tensor u = layer::unpatchify_2d(layer::patchify_2d(xt, 2, order), h, w, 2, order);
    EXPECT_EQ(u.dtype(), DType::bf16);
    EXPECT_EQ(u.to_vector(), xt.to_vector());
  }
  const Tensor p3 = layer::patchify_2d(ops::randn({1, 2, 6, 9}, 1), 3);
  EXPECT_EQ(p3.shape(), (Shape{1, 6, 18}));
  expect_error(
      [&] {
        layer::patchify_2d(ops::randn({1, 2, 5, 4}, 1));
      },
      ErrorKind::InvalidArgument, "height 5 of (1, 2, 5, 4) is not a multiple of the patch size 2");
  expect_error([&] { layer::unpatchify_2d(t, h, w + 2); }, ErrorKind::InvalidArgument,
               "do not hold a 4 x 8 latent");
}

TEST(Patchify, ThreeDimensionalMatchesWanLayouts) {
  const int64_t b = 1, c = 2, f = 4, h = 6, w = 4, pt = 2, ph = 3, pw = 2;
  const int64_t gf = f / pt, gh = h / ph, gw = w / pw, vol = pt * ph * pw;
  const Tensor x = ops::randn({b, c, f, h, w}, 9);
  const std::vector<float> xv = x.to_vector();
  for (auto order : {layer::PatchOrder::channels_first, layer::PatchOrder::channels_last}) {
    const Tensor t = layer::patchify_3d(x, {pt, ph, pw}, order);
    ASSERT_EQ(t.shape(), (Shape{b, gf * gh * gw, c * vol}));
    const std::vector<float> tv = t.to_vector();
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < f; ++i)
        for (int64_t j = 0; j < h; ++j)
          for (int64_t k = 0; k < w; ++k) {
            const int64_t tok = ((i / pt) * gh + j / ph) * gw + k / pw;
            const int64_t in_patch = ((i % pt) * ph + j % ph) * pw + k % pw;
            // channels_first: (C, pt, ph, pw) as the Conv3d weight; channels_last: Wan's
            // proj_out tokens reshape(..., pt, ph, pw, C).
            const int64_t feat = order == layer::PatchOrder::channels_first ? ch * vol + in_patch
                                                                            : in_patch * c + ch;
            ASSERT_EQ(tv[tok * c * vol + feat], xv[((ch * f + i) * h + j) * w + k]);
          }
    EXPECT_EQ(layer::unpatchify_3d(t, f, h, w, {pt, ph, pw}, order).to_vector(), xv);
  }
  expect_error(
      [&] {
        layer::patchify_3d(x, {3, 1, 1});
      },
      ErrorKind::InvalidArgument,
      "frames 4 of (1, 2, 4, 6, 4) is not a multiple of the patch size 3");
  expect_error(
      [&] {
        layer::patchify_3d(ops::randn({2, 2, 2}, 0), {1, 1, 1});
      },
      ErrorKind::InvalidArgument, "(B, C, F, H, W)");
}

TEST(Patchify, PatchEmbedEqualsTheStridedConvolution) {
  // Wan's patch_embedding: Conv3d(kernel = stride = (1, 2, 2)), flatten(2).transpose(1, 2).
  const Tensor x3 = ops::randn({2, 4, 3, 6, 8}, 11);
  const Tensor w3 = ops::randn({5, 4, 1, 2, 2}, 12);
  const Tensor b3 = ops::randn({5}, 13);
  ops::ConvOptions o3;
  o3.stride = {1, 2, 2};
  const Tensor conv3 = ops::conv3d(x3, w3, b3, o3).flatten(2).transpose(1, 2);
  expect_within("patch_embed 3-d vs conv3d", layer::patch_embed(x3, w3, b3), conv3, 1e-4);
  // SD3 / PixArt PatchEmbed's proj: Conv2d(kernel = stride = p).
  const Tensor x2 = ops::randn({1, 3, 6, 4}, 14);
  const Tensor w2 = ops::randn({7, 3, 2, 2}, 15);
  ops::ConvOptions o2;
  o2.stride = {2};
  const Tensor conv2 = ops::conv2d(x2, w2, Tensor(), o2).flatten(2).transpose(1, 2);
  expect_within("patch_embed 2-d vs conv2d", layer::patch_embed(x2, w2), conv2, 1e-4);
  expect_error(
      [&] {
        layer::patch_embed(x3, ops::randn({5, 3, 1, 2, 2}, 0));
      },
      ErrorKind::InvalidArgument, "expects 3 channels");
}

// ---- weights ----

TEST(ModuleWeights, BindsStateDictNames) {
  std::map<std::string, Tensor> sd;
  sd["time_text_embed.timestep_embedder.linear_1.weight"] = ops::randn({4, 3}, 1);
  const auto w = layer::module_weights(
      [&](const std::string& n) { return sd.count(n) ? sd.at(n) : Tensor(); }, "time_text_embed.");
  const auto te = w.child("timestep_embedder").child("linear_1");
  EXPECT_EQ(te.prefix, "time_text_embed.timestep_embedder.linear_1.");
  EXPECT_TRUE(te.get("weight").shares_storage(sd.begin()->second));
  EXPECT_FALSE(te.get_optional("bias").defined());
  expect_error([&] { te.get("bias"); }, ErrorKind::NotFound,
               "weight 'time_text_embed.timestep_embedder.linear_1.bias' not found");
}

// ---- embedders: parity with diffusers ----

class EmbeddingParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    store_ = io::WeightStore::open(MINDIESD_SOURCE_DIR "/tests/data/golden/layer/rope.safetensors");
  }
  static Tensor get(const std::string& name) { return store_.get(name); }
  static io::WeightStore store_;
};
io::WeightStore EmbeddingParity::store_;

TEST_F(EmbeddingParity, GetTimestepEmbedding) {
  // Bound 4e-5: PyTorch's float32 exp lands one ulp off the correctly rounded value for a few
  // frequencies, which moves the angle by t * 2^-24 (3e-5 at t = 1000); elsewhere the two
  // agree to the 1-ulp error of PyTorch's sin/cos (6e-8).
  const Tensor t = get("timestep.t");
  expect_within("timestep flux (256, flip, 0)", layer::timestep_embedding(t, 256, true, 0),
                get("timestep.flux"), 4e-5);
  expect_within("timestep default (320)", layer::timestep_embedding(t, 320),
                get("timestep.default"), 4e-5);
  expect_within("timestep odd (33, flip, 1)", layer::timestep_embedding(t, 33, true, 1),
                get("timestep.odd"), 4e-5);
  expect_within("timestep period (64, 0.5, 2000)",
                layer::timestep_embedding(t, 64, false, 0.5, 1, 2000), get("timestep.period"),
                4e-5);
  expect_within("timestep scaled (32, scale 1000)",
                layer::timestep_embedding(get("timestep.t_unit"), 32, false, 1, 1000),
                get("timestep.scaled"), 4e-5);
}

TEST_F(EmbeddingParity, CombinedTimestepGuidanceTextProj) {
  // f32 bound 2e-5: the same linear layers through oneDNN and PyTorch's GEMM (different
  // summation order over K = 256) on outputs of magnitude ~1, plus the timestep bound above
  // carried through the first linear.
  const auto w = layer::module_weights(store_, "time_text_embed.");
  const Tensor t = get("embed.timestep"), g = get("embed.guidance"), p = get("embed.pooled");
  expect_within("TimestepEmbedding (timestep_embedder)",
                layer::timestep_embedder(layer::timestep_embedding(t, 256, true, 0),
                                         w.child("timestep_embedder")),
                get("embed.timestep_embedder"), 2e-5);
  expect_within("CombinedTimestepTextProjEmbeddings", layer::combined_timestep_text_proj(t, p, w),
                get("embed.combined"), 2e-5);
  expect_within("CombinedTimestepGuidanceTextProj f32",
                layer::combined_timestep_guidance_text_proj(t, g, p, w),
                get("embed.combined_guidance"), 2e-5);
  // bf16 model: weights and pooled in bf16, every op rounding to bf16 as in diffusers. Bound: a
  // few bf16 ulps of the output's magnitude (~2): GEMM accumulation order can flip an
  // intermediate rounding.
  const auto wb = layer::module_weights(
      [s = store_](const std::string& n) { return s.has(n) ? s.get(n).to(DType::bf16) : Tensor(); },
      "time_text_embed.");
  const Tensor out = layer::combined_timestep_guidance_text_proj(t, g, p.to(DType::bf16), wb);
  EXPECT_EQ(out.dtype(), DType::bf16);
  expect_within("CombinedTimestepGuidanceTextProj bf16", out, get("embed.combined_guidance.bf16"),
                3e-2);
  expect_error([&] { layer::combined_timestep_guidance_text_proj(t, g, p.narrow(0, 0, 1), w); },
               ErrorKind::InvalidArgument, "disagree on the batch size");
  expect_error([&] { layer::text_projection(p, w.child("text_embedder"), "relu"); },
               ErrorKind::InvalidArgument, "PixArtAlphaTextProjection");
}

// ---- activations ----

Array quick_gelu_ref(const Array& x, DType t) {
  const Array a = round_to(ref::unary(x, UnaryKind::affine, 1.702, 0.0), t);
  const Array s = round_to(ref::unary(a, UnaryKind::sigmoid), t);
  return ref::binary(x, s, BinaryKind::mul);
}

std::vector<Case> activation_cases() {
  std::vector<Case> cs;
  const std::pair<const char*, UnaryKind> plain[] = {
      {"gelu", UnaryKind::gelu},           {"gelu-tanh", UnaryKind::gelu_tanh},
      {"gelu_tanh", UnaryKind::gelu_tanh}, {"gelu-fast", UnaryKind::gelu_tanh},
      {"silu", UnaryKind::silu},           {"swish", UnaryKind::silu},
      {"silu_fp32", UnaryKind::silu},      {"relu", UnaryKind::relu},
      {"sigmoid", UnaryKind::sigmoid},     {"tanh", UnaryKind::tanh}};
  auto clean = [](const std::string& s) {  // gtest names: "gelu-tanh" -> "geluDtanh"
    std::string r;
    for (char ch : s) r += ch == '-' ? 'D' : ch;
    return r;
  };
  for (DType dt : kFloats) {
    for (auto [name, kind] : plain) {
      Case c;
      c.name = str_cat("activation_", clean(name), "_", dtype_name(dt));
      c.inputs = {Input{{7, 111}, dt, Domain::normal, transposed}};
      c.run = [n = std::string(name)](const std::vector<Tensor>& x) {
        return layer::get_activation_layer(n)(x[0]);
      };
      c.reference = [k = kind](const std::vector<Array>& x) { return ref::unary(x[0], k); };
      c.tol_dtype = dt;
      c.cls = OpClass::transcendental;
      cs.push_back(c);
    }
    Case q;
    q.name = str_cat("activation_quick_gelu_", dtype_name(dt));
    q.inputs = {Input{{500}, dt}};
    q.run = [](const std::vector<Tensor>& x) {
      return layer::get_activation_layer("gelu-quick")(x[0]);
    };
    q.reference = [dt](const std::vector<Array>& x) { return quick_gelu_ref(x[0], dt); };
    q.tol_dtype = dt;
    q.cls = OpClass::transcendental;
    cs.push_back(q);
    // Gated: hidden = first half, the activation on the second half (diffusers GEGLU/SwiGLU).
    for (int which = 0; which < 3; ++which) {
      const char* nm = which == 0 ? "geglu" : which == 1 ? "geglu_tanh" : "swiglu";
      const UnaryKind k = which == 0   ? UnaryKind::gelu
                          : which == 1 ? UnaryKind::gelu_tanh
                                       : UnaryKind::silu;
      Case g;
      g.name = str_cat("activation_", nm, "_", dtype_name(dt));
      g.inputs = {Input{{3, 5, 2 * 37}, dt}};
      g.run = [which](const std::vector<Tensor>& x) {
        return which == 2 ? layer::swiglu(x[0]) : layer::geglu(x[0], which == 1);
      };
      g.reference = [k, dt](const std::vector<Array>& x) {
        const Array& a = x[0];
        const int64_t rows = a.numel() / 74;
        Array hidden(Shape{3, 5, 37}), gate(Shape{3, 5, 37});
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < 37; ++j) {
            hidden.v[r * 37 + j] = a.v[r * 74 + j];
            gate.v[r * 37 + j] = a.v[r * 74 + 37 + j];
          }
        return ref::binary(hidden, round_to(ref::unary(gate, k), dt), BinaryKind::mul);
      };
      g.tol_dtype = dt;
      g.cls = OpClass::transcendental;
      cs.push_back(g);
    }
  }
  return cs;
}

MINDIESD_HARNESS_SUITE(Activations, ActivationHarness, activation_cases);

TEST(Activation, NamesAreCaseInsensitiveAndUnknownNamesListTheValidOnes) {
  const Tensor x = ops::randn({16}, 2);
  EXPECT_EQ(layer::get_activation_layer("SiLU")(x).to_vector(), ops::silu(x).to_vector());
  EXPECT_EQ(layer::get_activation_layer("GELU")(x).to_vector(), ops::gelu(x).to_vector());
  EXPECT_EQ(layer::get_activation_layer("identity")(x).to_vector(), x.to_vector());
  for (const std::string& n : layer::activation_names())
    EXPECT_NO_THROW(layer::get_activation_layer(n)) << n;
  expect_error([] { layer::get_activation_layer("mish"); }, ErrorKind::InvalidArgument,
               "unknown activation 'mish'; valid names: gelu, gelu-tanh, gelu_tanh, gelu-fast");
  expect_error(
      [] {
        layer::geglu(ops::randn({2, 5}, 0));
      },
      ErrorKind::InvalidArgument, "must be even");
}

TEST(Activation, GegluGatesTheSecondHalf) {
  // hidden = [1, 1], gate = [0, 10]: diffusers returns hidden * gelu(gate) = [0, 10].
  const Tensor x = Tensor::from_vector(std::vector<float>{1, 1, 0, 10}, {1, 4});
  EXPECT_EQ(layer::geglu(x).to_vector(), (std::vector<float>{0.0f, 10.0f}));
}

}  // namespace
}  // namespace mindiesd::test
