// Sparse attention: the block-sparse kernel against a float64 masked reference on every device
// (odd lengths, GQA, broadcast masks, empty rows, block sizes 64-192, every float dtype); an
// all-true mask and sparsity 0 bit-identical to dense; the tile reordering; both estimators'
// scores against float64 math of their definitions and their selection rules; sparse_attention
// end to end (reorder, mask, un-reorder) against the reference under the mask it used; the
// --attention spec and the per-call policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "harness.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/kernel/ref/attention.h"
#include "mindiesd/layer/attention.h"
#include "mindiesd/layer/sparse_attention.h"
#include "mindiesd/sparse/sparse_attention_policy.h"
#include "test_util.h"

namespace mindiesd::test {
namespace {

using layer::LatentShape;
using layer::SparseAttentionOptions;
using layer::SparseType;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// (B, S, N, D) array -> (B, N, S, D).
Array bnsd(const Array& a) {
  const int64_t b = a.shape[0], s = a.shape[1], n = a.shape[2], d = a.shape[3];
  Array out(Shape{b, n, s, d});
  for (int64_t i = 0; i < b; ++i)
    for (int64_t t = 0; t < s; ++t)
      for (int64_t h = 0; h < n; ++h)
        for (int64_t e = 0; e < d; ++e)
          out.v[((i * n + h) * s + t) * d + e] = a.v[((i * s + t) * n + h) * d + e];
  return out;
}

// The element mask (B, H, Sq, Sk) a block mask (Bm, Hm, nQ, nK) stands for (Bm, Hm broadcast).
// `pos_q` / `pos_k` give each token's position in block order (identity when empty).
Array element_mask(const Array& blocks, int64_t b, int64_t h, int64_t sq, int64_t sk, int64_t bq,
                   int64_t bk, const std::vector<int64_t>& pos_q = {},
                   const std::vector<int64_t>& pos_k = {}) {
  Array m(Shape{b, h, sq, sk});
  const int64_t nq = blocks.shape[2], nk = blocks.shape[3];
  for (int64_t i = 0; i < b; ++i)
    for (int64_t n = 0; n < h; ++n)
      for (int64_t r = 0; r < sq; ++r)
        for (int64_t c = 0; c < sk; ++c) {
          const int64_t pr = pos_q.empty() ? r : pos_q[r], pc = pos_k.empty() ? c : pos_k[c];
          const int64_t bi = blocks.shape[0] == 1 ? 0 : i, hi = blocks.shape[1] == 1 ? 0 : n;
          m.v[((i * h + n) * sq + r) * sk + c] =
              blocks.v[((bi * blocks.shape[1] + hi) * nq + pr / bq) * nk + pc / bk];
        }
  return m;
}

struct Sparse {
  std::string name;
  int64_t b, hq, hkv, sq, sk, d, dv, bq, bk;
  bool mask_batch = true, mask_heads = true;  // false: that mask dim is 1 (broadcast)
};

Case sparse_case(const Sparse& t, DType dt) {
  Case c;
  c.name = "block_sparse_" + t.name + "_" + dtype_name(dt);
  const int64_t nq = ceil_div(t.sq, t.bq), nk = ceil_div(t.sk, t.bk);
  c.inputs = {Input{{t.b, t.sq, t.hq, t.d}, dt}, Input{{t.b, t.sk, t.hkv, t.d}, dt},
              Input{{t.b, t.sk, t.hkv, t.dv}, dt},
              Input{{t.mask_batch ? t.b : 1, t.mask_heads ? t.hq : 1, nq, nk}, DType::boolean,
                    Domain::boolean}};
  c.run = [=](const std::vector<Tensor>& x) {
    return layer::block_sparse_attention(x[0], x[1], x[2], x[3], t.bq, t.bk);
  };
  c.reference = [=](const std::vector<Array>& x) {
    const Array o = ref::attention(bnsd(x[0]), bnsd(x[1]), bnsd(x[2]),
                                   element_mask(x[3], t.b, t.hq, t.sq, t.sk, t.bq, t.bk), true,
                                   1.0 / std::sqrt(double(t.d)), false);
    // (B, N, S, Dv) -> (B, S, N, Dv)
    Array out(Shape{t.b, t.sq, t.hq, t.dv});
    for (int64_t i = 0; i < t.b; ++i)
      for (int64_t h = 0; h < t.hq; ++h)
        for (int64_t s = 0; s < t.sq; ++s)
          for (int64_t e = 0; e < t.dv; ++e)
            out.v[((i * t.sq + s) * t.hq + h) * t.dv + e] = o.v[((i * t.hq + h) * t.sq + s) * t.dv + e];
    return out;
  };
  c.tol_dtype = dt;
  c.cls = OpClass::attention;
  return c;
}

std::vector<Case> sparse_cases() {
  const Sparse shapes[] = {
      {"odd_lengths", 2, 3, 3, 200, 300, 64, 64, 128, 128},
      {"gqa_block64_batch_broadcast", 1, 4, 2, 130, 257, 128, 128, 64, 64, false, true},
      {"mixed_blocks_head_broadcast", 2, 2, 2, 256, 256, 32, 48, 64, 192, true, false},
      {"one_block", 1, 1, 1, 10, 10, 16, 16, 128, 128},
      {"many_blocks", 1, 2, 2, 640, 640, 64, 64, 64, 64},
      {"fine_blocks_masked_dense", 2, 2, 1, 100, 90, 32, 32, 16, 32},
  };
  std::vector<Case> cs;
  for (const Sparse& s : shapes)
    for (DType dt : kFloats) cs.push_back(sparse_case(s, dt));
  return cs;
}

MINDIESD_HARNESS_SUITE(Layer, SparseAttentionHarness, sparse_cases);

Tensor on(const Tensor& t, Device d) { return t.to(d); }

// Bit-identical on the CPU, where both ops run the same kernel.
TEST(SparseAttention, AllTrueMaskIsDense) {
  for (Device dev : devices()) {
    for (DType dt : kFloats) {
      const Tensor q = on(ops::randn({2, 300, 4, 64}, 1).to(dt), dev);
      const Tensor k = on(ops::randn({2, 333, 4, 64}, 2).to(dt), dev);
      const Tensor v = on(ops::randn({2, 333, 4, 64}, 3).to(dt), dev);
      const Tensor all = ops::full({1, 1, 3, 3}, 1.0).to(DType::boolean);
      const Tensor sparse = layer::block_sparse_attention(q, k, v, all),
                   dense = layer::attention_forward(q, k, v);
      if (dev.type == DeviceType::CPU) {
        EXPECT_EQ(sparse.to_vector(), dense.to_vector()) << dtype_name(dt);
      } else {
        // The dense op may take cuDNN's kernel, the sparse one never does.
        compare(ref::from_tensor(sparse), ref::from_tensor(dense),
                tolerance(dt, OpClass::attention), dev.str() + " " + dtype_name(dt));
      }
    }
  }
}

TEST(SparseAttention, SparsityZeroAndNoneAreDense) {
  const Tensor q = ops::randn({1, 300, 2, 64}, 4), k = ops::randn({1, 300, 2, 64}, 5),
               v = ops::randn({1, 300, 2, 64}, 6);
  const std::vector<float> dense = layer::attention_forward(q, k, v).to_vector();
  for (SparseType t : {SparseType::none, SparseType::rf, SparseType::ada_bsa}) {
    SparseAttentionOptions o;
    o.sparse_type = t;
    o.txt_len = 12;
    o.latent_shape_q = o.latent_shape_k = {2, 12, 12};
    Tensor mask;
    EXPECT_EQ(layer::sparse_attention(q, k, v, o, "BSND", Tensor(), &mask).to_vector(), dense);
    EXPECT_FALSE(mask.defined());
  }
}

std::vector<int64_t> perm_of(int64_t txt, const LatentShape& g, int64_t block) {
  const Tensor p = layer::tile_permutation(txt, g, block);
  std::vector<int64_t> out(p.data<int64_t>(), p.data<int64_t>() + p.numel());
  return out;
}

TEST(SparseAttention, TilePermutationTilesFramesAndKeepsText) {
  // An image: 8 x 16 tiles of a 16 x 20 grid, clipped at the right edge.
  // The text (5 tokens) moves to the end.
  const std::vector<int64_t> img = perm_of(5, {1, 16, 20}, 128);
  ASSERT_EQ(img.size(), 5u + 320u);
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(img[320 + i], i);
  EXPECT_EQ(std::set<int64_t>(img.begin(), img.end()).size(), img.size());
  for (int64_t i = 0; i < 128; ++i) {  // the first block is rows 0-7, columns 0-15
    const int64_t tok = img[i] - 5;
    EXPECT_EQ(tok / 20, i / 16);
    EXPECT_EQ(tok % 20, i % 16);
  }
  // The clipped tile next to it: rows 0-7, columns 16-19.
  EXPECT_EQ(img[128] - 5, 16);
  EXPECT_EQ(img[128 + 4] - 5, 20 + 16);
  // Video: frame 0 alone, then frames (1, 2) in 2 x 8 x 8 windows, frame 3 alone.
  const LatentShape g{4, 8, 8};
  const std::vector<int64_t> vid = perm_of(0, g, 128);
  ASSERT_EQ(vid.size(), 256u);
  for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(vid[i], i);
  for (int64_t i = 0; i < 128; ++i) EXPECT_EQ(vid[64 + i], 64 + i);  // frames 1 and 2 whole
  for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(vid[192 + i], 192 + i);
  // A wider grid: the pair's first window is 2 frames x 8 rows x 8 columns.
  const std::vector<int64_t> wide = perm_of(0, {3, 8, 16}, 128);
  for (int64_t i = 0; i < 128; ++i) {
    const int64_t tok = wide[128 + i], f = tok / 128, r = tok % 128 / 16, c = tok % 16;
    EXPECT_EQ(f, 1 + i / 64);
    EXPECT_EQ(r, i % 64 / 8);
    EXPECT_EQ(c, i % 8);
  }
}

// Host f64 copies of (B, S, N, D) tensors.
std::vector<double> host(const Tensor& t) {
  const std::vector<float> f = t.contiguous().to(DType::f32).to_vector();
  return std::vector<double>(f.begin(), f.end());
}

TEST(SparseAttention, RfScoresAreThePooledSoftmax) {
  const int64_t b = 2, n = 3, d = 32, s = 300, bs = 64, nb = ceil_div(s, bs);
  const Tensor q = ops::randn({b, s, n, d}, 7), k = ops::randn({b, s, n, d}, 8);
  SparseAttentionOptions o;
  o.sparse_type = SparseType::rf;
  o.block_size = bs;
  const std::vector<float> got = layer::block_scores(q, k, o).to_vector();
  const std::vector<double> hq = host(q), hk = host(k);
  auto mean = [&](const std::vector<double>& x, int64_t i, int64_t h, int64_t blk, int64_t e) {
    double sum = 0.0;
    const int64_t lo = blk * bs, hi = std::min(s, lo + bs);
    for (int64_t t = lo; t < hi; ++t) sum += x[((i * s + t) * n + h) * d + e];
    return sum / double(hi - lo);
  };
  double worst = 0.0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t h = 0; h < n; ++h)
      for (int64_t r = 0; r < nb; ++r) {
        std::vector<double> logit(nb);
        double mx = -1e300, sum = 0.0;
        for (int64_t c = 0; c < nb; ++c) {
          double dot = 0.0;
          for (int64_t e = 0; e < d; ++e) dot += mean(hq, i, h, r, e) * mean(hk, i, h, c, e);
          logit[c] = dot / std::sqrt(double(d));
          mx = std::max(mx, logit[c]);
        }
        for (double& l : logit) sum += (l = std::exp(l - mx));
        for (int64_t c = 0; c < nb; ++c)
          worst = std::max(worst, std::fabs(got[((i * n + h) * nb + r) * nb + c] - logit[c] / sum));
      }
  EXPECT_LT(worst, 2e-6);
}

TEST(SparseAttention, AdaBsaScoresAreTheAntidiagonalBlockMass) {
  const int64_t b = 1, n = 2, d = 16, sq = 200, sk = 250, bs = 64, g = bs / 8;
  const int64_t nq = ceil_div(sq, bs), nk = ceil_div(sk, bs);
  const Tensor q = ops::randn({b, sq, n, d}, 9), k = ops::randn({b, sk, n, d}, 10);
  SparseAttentionOptions o;
  o.sparse_type = SparseType::ada_bsa;
  o.block_size = bs;
  o.sparsity = 0.5;
  const std::vector<float> got = layer::block_scores(q, k, o).to_vector();
  const std::vector<double> hq = host(q), hk = host(k);
  auto at = [&](const std::vector<double>& x, int64_t s, int64_t t, int64_t h, int64_t e) {
    return t < s ? x[(t * n + h) * d + e] : 0.0;  // zero-padded past the end
  };
  const int64_t rows = nq * g, cols = nk * g;
  double worst = 0.0;
  for (int64_t h = 0; h < n; ++h) {
    std::vector<double> mass(nq * nk, 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      if (i * 8 >= sq) continue;
      std::vector<double> l(cols, -INFINITY);
      double mx = -INFINITY, sum = 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        if (c * 8 >= sk) continue;
        double dot = 0.0;
        for (int64_t j = 0; j < 8; ++j)
          for (int64_t e = 0; e < d; ++e) dot += at(hq, sq, 8 * i + 7 - j, h, e) * at(hk, sk, 8 * c + j, h, e);
        l[c] = dot / std::sqrt(double(d)) / 8.0;
        mx = std::max(mx, l[c]);
      }
      for (double& x : l) sum += (x = std::exp(x - mx));
      for (int64_t c = 0; c < cols; ++c) mass[(i / g) * nk + c / g] += l[c] / sum;
    }
    for (int64_t r = 0; r < nq * nk; ++r) worst = std::max(worst, std::fabs(got[h * nq * nk + r] - mass[r]));
  }
  EXPECT_LT(worst, 1e-5);
}

