#include "mindiesd/layer/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/layer/attention.h"

namespace mindiesd::layer {

SparseType parse_sparse_type(std::string_view name) {
  if (name == "none") return SparseType::none;
  if (name == "rf" || name == "rf_v2" || name == "rf_v3") return SparseType::rf;
  if (name == "ada_bsa") return SparseType::ada_bsa;
  MINDIESD_THROW(InvalidArgument, "sparse_type '", name, "' is not one of none, rf, ada_bsa");
}

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The grid a sequence of `tokens` image tokens has under `shape` ({0, 0, 0}: one row).
LatentShape grid_of(const LatentShape& shape, int64_t tokens, const char* name) {
  if (shape[0] == 0 && shape[1] == 0 && shape[2] == 0) return {1, 1, tokens};
  MINDIESD_CHECK(shape[0] > 0 && shape[1] > 0 && shape[2] > 0 &&
                     shape[0] * shape[1] * shape[2] == tokens,
                 InvalidArgument, "sparse_attention: ", name, " [", shape[0], ", ", shape[1], ", ",
                 shape[2], "] does not give the ", tokens, " image tokens after the text");
  return shape;
}

// Blocks forced as whole rows (of q) or columns (of k) of a sequence in block order: those
// holding a text token (the last txt_len) and, for video, those holding a first-frame token
// (the first h * w).
std::vector<uint8_t> forced_blocks(int64_t seq, int64_t txt_len, const LatentShape& grid,
                                   int64_t block, bool first_frame) {
  std::vector<uint8_t> f(static_cast<size_t>(ceil_div(seq, block)), 0);
  if (txt_len > 0)
    for (int64_t i = (seq - txt_len) / block; i < ceil_div(seq, block); ++i) f[static_cast<size_t>(i)] = 1;
  if (first_frame && grid[0] > 1)
    for (int64_t i = 0; i < ceil_div(grid[1] * grid[2], block); ++i) f[static_cast<size_t>(i)] = 1;
  return f;
}

// x (B, S, N, D) -> per-block token means (B, N, ceil(S / block), D) in f32.
Tensor block_means(const Tensor& x, int64_t block) {
  const int64_t b = x.size(0), s = x.size(1), n = x.size(2), d = x.size(3);
  const int64_t nb = ceil_div(s, block), padded = nb * block;
  const int64_t pads[] = {0, 0, 0, 0, 0, padded - s};
  const Tensor xp = padded > s ? ops::pad(x, pads) : x;
  const Tensor sums = ops::sum(xp.reshape({b, nb, block, n, d}), {2}).to(DType::f32);
  std::vector<float> inv(static_cast<size_t>(nb));
  for (int64_t i = 0; i < nb; ++i)
    inv[static_cast<size_t>(i)] = 1.0f / static_cast<float>(std::min(block, s - i * block));
  const Tensor w = Tensor::from_vector(inv, {1, nb, 1, 1}).to(x.device());
  return ops::mul(sums, w).permute({0, 2, 1, 3});
}

// k's heads repeated to q's (GQA): the estimators score every query head.
Tensor heads_like(const Tensor& k, int64_t heads) {
  const int64_t nkv = k.size(2);
  if (nkv == heads) return k;
  std::vector<float> idx(static_cast<size_t>(heads));
  for (int64_t h = 0; h < heads; ++h) idx[static_cast<size_t>(h)] = static_cast<float>(h / (heads / nkv));
  return ops::index_select(k, 2, Tensor::from_vector(idx, {heads}, DType::i64).to(k.device()));
}

float scale_of(const SparseAttentionOptions& o, int64_t head_dim) {
  return o.scale ? *o.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

void check_estimator_inputs(const Tensor& q, const Tensor& k, const SparseAttentionOptions& o,
                            const char* what) {
  MINDIESD_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(0) == k.size(0) && q.size(3) == k.size(3) &&
                     k.size(2) > 0 && q.size(2) % k.size(2) == 0,
                 InvalidArgument, what, ": q ", q.shape().str(), " and k ", k.shape().str(),
                 " must be (B, S, N, D) with matching batch and head_dim");
  MINDIESD_CHECK(o.block_size > 0 && o.block_size % 16 == 0, InvalidArgument, what,
                 ": block_size must be a positive multiple of 16, got ", o.block_size);
  MINDIESD_CHECK(o.sparsity >= 0.0 && o.sparsity < 1.0, InvalidArgument, what,
                 ": sparsity must be in [0, 1), got ", o.sparsity);
  MINDIESD_CHECK(o.cdf_threshold > 0.0 && o.cdf_threshold <= 1.0, InvalidArgument, what,
                 ": cdf_threshold must be in (0, 1], got ", o.cdf_threshold);
  MINDIESD_CHECK(o.txt_len >= 0 && o.txt_len <= q.size(1) && o.txt_len <= k.size(1),
                 InvalidArgument, what, ": txt_len ", o.txt_len, " is outside the sequences (",
                 q.size(1), " query, ", k.size(1), " key tokens)");
}

}  // namespace

