// MoE router and expert dispatch against a float64 reference that routes and runs the experts
// token by token; plus ties, selection bias, determinism, empty experts and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "harness.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/linear.h"
#include "mindiesd/layer/moe.h"
#include "test_util.h"

namespace mindiesd::test {
namespace {

using layer::MoeExpert;
using layer::MoeRoute;
using layer::MoeScoring;

Array transpose2d(const Array& w) {
  Array t(Shape{w.shape[1], w.shape[0]});
  for (int64_t i = 0; i < w.shape[0]; ++i)
    for (int64_t j = 0; j < w.shape[1]; ++j) t.v[j * w.shape[0] + i] = w.v[i * w.shape[1] + j];
  return t;
}

Array row(const Array& x, int64_t t) {
  const int64_t n = x.shape[1];
  Array r(Shape{1, n});
  std::copy(x.v.begin() + t * n, x.v.begin() + (t + 1) * n, r.v.begin());
  return r;
}

// Independent float64 router: ids and weights per token.
struct RefRoute {
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::vector<double>> w;
};

RefRoute ref_route(const Array& logits, int64_t k, MoeScoring scoring, bool normalize,
                   const Array* bias, double scale = 1.0) {
  const int64_t T = logits.shape[0], E = logits.shape[1];
  RefRoute r;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> s(E);
    if (scoring == MoeScoring::softmax) {
      const Array sm = ref::softmax(row(logits, t), 1);
      for (int64_t e = 0; e < E; ++e) s[e] = sm.v[e];
    } else {
      for (int64_t e = 0; e < E; ++e) s[e] = 1.0 / (1.0 + std::exp(-logits.v[t * E + e]));
    }
    std::vector<bool> taken(E, false);
    std::vector<int64_t> ids;
    std::vector<double> w;
    for (int64_t j = 0; j < k; ++j) {  // selection sort: first strictly greater key wins
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        if (taken[e]) continue;
        const double key = s[e] + (bias ? bias->v[e] : 0.0);
        const double bkey = best < 0 ? 0 : s[best] + (bias ? bias->v[best] : 0.0);
        if (best < 0 || key > bkey) best = e;
      }
      taken[best] = true;
      ids.push_back(best);
      w.push_back(s[best]);
    }
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (double& v : w) v = (normalize ? v / total : v) * scale;
    r.ids.push_back(ids);
    r.w.push_back(w);
  }
  return r;
}

Tensor route_as_tensor(const MoeRoute& r) {
  const Tensor parts[] = {r.expert_ids.to(DType::f32), r.weights};
  return ops::cat(parts, 1);
}

Array ref_route_array(const RefRoute& r, int64_t k) {
  const int64_t T = static_cast<int64_t>(r.ids.size());
  Array a(Shape{T, 2 * k});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      a.v[t * 2 * k + j] = static_cast<double>(r.ids[t][j]);
      a.v[t * 2 * k + k + j] = r.w[t][j];
    }
  return a;
}

// Adds `offset` to the logits columns in `cols` (forces experts in or out of every top-k).
Views shift_columns(int64_t E, std::vector<int64_t> cols, float offset) {
  return [E, cols, offset](const Tensor& t) {
    std::vector<float> m(E, 0.0f);
    for (int64_t c : cols) m[c] = offset;
    return ops::add(t, Tensor::from_vector(m, {1, E}).to(t.dtype()).to(t.device()));
  };
}

// Column e := column e % 2: many exact ties between experts.
Views tie_columns(int64_t E) {
  return [E](const Tensor& t) {
    std::vector<int64_t> idx(E);
    for (int64_t e = 0; e < E; ++e) idx[e] = e % 2;
    Tensor it = Tensor::empty({E}, DType::i64);
    std::copy(idx.begin(), idx.end(), it.data<int64_t>());
    return ops::index_select(t, 1, it.to(t.device()));
  };
}

Views scaled(float s) {
  return [s](const Tensor& t) { return ops::affine(t, s, 0.0f); };
}

