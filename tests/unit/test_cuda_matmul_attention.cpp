// CUDA matmul (cuBLASLt) and attention (flash + generic kernels) against the CPU backend at the
// shapes and layouts DiT models use: transposed weights with bias and GELU epilogues, batched
// broadcast products, BSND views, GQA, causal masks, lengths that are not multiples of a tile,
// and both attention kernels called directly so the tensor-core path is known to have run.
// The harness suites (test_ops, test_layer_*) cover the small odd cases against float64.
//
// Skips itself without a CUDA device (CI); runs in scripts/gpu-check.sh on a GPU.
#include <gtest/gtest.h>

#include <string>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/layer/attention.h"
#include "parity/parity.h"
#if defined(MINDIESD_CUDA)
#include "mindiesd/kernel/cuda/attention.h"
#include "mindiesd/kernel/cuda/cuda_backend.h"
#endif

namespace mindiesd::test {
namespace {

#if defined(MINDIESD_CUDA)

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda::visible_device_count(&why) < 1 || find_backend(DeviceType::CUDA) == nullptr)
      GTEST_SKIP() << "no CUDA device: " << why;
  }
  static Tensor gpu(const Tensor& t) { return t.to(Device::cuda()); }
  static Tensor cpu(const Tensor& t) { return t.to(Device::cpu()); }
};

Tensor randn(const Shape& s, uint64_t seed, DType t, float scale = 1.0f) {
  return ops::affine(ops::randn(s, seed), scale, 0.0f).to(t);
}

// bf16 results differ from the CPU's by rounding order only: a few bf16 ulps of the values'
// magnitude. f32: cuBLASLt in true f32 (no TF32) differs by summation order.
double tol_for(DType t, double magnitude) { return t == DType::f32 ? 2e-5 * magnitude : 2e-2 * magnitude; }

TEST_F(CudaOps, LinearWithBiasAndEpiloguesMatchesCpu) {
  // x (B, S, K) @ W^T + b with W (N, K): the TN layout, no copy on either side.
  for (DType t : {DType::f32, DType::bf16, DType::f16}) {
    const Tensor x = randn({2, 77, 320}, 1, t), w = randn({200, 320}, 2, t, 0.05f);
    const Tensor b = randn({200}, 3, t);
    for (int act = 0; act < 4; ++act) {
      MatmulParams p;
      p.has_activation = act > 0;
      p.activation = act == 1 ? UnaryKind::gelu_tanh : act == 2 ? UnaryKind::gelu : UnaryKind::silu;
      auto run = [&](Device d) {
        const Tensor xd = x.to(d), wd = w.to(d), bd = b.to(d);
        Tensor out = Tensor::empty({2, 77, 200}, t, d);
        const Tensor a = xd, bt = wd.transpose(0, 1).unsqueeze(0);
        const Tensor in[] = {a, bt, bd};
        dispatch(OpId::matmul, in, {&out, 1}, &p);
        return cpu(out);
      };
      const std::string name = std::string("linear ") + dtype_name(t) + " act " + std::to_string(act);
      expect_close(run(Device::cuda()), run(Device::cpu()), tol_for(t, 4.0), 0.9999, name);
    }
  }
}

TEST_F(CudaOps, BatchedBroadcastAndStridedMatmulMatchesCpu) {
  for (DType t : {DType::f32, DType::bf16}) {
    // (3, 1, 65, 40) @ (1, 4, 40, 33): batch dims broadcast both ways.
    const Tensor a = randn({3, 1, 65, 40}, 4, t), b = randn({1, 4, 40, 33}, 5, t);
    expect_close(cpu(ops::matmul(gpu(a), gpu(b))), ops::matmul(a, b), tol_for(t, 8.0), 0.9999,
                 std::string("broadcast batch ") + dtype_name(t));
    // A transposed view on the left, a column slice on the right, an f32 output from bf16.
    const Tensor at = randn({2, 50, 96}, 6, t).transpose(1, 2);  // (2, 96, 50), dense columns
    const Tensor bs = randn({2, 50, 70}, 7, t).slice(2, 0, 64);  // (2, 50, 64), row stride 70
    const Tensor want = ops::matmul(at, bs, Tensor(), DType::f32);
    const Tensor got = cpu(ops::matmul(gpu(at), gpu(bs), Tensor(), DType::f32));
    expect_close(got, want, tol_for(DType::f32, 8.0) + (t == DType::f32 ? 0 : 1e-3), 0.9999999,
                 std::string("strided views -> f32 ") + dtype_name(t));
  }
  // Mixed dtypes compute in f32, as on the CPU.
  const Tensor a = randn({31, 17}, 8, DType::bf16), b = randn({17, 9}, 9, DType::f32);
  expect_close(cpu(ops::matmul(gpu(a), gpu(b))), ops::matmul(a, b), 1e-4, 0.9999999, "mixed");
}

// q, k, v as BSND tensors viewed as (B, H, S, D), the layout the DiT blocks produce.
struct Qkv {
  Tensor q, k, v;
};
Qkv make_qkv(int64_t b, int64_t hq, int64_t hkv, int64_t sq, int64_t sk, int64_t d, DType t) {
  return {randn({b, sq, hq, d}, 11, t).permute({0, 2, 1, 3}),
          randn({b, sk, hkv, d}, 12, t).permute({0, 2, 1, 3}),
          randn({b, sk, hkv, d}, 13, t).permute({0, 2, 1, 3})};
}

