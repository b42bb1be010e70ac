// Differential cases for the foundation ops (tests/harness.h): odd sizes, non-contiguous
// views and broadcasting on every backend against the float64 reference.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"
#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::test {
namespace {

std::vector<Case> unary_cases() {
  std::vector<Case> cs;
  const std::pair<UnaryKind, const char*> kinds[] = {
      {UnaryKind::neg, "neg"},       {UnaryKind::abs, "abs"},         {UnaryKind::exp, "exp"},
      {UnaryKind::log, "log"},       {UnaryKind::sqrt, "sqrt"},       {UnaryKind::rsqrt, "rsqrt"},
      {UnaryKind::sin, "sin"},       {UnaryKind::cos, "cos"},         {UnaryKind::tanh, "tanh"},
      {UnaryKind::sigmoid, "sigmoid"}, {UnaryKind::silu, "silu"},     {UnaryKind::gelu, "gelu"},
      {UnaryKind::gelu_tanh, "gelu_tanh"}, {UnaryKind::relu, "relu"}, {UnaryKind::square, "square"},
      {UnaryKind::reciprocal, "reciprocal"}, {UnaryKind::affine, "affine"},
      {UnaryKind::pow_scalar, "pow_scalar"}, {UnaryKind::clamp, "clamp"}};
  for (auto [k, kname] : kinds) {
    const bool pos = k == UnaryKind::log || k == UnaryKind::sqrt || k == UnaryKind::rsqrt ||
                     k == UnaryKind::reciprocal || k == UnaryKind::pow_scalar;
    const float alpha = k == UnaryKind::clamp ? -0.5f : (k == UnaryKind::pow_scalar ? 1.7f : 0.75f);
    const float beta = k == UnaryKind::clamp ? 0.8f : -0.25f;
    const bool transc = k == UnaryKind::exp || k == UnaryKind::log || k == UnaryKind::sin ||
                        k == UnaryKind::cos || k == UnaryKind::tanh || k == UnaryKind::sigmoid ||
                        k == UnaryKind::silu || k == UnaryKind::gelu || k == UnaryKind::gelu_tanh ||
                        k == UnaryKind::pow_scalar || k == UnaryKind::rsqrt;
    for (DType t : kFloats) {
      for (int shape_case = 0; shape_case < 2; ++shape_case) {
        Case c;
        c.name = std::string("unary_") + kname + "_" + dtype_name(t) + (shape_case ? "_transposed" : "_odd");
        Input in{shape_case ? Shape{111, 7} : Shape{500}, t, pos ? Domain::positive : Domain::normal};
        if (shape_case) in.view = transposed;
        c.inputs = {in};
        c.run = [=](const std::vector<Tensor>& x) { return ops::unary(x[0], k, alpha, beta); };
        c.reference = [=](const std::vector<Array>& x) { return ref::unary(x[0], k, alpha, beta); };
        c.tol_dtype = t;
        c.cls = transc ? OpClass::transcendental : OpClass::elementwise;
        cs.push_back(c);
      }
    }
  }
  return cs;
}

std::vector<Case> binary_cases() {
  std::vector<Case> cs;
  const std::pair<BinaryKind, const char*> kinds[] = {
      {BinaryKind::add, "add"}, {BinaryKind::sub, "sub"}, {BinaryKind::mul, "mul"},
      {BinaryKind::div, "div"}, {BinaryKind::maximum, "maximum"}, {BinaryKind::minimum, "minimum"},
      {BinaryKind::pow, "pow"}, {BinaryKind::eq, "eq"}, {BinaryKind::lt, "lt"}, {BinaryKind::ge, "ge"}};
  for (auto [k, kname] : kinds) {
    for (DType t : kFloats) {
      Case c;
      c.name = std::string("binary_") + kname + "_" + dtype_name(t) + "_broadcast";
      const bool pos_b = k == BinaryKind::div || k == BinaryKind::pow;
      c.inputs = {Input{{7, 1, 5}, t, k == BinaryKind::pow ? Domain::positive : Domain::normal},
                  Input{{3, 1}, t, pos_b ? Domain::positive : Domain::normal}};
      c.run = [=](const std::vector<Tensor>& x) { return ops::binary(x[0], x[1], k); };
      c.reference = [=](const std::vector<Array>& x) {
        const Array r = ref::binary(x[0], x[1], k);
        return is_comparison(k) ? r : round_to(r, t);
      };
      c.tol_dtype = t;
      c.cls = k == BinaryKind::pow ? OpClass::transcendental : OpClass::exact;
      cs.push_back(c);
    }
  }
  // Non-contiguous operands of different dtypes (promotion to f32).
  Case mixed;
  mixed.name = "binary_mul_mixed_bf16_f32_strided";
  mixed.inputs = {Input{{9, 64}, DType::bf16, Domain::normal, strided},
                  Input{{32, 9}, DType::f32, Domain::normal, transposed}};
  mixed.run = [](const std::vector<Tensor>& x) { return ops::mul(x[0], x[1]); };
  mixed.reference = [](const std::vector<Array>& x) { return round_to(ref::binary(x[0], x[1], BinaryKind::mul), DType::f32); };
  mixed.cls = OpClass::exact;
  cs.push_back(mixed);
  for (DType t : {DType::i32, DType::i64}) {
    Case c;
    c.name = std::string("binary_add_") + dtype_name(t);
    c.inputs = {Input{{13, 11}, t, Domain::index, nullptr, 1000}, Input{{11}, t, Domain::index, nullptr, 1000}};
    c.run = [](const std::vector<Tensor>& x) { return ops::add(x[0], x[1]); };
    c.reference = [](const std::vector<Array>& x) { return ref::binary(x[0], x[1], BinaryKind::add); };
    c.tol_dtype = t;
    c.cls = OpClass::exact;
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> ternary_cases() {
  std::vector<Case> cs;
  for (DType t : kFloats) {
    const std::pair<TernaryKind, const char*> kinds[] = {
        {TernaryKind::where, "where"}, {TernaryKind::fma, "fma"}, {TernaryKind::lerp, "lerp"}};
    for (auto [k, kname] : kinds) {
      Case c;
      c.name = std::string("ternary_") + kname + "_" + dtype_name(t);
      Input a{{5, 1, 33}, t};
      if (k == TernaryKind::where) a = Input{{5, 1, 33}, DType::boolean, Domain::boolean};
      c.inputs = {a, Input{{4, 33}, t}, Input{{5, 4, 1}, t}};
      c.run = [=](const std::vector<Tensor>& x) { return ops::ternary(x[0], x[1], x[2], k); };
      c.reference = [=](const std::vector<Array>& x) { return ref::ternary(x[0], x[1], x[2], k); };
      c.tol_dtype = t;
      c.cls = OpClass::elementwise;
      cs.push_back(c);
    }
  }
  return cs;
}

std::vector<Case> reduce_cases() {
  std::vector<Case> cs;
  const std::pair<ReduceKind, const char*> kinds[] = {{ReduceKind::sum, "sum"},
                                                      {ReduceKind::mean, "mean"},
                                                      {ReduceKind::max, "max"},
                                                      {ReduceKind::min, "min"},
                                                      {ReduceKind::var, "var"}};
  struct Dims {
    std::vector<int> dims;
    const char* name;
    Shape shape;
    Views view;
  };
  const Dims dim_sets[] = {{{-1}, "last", {7, 111}, nullptr},
                           {{0, 2}, "outer_inner", {5, 9, 13}, nullptr},
                           {{}, "all_strided", {31, 64}, strided},
                           {{1}, "transposed", {33, 17}, transposed},
                           {{}, "all_large", {3, 1 << 16}, nullptr}};
  for (auto [k, kname] : kinds) {
    for (const Dims& ds : dim_sets) {
      for (DType t : {DType::f32, DType::bf16}) {
        Case c;
        c.name = std::string("reduce_") + kname + "_" + ds.name + "_" + dtype_name(t);
        c.inputs = {Input{ds.shape, t, Domain::normal, ds.view}};
        const std::vector<int> dims = ds.dims;
        c.run = [=](const std::vector<Tensor>& x) {
          return ops::reduce(x[0], dims, k, /*keepdim=*/true);
        };
        c.reference = [=](const std::vector<Array>& x) {
          uint32_t mask = 0;
          const int nd = x[0].shape.size();
          if (dims.empty()) mask = (1u << nd) - 1;
          for (int d : dims) mask |= 1u << (d < 0 ? d + nd : d);
          return ref::reduce(x[0], mask, k);
        };
        c.tol_dtype = t;
        c.cls = OpClass::reduction;
        cs.push_back(c);
      }
    }
  }
  for (DType t : kFloats) {
    for (int dim : {-1, 1}) {
      Case c;
      c.name = std::string("softmax_dim") + (dim < 0 ? "last" : "1") + "_" + dtype_name(t);
      c.inputs = {Input{{3, 37, 129}, t, Domain::normal, [](const Tensor& x) { return x.slice(2, 1, 128); }}};
      c.run = [=](const std::vector<Tensor>& x) { return ops::softmax(ops::affine(x[0], 4.0f, 0.0f), dim); };
      c.reference = [=](const std::vector<Array>& x) {
        return ref::softmax(ref::unary(x[0], UnaryKind::affine, 4.0, 0.0), dim < 0 ? 2 : dim);
      };
      c.tol_dtype = t;
      c.cls = OpClass::transcendental;
      cs.push_back(c);
    }
  }
  return cs;
}

std::vector<Case> matmul_cases() {
  std::vector<Case> cs;
  for (DType t : kFloats) {
    Case c;
    c.name = std::string("matmul_7x111x500_") + dtype_name(t);
    c.inputs = {Input{{7, 111}, t}, Input{{111, 500}, t}};
    c.run = [](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1]); };
    c.reference = [](const std::vector<Array>& x) { return ref::matmul(x[0], x[1]); };
    c.tol_dtype = t;
    c.cls = OpClass::matmul;
    cs.push_back(c);

    Case l;
    l.name = std::string("linear_bias_transposed_weight_") + dtype_name(t);
    l.inputs = {Input{{2, 9, 64}, t}, Input{{33, 64}, t}, Input{{33}, t}};
    l.run = [](const std::vector<Tensor>& x) { return ops::linear(x[0], x[1], x[2]); };
    l.reference = [](const std::vector<Array>& x) {
      Array wt(Shape{x[1].shape[1], x[1].shape[0]});
      for (int64_t i = 0; i < wt.shape[0]; ++i)
        for (int64_t j = 0; j < wt.shape[1]; ++j) wt.v[i * wt.shape[1] + j] = x[1].v[j * wt.shape[0] + i];
      return ref::matmul(x[0], wt, x[2]);
    };
    l.tol_dtype = t;
    l.cls = OpClass::matmul;
    cs.push_back(l);
  }
  Case b;
  b.name = "matmul_batched_broadcast_f32";
  b.inputs = {Input{{3, 1, 5, 7}, DType::f32}, Input{{4, 7, 9}, DType::f32}};
  b.run = [](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1]); };
  b.reference = [](const std::vector<Array>& x) { return ref::matmul(x[0], x[1]); };
  b.cls = OpClass::matmul;
  cs.push_back(b);
  Case tb;
  tb.name = "matmul_transposed_operands_f32";
  tb.inputs = {Input{{13, 6}, DType::f32, Domain::normal, transposed},
               Input{{2, 11, 13}, DType::f32, Domain::normal, [](const Tensor& t) { return t.transpose(1, 2); }}};
  tb.run = [](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1]); };
  tb.reference = [](const std::vector<Array>& x) { return ref::matmul(x[0], x[1]); };
  tb.cls = OpClass::matmul;
  cs.push_back(tb);
  return cs;
}