Tensor tile_permutation(int64_t txt_len, const LatentShape& shape, int64_t block_size) {
  MINDIESD_CHECK(txt_len >= 0 && shape[0] >= 0 && shape[1] >= 0 && shape[2] >= 0 && block_size >= 16 &&
                     block_size % 16 == 0,
                 InvalidArgument, "tile_permutation: bad arguments (txt_len ", txt_len,
                 ", block_size ", block_size, ")");
  const int64_t t = shape[0], h = shape[1], w = shape[2];
  std::vector<float> perm;
  perm.reserve(static_cast<size_t>(txt_len + t * h * w));
  // Frames [f0, f0 + ft) in windows of ft x th x tw, th x tw = block / ft with th the power of 2
  // at or below its square root (128: 8 x 16, 64: 8 x 8, 16: 4 x 4); windows row-major, tokens
  // (t, h, w) inside.
  auto tile_frames = [&](int64_t f0, int64_t ft) {
    const int64_t area = block_size / ft;
    int64_t th = 1;
    while (th * 2 * th * 2 <= area) th *= 2;
    const int64_t tw = area / th;
    for (int64_t r0 = 0; r0 < h; r0 += th)
      for (int64_t c0 = 0; c0 < w; c0 += tw)
        for (int64_t f = f0; f < f0 + ft; ++f)
          for (int64_t r = r0; r < std::min(h, r0 + th); ++r)
            for (int64_t c = c0; c < std::min(w, c0 + tw); ++c)
              perm.push_back(static_cast<float>(txt_len + (f * h + r) * w + c));
  };
  if (t > 0) tile_frames(0, 1);
  int64_t f = 1;
  for (; f + 1 < t; f += 2) tile_frames(f, 2);
  if (f < t) tile_frames(f, 1);
  for (int64_t i = 0; i < txt_len; ++i) perm.push_back(static_cast<float>(i));
  // Indices as f32 are exact below 2^24 tokens, far beyond any attention sequence here.
  MINDIESD_CHECK(perm.size() < (size_t{1} << 24), InvalidArgument, "tile_permutation: ",
                 perm.size(), " tokens is beyond 2^24");
  return Tensor::from_vector(perm, {static_cast<int64_t>(perm.size())}, DType::i64);
}

