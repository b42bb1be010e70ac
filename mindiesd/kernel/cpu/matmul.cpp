// Batched matrix multiply (f32 accumulation), batch dims broadcast where one side has size 1.
//
// With oneDNN (MINDIESD_CPU_DEPS): its matmul primitive; bf16 runs on the AVX-512 BF16 / AMX
// paths where the CPU has them. Strided operands are described to oneDNN as they are, so
// transposed views (x @ W^T in linear layers) need no copy; oneDNN's primitive cache makes
// re-creating the primitive for a seen shape cheap.
// Without it: mindiesd's own packed GEMM (gemm.h), epilogues applied to its f32 result.
#if MINDIESD_CPU_DEPS
#include <oneapi/dnnl/dnnl.hpp>

#include "mindiesd/kernel/cpu/dnnl_util.h"
#else
#include "mindiesd/core/ops.h"
#include "mindiesd/kernel/cpu/gemm.h"
#endif
#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cpu/kernels.h"

namespace mindiesd::cpu {

namespace {

#if MINDIESD_CPU_DEPS
// The oneDNN eltwise algorithm of a GEMM epilogue activation (silu = swish with alpha 1).
dnnl::algorithm dnnl_eltwise(UnaryKind k) {
  switch (k) {
    case UnaryKind::gelu: return dnnl::algorithm::eltwise_gelu_erf;
    case UnaryKind::gelu_tanh: return dnnl::algorithm::eltwise_gelu_tanh;
    case UnaryKind::silu: return dnnl::algorithm::eltwise_swish;
    case UnaryKind::relu: return dnnl::algorithm::eltwise_relu;
    default: MINDIESD_THROW(Unsupported, "matmul epilogue activation ", static_cast<int>(k));
  }
}

// oneDNN needs one of the two matrix dims to be unit-stride; anything else is copied.
Tensor matrix_operand(const Tensor& t) {
  const int n = t.dim();
  if (t.stride(n - 1) == 1 || t.stride(n - 2) == 1) return t;
  return t.contiguous();
}

void matmul_kernel(const OpCall& c) {
  const float alpha = c.params ? c.p<MatmulParams>().alpha : 1.0f;
  Tensor a = c.inputs[0], b = c.inputs[1];
  const Tensor bias = c.inputs.size() > 2 ? c.inputs[2] : Tensor();
  const Tensor& out = c.outputs[0];
  // oneDNN on this class of CPU has no f16 matmul; compute f16 through f32.
  const DType compute = a.dtype() == DType::bf16 && b.dtype() == DType::bf16 ? DType::bf16 : DType::f32;
  a = matrix_operand(a.to(compute));
  b = matrix_operand(b.to(compute));
  Tensor dst = out;
  const bool dst_direct = (out.dtype() == DType::f32 || out.dtype() == compute) &&
                          (out.stride(-1) == 1 || out.stride(-2) == 1);
  if (!dst_direct) dst = Tensor::empty(out.shape(), DType::f32);

  const dnnl::engine& eng = dnnl_engine();
  dnnl::memory::desc a_md = dnnl_desc(a), b_md = dnnl_desc(b), d_md = dnnl_desc(dst);
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (c.params && c.p<MatmulParams>().has_activation) {
    dnnl::post_ops po;
    // alpha is relu's negative slope (0) and swish's sigmoid scale (1).
    const UnaryKind a = c.p<MatmulParams>().activation;
    po.append_eltwise(1.0f, dnnl_eltwise(a), a == UnaryKind::relu ? 0.0f : 1.0f, 0.0f);
    attr.set_post_ops(po);
  }
  dnnl::matmul::primitive_desc pd;
  dnnl::memory::desc bias_md;
  Tensor bias_c;
  if (bias.defined()) {
    bias_c = bias.to(DType::f32).contiguous();
    dnnl::memory::dims bd(out.dim(), 1);
    bd.back() = bias_c.numel();
    dnnl::memory::dims bst(out.dim(), 0);
    bst.back() = 1;
    for (int i = out.dim() - 2; i >= 0; --i) bst[i] = bd[i + 1] * bst[i + 1];
    bias_md = dnnl::memory::desc(bd, dnnl::memory::data_type::f32, bst);
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, bias_md, d_md), attr, eng);
  } else {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, d_md), attr, eng);
  }
  dnnl::stream s(eng);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory(a_md, eng, a.data_ptr())},
      {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, eng, b.data_ptr())},
      {DNNL_ARG_DST, dnnl::memory(d_md, eng, dst.data_ptr())}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_md, eng, bias_c.data_ptr()));
  dnnl::matmul(pd).execute(s, args);
  s.wait();
  if (!dst_direct) out.copy_(dst);
}