std::vector<Case> route_cases() {
  std::vector<Case> cs;
  struct P {
    int64_t T, E, k;
    MoeScoring scoring;
    bool normalize, bias;
    const char* tag;
    Views view;
  };
  const std::vector<P> ps = {
      {1, 4, 1, MoeScoring::softmax, true, false, "softmax_norm", nullptr},
      {7, 5, 2, MoeScoring::softmax, true, false, "softmax_norm", nullptr},
      {33, 8, 2, MoeScoring::softmax, false, false, "softmax", nullptr},
      {33, 8, 2, MoeScoring::sigmoid, true, true, "sigmoid_bias_norm", nullptr},
      {7, 6, 1, MoeScoring::sigmoid, false, false, "sigmoid", nullptr},
      {33, 6, 2, MoeScoring::softmax, true, false, "ties", tie_columns(6)},
      {33, 8, 2, MoeScoring::sigmoid, true, true, "sigmoid_bias_ties", tie_columns(8)},
  };
  for (DType t : {DType::f32, DType::bf16}) {
    for (const P& p : ps) {
      Case c;
      c.name = std::string("moe_route_") + p.tag + "_T" + std::to_string(p.T) + "_E" +
               std::to_string(p.E) + "_k" + std::to_string(p.k) + "_" + dtype_name(t);
      c.inputs = {Input{{p.T, p.E}, t, Domain::normal, p.view}};
      if (p.bias) c.inputs.push_back(Input{{p.E}, DType::f32, Domain::normal, scaled(0.5f)});
      c.run = [p](const std::vector<Tensor>& x) {
        return route_as_tensor(
            layer::moe_route(x[0], p.k, p.scoring, p.normalize, p.bias ? x[1] : Tensor()));
      };
      c.reference = [p](const std::vector<Array>& x) {
        return ref_route_array(
            ref_route(x[0], p.k, p.scoring, p.normalize, p.bias ? &x[1] : nullptr), p.k);
      };
      c.tol_dtype = DType::f32;  // weights are computed in f64 and stored as f32
      c.cls = OpClass::elementwise;
      cs.push_back(c);
    }
  }
  return cs;
}

MINDIESD_HARNESS_SUITE(Layer, MoeRouteHarness, route_cases);

constexpr int64_t kH = 40, kI = 24;