Tensor block_scores(const Tensor& q, const Tensor& k, const SparseAttentionOptions& o) {
  check_estimator_inputs(q, k, o, "block_scores");
  MINDIESD_CHECK(o.sparse_type != SparseType::none, InvalidArgument,
                 "block_scores: sparse_type none has no block scores");
  const int64_t bs = o.block_size;
  if (o.sparse_type == SparseType::rf) {
    const Tensor qm = block_means(q, bs);
    const Tensor km = block_means(heads_like(k, q.size(2)), bs);
    return ops::softmax(
        ops::affine(ops::matmul(qm, km.transpose(-1, -2)), scale_of(o, q.size(3)), 0.0f), -1);
  }
  constexpr int64_t kStride = 8;
  const int64_t g = bs / kStride;  // query / key groups per block side
  const int64_t b = q.size(0), n = q.size(2), d = q.size(3), sq = q.size(1), sk = k.size(1);
  const int64_t nq = ceil_div(sq, bs), nk = ceil_div(sk, bs);
  const Device dev = q.device();
  // Q' (B, N, nQ g, 8 D): the 8 queries of each group reversed and concatenated; K' likewise
  // without the reversal. Both padded with zero tokens to whole blocks.
  auto padded = [&](const Tensor& x, int64_t blocks) {
    const int64_t pads[] = {0, 0, 0, 0, 0, blocks * bs - x.size(1)};
    return x.size(1) < blocks * bs ? ops::pad(x, pads) : x;
  };
  std::vector<float> rev(static_cast<size_t>(nq * bs));
  for (int64_t i = 0; i < nq * bs; ++i)
    rev[static_cast<size_t>(i)] = static_cast<float>(i / kStride * kStride + kStride - 1 - i % kStride);
  const Tensor qr = ops::index_select(padded(q, nq), 1,
                                      Tensor::from_vector(rev, {nq * bs}, DType::i64).to(dev));
  const Tensor qg = qr.permute({0, 2, 1, 3}).contiguous().view({b, n, nq * g, kStride * d});
  const Tensor kg = padded(heads_like(k, n), nk)
                        .permute({0, 2, 1, 3})
                        .contiguous()
                        .view({b, n, nk * g, kStride * d});
  // Key groups wholly past Sk take no probability; query groups wholly past Sq add none.
  std::vector<float> key_bias(static_cast<size_t>(nk * g)), row_valid(static_cast<size_t>(nq * g));
  for (int64_t l = 0; l < nk * g; ++l)
    key_bias[static_cast<size_t>(l)] = l * kStride < sk ? 0.0f : -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < nq * g; ++i) row_valid[static_cast<size_t>(i)] = i * kStride < sq ? 1.0f : 0.0f;
  const Tensor bias = Tensor::from_vector(key_bias, {nk * g}).to(dev);
  const Tensor valid = Tensor::from_vector(row_valid, {nq * g, 1}).to(dev);
  // The (nQ g) x (nK g) probabilities exist for a few heads at a time (at most ~256 MB).
  const int64_t per_head = b * nq * g * nk * g * 4;
  const int64_t chunk = std::clamp<int64_t>((int64_t{256} << 20) / std::max<int64_t>(per_head, 1), 1, n);
  const float s = scale_of(o, d) / static_cast<float>(kStride);
  std::vector<Tensor> parts;
  for (int64_t h0 = 0; h0 < n; h0 += chunk) {
    const int64_t h1 = std::min(n, h0 + chunk);
    const Tensor logits = ops::add(
        ops::affine(ops::matmul(qg.slice(1, h0, h1), kg.slice(1, h0, h1).transpose(-1, -2),
                                Tensor(), DType::f32),
                    s, 0.0f),
        bias);
    const Tensor p = ops::mul(ops::softmax(logits, -1), valid);
    parts.push_back(ops::sum(p.view({b, h1 - h0, nq, g, nk, g}), {3, 5}));
  }
  return parts.size() == 1 ? parts[0] : ops::cat(parts, 1);
}

