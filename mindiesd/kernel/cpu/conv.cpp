// 1-D/2-D/3-D convolution (f32 accumulation).
//
// With oneDNN (MINDIESD_CPU_DEPS): its direct kernels; bf16 inputs use the bf16 paths.
// Operands arrive in their plain NC[D]HW / OI[D]HW layouts and are reordered to the layouts
// oneDNN's direct kernels pick; caching weights in the blocked layout is left to the layer
// module, which owns the weights' lifetime.
// Without it: im2col over bounded column chunks and mindiesd's own GEMM (gemm.h); a 1x1
// convolution with unit stride and no padding is a GEMM on the input as it is.
#include <algorithm>
#include <vector>

#if MINDIESD_CPU_DEPS
#include <oneapi/dnnl/dnnl.hpp>

#include "mindiesd/kernel/cpu/dnnl_util.h"
#else
#include "mindiesd/core/parallel.h"
#include "mindiesd/kernel/cpu/gemm.h"
#endif
#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cpu/kernels.h"

namespace mindiesd::cpu {

namespace {

#if MINDIESD_CPU_DEPS
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

#else

// Dims padded to three (leading 1s), so one loop nest serves 1-D, 2-D and 3-D.
struct Dims3 {
  int64_t d[3] = {1, 1, 1};
  int64_t volume() const { return d[0] * d[1] * d[2]; }
};
Dims3 trailing_dims(const Tensor& t, int spatial) {
  Dims3 r;
  for (int i = 0; i < spatial; ++i) r.d[3 - spatial + i] = t.size(t.dim() - spatial + i);
  return r;
}

void conv_kernel(const OpCall& c) {
  const auto& p = c.p<ConvParams>();
  const Tensor& x_in = c.inputs[0];
  const Tensor w = c.inputs[1].contiguous();
  const Tensor bias = c.inputs.size() > 2 && c.inputs[2].defined()
                          ? c.inputs[2].to(DType::f32).contiguous()
                          : Tensor();
  const Tensor& out = c.outputs[0];
  const bool direct = out.is_contiguous() && out.dtype() == DType::f32;
  const Tensor dst = direct ? out : Tensor::empty(out.shape(), DType::f32);
  const int S = p.spatial;
  const Dims3 in = trailing_dims(x_in, S), ks = trailing_dims(w, S), os = trailing_dims(out, S);
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
  for (int i = 0; i < S; ++i) {
    stride[3 - S + i] = p.stride[i];
    pad[3 - S + i] = p.padding[i];
    dil[3 - S + i] = p.dilation[i];
  }
  const int64_t N = x_in.size(0), C = x_in.size(1), O = w.size(0), G = p.groups;
  const int64_t Cg = C / G, Og = O / G, kvol = ks.volume(), ovol = os.volume(),
                ivol = in.volume(), rows = Cg * kvol;
  float* d = dst.data<float>();
  const bool pointwise = kvol == 1 && ovol == ivol && std::all_of(pad, pad + 3, [](int64_t v) {
                           return v == 0;
                         }) && std::all_of(stride, stride + 3, [](int64_t v) { return v == 1; });
  if (pointwise) {
    const Tensor x = x_in.contiguous();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const GemmOperand a{static_cast<const std::byte*>(w.data_ptr()) +
                                dtype_bytes(w.dtype(), g * Og * rows),
                            w.dtype(), rows, 1};
        const GemmOperand b{static_cast<const std::byte*>(x.data_ptr()) +
                                dtype_bytes(x.dtype(), (n * C + g * Cg) * ivol),
                            x.dtype(), ivol, 1};
        gemm_f32(Og, ovol, Cg, 1.0f, a, b, d + (n * O + g * Og) * ovol, ovol);
      }
  } else {
    const Tensor x = x_in.to(DType::f32).contiguous();
    const float* xs = x.data<float>();
    // Columns per chunk: the column buffer stays near 64 MB whatever the image size.
    const int64_t chunk =
        std::min(ovol, std::max<int64_t>(256, (int64_t{16} << 20) / std::max<int64_t>(rows, 1)));
    std::vector<float> col(static_cast<size_t>(rows * chunk));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t c0 = 0; c0 < ovol; c0 += chunk) {
          const int64_t cw = std::min(chunk, ovol - c0);
          // col[r, j]: r = (input channel, kz, ky, kx), j = output position c0 + j.
          parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
              const int64_t ci = r / kvol, kk = r % kvol;
              const int64_t kz = kk / (ks.d[1] * ks.d[2]), ky = kk / ks.d[2] % ks.d[1],
                            kx = kk % ks.d[2];
              const float* src = xs + (n * C + g * Cg + ci) * ivol;
              float* dstc = col.data() + r * cw;
              for (int64_t j = 0; j < cw; ++j) {
                const int64_t o = c0 + j;
                const int64_t oz = o / (os.d[1] * os.d[2]), oy = o / os.d[2] % os.d[1],
                              ox = o % os.d[2];
                const int64_t iz = oz * stride[0] - pad[0] + kz * dil[0];
                const int64_t iy = oy * stride[1] - pad[1] + ky * dil[1];
                const int64_t ix = ox * stride[2] - pad[2] + kx * dil[2];
                const bool inside = iz >= 0 && iz < in.d[0] && iy >= 0 && iy < in.d[1] &&
                                    ix >= 0 && ix < in.d[2];
                dstc[j] = inside ? src[(iz * in.d[1] + iy) * in.d[2] + ix] : 0.0f;
              }
            }
          });
          const GemmOperand a{static_cast<const std::byte*>(w.data_ptr()) +
                                  dtype_bytes(w.dtype(), g * Og * rows),
                              w.dtype(), rows, 1};
          const GemmOperand b{col.data(), DType::f32, cw, 1};
          gemm_f32(Og, cw, rows, 1.0f, a, b, d + (n * O + g * Og) * ovol + c0, ovol);
        }
  }
  if (bias.defined()) {
    const float* bv = bias.data<float>();
    parallel_for(0, N * O, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float* plane = d + i * ovol;
        for (int64_t j = 0; j < ovol; ++j) plane[j] += bv[i % O];
      }
    });
  }
  if (!direct) out.copy_(dst);
}

#endif

}  // namespace

void register_conv_kernels(KernelRegistry& r) {
  r.add(OpId::conv, DeviceType::CPU, {kFloatTypes}, kFloatTypes, conv_kernel);
}

}  // namespace mindiesd::cpu