std::vector<Case> layout_cases() {
  std::vector<Case> cs;
  for (DType t : kFloats) {
    Case c;
    c.name = std::string("copy_transposed_to_contiguous_") + dtype_name(t);
    c.inputs = {Input{{17, 33, 5}, t, Domain::normal, [](const Tensor& x) { return x.permute({2, 0, 1}); }}};
    c.run = [](const std::vector<Tensor>& x) { return x[0].contiguous(); };
    c.reference = [](const std::vector<Array>& x) { return x[0]; };
    c.tol_dtype = t;
    c.cls = OpClass::exact;
    cs.push_back(c);

    Case cast;
    cast.name = std::string("copy_cast_f32_to_") + dtype_name(t);
    cast.inputs = {Input{{111, 3}, DType::f32, Domain::normal, transposed}};
    cast.run = [=](const std::vector<Tensor>& x) { return x[0].to(t); };
    cast.reference = [=](const std::vector<Array>& x) { return round_to(x[0], t); };
    cast.tol_dtype = DType::f32;
    cast.cls = OpClass::exact;
    cs.push_back(cast);

    Case cat;
    cat.name = std::string("cat_dim1_") + dtype_name(t);
    cat.inputs = {Input{{3, 5, 7}, t}, Input{{3, 1, 7}, t}, Input{{7, 3, 2}, t, Domain::normal, [](const Tensor& x) { return x.permute({1, 2, 0}); }}};
    cat.run = [](const std::vector<Tensor>& x) { return ops::cat(x, 1); };
    cat.reference = [](const std::vector<Array>& x) { return ref::concat(x, 1); };
    cat.tol_dtype = t;
    cat.cls = OpClass::exact;
    cs.push_back(cat);
  }
  const std::pair<PadMode, const char*> modes[] = {
      {PadMode::constant, "constant"}, {PadMode::reflect, "reflect"}, {PadMode::replicate, "replicate"}};
  for (auto [m, mname] : modes) {
    Case c;
    c.name = std::string("pad_") + mname;
    c.inputs = {Input{{2, 3, 6, 7}, DType::f32, Domain::normal, strided}};
    c.run = [=](const std::vector<Tensor>& x) {
      const int64_t pads[] = {1, 2, 3, 0, 0, 1};
      return ops::pad(x[0], pads, m, 0.5f);
    };
    c.reference = [=](const std::vector<Array>& x) {
      PadParams p;
      p.mode = m;
      p.value = 0.5f;
      p.before[3] = 1; p.after[3] = 2;
      p.before[2] = 3; p.after[2] = 0;
      p.before[1] = 0; p.after[1] = 1;
      return ref::pad(x[0], p);
    };
    c.cls = OpClass::exact;
    cs.push_back(c);
  }
  Case rep;
  rep.name = "repeat_2x1x3";
  rep.inputs = {Input{{5, 3}, DType::bf16}};
  rep.run = [](const std::vector<Tensor>& x) {
    const int64_t r[] = {2, 1, 3};
    return ops::repeat(x[0], r);
  };
  rep.reference = [](const std::vector<Array>& x) {
    Array y(Shape{2, 5, 9});
    int64_t idx[3] = {};
    int64_t i = 0;
    do {
      const int64_t src[2] = {idx[1] % 5, idx[2] % 3};
      y.v[i++] = x[0].at(src, 2);
    } while (ref::next_index(y.shape, idx));
    return y;
  };
  rep.tol_dtype = DType::bf16;
  rep.cls = OpClass::exact;
  cs.push_back(rep);

  Case is;
  is.name = "index_select_dim0_embedding";
  is.inputs = {Input{{50, 16}, DType::bf16}, Input{{77}, DType::i64, Domain::index, nullptr, 50}};
  is.run = [](const std::vector<Tensor>& x) { return ops::index_select(x[0], 0, x[1]); };
  is.reference = [](const std::vector<Array>& x) {
    std::vector<int64_t> idx(x[1].v.begin(), x[1].v.end());
    return ref::index_select(x[0], 0, idx);
  };
  is.tol_dtype = DType::bf16;
  is.cls = OpClass::exact;
  cs.push_back(is);

  Case g;
  g.name = "gather_dim1_i32_index";
  g.inputs = {Input{{4, 9, 6}, DType::f32, Domain::normal, transposed}, Input{{9, 5, 6}, DType::i32, Domain::index, nullptr, 4}};
  g.run = [](const std::vector<Tensor>& x) { return ops::gather(x[0], 1, x[1]); };
  g.reference = [](const std::vector<Array>& x) { return ref::gather(x[0], 1, x[1]); };
  g.cls = OpClass::exact;
  cs.push_back(g);
  return cs;
}

