// 1-D/2-D/3-D convolution through oneDNN (f32 accumulation; bf16 inputs use the bf16 paths).
// Operands are passed in their plain NC[D]HW / OI[D]HW layouts; caching weights in oneDNN's
// blocked layout is left to the layer module, which owns the weights' lifetime.
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
  dnnl::memory::desc b_md;
  if (bias.defined()) b_md = dnnl_desc(bias);
  const dnnl::convolution_forward::desc desc =
      bias.defined()
          ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                            dnnl::algorithm::convolution_direct, x_md, w_md, b_md,
                                            d_md, strides, dil, pad, pad)
          : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                            dnnl::algorithm::convolution_direct, x_md, w_md, d_md,
                                            strides, dil, pad, pad);
  const dnnl::convolution_forward::primitive_desc pd(desc, eng);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory(x_md, eng, x.data_ptr())},
      {DNNL_ARG_WEIGHTS, dnnl::memory(w_md, eng, w.data_ptr())},
      {DNNL_ARG_DST, dnnl::memory(d_md, eng, dst.data_ptr())}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(b_md, eng, bias.data_ptr()));
  dnnl::stream s(eng);
  dnnl::convolution_forward(pd).execute(s, args);
  s.wait();
  if (!direct) out.copy_(dst);
}

}  // namespace

void register_conv_kernels(KernelRegistry& r) {
  r.add(OpId::conv, DeviceType::CPU, {kFloatTypes}, kFloatTypes, conv_kernel);
}

}  // namespace mindiesd::cpu
