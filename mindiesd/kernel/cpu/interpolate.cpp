// 2-D resampling of NCHW tensors with PyTorch's index rules (aten/src/ATen/native/
// UpSample.h: nearest, nearest-exact, and bilinear with or without align_corners).
#include <cmath>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"

namespace mindiesd::cpu {

namespace {

// PyTorch's area_pixel_compute_scale.
double pixel_scale(int64_t in, int64_t out, bool align_corners, double given) {
  if (align_corners) return out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  return given > 0.0 ? given : static_cast<double>(in) / static_cast<double>(out);
}

struct Tap {
  int64_t i0, i1;
  float w0, w1;
};

std::vector<Tap> taps(int64_t in, int64_t out, const InterpolateParams& p, double given) {
  const double scale = pixel_scale(in, out, p.align_corners, given);
  std::vector<Tap> t(out);
  for (int64_t o = 0; o < out; ++o) {
    if (p.mode == InterpolateMode::bilinear) {
      double src = p.align_corners ? scale * o : scale * (o + 0.5) - 0.5;
      if (src < 0) src = 0;
      const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(src), in - 1);
      const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
      const float l1 = static_cast<float>(src - static_cast<double>(i0));
      t[o] = {i0, i1, 1.0f - l1, l1};
    } else {
      const double src = p.mode == InterpolateMode::nearest ? std::floor(o * static_cast<float>(scale))
                                                            : std::floor((o + 0.5f) * static_cast<float>(scale));
      const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(src), in - 1);
      t[o] = {i0, i0, 1.0f, 0.0f};
    }
  }
  return t;
}

void interpolate_kernel(const OpCall& c) {
  const auto& p = c.p<InterpolateParams>();
  const Tensor x = c.inputs[0].to(DType::f32).contiguous();
  const Tensor& out = c.outputs[0];
  const int64_t planes = x.size(0) * x.size(1);
  const int64_t ih = x.size(2), iw = x.size(3), oh = out.size(2), ow = out.size(3);
  const std::vector<Tap> th = taps(ih, oh, p, p.scale_h), tw = taps(iw, ow, p, p.scale_w);
  const float* xp = x.data<float>();
  void* ob = out.storage()->data();
  parallel_for(0, planes * oh, std::max<int64_t>(1, 2048 / std::max<int64_t>(1, ow)), [&](int64_t b, int64_t e) {
    std::vector<float> row(ow);
    for (int64_t r = b; r < e; ++r) {
      const int64_t plane = r / oh, y = r % oh;
      const float* src = xp + plane * ih * iw;
      const Tap& ty = th[y];
      const float* r0 = src + ty.i0 * iw;
      const float* r1 = src + ty.i1 * iw;
      for (int64_t j = 0; j < ow; ++j) {
        const Tap& tx = tw[j];
        const float top = tx.w0 * r0[tx.i0] + tx.w1 * r0[tx.i1];
        const float bot = tx.w0 * r1[tx.i0] + tx.w1 * r1[tx.i1];
        row[j] = ty.w0 * top + ty.w1 * bot;
      }
      const int64_t n = plane / x.size(1), ch = plane % x.size(1);
      store_from_f32(ob, out.dtype(), out.offset() + n * out.stride(0) + ch * out.stride(1) + y * out.stride(2),
                     out.stride(3), ow, row.data());
    }
  });
}

}  // namespace

void register_interpolate_kernels(KernelRegistry& r) {
  r.add(OpId::interpolate, DeviceType::CPU, {kFloatTypes}, kFloatTypes, interpolate_kernel);
}

}  // namespace mindiesd::cpu