std::vector<Case> forward_cases() {
  std::vector<Case> cs;
  struct P {
    int64_t T, E, k;
    MoeScoring scoring;
    bool bias;
    const char* tag;
    Views logits_view;
    bool noncontig_x = false;
  };
  const std::vector<P> ps = {
      {1, 4, 1, MoeScoring::softmax, false, "softmax", nullptr},
      {1, 4, 2, MoeScoring::softmax, false, "softmax", nullptr},
      {7, 5, 1, MoeScoring::softmax, false, "softmax", nullptr},
      {7, 6, 2, MoeScoring::softmax, false, "softmax", nullptr},
      {33, 8, 2, MoeScoring::softmax, false, "softmax", nullptr},
      {33, 8, 1, MoeScoring::softmax, false, "softmax", nullptr, true},
      {33, 8, 2, MoeScoring::sigmoid, true, "sigmoid_bias", nullptr},
      // Experts 1, 3 and 4 never chosen.
      {33, 6, 2, MoeScoring::softmax, false, "empty_experts", shift_columns(6, {1, 3, 4}, -30.0f)},
      {7, 8, 1, MoeScoring::softmax, false, "empty_experts",
       shift_columns(8, {0, 2, 5, 6, 7}, -30.0f)},
      // Every token to expert 2 (k = 1: only one expert runs).
      {33, 4, 1, MoeScoring::softmax, false, "one_expert", shift_columns(4, {2}, 30.0f)},
      {33, 5, 2, MoeScoring::sigmoid, false, "one_expert", shift_columns(5, {2}, 30.0f)},
      // Every token to experts {0, 7}, in either order.
      {7, 8, 2, MoeScoring::softmax, false, "two_experts", shift_columns(8, {0, 7}, 30.0f)},
  };
  for (DType t : {DType::f32, DType::bf16}) {
    for (const P& p : ps) for (bool stacked : {false, true}) {
      Case c;
      // stacked: the same experts as MoeExperts, run through the grouped GEMM.
      c.name = std::string("moe_forward_") + (stacked ? "stacked_" : "") + p.tag + "_T" +
               std::to_string(p.T) + "_E" + std::to_string(p.E) + "_k" + std::to_string(p.k) +
               (p.noncontig_x ? "_noncontig" : "") + "_" + dtype_name(t);
      c.inputs = {
          p.noncontig_x ? Input{{kH, p.T}, t, Domain::normal, transposed} : Input{{p.T, kH}, t},
          Input{{p.T, p.E}, DType::f32, Domain::normal, p.logits_view}};
      if (p.bias) c.inputs.push_back(Input{{p.E}, DType::f32, Domain::normal, scaled(0.5f)});
      const size_t w0 = c.inputs.size();
      for (int64_t e = 0; e < p.E; ++e) {
        c.inputs.push_back(Input{{kI, kH}, t, Domain::normal, scaled(0.25f)});
        c.inputs.push_back(Input{{kI, kH}, t, Domain::normal, scaled(0.25f)});
        c.inputs.push_back(Input{{kH, kI}, t, Domain::normal, scaled(0.25f)});
      }
      c.run = [p, w0, stacked](const std::vector<Tensor>& x) {
        const MoeRoute r = layer::moe_route(x[1], p.k, p.scoring, true, p.bias ? x[2] : Tensor());
        std::vector<MoeExpert> ex;
        for (int64_t e = 0; e < p.E; ++e)
          ex.push_back({x[w0 + 3 * e], x[w0 + 3 * e + 1], x[w0 + 3 * e + 2]});
        return stacked ? layer::moe_forward(x[0], r, layer::stack_experts(ex))
                       : layer::moe_forward(x[0], r, ex);
      };
      c.reference = [p, w0, t](const std::vector<Array>& x) {
        const RefRoute r = ref_route(x[1], p.k, p.scoring, true, p.bias ? &x[2] : nullptr);
        Array out(Shape{p.T, kH});
        for (int64_t tok = 0; tok < p.T; ++tok) {
          const Array xr = row(x[0], tok);
          for (int64_t j = 0; j < p.k; ++j) {
            const int64_t e = r.ids[tok][j];
            const Array g = ref::matmul(xr, transpose2d(x[w0 + 3 * e]));
            const Array u = ref::matmul(xr, transpose2d(x[w0 + 3 * e + 1]));
            Array h = ref::binary(ref::unary(g, UnaryKind::silu), u, BinaryKind::mul);
            if (t != DType::f32) h = round_to(h, t);  // the kernel's one intermediate rounding
            const Array y = ref::matmul(h, transpose2d(x[w0 + 3 * e + 2]));
            for (int64_t c2 = 0; c2 < kH; ++c2) out.v[tok * kH + c2] += r.w[tok][j] * y.v[c2];
          }
        }
        return out;
      };
      c.tol_dtype = t;
      c.cls = OpClass::matmul;
      cs.push_back(c);
    }
    // The generic (callable) form with plain linear experts.
    Case f;
    constexpr int64_t T = 33, E = 5, k = 2;
    f.name = std::string("moe_forward_callable_T33_E5_k2_") + dtype_name(t);
    f.inputs = {Input{{T, kH}, t},
                Input{{T, E}, DType::f32, Domain::normal, shift_columns(E, {3}, -30.0f)}};
    for (int64_t e = 0; e < E; ++e)
      f.inputs.push_back(Input{{kH, kH}, t, Domain::normal, scaled(0.25f)});
    f.run = [](const std::vector<Tensor>& x) {
      const MoeRoute r = layer::moe_route(x[1], k, MoeScoring::softmax, true);
      return layer::moe_forward(x[0], r, E, [&x](int64_t e, const Tensor& rows) {
        return layer::linear(rows, x[2 + e]);
      });
    };
    f.reference = [t](const std::vector<Array>& x) {
      const RefRoute r = ref_route(x[1], k, MoeScoring::softmax, true, nullptr);
      Array out(Shape{T, kH});
      for (int64_t tok = 0; tok < T; ++tok)
        for (int64_t j = 0; j < k; ++j) {
          const Array y =
              round_to(ref::matmul(row(x[0], tok), transpose2d(x[2 + r.ids[tok][j]])), t);
          for (int64_t c2 = 0; c2 < kH; ++c2) out.v[tok * kH + c2] += r.w[tok][j] * y.v[c2];
        }
      return out;
    };
    f.tol_dtype = t;
    f.cls = OpClass::matmul;
    cs.push_back(f);
  }
  return cs;
}

