// Norm layers (mindiesd/layer/norm.h) against the float64 reference (kernel/ref, "norms"):
// LayerNorm / RMSNorm / GroupNorm, adaLN modulation, residual add + norm; odd sizes
// (C = 1, 7, 111, 500, 3072), strided rows, strided last dims, broadcast modulation, enough
// rows that threads split a sample's rows; f32 / bf16 / f16. Then parity with PyTorch and
// diffusers (tools/golden/make_layer_norm_golden.py) and the argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "compare.h"
#include "harness.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/norm.h"

namespace mindiesd::test {
namespace {

Array reshape(Array a, const Shape& s) {
  a.shape = s;
  return a;
}

// Reference modulation of an x (B, ..., C) by a (B, C) per-sample scale / shift, as diffusers'
// scale[:, None]: the reference's numpy-style broadcast needs the middle dims spelled out.
Array per_sample(const Array& m, int x_dims) {
  if (m.shape.size() != 2 || x_dims < 3) return m;
  Shape s{m.shape[0]};
  for (int i = 0; i < x_dims - 2; ++i) s.push_back(1);
  s.push_back(m.shape[1]);
  return reshape(m, s);
}

std::string cname(int64_t c) { return "C" + std::to_string(c); }

// ---- layer_norm / rms_norm over the last dim -------------------------------------------

std::vector<Case> row_norm_cases() {
  std::vector<Case> cs;
  for (DType t : kFloats) {
    for (int64_t C : {1, 7, 111, 500, 3072}) {
      const int64_t rows = C >= 3072 ? 37 : (C >= 500 ? 111 : 300);  // several threads' worth
      for (bool affine : {false, true}) {
        for (bool rms : {false, true}) {
          Case c;
          c.name = std::string(rms ? "rms_norm_" : "layer_norm_") + (affine ? "affine_" : "") +
                   cname(C) + "_" + dtype_name(t);
          c.inputs = {Input{{rows, C}, t}};
          if (affine) {
            c.inputs.push_back(Input{{C}, t});
            if (!rms) c.inputs.push_back(Input{{C}, t});
          }
          const float eps = rms ? 1e-6f : 1e-5f;
          c.run = [=](const std::vector<Tensor>& x) {
            if (rms) return layer::rms_norm(x[0], affine ? x[1] : Tensor(), eps);
            return layer::layer_norm(x[0], affine ? x[1] : Tensor(), affine ? x[2] : Tensor(), eps);
          };
          // With a half weight, diffusers RMSNorm (and so rms_norm) casts norm(x) to the weight
          // dtype before multiplying: two roundings of the exact result, which the reduction
          // class allows (2 half-ulps); NormParity checks that rounding bit for bit. Emulating it
          // here instead would flip near ties between the f64 and f32 norms.
          c.reference = [=](const std::vector<Array>& x) {
            if (!rms)
              return ref::layer_norm(x[0], affine ? x[1] : Array(), affine ? x[2] : Array(), eps);
            return ref::rms_norm(x[0], affine ? x[1] : Array(), Array(), eps);
          };
          c.tol_dtype = t;
          c.cls = OpClass::reduction;
          cs.push_back(c);
        }
      }
    }
  }
  // Layouts: rows strided (a column block of a wider tensor; last dim contiguous), last dim
  // strided (a transposed view), a 4-d permuted view, and 0-stride broadcast rows.
  for (DType t : {DType::f32, DType::bf16}) {
    for (bool rms : {false, true}) {
      const std::string k = rms ? "rms_norm_" : "layer_norm_";
      auto norm = [=](const Tensor& x, const Tensor& w, const Tensor& b) {
        return rms ? layer::rms_norm(x, w, 1e-6f) : layer::layer_norm(x, w, b, 1e-5f);
      };
      auto ref_norm = [=](const Array& x, const Array& w, const Array& b) {
        return rms ? ref::rms_norm(x, w, Array(), 1e-6) : ref::layer_norm(x, w, b, 1e-5);
      };
      struct Layout {
        const char* name;
        Shape shape;
        Views view;
      };
      const Layout layouts[] = {
          {"strided_rows", {9, 13, 222}, [](const Tensor& x) { return x.narrow(-1, 50, 111); }},
          {"strided_last_dim", {111, 40}, transposed},
          {"permuted_4d",
           {3, 111, 5, 4},
           [](const Tensor& x) {
             return x.permute({0, 2, 3, 1});
           }},
          {"strided_weight", {33, 111}, nullptr},
      };
      for (const Layout& l : layouts) {
        Case c;
        c.name = k + l.name + "_" + dtype_name(t);
        const bool sw = std::string(l.name) == "strided_weight";
        c.inputs = {Input{l.shape, t, Domain::normal, l.view},
                    Input{sw ? Shape{222} : Shape{111}, t, Domain::normal, sw ? strided : nullptr},
                    Input{{111}, t}};
        c.run = [=](const std::vector<Tensor>& x) { return norm(x[0], x[1], x[2]); };
        c.reference = [=](const std::vector<Array>& x) { return ref_norm(x[0], x[1], x[2]); };
        c.tol_dtype = t;
        c.cls = OpClass::reduction;
        cs.push_back(c);
      }
    }
  }
  // Statistics far from zero mean: x + 100 in f32 still normalises to f32 accuracy.
  Case big;
  big.name = "layer_norm_large_mean_f32";
  big.inputs = {Input{{64, 500}, DType::f32, Domain::normal, [](const Tensor& x) {
                        return ops::affine(x, 1.0f, 100.0f);
                      }}};
  big.run = [](const std::vector<Tensor>& x) { return layer::layer_norm(x[0]); };
  big.reference = [](const std::vector<Array>& x) { return ref::layer_norm(x[0], {}, {}, 1e-5); };
  big.cls = OpClass::reduction;
  cs.push_back(big);
  // DiT activations have a few channels of huge magnitude; the statistics must not lose the
  // rest of the row to them, wherever they sit (first, last, and at a common offset).
  for (int64_t where : {int64_t{0}, int64_t{63}, int64_t{2999}}) {
    for (bool rms : {false, true}) {
      Case o;
      o.name = std::string(rms ? "rms_norm" : "layer_norm") + "_outlier_at_" +
               std::to_string(where) + "_f32";
      o.inputs = {Input{{16, 3072}, DType::f32, Domain::normal, [where](const Tensor& x) {
                          const Tensor y = ops::affine(x, 1.0f, 3.0f);
                          y.narrow(-1, where, 1).copy_(ops::full({1}, 3000.0));
                          return y;
                        }}};
      o.run = [rms](const std::vector<Tensor>& x) {
        return rms ? layer::rms_norm(x[0]) : layer::layer_norm(x[0]);
      };
      o.reference = [rms](const std::vector<Array>& x) {
        return rms ? ref::rms_norm(x[0], {}, {}, 1e-6) : ref::layer_norm(x[0], {}, {}, 1e-5);
      };
      o.cls = OpClass::reduction;
      cs.push_back(o);
    }
  }
  // Mixed dtypes: bf16 x with f32 LayerNorm weights (output bf16, as torch's CPU LayerNorm);
  // bf16 x with an f32 RMSNorm weight (output f32, as diffusers RMSNorm).
  Case mixed;
  mixed.name = "layer_norm_bf16_x_f32_weight";
  mixed.inputs = {Input{{50, 111}, DType::bf16}, Input{{111}, DType::f32},
                  Input{{111}, DType::f32}};
  mixed.run = [](const std::vector<Tensor>& x) {
    const Tensor y = layer::layer_norm(x[0], x[1], x[2]);
    EXPECT_EQ(y.dtype(), DType::bf16);
    return y;
  };
  mixed.reference = [](const std::vector<Array>& x) {
    return ref::layer_norm(x[0], x[1], x[2], 1e-5);
  };
  mixed.tol_dtype = DType::bf16;
  mixed.cls = OpClass::reduction;
  cs.push_back(mixed);
  Case mixed_rms = mixed;
  mixed_rms.name = "rms_norm_bf16_x_f32_weight";
  mixed_rms.inputs.pop_back();
  mixed_rms.run = [](const std::vector<Tensor>& x) {
    const Tensor y = layer::rms_norm(x[0], x[1]);
    EXPECT_EQ(y.dtype(), DType::f32);
    return y;
  };
  mixed_rms.reference = [](const std::vector<Array>& x) {
    return ref::rms_norm(x[0], x[1], {}, 1e-6);
  };
  mixed_rms.tol_dtype = DType::f32;
  cs.push_back(mixed_rms);
  return cs;
}

// ---- group norm ---------------------------------------------------------------------------

std::vector<Case> group_norm_cases() {
  std::vector<Case> cs;
  struct G {
    const char* name;
    Shape shape;  // base shape before `view`
    int64_t groups;
    bool affine;
    Views view;
  };
  const G gs[] = {
      {"nchw_g8", {2, 32, 5, 7}, 8, true, nullptr},
      {"odd_g3_noaffine", {3, 6, 11}, 3, false, nullptr},
      {"g1", {2, 7, 3, 3}, 1, true, nullptr},
      {"per_channel", {2, 7, 9}, 7, true, nullptr},
      {"channels_last",
       {2, 5, 7, 32},
       4,
       true,
       [](const Tensor& x) {
         return x.permute({0, 3, 1, 2});
       }},
      {"cropped",
       {2, 16, 9, 10},
       4,
       true,
       [](const Tensor& x) { return x.narrow(2, 1, 7).narrow(3, 2, 5); }},
      {"no_spatial", {5, 12}, 4, true, nullptr},
      {"video_ncthw", {1, 32, 3, 6, 5}, 8, true, nullptr},
  };
  for (DType t : kFloats) {
    for (const G& g : gs) {
      Case c;
      c.name = std::string("group_norm_") + g.name + "_" + dtype_name(t);
      Shape viewed = g.shape;
      if (g.view) viewed = g.view(Tensor::empty(g.shape, DType::f32)).shape();
      const int64_t C = viewed[1];
      c.inputs = {Input{g.shape, t, Domain::normal, g.view}};
      if (g.affine) c.inputs.insert(c.inputs.end(), {Input{{C}, t}, Input{{C}, t}});
      const int64_t groups = g.groups;
      const bool affine = g.affine;
      c.run = [=](const std::vector<Tensor>& x) {
        return layer::group_norm(x[0], groups, affine ? x[1] : Tensor(), affine ? x[2] : Tensor(),
                                 1e-6f);
      };
      c.reference = [=](const std::vector<Array>& x) {
        return ref::group_norm(x[0], groups, affine ? x[1] : Array(), affine ? x[2] : Array(),
                               1e-6);
      };
      c.tol_dtype = t;
      c.cls = OpClass::reduction;
      cs.push_back(c);
    }
  }
  // Channels of a group with far-apart means (VAE features): the statistics' shift comes from
  // the first channel, which must not cost accuracy.
  Case off;
  off.name = "group_norm_channel_offsets_f32";
  off.inputs = {Input{{2, 16, 9, 9}, DType::f32, Domain::normal, [](const Tensor& x) {
                        std::vector<float> m(16);
                        for (int c = 0; c < 16; ++c) m[c] = 40.0f * static_cast<float>(c) - 300.0f;
                        return ops::add(x, Tensor::from_vector(m, {1, 16, 1, 1}).to(x.device()));
                      }}};
  off.run = [](const std::vector<Tensor>& x) { return layer::group_norm(x[0], 2); };
  off.reference = [](const std::vector<Array>& x) {
    return ref::group_norm(x[0], 2, {}, {}, 1e-5);
  };
  off.cls = OpClass::reduction;
  cs.push_back(off);
  return cs;
}

// ---- adaLN modulation ---------------------------------------------------------------------

std::vector<Case> modulation_cases() {
  std::vector<Case> cs;
  struct M {
    const char* name;
    Shape x;
    Shape mod;  // scale / shift shape
  };
  const M ms[] = {
      {"per_sample_BC", {3, 37, 500}, {3, 500}},
      {"per_sample_B1C", {2, 45, 111}, {2, 1, 111}},
      {"per_token_1SC", {2, 9, 111}, {1, 9, 111}},
      {"full_BSC", {2, 9, 7}, {2, 9, 7}},
      {"channel_C", {4, 6, 7}, {7}},
      {"dit_3072", {2, 11, 3072}, {2, 3072}},
      {"one_channel", {2, 5, 1}, {2, 1}},
  };
  for (DType t : kFloats) {
    for (const M& m : ms) {
      for (bool affine : {false, true}) {
        Case c;
        c.name = std::string("layernorm_scale_shift_") + m.name + (affine ? "_affine_" : "_") +
                 dtype_name(t);
        const int64_t C = m.x[m.x.size() - 1];
        c.inputs = {Input{m.x, t}, Input{m.mod, t}, Input{m.mod, t}};
        if (affine) c.inputs.insert(c.inputs.end(), {Input{{C}, t}, Input{{C}, t}});
        const int xd = m.x.size();
        c.run = [=](const std::vector<Tensor>& x) {
          return layer::layernorm_scale_shift(x[0], x[1], x[2], 1e-6f, affine ? x[3] : Tensor(),
                                              affine ? x[4] : Tensor());
        };
        c.reference = [=](const std::vector<Array>& x) {
          return ref::modulate(
              ref::layer_norm(x[0], affine ? x[3] : Array(), affine ? x[4] : Array(), 1e-6),
              per_sample(x[1], xd), per_sample(x[2], xd));
        };
        c.tol_dtype = t;
        c.cls = OpClass::reduction;
        cs.push_back(c);
      }
    }
    // FLUX / AdaLayerNormZero: shift and scale are chunks of one projected embedding (B, 6C),
    // used in place (row stride 6C), with a strided-row x.
    Case c;
    c.name = std::string("layernorm_scale_shift_emb_chunks_") + dtype_name(t);
    c.inputs = {
        Input{
            {2, 23, 260}, t, Domain::normal, [](const Tensor& x) { return x.narrow(-1, 3, 111); }},
        Input{{2, 6 * 111}, t}};
    c.run = [](const std::vector<Tensor>& x) {
      const std::vector<Tensor> ch = ops::chunk(x[1], 6, 1);  // shift_msa, scale_msa, ...
      return layer::layernorm_scale_shift(x[0], ch[1], ch[0]);
    };
    c.reference = [](const std::vector<Array>& x) {
      Array shift({2, 1, 111}), scale({2, 1, 111});
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t i = 0; i < 111; ++i) {
          shift.v[b * 111 + i] = x[1].v[b * 666 + i];
          scale.v[b * 111 + i] = x[1].v[b * 666 + 111 + i];
        }
      return ref::modulate(ref::layer_norm(x[0], {}, {}, 1e-6), scale, shift);
    };
    c.tol_dtype = t;
    c.cls = OpClass::reduction;
    cs.push_back(c);
    // RMSNorm + modulation (AdaLayerNormContinuous norm_type="rms_norm"), f32 weight so the
    // reference has no intermediate rounding.
    Case r;
    r.name = std::string("rmsnorm_scale_shift_") + dtype_name(t);
    r.inputs = {Input{{2, 30, 111}, t}, Input{{2, 111}, t}, Input{{2, 111}, t}};
    r.run = [](const std::vector<Tensor>& x) {
      return layer::rmsnorm_scale_shift(x[0], x[1], x[2]);
    };
    r.reference = [](const std::vector<Array>& x) {
      return ref::modulate(ref::rms_norm(x[0], {}, {}, 1e-6), per_sample(x[1], 3),
                           per_sample(x[2], 3));
    };
    r.tol_dtype = t;
    r.cls = OpClass::reduction;
    cs.push_back(r);
  }
  return cs;
}

// ---- residual add + norm ------------------------------------------------------------------

std::vector<Case> add_norm_cases() {
  std::vector<Case> cs;
  for (DType t : kFloats) {
    for (int64_t C : {7, 500, 3072}) {
      const int64_t S = C >= 3072 ? 13 : 61;
      for (int what = 0; what < 4; ++what) {
        // 0: add_layer_norm normed, 1: its sum, 2: add + adaLN normed, 3: add_rms_norm normed
        static const char* names[] = {"add_layer_norm_", "add_layer_norm_sum_",
                                      "add_layernorm_scale_shift_", "add_rms_norm_"};
        Case c;
        c.name = names[what] + cname(C) + "_" + dtype_name(t);
        c.inputs = {Input{{2, S, C}, t}, Input{{2, S, C}, t}, Input{{C}, t}, Input{{C}, t}};
        if (what == 2) c.inputs.insert(c.inputs.end(), {Input{{2, C}, t}, Input{{2, 1, C}, t}});
        c.run = [=](const std::vector<Tensor>& x) {
          if (what == 3) return layer::add_rms_norm(x[0], x[1], x[2]).normed;
          const layer::AddNormResult r =
              what == 2 ? layer::add_layer_norm(x[0], x[1], x[2], x[3], 1e-5f, x[4], x[5])
                        : layer::add_layer_norm(x[0], x[1], x[2], x[3]);
          return what == 1 ? r.sum : r.normed;
        };
        c.reference = [=](const std::vector<Array>& x) {
          const Array sum = round_to(ref::binary(x[0], x[1], BinaryKind::add), t);
          if (what == 1) return sum;
          if (what == 3) return ref::rms_norm(sum, x[2], {}, 1e-6);
          const Array y = ref::layer_norm(sum, x[2], x[3], 1e-5);
          return what == 2 ? ref::modulate(y, per_sample(x[4], 3), x[5]) : y;
        };
        c.tol_dtype = t;
        c.cls = what == 1 ? OpClass::exact : OpClass::reduction;
        cs.push_back(c);
      }
    }
  }
  // Mixed: a bf16 branch output added to an f32 residual stream; the sum (and norm) are f32.
  Case m;
  m.name = "add_layer_norm_bf16_plus_f32_residual";
  m.inputs = {Input{{3, 20, 111}, DType::bf16}, Input{{3, 20, 111}, DType::f32}};
  m.run = [](const std::vector<Tensor>& x) {
    const layer::AddNormResult r = layer::add_layer_norm(x[0], x[1]);
    EXPECT_EQ(r.sum.dtype(), DType::f32);
    return ops::cat(std::vector<Tensor>{r.sum, r.normed}, 0);
  };
  m.reference = [](const std::vector<Array>& x) {
    const Array sum = round_to(ref::binary(x[0], x[1], BinaryKind::add), DType::f32);
    return ref::concat({sum, ref::layer_norm(sum, {}, {}, 1e-5)}, 0);
  };
  m.cls = OpClass::reduction;
  cs.push_back(m);
  return cs;
}

std::vector<Case> norm_cases() {
  std::vector<Case> all;
  for (auto f : {row_norm_cases, group_norm_cases, modulation_cases, add_norm_cases}) {
    std::vector<Case> part = f();
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

MINDIESD_HARNESS_SUITE(Norms, NormHarness, norm_cases);

// ---- parity with PyTorch / diffusers ------------------------------------------------------

const std::string kGolden = MINDIESD_SOURCE_DIR "/tests/data/golden/layer/norm.safetensors";

// bf16 outputs are bounded in bf16 ulps of max(|want|, 1) (Diff::max_ulps): relative to the
// value, but absolute below 1, where results of cancelling terms (norm * (1 + scale) + shift
// near 0) carry the rounding error of their terms, not of themselves.
class NormParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { store_ = new io::WeightStore(io::WeightStore::open(kGolden)); }
  static void TearDownTestSuite() {
    delete store_;
    store_ = nullptr;
  }
  // A stored f32 tensor cast to the run's dtype (bit-exact with torch's .to()).
  static Tensor get(const std::string& name, DType t) { return store_->get(name).to(t); }
  static Tensor want(const std::string& prefix, const char* dt) {
    return store_->get(prefix + "." + dt + ".out");
  }
  // Checks the bounds and prints what was measured (the numbers quoted in the report).
  static void check(const std::string& what, const Tensor& got, const Tensor& w, double f32_abs,
                    double bf16_ulps) {
    EXPECT_EQ(got.dtype(), w.dtype()) << what;
    const test::Diff d = test::diff(got, w);
    std::printf("  parity %-22s %-5s max_abs %.3g", what.c_str(), dtype_name(w.dtype()), d.max_abs);
    if (w.dtype() == DType::bf16) std::printf(" (%.2f bf16 ulps)", d.max_ulps);
    std::printf("\n");
    if (w.dtype() == DType::bf16) {
      EXPECT_LE(d.max_ulps, bf16_ulps) << what;
    } else {
      EXPECT_LE(d.max_abs, f32_abs) << what;
    }
  }
  static io::WeightStore* store_;
};
io::WeightStore* NormParity::store_ = nullptr;

const std::pair<const char*, DType> kParityTypes[] = {{"f32", DType::f32}, {"bf16", DType::bf16}};

// torch.nn.functional.layer_norm: one f32 computation rounded once, as ours. Bounds: f32
// 2e-6 absolute on outputs up to ~5 (measured 4.8e-7, ~1 f32 ulp: the statistics are summed
// differently); bf16 1 ulp (measured 0: rstd may differ in its last f32 bit, which can flip a
// rounding).
TEST_F(NormParity, LayerNormMatchesTorch) {
  for (auto [dt, t] : kParityTypes) {
    const Tensor x = get("layer_norm.x", t);
    check("layer_norm",
          layer::layer_norm(x, get("layer_norm.weight", t), get("layer_norm.bias", t), 1e-5f),
          want("layer_norm", dt), 2e-6, 1);
    check("layer_norm_plain",
          layer::layer_norm(get("layer_norm_plain.x", t), Tensor(), Tensor(), 1e-6f),
          want("layer_norm_plain", dt), 2e-6, 1);
  }
}

// diffusers RMSNorm, including its dtype rules: bf16 weight -> the cast-then-multiply double
// rounding (reproduced: bound 1 ulp, measured 0), no weight -> input dtype, f32 weight on bf16
// x -> f32 (bound 2e-6, measured 2.4e-7).
TEST_F(NormParity, RmsNormMatchesDiffusers) {
  for (auto [dt, t] : kParityTypes) {
    check("rms_norm", layer::rms_norm(get("rms_norm.x", t), get("rms_norm.weight", t), 1e-6f),
          want("rms_norm", dt), 2e-6, 1);
  }
  const Tensor xb = get("rms_norm.x", DType::bf16);
  check("rms_norm_plain", layer::rms_norm(xb, Tensor(), 1e-6f),
        store_->get("rms_norm_plain.bf16.out"), 0, 1);
  check("rms_norm_f32_weight", layer::rms_norm(xb, get("rms_norm.weight", DType::f32), 1e-6f),
        store_->get("rms_norm_f32w.bf16.out"), 2e-6, 0);
  layer::RMSNorm m{get("rms_norm.weight", DType::bf16), 1e-6f};
  check("RMSNorm_module", m(xb), want("rms_norm", "bf16"), 0, 1);
}

// torch.nn.GroupNorm(8, 32): bounds f32 2e-6 (measured 7.2e-7), bf16 1 ulp (measured 0 in
// units of max(|y|, 1); one 1-ulp difference at a value near 5e-5).
TEST_F(NormParity, GroupNormMatchesTorch) {
  for (auto [dt, t] : kParityTypes) {
    check("group_norm",
          layer::group_norm(get("group_norm.x", t), 8, get("group_norm.weight", t),
                            get("group_norm.bias", t), 1e-6f),
          want("group_norm", dt), 2e-6, 1);
  }
}

// diffusers AdaLayerNormZero / AdaLayerNormZeroSingle: emb = linear(silu(emb)), chunks
// (shift_msa, scale_msa, ...), then our fused layernorm_scale_shift (eps 1e-6, no affine).
// f32: the linear goes through oneDNN on both sides: bound 1e-5 (measured 4.8e-7). bf16:
// diffusers rounds norm(x), 1 + scale, the product and the sum to bf16 separately where we
// round once, and the bf16 linear may round differently: bound 4 ulps of max(|y|, 1)
// (measured 2).
TEST_F(NormParity, AdaLayerNormZeroMatchesDiffusers) {
  for (const char* prefix : {"ada_zero", "ada_zero_single"}) {
    const int chunks = std::string(prefix) == "ada_zero" ? 6 : 3;
    for (auto [dt, t] : kParityTypes) {
      const std::string p = prefix;
      const Tensor emb = ops::linear(ops::silu(get(p + ".emb", t)), get(p + ".linear.weight", t),
                                     get(p + ".linear.bias", t));
      const std::vector<Tensor> ch = ops::chunk(emb, chunks, 1);
      check(p, layer::layernorm_scale_shift(get(p + ".x", t), ch[1], ch[0], 1e-6f), want(p, dt),
            1e-5, 4);
    }
  }
}

// diffusers AdaLayerNormContinuous: scale comes first (`scale, shift = chunk(emb, 2)`); FLUX's
// norm_out (no affine, eps 1e-6), the default elementwise_affine (eps 1e-5), and rms_norm.
// Bounds as AdaLayerNormZero (measured: f32 9.5e-7, bf16 2 ulps).
TEST_F(NormParity, AdaLayerNormContinuousMatchesDiffusers) {
  for (auto [dt, t] : kParityTypes) {
    for (const char* prefix : {"ada_cont", "ada_cont_affine", "ada_cont_rms"}) {
      const std::string p = prefix;
      const Tensor emb = ops::linear(ops::silu(get(p + ".cond", t)), get(p + ".linear.weight", t),
                                     get(p + ".linear.bias", t));
      const std::vector<Tensor> ch = ops::chunk(emb, 2, 1);
      const Tensor x = get(p + ".x", t);
      Tensor y;
      if (p == "ada_cont") {
        y = layer::layernorm_scale_shift(x, ch[0], ch[1], 1e-6f);
      } else if (p == "ada_cont_affine") {
        y = layer::layernorm_scale_shift(x, ch[0], ch[1], 1e-5f, get(p + ".norm.weight", t),
                                         get(p + ".norm.bias", t));
      } else {
        y = layer::rmsnorm_scale_shift(x, ch[0], ch[1], 1e-6f, get(p + ".norm.weight", t));
      }
      check(p, y, want(p, dt), 1e-5, 4);
    }
  }
}

// ---- fused equals unfused -----------------------------------------------------------------

// add_layer_norm's sum is exactly ops::add, and its norm exactly layer_norm of that sum (the
// same kernel path over the same rounded values).
TEST(NormFusion, AddNormEqualsAddThenNorm) {
  for (DType t : kFloats) {
    const Tensor x = ops::randn({3, 17, 500}, 1).to(t), r = ops::randn({3, 17, 500}, 2).to(t);
    const Tensor w = ops::randn({500}, 3).to(t), b = ops::randn({500}, 4).to(t);
    const layer::AddNormResult f = layer::add_layer_norm(x, r, w, b);
    const Tensor sum = ops::add(x, r);
    EXPECT_EQ(f.sum.to_vector(), sum.to_vector()) << dtype_name(t);
    EXPECT_EQ(f.normed.to_vector(), layer::layer_norm(sum, w, b).to_vector()) << dtype_name(t);
  }
}

// Outputs of 16 MiB and more are written with non-temporal stores (rows not 64-byte aligned
// when C is odd); they must equal the cached path's, which the same rows take in smaller calls.
TEST(NormFusion, StreamedOutputsEqualCachedOnes) {
  for (auto [t, rows, C] : {std::tuple{DType::f32, int64_t{1400}, int64_t{3072}},
                            std::tuple{DType::bf16, int64_t{2800}, int64_t{3071}}}) {
    const Tensor x = ops::randn({1, rows, C}, 1).to(t), r = ops::randn({1, rows, C}, 2).to(t);
    const Tensor scale = ops::randn({1, C}, 3).to(t), shift = ops::randn({1, C}, 4).to(t);
    const Tensor w = ops::randn({C}, 5).to(t);
    const layer::AddNormResult big =
        layer::add_layer_norm(x, r, Tensor(), Tensor(), 1e-6f, scale, shift);
    const Tensor big_rms = layer::rms_norm(x, w);
    ASSERT_GE(big.normed.nbytes(), int64_t{16} << 20);
    for (int64_t r0 : {int64_t{0}, rows / 2}) {
      const Tensor xs = x.narrow(1, r0, rows / 2), rs = r.narrow(1, r0, rows / 2);
      const layer::AddNormResult small =
          layer::add_layer_norm(xs, rs, Tensor(), Tensor(), 1e-6f, scale, shift);
      EXPECT_EQ(big.normed.narrow(1, r0, rows / 2).to_vector(), small.normed.to_vector());
      EXPECT_EQ(big.sum.narrow(1, r0, rows / 2).to_vector(), small.sum.to_vector());
      EXPECT_EQ(big_rms.narrow(1, r0, rows / 2).to_vector(), layer::rms_norm(xs, w).to_vector());
    }
  }
}

// The bf16 output path converts with AVX512-BF16 where the CPU has it, which flushes
// subnormals; c10 keeps them, and so must we. A tiny weight makes every output subnormal: the
// bf16 kernel must equal the f32 kernel's output converted by Tensor::to (c10's rounding).
TEST(NormFusion, Bf16OutputKeepsSubnormals) {
  const Tensor x = ops::randn({5, 200}, 1).to(DType::bf16);
  const Tensor w = ops::full({200}, 3e-39, DType::bf16);
  ASSERT_NE(w.to_vector()[0], 0.0f);
  const std::vector<float> got = layer::layer_norm(x, w).to_vector();
  const std::vector<float> want =
      layer::layer_norm(x.to(DType::f32), w.to(DType::f32)).to(DType::bf16).to_vector();
  EXPECT_EQ(got, want);
  EXPECT_GT(std::count_if(got.begin(), got.end(), [](float v) { return v != 0.0f; }), 900);
}

// ---- argument errors ----------------------------------------------------------------------

template <typename F>
void expect_invalid(F&& f, std::initializer_list<const char*> needles) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument) << e.what();
    for (const char* n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "'" << n << "' not in: " << e.what();
  }
}

