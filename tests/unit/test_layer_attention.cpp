// Attention layers against the float64 reference: layouts, GQA/MQA, cross-attention, masks,
// causal, varlen, dtypes; and the argument errors users hit.
#include <gtest/gtest.h>

#include <cmath>

#include "harness.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/kernel/ref/attention.h"
#include "mindiesd/layer/attention.h"
#if defined(MINDIESD_CUDA)
#include <cuda_runtime_api.h>

#include "mindiesd/core/backend.h"
#include "mindiesd/kernel/cuda/cuda_backend.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "tolerance.h"
#endif

namespace mindiesd::test {
namespace {

// Array permutation: out dim i takes in dim order[i].
Array permute(const Array& a, std::initializer_list<int> order) {
  const std::vector<int> ord(order);
  Shape s;
  for (int d : ord) s.push_back(a.shape[d]);
  Array out(s);
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  if (out.numel() == 0) return out;
  do {
    int64_t src[kMaxDims];
    for (size_t d = 0; d < ord.size(); ++d) src[ord[d]] = idx[d];
    out.v[i++] = a.at(src, a.shape.size());
  } while (ref::next_index(s, idx));
  return out;
}

Array reshape(Array a, const Shape& s) {
  a.shape = s;
  return a;
}

struct Dense {
  std::string name;
  int64_t b, hq, hkv, sq, sk, d, dv;
  std::string layout = "BNSD";
  bool causal = false;
  int mask = 0;  // 0 none, 1 bool (B, 1, Sq, Sk), 2 additive (Sq, Sk)
  std::optional<float> scale;
};

Case dense_case(const Dense& t, DType dt) {
  Case c;
  c.name = "attention_" + t.name + "_" + dtype_name(dt);
  auto shape_of = [&](int64_t h, int64_t s, int64_t d) {
    if (t.layout == "BNSD") return Shape{t.b, h, s, d};
    if (t.layout == "BSND") return Shape{t.b, s, h, d};
    return Shape{t.b, s, h * d};
  };
  c.inputs = {Input{shape_of(t.hq, t.sq, t.d), dt}, Input{shape_of(t.hkv, t.sk, t.d), dt},
              Input{shape_of(t.hkv, t.sk, t.dv), dt}};
  if (t.mask == 1) c.inputs.push_back(Input{{t.b, 1, t.sq, t.sk}, DType::boolean, Domain::boolean});
  if (t.mask == 2) c.inputs.push_back(Input{{t.sq, t.sk}, DType::f32});
  c.run = [=](const std::vector<Tensor>& x) {
    layer::AttentionOptions o;
    o.causal = t.causal;
    o.scale = t.scale;
    o.head_num = t.hq;
    o.kv_head_num = t.hkv;
    return layer::attention_forward(x[0], x[1], x[2], x.size() > 3 ? x[3] : Tensor(), t.layout, o);
  };
  c.reference = [=](const std::vector<Array>& x) {
    auto bnsd = [&](const Array& a, int64_t h, int64_t s, int64_t d) {
      if (t.layout == "BNSD") return a;
      if (t.layout == "BSND") return permute(a, {0, 2, 1, 3});
      return permute(reshape(a, Shape{t.b, s, h, d}), {0, 2, 1, 3});
    };
    const Array o =
        ref::attention(bnsd(x[0], t.hq, t.sq, t.d), bnsd(x[1], t.hkv, t.sk, t.d),
                       bnsd(x[2], t.hkv, t.sk, t.dv), x.size() > 3 ? x[3] : Array(), t.mask == 1,
                       t.scale ? *t.scale : 1.0 / std::sqrt(double(t.d)), t.causal);
    if (t.layout == "BNSD") return o;
    const Array s = permute(o, {0, 2, 1, 3});
    return t.layout == "BSND" ? s : reshape(s, Shape{t.b, t.sq, t.hq * t.dv});
  };
  c.tol_dtype = dt;
  c.cls = OpClass::attention;
  return c;
}

std::vector<Case> attention_cases() {
  // Trailing fields keep their defaults.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
  const Dense shapes[] = {
      {"bnsd_odd", 2, 3, 3, 7, 111, 64, 64},
      {"bsnd_multiblock", 1, 2, 2, 130, 300, 128, 128, "BSND"},
      {"bsh_gqa", 2, 6, 2, 33, 65, 32, 32, "BSH"},
      {"mqa_cross_dv", 1, 4, 1, 37, 77, 64, 40, "BSND"},
      {"single_token", 1, 1, 1, 1, 1, 16, 16},
      {"bool_mask", 2, 2, 2, 19, 70, 64, 64, "BNSD", false, 1},
      {"additive_mask_scale", 1, 2, 2, 19, 70, 48, 48, "BSND", false, 2, 0.3f},
      {"causal_square", 1, 2, 2, 150, 150, 64, 64, "BNSD", true},
      {"causal_kv_longer", 1, 2, 1, 40, 100, 64, 64, "BSND", true},
      {"head_dim_80", 1, 2, 2, 9, 21, 80, 80, "BSND"},
  };
#pragma GCC diagnostic pop
  std::vector<Case> cs;
  for (const Dense& s : shapes)
    for (DType dt : kFloats) cs.push_back(dense_case(s, dt));
  return cs;
}

MINDIESD_HARNESS_SUITE(Layer, AttentionHarness, attention_cases);

TEST(Attention, FullyMaskedRowsAreZero) {
  const Tensor q = ops::randn({1, 1, 3, 16}, 1), k = ops::randn({1, 1, 5, 16}, 2),
               v = ops::randn({1, 1, 5, 16}, 3);
  std::vector<float> m(15, 1.0f);
  for (int j = 0; j < 5; ++j) m[5 + j] = 0.0f;  // row 1 sees nothing
  const Tensor mask = Tensor::from_vector(m, {3, 5}, DType::boolean);
  const std::vector<float> out = layer::attention_forward(q, k, v, mask, "BNSD").to_vector();
  for (int t = 0; t < 16; ++t) {
    EXPECT_EQ(out[16 + t], 0.0f);
    EXPECT_TRUE(std::isfinite(out[t]) && std::isfinite(out[32 + t]));
  }
}

TEST(Attention, VarlenMatchesPerSequenceDense) {
  // Four sequences including an empty one; causal, GQA.
  const std::vector<float> cu_q{0, 5, 5, 70, 133}, cu_k{0, 9, 9, 70, 200};
  const Tensor q = ops::randn({133, 4, 64}, 11).to(DType::bf16);
  const Tensor k = ops::randn({200, 2, 64}, 12).to(DType::bf16);
  const Tensor v = ops::randn({200, 2, 64}, 13).to(DType::bf16);
  const Tensor out =
      layer::attention_forward_varlen(q, k, v, Tensor::from_vector(cu_q, {5}, DType::i32),
                                      Tensor::from_vector(cu_k, {5}, DType::i64),
                                      /*causal=*/true);
  ASSERT_EQ(out.shape(), (Shape{133, 4, 64}));
  for (int b = 0; b < 4; ++b) {
    const int64_t q0 = cu_q[b], q1 = cu_q[b + 1], k0 = cu_k[b], k1 = cu_k[b + 1];
    if (q1 == q0) continue;
    auto bnsd = [](const Tensor& t, int64_t a, int64_t e) {
      return ref::from_tensor(t.slice(0, a, e).permute({1, 0, 2}).unsqueeze(0));
    };
    const Array want = ref::attention(bnsd(q, q0, q1), bnsd(k, k0, k1), bnsd(v, k0, k1), Array(),
                                      false, 1.0 / 8.0, true);
    compare(ref::from_tensor(out.slice(0, q0, q1).permute({1, 0, 2}).unsqueeze(0)), want,
            tolerance(DType::bf16, OpClass::matmul), "varlen sequence " + std::to_string(b));
  }
}

template <typename F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected InvalidArgument mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Attention, BadArgumentsNameTheProblem) {
  const Tensor q = Tensor::zeros({1, 4, 2, 8}, DType::f32);
  const Tensor k = Tensor::zeros({1, 4, 2, 8}, DType::f32);
  expect_invalid([&] { (void)layer::attention_forward(q, k, k, Tensor(), "NCHW"); }, "NCHW");
  expect_invalid(
      [&] {
        (void)layer::attention_forward(q, Tensor::zeros({1, 5, 2, 7}, DType::f32),
                                       Tensor::zeros({1, 5, 2, 7}, DType::f32));
      },
      "head_dim");
  expect_invalid(
      [&] {
        (void)layer::attention_forward(q, k, Tensor::zeros({1, 3, 2, 8}, DType::f32));
      },
      "sequence length and heads");
  expect_invalid(
      [&] {
        (void)layer::attention_forward(q, Tensor::zeros({1, 2, 3, 8}, DType::f32),
                                       Tensor::zeros({1, 2, 3, 8}, DType::f32));
      },
      "not a multiple");
  expect_invalid(
      [&] {
        (void)layer::attention_forward(q, k, k, Tensor::zeros({3, 2}, DType::boolean));
      },
      "mask: shapes (3, 2)");
  expect_invalid(
      [&] {
        (void)layer::attention_forward(q.view({1, 4, 16}), k.view({1, 4, 16}), k.view({1, 4, 16}),
                                       Tensor(), "BSH");
      },
      "head_num");
  const Tensor pq = Tensor::zeros({6, 2, 8}, DType::f32);
  auto cu = [](std::vector<float> v) {
    return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, DType::i32);
  };
  expect_invalid(
      [&] {
        (void)layer::attention_forward_varlen(pq, pq, pq, cu({0, 4, 3, 6}), cu({0, 2, 4, 6}));
      },
      "non-decreasing");
  expect_invalid(
      [&] {
        (void)layer::attention_forward_varlen(pq, pq, pq, cu({0, 2, 5}), cu({0, 2, 6}));
      },
      "ends at 5");
  expect_invalid(
      [&] {
        (void)layer::attention_forward_varlen(pq, pq, pq, cu({1, 6}), cu({0, 6}));
      },
      "start at 0");
}

