// 1-D/2-D/3-D convolution through oneDNN (f32 accumulation; bf16 inputs use the bf16 paths).
// Operands arrive in their plain NC[D]HW / OI[D]HW layouts and are reordered to the layouts
// oneDNN's direct kernels pick; caching weights in the blocked layout is left to the layer
// module, which owns the weights' lifetime.
#include <oneapi/dnnl/dnnl.hpp>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/dnnl_util.h"
#include "mindiesd/kernel/cpu/kernels.h"

namespace mindiesd::cpu {

namespace {

void conv_kernel(const OpCall& c) {
  const auto& p = c.p<ConvParams>();
  const DType compute = c.inputs[0].dtype() == DType::bf16 && c.inputs[1].dtype() == DType::bf16
                            ? DType::bf16
                            : DType::f32;
  const Tensor x = c.inputs[0].to(compute).contiguous();
  Tensor w = c.inputs[1].to(compute).contiguous();
  const Tensor bias = c.inputs.size() > 2 && c.inputs[2].defined()
                          ? c.inputs[2].to(DType::f32).contiguous()
                          : Tensor();
  const Tensor& out = c.outputs[0];
  const bool direct = out.is_contiguous() && (out.dtype() == DType::f32 || out.dtype() == compute);
  const Tensor dst = direct ? out : Tensor::empty(out.shape(), DType::f32);

  // Grouped weights are (G, O/G, I/G, k...) to oneDNN.
  if (p.groups > 1) {
    Shape gs;
    gs.push_back(p.groups);
    gs.push_back(w.size(0) / p.groups);
    for (int d = 1; d < w.dim(); ++d) gs.push_back(w.size(d));
    w = w.view(gs);
  }
  dnnl::memory::dims strides(p.stride, p.stride + p.spatial);
  dnnl::memory::dims pad(p.padding, p.padding + p.spatial);
  dnnl::memory::dims dil(p.spatial);
  for (int i = 0; i < p.spatial; ++i) dil[i] = p.dilation[i] - 1;  // oneDNN counts extra gaps

  const dnnl::engine& eng = dnnl_engine();
  const auto x_md = dnnl_desc(x), w_md = dnnl_desc(w), d_md = dnnl_desc(dst);
  // oneDNN picks the layouts ("any"): on plain NC[D]HW operands it can only run the gemm-based
  // convolution, whose im2col dominates 3-D convolutions (measured: Wan's VAE decoder spent most
  // of its time there); the direct JIT kernels want channel-blocked layouts, reached by reorders
  // that cost one pass over memory each.
  auto any = [](const dnnl::memory::desc& md) {
    return dnnl::memory::desc(md.dims(), md.data_type(), dnnl::memory::format_tag::any);
  };
  dnnl::memory::desc b_md;
  if (bias.defined()) b_md = dnnl_desc(bias);
  const dnnl::convolution_forward::desc desc =
      bias.defined()
          ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                            dnnl::algorithm::convolution_direct, any(x_md),
                                            any(w_md), b_md, any(d_md), strides, dil, pad, pad)
          : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                            dnnl::algorithm::convolution_direct, any(x_md),
                                            any(w_md), any(d_md), strides, dil, pad, pad);
  const dnnl::convolution_forward::primitive_desc pd(desc, eng);
  dnnl::stream s(eng);
  // An operand in its plain layout, reordered into the primitive's when that differs.
  auto input = [&](const dnnl::memory::desc& want, const dnnl::memory::desc& have, void* data) {
    dnnl::memory plain(have, eng, data);
    if (want == have) return plain;
    dnnl::memory blocked(want, eng);
    dnnl::reorder(plain, blocked).execute(s, plain, blocked);
    return blocked;
  };
  dnnl::memory dst_plain(d_md, eng, dst.data_ptr());
  const bool dst_blocked = pd.dst_desc() != d_md;
  dnnl::memory dst_mem = dst_blocked ? dnnl::memory(pd.dst_desc(), eng) : dst_plain;
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, input(pd.src_desc(), x_md, x.data_ptr())},
      {DNNL_ARG_WEIGHTS, input(pd.weights_desc(), w_md, w.data_ptr())},
      {DNNL_ARG_DST, dst_mem}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(b_md, eng, bias.data_ptr()));
  dnnl::convolution_forward(pd).execute(s, args);
  if (dst_blocked) dnnl::reorder(dst_mem, dst_plain).execute(s, dst_mem, dst_plain);
  s.wait();
  if (!direct) out.copy_(dst);
}

}  // namespace

void register_conv_kernels(KernelRegistry& r) {
  r.add(OpId::conv, DeviceType::CPU, {kFloatTypes}, kFloatTypes, conv_kernel);
}

}  // namespace mindiesd::cpu
