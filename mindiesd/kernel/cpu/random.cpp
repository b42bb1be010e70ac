// Philox noise. Global element g = offset + i takes word g % 4 of Philox block g / 4; normal
// values pair words (0,1) and (2,3) through Box-Muller, so any split of a tensor into
// pieces (threads, devices, chunks of a video) reproduces the same values.
#include <cmath>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/philox.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"

namespace mindiesd::cpu {

namespace {

float philox_value(const RandomParams& p, uint64_t g) {
  const Philox4 w = philox_block(p.seed, g / 4);
  const int lane = static_cast<int>(g % 4);
  if (p.kind == RandomKind::uniform) return p.a + (p.b - p.a) * philox_uniform(w.v[lane]);
  const int pair = lane & 2;
  // u1 in (0, 1] so log(u1) is finite.
  const float u1 = philox_uniform(w.v[pair]) + 5.9604644775390625e-8f;
  const float u2 = philox_uniform(w.v[pair + 1]);
  const float r = std::sqrt(-2.0f * std::log(u1));
  const float theta = 6.28318530717958648f * u2;
  const float z = (lane & 1) ? r * std::sin(theta) : r * std::cos(theta);
  return p.a + p.b * z;
}

void random_kernel(const OpCall& c) {
  const auto& p = c.p<RandomParams>();
  const Tensor& out = c.outputs[0];
  MINDIESD_CHECK(out.is_contiguous(), Unsupported, "random needs a contiguous output, got ",
                 out.str());
  void* base = out.data_ptr();
  parallel_for(0, out.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    float buf[256];
    for (int64_t i = b; i < e; i += 256) {
      const int64_t n = std::min<int64_t>(256, e - i);
      for (int64_t j = 0; j < n; ++j) buf[j] = philox_value(p, p.offset + static_cast<uint64_t>(i + j));
      store_from_f32(base, out.dtype(), i, 1, n, buf);
    }
  });
}

}  // namespace

void register_random_kernels(KernelRegistry& r) {
  r.add(OpId::random, DeviceType::CPU, {}, kFloatTypes, random_kernel);
}

}  // namespace mindiesd::cpu