MINDIESD_HARNESS_SUITE(Layer, MoeForwardHarness, forward_cases);

// ops::grouped_matmul on its own: empty groups, groups past one 64-row tile, N and K off the
// GPU kernel's 64-wide tiles, rows outside every group (zero), f32 and 16-bit outputs, and K
// not a multiple of 8 (the CUDA SIMT path).
std::vector<Case> grouped_cases() {
  struct P {
    int64_t n, k;
    std::vector<int64_t> offsets;
    int64_t rows;
    const char* tag;
  };
  const std::vector<P> ps = {
      {72, 136, {0, 0, 1, 1, 150, 170, 170}, 170, "empty_and_long_groups"},
      {40, 24, {5, 30, 100}, 120, "rows_outside_groups"},
      {16, 20, {0, 7, 9}, 9, "k_not_multiple_of_8"},
  };
  std::vector<Case> cs;
  for (DType t : kFloats) {
    for (const P& p : ps) {
      for (bool f32_out : {false, true}) {
        if (t == DType::f32 && f32_out) continue;
        Case c;
        c.name = std::string("grouped_matmul_") + p.tag + "_" + dtype_name(t) +
                 (f32_out ? "_to_f32" : "");
        const int64_t E = static_cast<int64_t>(p.offsets.size()) - 1;
        c.inputs = {Input{{p.rows, p.k}, t}, Input{{E, p.n, p.k}, t, Domain::normal, scaled(0.25f)}};
        c.run = [p, t, f32_out](const std::vector<Tensor>& x) {
          Tensor off = Tensor::empty({static_cast<int64_t>(p.offsets.size())}, DType::i64);
          std::copy(p.offsets.begin(), p.offsets.end(), off.data<int64_t>());
          return ops::grouped_matmul(x[0], x[1], off.to(x[0].device()),
                                     f32_out ? DType::f32 : t);
        };
        c.reference = [p, E](const std::vector<Array>& x) {
          Array out(Shape{p.rows, p.n});
          for (int64_t e = 0; e < E; ++e)
            for (int64_t r = p.offsets[e]; r < p.offsets[e + 1]; ++r)
              for (int64_t j = 0; j < p.n; ++j) {
                double acc = 0;
                for (int64_t q = 0; q < p.k; ++q)
                  acc += x[0].v[r * p.k + q] * x[1].v[(e * p.n + j) * p.k + q];
                out.v[r * p.n + j] = acc;
              }
          return out;
        };
        c.tol_dtype = f32_out ? DType::f32 : t;
        c.cls = OpClass::matmul;
        cs.push_back(c);
      }
    }
  }
  return cs;
}

MINDIESD_HARNESS_SUITE(Layer, GroupedMatmulHarness, grouped_cases);

TEST(GroupedMatmul, BadOffsetsAndShapesNameTheProblem) {
  const Tensor x = ops::randn({6, 8}, 1), w = ops::randn({2, 4, 8}, 2);
  auto offsets = [](std::vector<int64_t> v) {
    Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::i64);
    std::copy(v.begin(), v.end(), t.data<int64_t>());
    return t;
  };
  expect_error([&] { ops::grouped_matmul(x, w, offsets({0, 4, 3})); }, ErrorKind::InvalidArgument,
               {"offsets[1] = 4", "non-decreasing"});
  expect_error([&] { ops::grouped_matmul(x, w, offsets({0, 4, 7})); }, ErrorKind::InvalidArgument,
               {"offsets[2] = 7", "[0, 6]"});
  expect_error([&] { ops::grouped_matmul(x, w, offsets({0, 6})); }, ErrorKind::InvalidArgument,
               {"offsets", "(3)"});
  expect_error([&] { ops::grouped_matmul(x, ops::randn({2, 4, 7}, 3), offsets({0, 3, 6})); },
               ErrorKind::InvalidArgument, {"(E, N, K)"});
  expect_error([&] { ops::grouped_matmul(x, w.to(DType::bf16), offsets({0, 3, 6})); },
               ErrorKind::InvalidArgument, {"share a float dtype"});
}

std::vector<int64_t> ids_of(const MoeRoute& r) {
  std::vector<int64_t> v;
  for (float f : r.expert_ids.to_vector()) v.push_back(static_cast<int64_t>(f));
  return v;
}