std::vector<Case> conv_cases() {
  std::vector<Case> cs;
  struct Conv2d {
    const char* name;
    Shape x, w;
    ops::ConvOptions o;
    bool bias;
  };
  const Conv2d convs[] = {
      {"conv2d_3x3_pad1_bias", {2, 5, 11, 9}, {7, 5, 3, 3}, {{1}, {1}, {1}, 1}, true},
      {"conv2d_stride2_dilation2", {1, 4, 13, 12}, {6, 4, 3, 3}, {{2}, {2, 1}, {2}, 1}, false},
      {"conv2d_groups2_1x1", {1, 6, 5, 5}, {4, 3, 1, 1}, {{1}, {0}, {1}, 2}, true},
  };
  for (const Conv2d& cv : convs) {
    for (DType t : {DType::f32, DType::bf16}) {
      Case c;
      c.name = std::string(cv.name) + "_" + dtype_name(t);
      c.inputs = {Input{cv.x, t}, Input{cv.w, t}};
      if (cv.bias) c.inputs.push_back(Input{{cv.w[0]}, t});
      const ops::ConvOptions o = cv.o;
      c.run = [=](const std::vector<Tensor>& x) {
        return ops::conv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), o);
      };
      c.reference = [=](const std::vector<Array>& x) {
        ConvParams p;
        p.spatial = 2;
        p.groups = o.groups;
        for (int i = 0; i < 2; ++i) {
          p.stride[i] = o.stride.size() == 1 ? o.stride[0] : o.stride[i];
          p.padding[i] = o.padding.size() == 1 ? o.padding[0] : o.padding[i];
          p.dilation[i] = o.dilation.size() == 1 ? o.dilation[0] : o.dilation[i];
        }
        return ref::conv(x[0], x[1], x.size() > 2 ? x[2] : Array(), p);
      };
      c.tol_dtype = t;
      c.cls = OpClass::matmul;
      cs.push_back(c);
    }
  }
  Case c3;
  c3.name = "conv3d_3x3x3_pad1_bias_f32";
  c3.inputs = {Input{{1, 3, 5, 6, 7}, DType::f32}, Input{{4, 3, 3, 3, 3}, DType::f32}, Input{{4}, DType::f32}};
  c3.run = [](const std::vector<Tensor>& x) { return ops::conv3d(x[0], x[1], x[2], {{1}, {1}, {1}, 1}); };
  c3.reference = [](const std::vector<Array>& x) {
    ConvParams p;
    p.spatial = 3;
    p.padding[0] = p.padding[1] = p.padding[2] = 1;
    return ref::conv(x[0], x[1], x[2], p);
  };
  c3.cls = OpClass::matmul;
  cs.push_back(c3);
  return cs;
}