Tensor select_blocks(const Tensor& scores_dev, int64_t sq, int64_t sk,
                     const SparseAttentionOptions& o) {
  const int64_t bs = o.block_size;
  const Tensor scores = scores_dev.to(Device::cpu()).to(DType::f32).contiguous();
  MINDIESD_CHECK(scores.dim() == 4 && scores.size(2) == ceil_div(sq, bs) &&
                     scores.size(3) == ceil_div(sk, bs),
                 InvalidArgument, "select_blocks: scores ", scores.shape().str(), " are not (B, N, ",
                 ceil_div(sq, bs), ", ", ceil_div(sk, bs), ") for ", sq, " x ", sk, " tokens");
  const LatentShape gq = grid_of(o.latent_shape_q, sq - o.txt_len, "latent_shape_q");
  const LatentShape gk = grid_of(o.latent_shape_k, sk - o.txt_len, "latent_shape_k");
  const bool rf = o.sparse_type == SparseType::rf;
  // rf forces the text and (video) first-frame blocks as rows and columns; ada_bsa the text.
  const std::vector<uint8_t> rows = forced_blocks(sq, o.txt_len, gq, bs, rf);
  const std::vector<uint8_t> cols = forced_blocks(sk, o.txt_len, gk, bs, rf);
  const int64_t nq = scores.size(2), nk = scores.size(3), n_rows = scores.numel() / nk;
  const double dense = static_cast<double>(nk) * (1.0 - o.sparsity);
  // rf: top ceil(nK (1 - sparsity)) of all columns; ada_bsa: at most max(1, floor(...)) of the
  // columns not forced.
  const int64_t keep = rf ? std::clamp<int64_t>(static_cast<int64_t>(std::ceil(dense - 1e-9)), 1, nk)
                          : std::max<int64_t>(1, static_cast<int64_t>(std::floor(dense + 1e-9)));
  Tensor mask = Tensor::zeros(scores.shape(), DType::boolean);
  const float* p = scores.data<float>();
  auto* m = mask.data<uint8_t>();
  std::vector<std::pair<float, int64_t>> cand;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* pr = p + r * nk;
    uint8_t* row = m + r * nk;
    const int64_t qb = r % nq;
    if (rows[static_cast<size_t>(qb)]) {
      std::fill(row, row + nk, uint8_t{1});
      continue;
    }
    auto forced = [&](int64_t j) {
      return cols[static_cast<size_t>(j)] ||
             (!rf && ((o.keep_sink && j == 0) || (o.keep_recent && j == std::min(qb, nk - 1))));
    };
    // Candidates: rf ranks every column (the forced ones are kept on top anyway); ada_bsa
    // ranks the columns not forced, and its cumulative threshold is of their mass.
    cand.clear();
    double total = 0.0;
    for (int64_t j = 0; j < nk; ++j) {
      const bool f = forced(j);
      row[j] = f;
      if (rf || !f) {
        cand.emplace_back(pr[j], j);
        total += pr[j];
      }
    }
    if (cand.empty()) continue;
    std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& c) { return a.first > c.first; });
    int64_t cnt = std::min<int64_t>(keep, static_cast<int64_t>(cand.size()));
    if (!rf && o.cdf_threshold < 1.0) {
      double cum = 0.0;
      for (int64_t i = 0; i < cnt; ++i) {
        cum += cand[static_cast<size_t>(i)].first;
        if (cum >= o.cdf_threshold * total) {
          cnt = i + 1;
          break;
        }
      }
    }
    const float guard = cand[static_cast<size_t>(cnt - 1)].first;
    for (const auto& [v, j] : cand) row[j] |= v >= guard;
  }
  return mask.to(scores_dev.device());
}

Tensor block_mask(const Tensor& q, const Tensor& k, const SparseAttentionOptions& o) {
  return select_blocks(block_scores(q, k, o), q.size(1), k.size(1), o);
}

