// Mixture of experts: the top-k router and the expert dispatch.
//
//   route = moe_route(logits, top_k, scoring, normalize_topk, selection_bias, scale)
//   y     = moe_forward(x, route, experts)
//
// The router runs on the host (T x E is small): scores = softmax or sigmoid of the logits,
// selection by score + selection_bias (DeepSeek-V3: the bias moves only the choice, never
// the weights), ties broken by the lower expert id, weights = chosen scores (divided by
// their sum when normalize_topk) times scale — as Mixtral (softmax, normalised), Qwen-MoE
// (softmax, norm_topk_prob) and DeepSeek-V3 (sigmoid, bias, normalised, routed scaling).
//
// Dispatch: the (token, slot) pairs are counting-sorted by expert (stable, so the order is
// deterministic) and all rows are gathered once (index_select) in expert order, so each
// expert's rows form a contiguous group. With stacked weights (MoeExperts) every projection
// is one grouped GEMM over all experts (ops::grouped_matmul: one launch on CUDA, the group
// offsets read on the device); with a weight list or a callable, each non-empty expert runs
// on its group in turn. Empty experts cost nothing. The f32 results are put back in
// (token, slot) order, scaled by the routing weights and summed over the slots in slot order,
// then rounded once to x's dtype. The routing itself (ids to the host) is the one sync.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "mindiesd/core/tensor.h"

namespace mindiesd::layer {

enum class MoeScoring { softmax, sigmoid };

struct MoeRoute {
  Tensor expert_ids;  // (T, k) i64, expert per (token, slot), slots by descending selection score
  Tensor weights;     // (T, k) f32, the routing weight of each slot
};

// logits (T, E), any float dtype and device; selection_bias (E) optional. The result lives
// on the logits' device. InvalidArgument for top_k outside [1, E] or mismatched shapes.
MoeRoute moe_route(const Tensor& logits, int64_t top_k, MoeScoring scoring = MoeScoring::softmax,
                   bool normalize_topk = true, const Tensor& selection_bias = Tensor(),
                   double scale = 1.0);

// A SwiGLU expert (Mixtral w1/w3/w2, DeepSeek/Qwen gate_proj/up_proj/down_proj):
//   y = (silu(x @ w_gate^T) * (x @ w_up^T)) @ w_down^T
// with w_gate, w_up (I, H) and w_down (H, I), all in x's dtype. The gate/up products stay
// f32 through the gating; the hidden activation is rounded to x's dtype for the down GEMM.
struct MoeExpert {
  Tensor w_gate, w_up, w_down;
};

// x (T, H) float; route from moe_route (or any (T, k) i32/i64 ids in [0, E) with (T, k)
// float weights); experts.size() = E. Returns (T, H) in x's dtype.
Tensor moe_forward(const Tensor& x, const MoeRoute& route, std::span<const MoeExpert> experts);

// The same experts stacked, as transformers keeps them in its fused MoE layers: w_gate and
// w_up (E, I, H), w_down (E, H, I), in x's dtype. The grouped-GEMM form of the above, same
// semantics and roundings.
struct MoeExperts {
  Tensor w_gate, w_up, w_down;
};
MoeExperts stack_experts(std::span<const MoeExpert> experts);
Tensor moe_forward(const Tensor& x, const MoeRoute& route, const MoeExperts& experts);

// The generic form: `expert(e, rows)` maps the gathered rows (n, H) of expert e (n >= 1) to
// (n, H) in any float dtype; it is called for each non-empty expert in increasing e.
using MoeExpertFn = std::function<Tensor(int64_t expert, const Tensor& rows)>;
Tensor moe_forward(const Tensor& x, const MoeRoute& route, int64_t num_experts,
                   const MoeExpertFn& expert);

}  // namespace mindiesd::layer