TEST(Moe, RouteTiesGoToTheLowerExpertId) {
  const Tensor logits = ops::full({3, 6}, 0.5);
  for (MoeScoring s : {MoeScoring::softmax, MoeScoring::sigmoid}) {
    const MoeRoute r = layer::moe_route(logits, 3, s, true);
    EXPECT_EQ(r.expert_ids.dtype(), DType::i64);
    EXPECT_EQ(r.weights.dtype(), DType::f32);
    EXPECT_EQ(ids_of(r), (std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
    for (float w : r.weights.to_vector()) EXPECT_FLOAT_EQ(w, 1.0f / 3.0f);
  }
  // Ties among the non-maximal scores too: logits (1, 3, 3, 1) -> experts 1, 2, then 0.
  const std::vector<float> l = {1, 3, 3, 1};
  const MoeRoute r =
      layer::moe_route(Tensor::from_vector(l, {1, 4}), 3, MoeScoring::softmax, false);
  EXPECT_EQ(ids_of(r), (std::vector<int64_t>{1, 2, 0}));
}

TEST(Moe, SelectionBiasMovesTheChoiceNotTheWeights) {
  const std::vector<float> l = {2.0f, 1.0f, 0.0f, -1.0f};
  const std::vector<float> b = {0.0f, 0.0f, 0.0f, 5.0f};
  const Tensor logits = Tensor::from_vector(l, {1, 4});
  const MoeRoute r =
      layer::moe_route(logits, 2, MoeScoring::sigmoid, true, Tensor::from_vector(b, {4}), 2.5);
  EXPECT_EQ(ids_of(r), (std::vector<int64_t>{3, 0}));
  const double s3 = 1 / (1 + std::exp(1.0)), s0 = 1 / (1 + std::exp(-2.0));
  const std::vector<float> w = r.weights.to_vector();
  EXPECT_NEAR(w[0], 2.5 * s3 / (s3 + s0), 1e-6);
  EXPECT_NEAR(w[1], 2.5 * s0 / (s3 + s0), 1e-6);
  // Unnormalised: the raw sigmoid scores (times scale).
  const MoeRoute u =
      layer::moe_route(logits, 2, MoeScoring::sigmoid, false, Tensor::from_vector(b, {4}));
  EXPECT_NEAR(u.weights.to_vector()[0], s3, 1e-6);
  EXPECT_NEAR(u.weights.to_vector()[1], s0, 1e-6);
}

TEST(Moe, ForwardSkipsEmptyExpertsAndIsDeterministic) {
  const int64_t T = 33, E = 6, H = 16;
  const Tensor x = ops::randn({T, H}, 1);
  std::vector<float> lv = ops::randn({T, E}, 2).to_vector();
  for (int64_t t = 0; t < T; ++t) lv[t * E + 1] = lv[t * E + 4] = -50.0f;  // experts 1, 4 empty
  const MoeRoute r = layer::moe_route(Tensor::from_vector(lv, {T, E}), 2);
  std::vector<Tensor> w;
  for (int64_t e = 0; e < E; ++e) w.push_back(ops::randn({H, H}, 10 + e));
  std::vector<int64_t> called, rows;
  const auto fn = [&](int64_t e, const Tensor& xs) {
    called.push_back(e);
    rows.push_back(xs.size(0));
    return layer::linear(xs, w[e]);
  };
  const Tensor y1 = layer::moe_forward(x, r, E, fn);
  std::vector<int64_t> want_rows(E, 0);
  for (int64_t id : ids_of(r)) ++want_rows[id];
  std::vector<int64_t> want_called, want_n;
  for (int64_t e = 0; e < E; ++e)
    if (want_rows[e] > 0) {
      want_called.push_back(e);
      want_n.push_back(want_rows[e]);
    }
  EXPECT_EQ(called, want_called);
  EXPECT_EQ(rows, want_n);
  EXPECT_EQ(std::count(called.begin(), called.end(), 1), 0);
  EXPECT_EQ(std::count(called.begin(), called.end(), 4), 0);
  const Tensor y2 = layer::moe_forward(x, r, E, fn);
  EXPECT_EQ(y1.to_vector(), y2.to_vector());  // bit-identical
}

TEST(Moe, BadArgumentsNameTheArgument) {
  const Tensor logits = Tensor::zeros({5, 4}, DType::f32);
  const auto route = [&](int64_t k) { return layer::moe_route(logits, k); };
  expect_error([&] { (void)route(5); }, ErrorKind::InvalidArgument, {"top_k = 5", "[1, 4]"});
  expect_error([&] { (void)route(0); }, ErrorKind::InvalidArgument, {"top_k = 0"});
  expect_error([&] { (void)route(-1); }, ErrorKind::InvalidArgument, {"top_k = -1"});
  expect_error([&] { (void)layer::moe_route(Tensor::zeros({4}, DType::f32), 1); },
               ErrorKind::InvalidArgument, {"logits"});
  expect_error(
      [&] {
        (void)layer::moe_route(Tensor::zeros({5, 4}, DType::i64), 1);
      },
      ErrorKind::InvalidArgument, {"logits"});
  expect_error(
      [&] {
        (void)layer::moe_route(logits, 2, MoeScoring::sigmoid, true,
                               Tensor::zeros({3}, DType::f32));
      },
      ErrorKind::InvalidArgument, {"selection_bias", "(3,)", "(4,)"});

  const MoeRoute r = route(2);
  const auto ffn = [](int64_t, const Tensor& rows) { return rows; };
  expect_error(
      [&] {
        (void)layer::moe_forward(Tensor::zeros({6, 8}, DType::f32), r, 4, ffn);
      },
      ErrorKind::InvalidArgument, {"route.expert_ids", "(6, 8)"});
  expect_error(
      [&] {
        (void)layer::moe_forward(Tensor::zeros({5, 8}, DType::f32).unsqueeze(0), r, 4, ffn);
      },
      ErrorKind::InvalidArgument, {"x must be"});
  MoeRoute bad_w = r;
  bad_w.weights = Tensor::zeros({5, 3}, DType::f32);
  expect_error(
      [&] {
        (void)layer::moe_forward(Tensor::zeros({5, 8}, DType::f32), bad_w, 4, ffn);
      },
      ErrorKind::InvalidArgument, {"route.weights", "(5, 3)"});
  MoeRoute bad_ids = r;
  bad_ids.expert_ids = ops::full({5, 2}, 7.0, DType::i64);
  expect_error(
      [&] {
        (void)layer::moe_forward(Tensor::zeros({5, 8}, DType::f32), bad_ids, 4, ffn);
      },
      ErrorKind::InvalidArgument, {"route.expert_ids[0, 0]", "[0, 4)"});
  expect_error(
      [&] {
        (void)layer::moe_forward(Tensor::zeros({5, 8}, DType::f32), r, 4,
                                 [](int64_t, const Tensor& rows) { return rows.slice(1, 0, 3); });
      },
      ErrorKind::InvalidArgument, {"expert 0 returned"});

  const Tensor x = Tensor::zeros({5, 8}, DType::f32);
  std::vector<MoeExpert> ex(
      4, MoeExpert{Tensor::zeros({6, 8}, DType::f32), Tensor::zeros({6, 8}, DType::f32),
                   Tensor::zeros({8, 6}, DType::f32)});
  EXPECT_NO_THROW((void)layer::moe_forward(x, r, ex));
  ex[1].w_down = Tensor::zeros({8, 5}, DType::f32);
  expect_error([&] { (void)layer::moe_forward(x, r, ex); }, ErrorKind::InvalidArgument,
               {"experts[1]", "w_down (8, 5)"});
  ex[1].w_down = Tensor::zeros({8, 6}, DType::bf16);
  expect_error([&] { (void)layer::moe_forward(x, r, ex); }, ErrorKind::InvalidArgument,
               {"experts[1]", "dtype"});
  ex.resize(2);  // two experts, but every id below is 3
  MoeRoute hi = r;
  hi.expert_ids = ops::full({5, 2}, 3.0, DType::i64);
  ex[1].w_down = Tensor::zeros({8, 6}, DType::f32);
  expect_error([&] { (void)layer::moe_forward(x, hi, ex); }, ErrorKind::InvalidArgument,
               {"route.expert_ids", "[0, 2)"});
}

}  // namespace
}  // namespace mindiesd::test
