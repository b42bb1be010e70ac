#include "mindiesd/quant/attention_quant.h"

#include <cmath>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/spec.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/quant/quant_ops.h"

namespace mindiesd::quant {

AttentionQuantConfig parse_attention_quant_spec(std::string_view spec) {
  const OptionSpec s = parse_option_spec("--quant-attention", spec);
  MINDIESD_CHECK(s.name == "fp8" || s.name == "FP8" || s.name == "FP8_DYNAMIC", InvalidArgument,
                 "--quant-attention: unknown scheme '", s.name, "' (fp8)");
  AttentionQuantConfig c;
  for (const auto& [key, v] : s.items) {
    if (key == "rotate") {
      c.rotate = spec_bool("--quant-attention", s.name, key, v);
    } else if (key == "block_q" || key == "block_kv") {
      const int64_t b = spec_int("--quant-attention", s.name, key, v);
      MINDIESD_CHECK(b >= 1 && b <= 4096, InvalidArgument, "--quant-attention ", s.name, ": ", key,
                     " ", b, " must be in [1, 4096]");
      (key == "block_q" ? c.block_q : c.block_kv) = b;
    } else {
      MINDIESD_THROW(InvalidArgument, "--quant-attention ", s.name, ": unknown key '", key, "'");
    }
  }
  return c;
}

std::string describe(const AttentionQuantConfig& c) {
  return str_cat("fp8 attention, blocks q ", c.block_q, " / kv ", c.block_kv,
                 c.rotate ? ", Hadamard-rotated q, k" : "");
}

Tensor fake_quant_blocks(const Tensor& x, int64_t block) {
  MINDIESD_CHECK(x.dim() == 4 && block >= 1, InvalidArgument, "fake_quant_blocks: x ",
                 x.shape().str(), " must be (B, S, H, D)");
  const int64_t b = x.size(0), s = x.size(1), h = x.size(2), d = x.size(3);
  if (x.numel() == 0) return x;
  // (B, H, S, D), S padded with zeros to whole blocks (zeros leave a block's max alone); one
  // row per block.
  const int64_t blocks = (s + block - 1) / block, padded = blocks * block;
  Tensor t = x.permute(std::vector<int>{0, 2, 1, 3});
  if (padded != s) {
    const int64_t pads[] = {0, 0, 0, padded - s};
    t = ops::pad(t, pads);
  }
  const Tensor rows = t.contiguous().view({b * h * blocks, block * d});
  const QuantizedRows q = quantize_per_row(rows, DType::f8_e4m3);
  const Tensor back = dequantize(q.codes, q.scale.view({b * h * blocks, 1}), Tensor(), x.dtype());
  return back.view({b, h, padded, d}).narrow(2, 0, s).permute(std::vector<int>{0, 2, 1, 3});
}

Tensor hadamard(int64_t d, DType dtype, Device device) {
  MINDIESD_CHECK(d >= 1 && (d & (d - 1)) == 0, InvalidArgument, "hadamard: order ", d,
                 " is not a power of 2 (the rotation needs head_dim = 2^n)");
  std::vector<float> m(d * d);
  const float norm = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) m[i * d + j] = (__builtin_popcountll(i & j) & 1) ? -norm : norm;
  return Tensor::from_vector(m, {d, d}).to(dtype).to(device);
}

Tensor Fp8Attention::rotation(int64_t d, Device device) const {
  std::lock_guard<std::mutex> lock(mu_);
  Tensor& h = rotations_[{d, device.str()}];
  if (!h.defined()) h = hadamard(d, DType::f32, device).view({1, 1, d, d});
  return h;
}

Tensor Fp8Attention::attention(const Context&, const Tensor& q, const Tensor& k,
                               const Tensor& v) const {
  Tensor qr = q, kr = k;
  if (config_.rotate) {
    // f32 rotation so the rotated values are rounded once, by the quantization.
    const int64_t d = q.size(3);
    const Tensor hm = rotation(d, q.device());
    qr = ops::matmul(q.to(DType::f32), hm);
    kr = ops::matmul(k.to(DType::f32), hm);
  }
  const Tensor fq = fake_quant_blocks(qr, config_.block_q).to(q.dtype());
  const Tensor fk = fake_quant_blocks(kr, config_.block_kv).to(k.dtype());
  const Tensor fv = fake_quant_blocks(v, config_.block_kv);
  return layer::attention_forward(fq, fk, fv);
}

}  // namespace mindiesd::quant