#else

void matmul_kernel(const OpCall& c) {
  const MatmulParams p = c.params ? c.p<MatmulParams>() : MatmulParams{};
  const Tensor& a = c.inputs[0];
  const Tensor& b = c.inputs[1];
  const Tensor bias = c.inputs.size() > 2 ? c.inputs[2] : Tensor();
  const Tensor& out = c.outputs[0];
  const int nd = out.dim();
  const int64_t m = out.size(-2), n = out.size(-1), k = a.size(-1);
  // Results go straight into an f32 output with unit column stride, else through f32 scratch.
  const bool direct = out.dtype() == DType::f32 && out.stride(-1) == 1;
  const Tensor acc = direct ? out : Tensor::empty(out.shape(), DType::f32);
  const int64_t batches = out.numel() / std::max<int64_t>(1, m * n);
  for (int64_t bi = 0; bi < batches; ++bi) {
    // The batch index's element offsets; a size-1 batch dim of a or b is broadcast.
    int64_t rem = bi, off_a = 0, off_b = 0, off_c = 0;
    for (int d = nd - 3; d >= 0; --d) {
      const int64_t i = rem % out.size(d);
      rem /= out.size(d);
      if (a.size(d) != 1) off_a += i * a.stride(d);
      if (b.size(d) != 1) off_b += i * b.stride(d);
      off_c += i * acc.stride(d);
    }
    const GemmOperand ga{static_cast<const std::byte*>(a.data_ptr()) + dtype_bytes(a.dtype(), off_a),
                         a.dtype(), a.stride(-2), a.stride(-1)};
    const GemmOperand gb{static_cast<const std::byte*>(b.data_ptr()) + dtype_bytes(b.dtype(), off_b),
                         b.dtype(), b.stride(-2), b.stride(-1)};
    gemm_f32(m, n, k, p.alpha, ga, gb, acc.data<float>() + off_c, acc.stride(-2));
  }
  Tensor r = acc;
  if (bias.defined()) r = ops::add(r, bias.to(DType::f32));
  if (p.has_activation) r = ops::unary(r, p.activation);
  if (r.data_ptr() != out.data_ptr()) out.copy_(r);
}

#endif

// One matmul per non-empty group, written straight into the group's rows of the output.
void grouped_matmul_kernel(const OpCall& c) {
  const Tensor& x = c.inputs[0];
  const Tensor& w = c.inputs[1];
  const Tensor& out = c.outputs[0];
  const int64_t rows = x.size(0), groups = w.size(0);
  const int64_t* off = c.inputs[2].data<int64_t>();
  for (int64_t e = 0; e < groups; ++e) {
    MINDIESD_CHECK(off[e] >= 0 && off[e] <= off[e + 1] && off[e + 1] <= rows, InvalidArgument,
                   "grouped_matmul: offsets[", e, "] = ", off[e], ", offsets[", e + 1,
                   "] = ", off[e + 1], " (must be non-decreasing in [0, ", rows, "])");
  }
  for (int64_t e = 0; e < groups; ++e) {
    const int64_t n = off[e + 1] - off[e];
    if (n == 0) continue;
    const Tensor in[] = {x.narrow(0, off[e], n), w.select(0, e).transpose(0, 1)};
    const Tensor dst = out.narrow(0, off[e], n);
    dispatch(OpId::matmul, in, {&dst, 1}, nullptr);
  }
}

}  // namespace

void register_matmul_kernels(KernelRegistry& r) {
  r.add(OpId::matmul, DeviceType::CPU, {kFloatTypes}, kFloatTypes, matmul_kernel);
  r.add(OpId::grouped_matmul, DeviceType::CPU, {kFloatTypes, kFloatTypes, DTypeSet{DType::i64}},
        kFloatTypes, grouped_matmul_kernel);
}

}  // namespace mindiesd::cpu