std::vector<Case> interpolate_cases() {
  std::vector<Case> cs;
  struct Interp {
    const char* name;
    InterpolateMode mode;
    bool align;
    int64_t oh, ow;
    double sf;
  };
  const Interp its[] = {{"nearest_x2", InterpolateMode::nearest, false, 14, 18, 2.0},
                        {"nearest_odd", InterpolateMode::nearest, false, 11, 5, 0.0},
                        {"nearest_exact_odd", InterpolateMode::nearest_exact, false, 11, 5, 0.0},
                        {"bilinear", InterpolateMode::bilinear, false, 13, 20, 0.0},
                        {"bilinear_align_corners", InterpolateMode::bilinear, true, 13, 20, 0.0},
                        {"bilinear_down", InterpolateMode::bilinear, false, 3, 4, 0.0}};
  for (const Interp& it : its) {
    for (DType t : {DType::f32, DType::bf16}) {
      Case c;
      c.name = std::string("interpolate_") + it.name + "_" + dtype_name(t);
      c.inputs = {Input{{2, 3, 7, 9}, t}};
      c.run = [=](const std::vector<Tensor>& x) {
        return ops::interpolate(x[0], it.oh, it.ow, it.mode, it.align, it.sf, it.sf);
      };
      c.reference = [=](const std::vector<Array>& x) {
        InterpolateParams p;
        p.mode = it.mode;
        p.align_corners = it.align;
        p.scale_h = p.scale_w = it.sf > 0 ? 1.0 / it.sf : 0.0;
        return ref::interpolate(x[0], it.oh, it.ow, p);
      };
      c.tol_dtype = t;
      c.cls = OpClass::reduction;  // a weighted sum of up to 4 taps
      cs.push_back(c);
    }
  }
  return cs;
}