Tensor run_attention(const Qkv& x, Device d, bool causal, const Tensor& mask = Tensor()) {
  const Tensor q = x.q.to(d), k = x.k.to(d), v = x.v.to(d);
  Tensor out = Tensor::empty({q.size(0), q.size(1), q.size(2), v.size(3)}, q.dtype(), d);
  AttentionParams p;
  p.scale = 1.0f / std::sqrt(static_cast<float>(q.size(3)));
  p.causal = causal;
  std::vector<Tensor> in = {q, k, v};
  if (mask.defined()) in.push_back(mask.to(d).expand({q.size(0), q.size(1), q.size(2), k.size(2)}));
  dispatch(OpId::attention, in, {&out, 1}, &p);
  return out.to(Device::cpu());
}

TEST_F(CudaOps, FlashAttentionMatchesCpu) {
  struct Shape6 {
    int64_t b, hq, hkv, sq, sk, d;
  };
  // FLUX-like (joint 4096 + 512 scaled down), odd lengths, GQA, Sq != Sk.
  const Shape6 shapes[] = {{1, 4, 4, 320, 320, 128}, {2, 4, 2, 200, 333, 128},
                           {1, 6, 3, 129, 64, 64},   {2, 2, 2, 1, 77, 64}};
  for (DType t : {DType::bf16, DType::f16}) {
    for (const Shape6& s : shapes) {
      const Qkv x = make_qkv(s.b, s.hq, s.hkv, s.sq, s.sk, s.d, t);
      for (bool causal : {false, true}) {
        // The CUDA dispatch must have taken the tensor-core kernel for these.
        cuda::FlashArgs fa{};
        fa.q = x.q.data_ptr();  // host pointers: only the alignment / stride checks matter here
        fa.k = x.k.data_ptr();
        fa.v = x.v.data_ptr();
        fa.out = x.q.data_ptr();
        for (int i = 0; i < 3; ++i) {
          fa.q_stride[i] = x.q.stride(i);
          fa.k_stride[i] = x.k.stride(i);
          fa.v_stride[i] = x.v.stride(i);
          fa.o_stride[i] = x.q.stride(i);
        }
        fa.batch = s.b;
        fa.hq = s.hq;
        fa.hkv = s.hkv;
        fa.sq = s.sq;
        fa.sk = s.sk;
        EXPECT_TRUE(cuda::flash_attention_supported(t, s.d, s.d, fa));
        const std::string name = std::string("flash ") + dtype_name(t) + " b" + std::to_string(s.b) +
                                 " h" + std::to_string(s.hq) + "/" + std::to_string(s.hkv) + " s" +
                                 std::to_string(s.sq) + "x" + std::to_string(s.sk) + " d" +
                                 std::to_string(s.d) + (causal ? " causal" : "");
        expect_close(run_attention(x, Device::cuda(), causal), run_attention(x, Device::cpu(), causal),
                     3e-2, 0.9999, name);
      }
    }
  }
}

TEST_F(CudaOps, GenericAttentionWithMasksMatchesCpu) {
  // f32, head dims the flash kernel does not take, boolean and additive masks.
  const Qkv x = make_qkv(2, 3, 1, 45, 70, 40, DType::f32);
  const Tensor keep = ops::binary(ops::randn({2, 1, 45, 70}, 21), ops::full({1}, -0.3), BinaryKind::gt);
  expect_close(run_attention(x, Device::cuda(), false, keep), run_attention(x, Device::cpu(), false, keep),
               1e-5, 0.9999999, "generic f32 bool mask");
  const Tensor bias = ops::randn({1, 3, 45, 70}, 22);
  expect_close(run_attention(x, Device::cuda(), true, bias), run_attention(x, Device::cpu(), true, bias),
               1e-5, 0.9999999, "generic f32 float mask causal");
  const Qkv y = make_qkv(1, 2, 2, 33, 50, 200, DType::bf16);
  expect_close(run_attention(y, Device::cuda(), false), run_attention(y, Device::cpu(), false), 3e-2,
               0.9999, "generic bf16 d200");
}

TEST_F(CudaOps, VarlenAttentionMatchesCpu) {
  const Tensor q = randn({150, 4, 64}, 31, DType::bf16), k = randn({170, 2, 64}, 32, DType::bf16);
  const Tensor v = randn({170, 2, 64}, 33, DType::bf16);
  const Tensor cq = Tensor::from_vector(std::vector<float>{0, 60, 61, 150}, {4}, DType::i32);
  const Tensor ck = Tensor::from_vector(std::vector<float>{0, 100, 101, 170}, {4}, DType::i32);
  const Tensor want = layer::attention_forward_varlen(q, k, v, cq, ck, true);
  const Tensor got = cpu(layer::attention_forward_varlen(gpu(q), gpu(k), gpu(v), gpu(cq), gpu(ck), true));
  expect_close(got, want, 3e-2, 0.9999, "varlen bf16 causal");
}

#endif  // MINDIESD_CUDA

}  // namespace
}  // namespace mindiesd::test