// Scores (1, 1, nQ, nK) from values, for the selection rules.
Tensor scores_of(const std::vector<std::vector<float>>& rows) {
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return Tensor::from_vector(flat, {1, 1, static_cast<int64_t>(rows.size()),
                                    static_cast<int64_t>(rows[0].size())});
}

std::vector<float> mask_of(const Tensor& m) { return m.to(DType::f32).to_vector(); }

TEST(SparseAttention, RfSelectsTopBlocksPlusTextAndFirstFrame) {
  SparseAttentionOptions o;
  o.sparse_type = SparseType::rf;
  o.block_size = 64;
  o.sparsity = 0.5;  // keep ceil(4 * 0.5) = 2 of 4
  // No text, one row of 256 tokens: just the top 2 per row (ties kept).
  const Tensor s = scores_of({{0.1f, 0.4f, 0.3f, 0.2f},
                              {0.5f, 0.1f, 0.1f, 0.3f},
                              {0.25f, 0.25f, 0.25f, 0.25f},
                              {0.0f, 0.0f, 0.9f, 0.1f}});
  EXPECT_EQ(mask_of(layer::select_blocks(s, 256, 256, o)),
            (std::vector<float>{0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1}));
  // A 6-frame 6 x 6 video and 20 text tokens, in block order: frame 0 (positions 0-35) in block
  // 0, the text (positions 216-235) in block 3; both forced as rows and columns.
  o.txt_len = 20;
  o.latent_shape_q = o.latent_shape_k = {6, 6, 6};  // 216 + 20 = 236 tokens, 4 blocks
  const Tensor m = layer::select_blocks(s, 236, 236, o);
  EXPECT_EQ(mask_of(m), (std::vector<float>{1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  // Frame 0 in block 0 and text reaching back into block 1 (positions 120-139): all forced.
  o.latent_shape_q = o.latent_shape_k = {2, 6, 10};
  EXPECT_EQ(mask_of(layer::select_blocks(scores_of({{0.1f, 0.4f, 0.3f}, {0.1f, 0.4f, 0.3f},
                                                    {0.5f, 0.1f, 0.4f}}),
                                         140, 140, o)),
            (std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 1}));
}

TEST(SparseAttention, AdaBsaSelectsByCumulativeMassCappedBySparsity) {
  SparseAttentionOptions o;
  o.sparse_type = SparseType::ada_bsa;
  o.block_size = 64;
  o.sparsity = 0.5;  // at most floor(6 * 0.5) = 3 besides the sink and the diagonal
  const Tensor s = scores_of({{0.0f, 0.3f, 0.05f, 0.4f, 0.1f, 0.15f},
                              {0.2f, 0.1f, 0.3f, 0.1f, 0.2f, 0.1f},
                              {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.5f}});
  // Row 0: the sink is the diagonal; top 3 of the rest: 3, 1, 5.
  // Row 1: sink 0, diagonal 1; top 3 of {2, 3, 4, 5}: 2, 4, then 3 and 5 tie at 0.1 (both kept).
  // Row 2: sink, diagonal 2; 5 then a four-way tie at 0.1... only 1, 3, 4 are left: all kept.
  EXPECT_EQ(mask_of(layer::select_blocks(s, 192, 384, o)),
            (std::vector<float>{1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  // cdf 0.5 of the non-forced mass: row 0 needs 0.4 (of 1.0 - 0 ... 0.4 + 0.3 >= 0.5).
  o.cdf_threshold = 0.5;
  o.keep_sink = false;
  o.keep_recent = false;
  EXPECT_EQ(mask_of(layer::select_blocks(s.slice(2, 0, 1), 64, 384, o)),
            (std::vector<float>{0, 1, 0, 1, 0, 0}));
}

TEST(SparseAttention, EndToEndMatchesTheReferenceUnderItsMask) {
  // FLUX-like joint attention (text first) and a Wan-like video grid, both sparse types.
  struct Setup {
    int64_t txt;
    LatentShape grid;
  };
  for (const Setup& st : {Setup{24, {1, 16, 24}}, Setup{0, {3, 8, 12}}}) {
    for (SparseType type : {SparseType::rf, SparseType::ada_bsa}) {
      for (DType dt : {DType::f32, DType::bf16}) {
        const int64_t s = st.txt + st.grid[0] * st.grid[1] * st.grid[2], n = 2, d = 64;
        const Tensor q = ops::randn({1, s, n, d}, 11).to(dt), k = ops::randn({1, s, n, d}, 12).to(dt),
                     v = ops::randn({1, s, n, d}, 13).to(dt);
        SparseAttentionOptions o;
        o.sparse_type = type;
        o.txt_len = st.txt;
        o.block_size = 64;
        o.latent_shape_q = o.latent_shape_k = st.grid;
        o.sparsity = 0.6;
        Tensor mask;
        const Tensor out = layer::sparse_attention(q, k, v, o, "BSND", Tensor(), &mask);
        ASSERT_TRUE(mask.defined());
        const double density = layer::mask_density(mask);
        EXPECT_GT(density, 0.2);
        EXPECT_LT(density, 0.9);
        // Token -> position in block order.
        const std::vector<int64_t> perm = perm_of(st.txt, st.grid, 64);
        std::vector<int64_t> pos(perm.size());
        for (size_t i = 0; i < perm.size(); ++i) pos[perm[i]] = static_cast<int64_t>(i);
        const Array want = ref::attention(
            bnsd(ref::from_tensor(q)), bnsd(ref::from_tensor(k)), bnsd(ref::from_tensor(v)),
            element_mask(ref::from_tensor(mask), 1, n, s, s, 64, 64, pos, pos), true,
            1.0 / std::sqrt(double(d)), false);
        compare(ref::from_tensor(out.permute({0, 2, 1, 3})), want, tolerance(dt, OpClass::attention),
                std::string(layer::sparse_type_name(type)) + " " + dtype_name(dt));
        // The same mask given back reproduces the output exactly.
        EXPECT_EQ(layer::sparse_attention(q, k, v, o, "BSND", mask).to_vector(), out.to_vector());
        // BNSD gives the same numbers in its layout.
        const Tensor o2 = layer::sparse_attention(q.permute({0, 2, 1, 3}), k.permute({0, 2, 1, 3}),
                                                  v.permute({0, 2, 1, 3}), o, "BNSD", mask);
        EXPECT_EQ(o2.permute({0, 2, 1, 3}).contiguous().to_vector(), out.to_vector());
      }
    }
  }
}

TEST(SparseAttention, BadArgumentsAreNamed) {
  const Tensor q = ops::randn({1, 100, 2, 32}, 1);
  SparseAttentionOptions o;
  o.sparse_type = SparseType::rf;
  o.sparsity = 0.5;
  o.latent_shape_q = o.latent_shape_k = {1, 9, 9};
  expect_error([&] { layer::sparse_attention(q, q, q, o); }, ErrorKind::InvalidArgument,
               {"latent_shape_q", "100"});
  o.latent_shape_q = o.latent_shape_k = {};
  o.sparsity = 1.0;
  expect_error([&] { layer::sparse_attention(q, q, q, o); }, ErrorKind::InvalidArgument,
               {"sparsity"});
  o.sparsity = 0.5;
  o.block_size = 100;
  expect_error([&] { layer::sparse_attention(q, q, q, o); }, ErrorKind::InvalidArgument,
               {"block_size", "16"});
  o.block_size = 64;
  o.txt_len = 101;
  expect_error([&] { layer::sparse_attention(q, q, q, o); }, ErrorKind::InvalidArgument,
               {"txt_len"});
  o.txt_len = 0;
  expect_error([&] { layer::sparse_attention(q, q, q, o, "BSH"); }, ErrorKind::InvalidArgument,
               {"layout"});
  expect_error([&] { layer::sparse_attention(q, q, q, o, "BSND", ops::full({1, 2, 2, 3}, 1.0).to(DType::boolean)); },
               ErrorKind::InvalidArgument, {"cached_mask"});
  expect_error([&] { layer::block_sparse_attention(q, q, q, ops::full({1, 2, 3, 2}, 1.0).to(DType::boolean)); },
               ErrorKind::InvalidArgument, {"block_mask"});
  expect_error([&] { layer::block_sparse_attention(q, q, q, ops::full({1, 1, 1, 1}, 1.0)); },
               ErrorKind::InvalidArgument, {"boolean"});
  expect_error([&] { layer::block_sparse_attention(q, q, q, ops::full({1, 1, 1, 1}, 1.0).to(DType::boolean), 72, 128); },
               ErrorKind::InvalidArgument, {"multiples of 16"});
}

// ---- the policy ----

TEST(SparseAttentionPolicy, Spec) {
  const sparse::SparseAttentionConfig c = sparse::parse_sparse_attention_spec(
      "sparse:type=ada_bsa,sparsity=0.7,start_step=3,block=64,cdf=0.9,sink=0,recent=1,mask_interval=2");
  EXPECT_EQ(c.type, SparseType::ada_bsa);
  EXPECT_DOUBLE_EQ(c.sparsity, 0.7);
  EXPECT_EQ(c.start_step, 3);
  EXPECT_EQ(c.block_size, 64);
  EXPECT_DOUBLE_EQ(c.cdf_threshold, 0.9);
  EXPECT_FALSE(c.keep_sink);
  EXPECT_TRUE(c.keep_recent);
  EXPECT_EQ(c.mask_interval, 2);
  EXPECT_EQ(sparse::parse_sparse_attention_spec("dense").sparsity, 0.0);
  EXPECT_EQ(sparse::parse_sparse_attention_spec("sparse:type=rf_v3").type, SparseType::rf);
  for (const auto& [spec, needle] :
       std::vector<std::pair<const char*, const char*>>{{"sparse:type=xx", "xx"},
                                                        {"sparse:sparsity=1", "sparsity"},
                                                        {"sparse:sparsity=abc", "sparsity"},
                                                        {"sparse:block=72", "block"},
                                                        {"sparse:cdf=0", "cdf"},
                                                        {"sparse:start_step=-1", "start_step"},
                                                        {"sparse:mask_interval=0", "mask_interval"},
                                                        {"sparse:foo=1", "foo"},
                                                        {"dense:sparsity=0.5", "dense"},
                                                        {"sliding", "sliding"}})
    expect_error([&] { sparse::parse_sparse_attention_spec(spec); }, ErrorKind::InvalidArgument,
                 {"--attention", needle});
}

TEST(SparseAttentionPolicy, SparseOnlyOnSelfAttentionFromStartStep) {
  sparse::SparseAttentionConfig cfg;
  cfg.sparsity = 0.6;
  cfg.block_size = 64;
  cfg.start_step = 2;
  const sparse::SparseAttention policy(cfg);
  const int64_t txt = 10;
  const Tensor q = ops::randn({1, txt + 256, 2, 32}, 1), k = ops::randn({1, txt + 256, 2, 32}, 2),
               v = ops::randn({1, txt + 256, 2, 32}, 3), ctx_k = ops::randn({1, 7, 2, 32}, 4);
  Context ctx;
  ctx.token_grid = {1, 16, 16};
  const std::vector<float> dense = layer::attention_forward(q, k, v).to_vector();
  ctx.step = 1;  // before start_step: dense, exactly
  EXPECT_EQ(policy.attention(ctx, q, k, v).to_vector(), dense);
  ctx.step = 2;
  SparseAttentionOptions o;
  o.sparse_type = SparseType::rf;
  o.sparsity = 0.6;
  o.block_size = 64;
  o.txt_len = txt;
  o.latent_shape_q = o.latent_shape_k = ctx.token_grid;
  EXPECT_EQ(policy.attention(ctx, q, k, v).to_vector(), layer::sparse_attention(q, k, v, o).to_vector());
  // Cross-attention and calls without a grid stay dense.
  EXPECT_EQ(policy.attention(ctx, q, ctx_k, ctx_k).to_vector(),
            layer::attention_forward(q, ctx_k, ctx_k).to_vector());
  ctx.token_grid = {};
  EXPECT_EQ(policy.attention(ctx, q, k, v).to_vector(), dense);
  const sparse::SparseAttentionStats st = policy.stats();
  EXPECT_EQ(st.sparse_calls, 1);
  EXPECT_EQ(st.dense_calls, 3);
  EXPECT_GT(st.mean_density(), 0.3);
  EXPECT_LT(st.mean_density(), 0.9);
}

TEST(SparseAttentionPolicy, MaskIntervalReusesEachCallsMask) {
  sparse::SparseAttentionConfig cfg;
  cfg.sparsity = 0.6;
  cfg.block_size = 64;
  cfg.mask_interval = 2;
  const sparse::SparseAttention policy(cfg);
  const Tensor a = ops::randn({1, 256, 2, 32}, 1), b = ops::randn({1, 256, 2, 32}, 2);
  Context ctx;
  ctx.token_grid = {1, 16, 16};
  SparseAttentionOptions o;
  o.sparse_type = SparseType::rf;
  o.sparsity = 0.6;
  o.block_size = 64;
  o.latent_shape_q = o.latent_shape_k = ctx.token_grid;
  Tensor mask_a, mask_b;
  for (int64_t step = 0; step < 3; ++step) {
    ctx.step = step;
    for (int branch = 0; branch < 2; ++branch) {
      ctx.branch = static_cast<CfgBranch>(branch);
      // Two layers per forward, each with its own inputs: step 1 reuses step 0's masks.
      const Tensor got_a = policy.attention(ctx, a, a, a), got_b = policy.attention(ctx, b, b, b);
      if (step == 0) {
        layer::sparse_attention(a, a, a, o, "BSND", Tensor(), &mask_a);
        layer::sparse_attention(b, b, b, o, "BSND", Tensor(), &mask_b);
      }
      EXPECT_EQ(got_a.to_vector(), layer::sparse_attention(a, a, a, o, "BSND", mask_a).to_vector());
      EXPECT_EQ(got_b.to_vector(), layer::sparse_attention(b, b, b, o, "BSND", mask_b).to_vector());
    }
  }
  const sparse::SparseAttentionStats st = policy.stats();
  EXPECT_EQ(st.estimated, 8);  // steps 0 and 2, two branches, two layers
  EXPECT_EQ(st.reused, 4);
}

}  // namespace
}  // namespace mindiesd::test
