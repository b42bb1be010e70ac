// Linear with fused epilogues and gated feed-forwards against the float64 reference.
#include <gtest/gtest.h>

#include "harness.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/linear.h"

namespace mindiesd::test {
namespace {

Array transpose2d(const Array& w) {
  Array t(Shape{w.shape[1], w.shape[0]});
  for (int64_t i = 0; i < w.shape[0]; ++i)
    for (int64_t j = 0; j < w.shape[1]; ++j) t.v[j * w.shape[0] + i] = w.v[i * w.shape[1] + j];
  return t;
}

std::vector<Case> linear_cases() {
  std::vector<Case> cs;
  const std::pair<UnaryKind, const char*> acts[] = {{UnaryKind::gelu, "gelu"},
                                                    {UnaryKind::gelu_tanh, "gelu_tanh"},
                                                    {UnaryKind::silu, "silu"},
                                                    {UnaryKind::relu, "relu"}};
  for (DType t : kFloats) {
    for (auto [a, name] : acts) {
      Case c;
      c.name = std::string("linear_") + name + "_epilogue_" + dtype_name(t);
      c.inputs = {Input{{2, 7, 96}, t}, Input{{111, 96}, t}, Input{{111}, t}};
      c.run = [a](const std::vector<Tensor>& x) {
        return layer::linear(x[0], x[1], x[2], {a, Tensor(), Tensor()});
      };
      c.reference = [a](const std::vector<Array>& x) {
        return ref::unary(ref::matmul(x[0], transpose2d(x[1]), x[2]), a);
      };
      c.tol_dtype = t;
      c.cls = OpClass::matmul;
      cs.push_back(c);
    }
    Case g;
    g.name = std::string("linear_gate_residual_") + dtype_name(t);
    g.inputs = {Input{{2, 5, 64}, t}, Input{{48, 64}, t}, Input{{48}, t}, Input{{2, 1, 48}, t},
                Input{{2, 5, 48}, t}};
    g.run = [](const std::vector<Tensor>& x) {
      return layer::linear(x[0], x[1], x[2], {std::nullopt, x[3], x[4]});
    };
    g.reference = [](const std::vector<Array>& x) {
      return ref::ternary(x[3], ref::matmul(x[0], transpose2d(x[1]), x[2]), x[4], TernaryKind::fma);
    };
    g.tol_dtype = t;
    g.cls = OpClass::matmul;
    cs.push_back(g);
    for (auto [a, name] : {std::pair{UnaryKind::gelu, "geglu"}, std::pair{UnaryKind::silu, "swiglu"}}) {
      Case f;
      f.name = std::string(name) + "_" + dtype_name(t);
      f.inputs = {Input{{3, 40}, t}, Input{{2 * 33, 40}, t}, Input{{2 * 33}, t}};
      f.run = [a](const std::vector<Tensor>& x) { return layer::gated_linear(x[0], x[1], x[2], a); };
      f.reference = [a](const std::vector<Array>& x) {
        const Array proj = ref::matmul(x[0], transpose2d(x[1]), x[2]);
        Array h(Shape{3, 33}), gt(Shape{3, 33});
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 33; ++j) {
            h.v[i * 33 + j] = proj.v[i * 66 + j];
            gt.v[i * 33 + j] = proj.v[i * 66 + 33 + j];
          }
        return ref::binary(h, ref::unary(gt, a), BinaryKind::mul);
      };
      f.tol_dtype = t;
      f.cls = OpClass::matmul;
      cs.push_back(f);
    }
  }
  return cs;
}

MINDIESD_HARNESS_SUITE(Layer, LinearHarness, linear_cases);

TEST(Linear, BadShapesNameTheArguments) {
  const Tensor x = Tensor::zeros({2, 8}, DType::f32), w = Tensor::zeros({4, 7}, DType::f32);
  EXPECT_THROW((void)layer::linear(x, w), Error);
  EXPECT_THROW((void)layer::linear(x, Tensor::zeros({4, 8}, DType::f32), Tensor::zeros({5}, DType::f32)), Error);
  EXPECT_THROW((void)layer::gated_linear(x, Tensor::zeros({5, 8}, DType::f32), Tensor(), UnaryKind::gelu), Error);
}

}  // namespace
}  // namespace mindiesd::test