TEST(NormErrors, NameTheArgumentAndShapes) {
  const Tensor x = ops::randn({2, 5, 8}, 1);
  expect_invalid([&] { layer::layer_norm(x, ops::randn({7}, 2)); },
                 {"weight", "(7,)", "(2, 5, 8)"});
  expect_invalid(
      [&] {
        layer::layer_norm(x, Tensor(), ops::randn({8, 1}, 2));
      },
      {"bias", "(8, 1)"});
  expect_invalid([&] { layer::rms_norm(x, ops::randn({9}, 2)); }, {"rms_norm", "weight", "(9,)"});
  expect_invalid([&] { layer::layer_norm(x, Tensor(), Tensor(), 0.0f); }, {"eps"});
  expect_invalid([&] { layer::rms_norm(x, Tensor(), -1e-6f); }, {"eps"});
  expect_invalid([&] { layer::layer_norm(x, Tensor(), Tensor(), NAN); }, {"eps"});
  expect_invalid([&] { layer::layer_norm(ops::full({2, 8}, 1, DType::i32)); }, {"x", "i32"});
  expect_invalid(
      [&] {
        layer::group_norm(ops::randn({2, 12, 4}, 1), 5);
      },
      {"groups 5", "12", "(2, 12, 4)"});
  expect_invalid([&] { layer::group_norm(ops::randn({2, 12, 4}, 1), 0); }, {"groups 0"});
  expect_invalid([&] { layer::group_norm(ops::randn({12}, 1), 3); }, {"(N, C, *spatial)", "(12,)"});
  expect_invalid(
      [&] {
        layer::group_norm(ops::randn({2, 12, 4}, 1), 3, ops::randn({4}, 2));
      },
      {"weight", "(4,)", "(12)"});
  // Modulation: wrong C, wrong batch, does not broadcast, shift missing.
  expect_invalid(
      [&] {
        layer::layernorm_scale_shift(x, ops::randn({2, 7}, 2), ops::randn({2, 8}, 3));
      },
      {"scale", "(2, 7)", "(2, 5, 8)"});
  expect_invalid(
      [&] {
        layer::layernorm_scale_shift(x, ops::randn({2, 8}, 2), ops::randn({3, 8}, 3));
      },
      {"shift", "(3, 8)", "batch"});
  expect_invalid(
      [&] {
        layer::layernorm_scale_shift(x, ops::randn({2, 3, 8}, 2), ops::randn({2, 1, 8}, 3));
      },
      {"scale", "(2, 3, 8)", "broadcast"});
  expect_invalid(
      [&] {
        layer::layernorm_scale_shift(x, ops::randn({2, 8}, 2), Tensor());
      },
      {"scale and shift"});
  expect_invalid(
      [&] {
        layer::add_layer_norm(x, ops::randn({2, 5, 7}, 2));
      },
      {"residual", "(2, 5, 7)", "(2, 5, 8)"});
  expect_invalid([&] { layer::rms_norm(x, Tensor(), 1e-6f, ops::randn({8}, 2)); }, {"bias"});
}

TEST(NormEdges, EmptyAndSingleRow) {
  const Tensor e = Tensor::empty({0, 16}, DType::f32);
  EXPECT_EQ(layer::layer_norm(e).shape(), e.shape());
  EXPECT_EQ(layer::group_norm(Tensor::empty({0, 4, 3}, DType::bf16), 2).shape(), Shape({0, 4, 3}));
  // A constant row normalises to exactly 0 (then the bias).
  const Tensor c = ops::full({1, 9}, 3.25);
  for (float v : layer::layer_norm(c).to_vector()) EXPECT_EQ(v, 0.0f);
  const Tensor b = ops::full({9}, 0.5);
  for (float v : layer::layer_norm(c, Tensor(), b).to_vector()) EXPECT_EQ(v, 0.5f);
}

}  // namespace
}  // namespace mindiesd::test
