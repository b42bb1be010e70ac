// FP8 attention (the suite's FP8RotateQuantFA, layers/quant/block_quant.py): Q, K and V
// quantized to e4m3 in blocks (Q: 128 tokens x head_dim per head, K and V: 256 tokens x head_dim;
// scale = block max |x| / 448), optionally after rotating Q and K by one orthonormal Hadamard
// matrix (Q' = Q H, K' = K H, so Q' K'^T = Q K^T exactly; the rotation spreads outlier channels
// over the block before it is quantized). V is not rotated.
//
// This build evaluates the numerics of that scheme on every device: the blocks are quantized and
// widened back (exact e4m3 values) and the dense attention kernel runs on them. It shows what
// FP8 attention does to quality; it does not yet run an FP8 attention kernel (no speedup).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "mindiesd/core/context.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::quant {

struct AttentionQuantConfig {
  int64_t block_q = 128, block_kv = 256;  // tokens per block
  bool rotate = false;                    // Hadamard rotation of Q and K (head_dim a power of 2)
};

// "fp8[:rotate=1,block_q=128,block_kv=256]", the --quant-attention form.
AttentionQuantConfig parse_attention_quant_spec(std::string_view spec);
std::string describe(const AttentionQuantConfig& config);

// x (B, S, H, D) with every block of `block` tokens of one head quantized to e4m3 and widened
// back, in x's dtype (the last block may be shorter).
Tensor fake_quant_blocks(const Tensor& x, int64_t block);
// The orthonormal Sylvester-Hadamard matrix of order d (a power of 2): H H^T = I.
Tensor hadamard(int64_t d, DType dtype, Device device);

class Fp8Attention final : public AttentionPolicy {
 public:
  explicit Fp8Attention(AttentionQuantConfig config) : config_(config) {}
  Tensor attention(const Context& ctx, const Tensor& q, const Tensor& k,
                   const Tensor& v) const override;
  const AttentionQuantConfig& config() const { return config_; }

 private:
  // The Hadamard matrix, built on first use per (head_dim, device), not on every call.
  Tensor rotation(int64_t d, Device device) const;

  AttentionQuantConfig config_;
  mutable std::mutex mu_;
  mutable std::map<std::pair<int64_t, std::string>, Tensor> rotations_;
};

}  // namespace mindiesd::quant
