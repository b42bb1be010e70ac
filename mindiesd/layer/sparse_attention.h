// Sparse attention (API.md, layer: sparse_attention): a kept-block mask is estimated from Q and K
// on every call (or reused), and the block-sparse kernel (block_sparse_attention in
// layer/attention.h) runs only the kept (query block, key block) pairs.
//
// sparse_type:
//  - rf (RainFusion 2.0, the suite's rf_v2 / rf_v3): the image / video tokens are reordered so
//    that each block of `block_size` tokens is a compact spatio-temporal tile; Q and K are
//    mean-pooled per block; P = softmax(q_hat k_hat^T * scale) over key blocks; each query block
//    keeps the ceil(nK (1 - sparsity)) most probable key blocks (ties keep extra), plus the text
//    blocks and, for video, the first-frame blocks as whole rows and columns.
//  - ada_bsa (the suite's adaptive block-sparse attention, after XAttention's antidiagonal
//    scoring): scores of strided query / key groups of 8 with the queries of each group reversed
//    (score(i, l) = scale / 8 * sum_j q[8i + 7 - j] . k[8l + j]), a row softmax over all key
//    groups, summed into (block / 8)^2 tiles; per query block the key blocks are taken in
//    decreasing order until their cumulative mass reaches cdf_threshold of the row's, at most
//    max(1, floor(nK (1 - sparsity))) of them; the sink (key block 0), the query block's own
//    block ("recent") and the text blocks are kept on top.
//
// Where this differs from the suite's code, and why:
//  - Reordering: the suite tiles 8 x 8 within each frame (two horizontally adjacent tiles per
//    block). Here frame 0 is tiled alone (8 rows x block/8 columns: the suite's shape), and the
//    later frames in pairs with 2 x 8 x block/16 windows, the 3-D windows RainFusion 2.0's report
//    describes: a block then spans time as well as space, and a query tile's neighbours in the
//    next frame fall in few blocks. Tiles are clipped at the grid's edges (no separate remainder
//    regions). ada_bsa uses the same reordering (the suite scores the raw order): contiguous
//    tiles make its blocks local too.
//  - As in the suite, the text moves to the end, so that the image tiles start on a block
//    boundary whatever txt_len is; a block holding any text token is forced.
//  - The first frame is forced only for video (more than one frame): for an image it would force
//    everything.
//  - Masks are estimated per batch item: the suite applies batch 0's mask to every item, which
//    gives a batched CFG uncond branch the cond branch's pattern.
//  - ada_bsa's cap applies at every size (the suite skips it below 10 key blocks), its "recent"
//    block is the diagonal one (the suite's last column: for a causal LLM row those coincide;
//    a DiT is not causal), and ties are kept exactly (no 1e-5 slack on probabilities).
// sparsity 0 (with cdf_threshold 1) and sparse_type none run the dense kernel: exactly
// attention_forward's result.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "mindiesd/core/tensor.h"

namespace mindiesd::layer {

enum class SparseType { none, rf, ada_bsa };
// "none" | "rf" ("rf_v2", "rf_v3" are the same here) | "ada_bsa"; anything else is InvalidArgument.
SparseType parse_sparse_type(std::string_view name);
inline const char* sparse_type_name(SparseType type) {
  return type == SparseType::rf ? "rf" : type == SparseType::ada_bsa ? "ada_bsa" : "none";
}

// The grid of the image / video tokens that follow the text: frames, rows, columns (patches).
using LatentShape = std::array<int64_t, 3>;

struct SparseAttentionOptions {
  SparseType sparse_type = SparseType::none;
  int64_t txt_len = 0;        // text tokens at the start of q and of k
  int64_t block_size = 128;   // tokens per block: a multiple of 64 (16 or 32: quality studies)
  LatentShape latent_shape_q{};  // {0, 0, 0}: one row of S - txt_len tokens (no reordering)
  LatentShape latent_shape_k{};
  bool keep_sink = true;       // ada_bsa
  bool keep_recent = true;     // ada_bsa
  double cdf_threshold = 1.0;  // ada_bsa, in (0, 1]; 1 = top-k by sparsity alone
  double sparsity = 0.0;       // [0, 1): the fraction of key blocks a query block drops
  std::optional<float> scale;  // default 1 / sqrt(head_dim)
};

// q (B, Sq, N, D), k and v (B, Sk, Nkv, D) in layout "BSND" (or "BNSD"); output as q's layout.
// `cached_mask`, when defined, is a mask this function returned before (through `mask_out`) for
// the same shapes and options: the estimate is skipped (the suite's rf_v3 cached_mask).
// `mask_out` receives the (B, N, nQ, nK) boolean mask used (undefined on the dense path).
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                        const SparseAttentionOptions& options, std::string_view layout = "BSND",
                        const Tensor& cached_mask = Tensor(), Tensor* mask_out = nullptr);

// ---- the pieces, for tests and benchmarks ----

// The block order of a sequence [txt_len text tokens; shape's tokens in raster order]: entry p
// (i64, host) is the original index of the token at position p: the image tokens tile by tile,
// then the text.
Tensor tile_permutation(int64_t txt_len, const LatentShape& shape, int64_t block_size);

// A mask estimate is block scores then a selection. block_scores: (B, N, ceil(Sq / block),
// ceil(Sk / block)) f32 on q's device from q and k (B, S, N, D) already in block order: rf's
// pooled softmax, or ada_bsa's antidiagonal block mass (options.sparse_type). select_blocks: the
// boolean mask (on the scores' device) that options' selection keeps, forced blocks included;
// sq and sk are the sequence lengths the scores came from. block_mask = both.
Tensor block_scores(const Tensor& q, const Tensor& k, const SparseAttentionOptions& options);
Tensor select_blocks(const Tensor& scores, int64_t sq, int64_t sk,
                     const SparseAttentionOptions& options);
Tensor block_mask(const Tensor& q, const Tensor& k, const SparseAttentionOptions& options);

// The fraction of (query block, key block) pairs a mask keeps.
double mask_density(const Tensor& block_mask);

}  // namespace mindiesd::layer