#if defined(MINDIESD_CUDA)

// The op takes cuDNN's fused attention first where it can, so the harness above sees mostly
// cuDNN on a GPU; each tensor-core path is checked here on its own: cuDNN's, and the flash
// kernel with both block shapes, against the CPU on the same 16-bit inputs.
TEST(CudaAttentionPaths, CudnnAndFlashKernelsMatchTheCpu) {
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  struct Shape4 {
    int64_t b, hq, hkv, sq, sk, d;
    bool causal;
    DType dt;
  };
  const Shape4 shapes[] = {{1, 4, 4, 200, 200, 64, false, DType::bf16},
                           {2, 3, 3, 130, 130, 128, true, DType::f16},
                           {1, 4, 2, 77, 150, 128, false, DType::bf16},
                           {1, 2, 2, 64, 300, 128, true, DType::bf16}};
  Backend& gpu = *find_backend(DeviceType::CUDA);
  Stream& stream = gpu.default_stream(0);
  const auto s = static_cast<cudaStream_t>(stream.native());
  for (const Shape4& p : shapes) {
    const Tensor q = ops::randn({p.b, p.hq, p.sq, p.d}, 1, 0, p.dt);
    const Tensor k = ops::randn({p.b, p.hkv, p.sk, p.d}, 2, 0, p.dt);
    const Tensor v = ops::randn({p.b, p.hkv, p.sk, p.d}, 3, 0, p.dt);
    layer::AttentionOptions o;
    o.causal = p.causal;
    const Tensor want = layer::attention_forward(q, k, v, Tensor(), "BNSD", o);
    const Tensor qg = q.to(Device::cuda()), kg = k.to(Device::cuda()), vg = v.to(Device::cuda());
    // out is shaped and laid out like q; its pointer is set per path below.
    cuda::FlashArgs a =
        cuda::flash_args(qg, kg, vg, qg, 1.0f / std::sqrt(static_cast<float>(p.d)), p.causal);
    const Tolerance tol = tolerance(p.dt, OpClass::attention);
    const std::string what = str_cat(dtype_name(p.dt), " ", p.b, "x", p.hq, "/", p.hkv, "x", p.sq,
                                     "x", p.sk, "x", p.d, p.causal ? " causal" : "");
    auto check = [&](const Tensor& got, const std::string& path) {
      const std::vector<float> g = got.to_vector(), w = want.to_vector();
      int64_t bad = 0;
      for (size_t i = 0; i < g.size(); ++i)
        bad += !(std::fabs(g[i] - w[i]) <= tol.atol + tol.rtol * std::fabs(w[i]));
      EXPECT_EQ(bad, 0) << path << " on " << what;
    };
    for (int warps : {4, 8}) {
      const Tensor out = Tensor::empty(q.shape(), p.dt, Device::cuda());
      a.out = out.data_ptr();
      a.block_warps = warps;
      ASSERT_TRUE(cuda::flash_attention_supported(p.dt, p.d, p.d, a)) << what;
      ASSERT_EQ(cuda::launch_flash_attention(p.dt, p.d, a, s), cudaSuccess) << what;
      check(out, str_cat("flash kernel, ", warps, " warps"));
    }
    const Tensor out = Tensor::empty(q.shape(), p.dt, Device::cuda());
    a.out = out.data_ptr();
    std::string why;
    const bool took = cuda::launch_cudnn_attention(p.dt, p.d, a, 0, s, gpu.allocator(0),
                                                   cuda::stream_key(stream), &why);
#if defined(MINDIESD_CUDNN_FRONTEND)
    EXPECT_TRUE(took) << "cuDNN refused " << what << ": " << why;
#endif
    if (took) check(out, "cuDNN");
  }
}

#endif  // MINDIESD_CUDA

}  // namespace
}  // namespace mindiesd::test