double mask_density(const Tensor& block_mask) {
  const Tensor m = block_mask.to(Device::cpu()).contiguous();
  const auto* p = m.data<uint8_t>();
  int64_t kept = 0;
  for (int64_t i = 0; i < m.numel(); ++i) kept += p[i] != 0;
  return m.numel() ? static_cast<double>(kept) / static_cast<double>(m.numel()) : 0.0;
}

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                        const SparseAttentionOptions& o, std::string_view layout,
                        const Tensor& cached_mask, Tensor* mask_out) {
  MINDIESD_CHECK(layout == "BSND" || layout == "BNSD", InvalidArgument,
                 "sparse_attention: layout must be BSND or BNSD, got '", layout, "'");
  if (mask_out) *mask_out = Tensor();
  AttentionOptions dense;
  dense.scale = o.scale;
  if (o.sparse_type == SparseType::none || (o.sparsity == 0.0 && o.cdf_threshold >= 1.0))
    return attention_forward(q, k, v, Tensor(), layout, dense);
  const bool bnsd = layout == "BNSD";
  auto bsnd = [&](const Tensor& t) { return bnsd && t.dim() == 4 ? t.permute({0, 2, 1, 3}) : t; };
  const Tensor q4 = bsnd(q), k4 = bsnd(k), v4 = bsnd(v);
  MINDIESD_CHECK(q4.dim() == 4 && k4.dim() == 4 && v4.dim() == 4, InvalidArgument,
                 "sparse_attention: q, k, v must be 4-d, got ", q.shape().str(), ", ",
                 k.shape().str(), ", ", v.shape().str());
  check_estimator_inputs(q4, k4, o, "sparse_attention");
  const int64_t bs = o.block_size;
  const LatentShape gq = grid_of(o.latent_shape_q, q4.size(1) - o.txt_len, "latent_shape_q");
  const LatentShape gk = grid_of(o.latent_shape_k, k4.size(1) - o.txt_len, "latent_shape_k");

  // Tokens into block order (a copy each; an identity order is skipped).
  auto on_device = [&](const Tensor& perm) -> Tensor {
    const auto* p = perm.data<int64_t>();
    for (int64_t i = 0; i < perm.numel(); ++i)
      if (p[i] != i) return perm.to(q.device());
    return Tensor();
  };
  const Tensor perm_q = tile_permutation(o.txt_len, gq, bs);
  const Tensor pq = on_device(perm_q);
  const Tensor pk = on_device(tile_permutation(o.txt_len, gk, bs));
  const Tensor qp = pq.defined() ? ops::index_select(q4, 1, pq) : q4;
  const Tensor kp = pk.defined() ? ops::index_select(k4, 1, pk) : k4;
  const Tensor vp = pk.defined() ? ops::index_select(v4, 1, pk) : v4;

  Tensor mask;
  if (cached_mask.defined()) {
    const Shape want{q4.size(0), q4.size(2), ceil_div(q4.size(1), bs), ceil_div(k4.size(1), bs)};
    MINDIESD_CHECK(cached_mask.dtype() == DType::boolean && cached_mask.shape() == want,
                   InvalidArgument, "sparse_attention: cached_mask ", cached_mask.shape().str(),
                   " is not a boolean ", want.str(), " mask for these inputs");
    mask = cached_mask;
  } else {
    SparseAttentionOptions oq = o;
    oq.latent_shape_q = gq;
    oq.latent_shape_k = gk;
    mask = block_mask(qp, kp, oq);
  }
  if (mask_out) *mask_out = mask;
  Tensor out = block_sparse_attention(qp, kp, vp, mask, bs, bs, "BSND", dense);
  if (pq.defined()) {
    // The inverse order puts every output row back at its token.
    const auto* p = perm_q.data<int64_t>();
    std::vector<float> inv(static_cast<size_t>(perm_q.numel()));
    for (int64_t i = 0; i < perm_q.numel(); ++i) inv[static_cast<size_t>(p[i])] = static_cast<float>(i);
    out = ops::index_select(out, 1, Tensor::from_vector(inv, {perm_q.numel()}, DType::i64).to(q.device()));
  }
  return bnsd ? out.permute({0, 2, 1, 3}) : out;
}

}  // namespace mindiesd::layer