std::vector<Case> random_cases() {
  std::vector<Case> cs;
  for (RandomKind k : {RandomKind::normal, RandomKind::uniform}) {
    for (DType t : kFloats) {
      Case c;
      c.name = std::string("random_") + (k == RandomKind::normal ? "normal_" : "uniform_") + dtype_name(t);
      c.inputs = {Input{{1}, DType::f32}};
      c.run = [=](const std::vector<Tensor>& x) {
        const Device d = x[0].device();
        return k == RandomKind::normal ? ops::randn({3, 333}, 42, 5, t, d)
                                       : ops::rand({3, 333}, 42, 5, -2.0f, 3.0f, t, d);
      };
      c.reference = [=](const std::vector<Array>&) {
        RandomParams p{k, 42, 5, k == RandomKind::normal ? 0.0f : -2.0f, k == RandomKind::normal ? 1.0f : 3.0f};
        return ref::random({3, 333}, p);
      };
      c.tol_dtype = t;
      c.cls = OpClass::transcendental;
      cs.push_back(c);
    }
  }
  return cs;
}

// Degenerate extents: size-1 dims everywhere, length-1 reductions and softmax, 1x1x1 GEMM.
std::vector<Case> unit_extent_cases() {
  std::vector<Case> cs;
  Case u;
  u.name = "unit_silu_1x1x1";
  u.inputs = {Input{{1, 1, 1}, DType::bf16}};
  u.run = [](const std::vector<Tensor>& x) { return ops::silu(x[0]); };
  u.reference = [](const std::vector<Array>& x) { return ref::unary(x[0], UnaryKind::silu); };
  u.tol_dtype = DType::bf16;
  u.cls = OpClass::transcendental;
  cs.push_back(u);
  Case r;
  r.name = "unit_var_over_size1_dim_is_nan";
  r.inputs = {Input{{7, 1}, DType::f32}};
  r.run = [](const std::vector<Tensor>& x) { return ops::var(x[0], {1}, 1, true); };
  r.reference = [](const std::vector<Array>& x) { return ref::reduce(x[0], 2u, ReduceKind::var); };
  r.cls = OpClass::reduction;
  cs.push_back(r);
  Case sm;
  sm.name = "unit_softmax_length1";
  sm.inputs = {Input{{5, 1}, DType::f32}};
  sm.run = [](const std::vector<Tensor>& x) { return ops::softmax(x[0], 1); };
  sm.reference = [](const std::vector<Array>& x) { return ref::softmax(x[0], 1); };
  sm.cls = OpClass::transcendental;
  cs.push_back(sm);
  Case m;
  m.name = "unit_matmul_1x1x1_vector";
  m.inputs = {Input{{1}, DType::f32}, Input{{1, 1}, DType::f32}};
  m.run = [](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1]).view({1, 1}); };
  m.reference = [](const std::vector<Array>& x) {
    Array a = x[0];
    a.shape = Shape{1, 1};
    return ref::matmul(a, x[1]);
  };
  m.cls = OpClass::matmul;
  cs.push_back(m);
  return cs;
}

std::vector<Case> all_cases() {
  std::vector<Case> all;
  for (auto gen : {unary_cases, binary_cases, ternary_cases, reduce_cases, matmul_cases,
                   layout_cases, conv_cases, interpolate_cases, random_cases,
                   unit_extent_cases}) {
    for (Case& c : gen()) all.push_back(std::move(c));
  }
  return all;
}

MINDIESD_HARNESS_SUITE(AllOps, OpHarness, all_cases);

// Every op in the closed list has at least one case above and a CPU kernel.
TEST(OpHarness, EveryOpHasACpuKernel) {
  Backend& cpu = backend_for(Device::cpu());
  for (int i = 0; i < kNumOps; ++i) {
    const OpId op = static_cast<OpId>(i);
    bool any = false;
    // (int8 codes: the quant family's GEMM and dequantization)
    for (DType t : {DType::f32, DType::bf16, DType::i8}) {
      const DType ts[] = {t, DType::i64};
      any |= cpu.supports(op, std::span<const DType>(ts, op == OpId::index_select || op == OpId::gather ? 2 : 1));
    }
    EXPECT_TRUE(any || op == OpId::fill || op == OpId::random) << op_name(op);
  }
}

}  // namespace
}  // namespace mindiesd::test
