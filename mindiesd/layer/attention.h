// Attention layers: the op-level API of the suite mindiesd mirrors (API.md, layer).
//
// attention_forward takes q/k/v in one of three layouts and returns the output in the same
// layout, without copying the inputs (layouts are strided views for the kernel):
//   "BSND": (batch, seq, heads, head_dim)   the diffusers / FLUX / Wan default
//   "BNSD": (batch, heads, seq, head_dim)   torch scaled_dot_product_attention's layout
//   "BSH":  (batch, seq, heads * head_dim)  needs head_num (and kv_head_num for GQA)
// k/v may have fewer heads than q (GQA / MQA: q heads must be a multiple) and another sequence
// length (cross-attention). attn_mask broadcasts to (batch, q_heads, q_seq, kv_seq) as in
// torch SDPA: a boolean mask keeps where true, a float mask is added to the logits. Rows that
// see no key produce zeros.
#pragma once

#include <optional>
#include <string_view>

#include "mindiesd/core/context.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::layer {

enum class AttentionLayout { BSND, BNSD, BSH };
// "BSND" | "BNSD" | "BSH"; anything else is InvalidArgument.
AttentionLayout parse_attention_layout(std::string_view layout);

struct AttentionOptions {
  std::optional<float> scale;  // default 1 / sqrt(head_dim)
  bool causal = false;         // bottom-right aligned when q and kv lengths differ
  int64_t head_num = 0;        // BSH only: heads of q
  int64_t kv_head_num = 0;     // BSH only: heads of k/v (default head_num)
};

Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& attn_mask = Tensor(), std::string_view layout = "BSND",
                         const AttentionOptions& options = {});

// Block-sparse attention (the sparse_attention op): q, k, v in `layout` as above (no element
// mask, not causal); block_mask boolean, broadcastable to (batch, q heads, ceil(Sq / block_q),
// ceil(Sk / block_k)). The queries of block i attend only the keys of the blocks j kept by
// mask[b, h, i, j]; a query block keeping none outputs zeros. Block sizes are positive
// multiples of 16; the kernels skip work only for multiples of 64 (finer blocks run the dense
// kernel under the equivalent element mask: small problems, for quality studies). An all-true
// mask gives exactly attention_forward's result on the same device.
// The mask estimators and the token reorderings are in layer/sparse_attention.h.
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& block_mask, int64_t block_q = 128,
                              int64_t block_k = 128, std::string_view layout = "BSND",
                              const AttentionOptions& options = {});

// A model block's attention (BSND q, k, v; no mask): the context's attention policy when it has
// one, else the dense kernel above.
Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Context& ctx);

// Packed variable-length sequences: q (Tq, heads, D), k/v (Tk, kv_heads, D); cu_seqlens_*
// (batch + 1) i32/i64, starting at 0, non-decreasing, ending at Tq / Tk. Output (Tq, heads, Dv).
Tensor attention_forward_varlen(const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& cu_seqlens_q, const Tensor& cu_seqlens_k,
                                bool causal = false, std::optional<float> scale = std::nullopt);

}  // namespace mindiesd::layer
