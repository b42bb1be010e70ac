#include "mindiesd/layer/attention.h"

#include <cmath>
#include <utility>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::layer {

AttentionLayout parse_attention_layout(std::string_view layout) {
  if (layout == "BSND") return AttentionLayout::BSND;
  if (layout == "BNSD") return AttentionLayout::BNSD;
  if (layout == "BSH") return AttentionLayout::BSH;
  MINDIESD_THROW(InvalidArgument, "attention layout '", layout,
                 "' is not one of BSND, BNSD, BSH");
}

namespace {

// The (B, N, S, D) view of a tensor in `layout`.
Tensor to_bnsd(const Tensor& t, AttentionLayout layout, int64_t heads, const char* name) {
  switch (layout) {
    case AttentionLayout::BNSD:
      MINDIESD_CHECK(t.dim() == 4, InvalidArgument, "attention: ", name,
                     " must be 4-d (B, N, S, D) for layout BNSD, got ", t.shape().str());
      return t;
    case AttentionLayout::BSND:
      MINDIESD_CHECK(t.dim() == 4, InvalidArgument, "attention: ", name,
                     " must be 4-d (B, S, N, D) for layout BSND, got ", t.shape().str());
      return t.permute({0, 2, 1, 3});
    case AttentionLayout::BSH:
      MINDIESD_CHECK(t.dim() == 3, InvalidArgument, "attention: ", name,
                     " must be 3-d (B, S, H) for layout BSH, got ", t.shape().str());
      MINDIESD_CHECK(heads > 0 && t.size(2) % heads == 0, InvalidArgument, "attention: ", name,
                     " hidden size ", t.size(2), " is not divisible into ", heads,
                     " heads (set head_num / kv_head_num for BSH)");
      return t.view({t.size(0), t.size(1), heads, t.size(2) / heads}).permute({0, 2, 1, 3});
  }
  return t;
}

void check_qkv(const Tensor& q, const Tensor& k, const Tensor& v, int seq_dim, int head_dim_axis,
               int heads_axis, int batch_axis) {
  for (const Tensor* t : {&q, &k, &v})
    MINDIESD_CHECK(is_floating(t->dtype()) && t->dtype() != DType::f8_e4m3 && t->dtype() != DType::f8_e5m2,
                   InvalidArgument, "attention: q/k/v must be f32, f16 or bf16, got ",
                   dtype_name(t->dtype()));
  MINDIESD_CHECK(q.size(head_dim_axis) == k.size(head_dim_axis), InvalidArgument,
                 "attention: head_dim of q ", q.shape().str(), " and k ", k.shape().str(),
                 " differ");
  MINDIESD_CHECK(k.size(seq_dim) == v.size(seq_dim) && k.size(heads_axis) == v.size(heads_axis),
                 InvalidArgument, "attention: k ", k.shape().str(), " and v ", v.shape().str(),
                 " must agree in sequence length and heads");
  if (batch_axis >= 0)
    MINDIESD_CHECK(q.size(batch_axis) == k.size(batch_axis) && q.size(batch_axis) == v.size(batch_axis),
                   InvalidArgument, "attention: batch of q ", q.shape().str(), ", k ",
                   k.shape().str(), ", v ", v.shape().str(), " differ");
  MINDIESD_CHECK(k.size(heads_axis) > 0 && q.size(heads_axis) % k.size(heads_axis) == 0,
                 InvalidArgument, "attention: ", q.size(heads_axis), " query heads are not a multiple of ",
                 k.size(heads_axis), " key/value heads");
  MINDIESD_CHECK(q.size(head_dim_axis) > 0, InvalidArgument, "attention: empty head_dim");
}

float default_scale(std::optional<float> scale, int64_t head_dim) {
  if (scale) {
    MINDIESD_CHECK(std::isfinite(*scale), InvalidArgument, "attention: scale must be finite");
    return *scale;
  }
  return 1.0f / std::sqrt(static_cast<float>(head_dim));
}

// The output in the caller's layout, and the BNSD view the kernel writes through.
std::pair<Tensor, Tensor> output_for(const Tensor& q4, const Tensor& v4, AttentionLayout layout,
                                     const Tensor& q) {
  const int64_t b = q4.size(0), hq = q4.size(1), sq = q4.size(2), dv = v4.size(3);
  Shape out_shape;
  switch (layout) {
    case AttentionLayout::BNSD: out_shape = {b, hq, sq, dv}; break;
    case AttentionLayout::BSND: out_shape = {b, sq, hq, dv}; break;
    case AttentionLayout::BSH: out_shape = {b, sq, hq * dv}; break;
  }
  Tensor out = Tensor::empty(out_shape, q.dtype(), q.device());
  Tensor out4 = to_bnsd(out, layout, hq, "out");
  return {std::move(out), std::move(out4)};
}

// q, k, v in `layout_name` as checked (B, N, S, D) views.
struct Bnsd {
  AttentionLayout layout;
  Tensor q, k, v;
};
Bnsd checked_bnsd(const Tensor& q, const Tensor& k, const Tensor& v, std::string_view layout_name,
                  const AttentionOptions& o) {
  const AttentionLayout layout = parse_attention_layout(layout_name);
  const int64_t kv_heads = o.kv_head_num > 0 ? o.kv_head_num : o.head_num;
  Bnsd r{layout, to_bnsd(q, layout, o.head_num, "q"), to_bnsd(k, layout, kv_heads, "k"),
         to_bnsd(v, layout, kv_heads, "v")};
  check_qkv(r.q, r.k, r.v, 2, 3, 1, 0);
  return r;
}

}  // namespace

Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask,
                         std::string_view layout_name, const AttentionOptions& o) {
  const auto [layout, q4, k4, v4] = checked_bnsd(q, k, v, layout_name, o);
  const int64_t b = q4.size(0), hq = q4.size(1), sq = q4.size(2), sk = k4.size(2);
  Tensor mask;
  if (attn_mask.defined()) {
    MINDIESD_CHECK(attn_mask.dim() <= 4, InvalidArgument, "attention: attn_mask ",
                   attn_mask.shape().str(), " has more than 4 dims");
    MINDIESD_CHECK(attn_mask.dtype() == DType::boolean || is_floating(attn_mask.dtype()),
                   InvalidArgument, "attention: attn_mask must be bool or float, got ",
                   dtype_name(attn_mask.dtype()));
    const Shape full{b, hq, sq, sk};
    MINDIESD_CHECK(ops::broadcast_shapes(attn_mask.shape(), full, "attention mask") == full,
                   InvalidArgument, "attention: attn_mask ", attn_mask.shape().str(),
                   " does not broadcast to (batch, heads, q_seq, kv_seq) = ", full.str());
    mask = attn_mask.expand(full);
  }
  const auto [out, out4] = output_for(q4, v4, layout, q);
  AttentionParams p;
  p.scale = default_scale(o.scale, q4.size(3));
  p.causal = o.causal;
  if (b * hq * sq > 0) {
    const Tensor in[] = {q4, k4, v4, mask};
    dispatch(OpId::attention, std::span<const Tensor>(in, mask.defined() ? 4 : 3), {&out4, 1}, &p);
  }
  return out;
}

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& block_mask, int64_t block_q, int64_t block_k,
                              std::string_view layout_name, const AttentionOptions& o) {
  const auto [layout, q4, k4, v4] = checked_bnsd(q, k, v, layout_name, o);
  MINDIESD_CHECK(!o.causal, InvalidArgument, "block_sparse_attention: causal is not supported");
  MINDIESD_CHECK(block_q > 0 && block_q % 16 == 0 && block_k > 0 && block_k % 16 == 0,
                 InvalidArgument, "block_sparse_attention: block sizes must be positive multiples "
                 "of 16, got ", block_q, " x ", block_k);
  const int64_t b = q4.size(0), hq = q4.size(1), sq = q4.size(2), sk = k4.size(2);
  const Shape blocks{b, hq, (sq + block_q - 1) / block_q, (sk + block_k - 1) / block_k};
  MINDIESD_CHECK(block_mask.defined() && block_mask.dtype() == DType::boolean, InvalidArgument,
                 "block_sparse_attention: block_mask must be a boolean tensor");
  bool broadcasts = block_mask.dim() <= 4;
  for (int i = 1; broadcasts && i <= block_mask.dim(); ++i) {
    const int64_t m = block_mask.size(-i), want = blocks[4 - i];
    broadcasts = m == want || m == 1;
  }
  MINDIESD_CHECK(broadcasts, InvalidArgument, "block_sparse_attention: block_mask ", block_mask.shape().str(),
                 " does not broadcast to (batch, heads, query blocks, key blocks) = ", blocks.str());
  const Tensor mask =
      (block_mask.device() == q.device() ? block_mask : block_mask.to(q.device())).expand(blocks);
  if (block_q % 64 != 0 || block_k % 64 != 0) {
    // Blocks finer than the kernels' 64-token tiles: the dense kernel under the element mask the
    // blocks stand for (the same numbers; no time saved). For small problems only.
    MINDIESD_CHECK(b * hq * sq * sk <= (int64_t{1} << 28), InvalidArgument,
                   "block_sparse_attention: blocks of ", block_q, " x ", block_k,
                   " (not multiples of 64) need a ", b, " x ", hq, " x ", sq, " x ", sk,
                   " element mask; use blocks of 64 or more at this size");
    auto rows = [](int64_t n, int64_t block) {
      std::vector<float> idx(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = static_cast<float>(i / block);
      return Tensor::from_vector(idx, {n}, DType::i64);
    };
    const Tensor m = ops::index_select(
        ops::index_select(mask.contiguous(), 2, rows(sq, block_q).to(q.device())), 3,
        rows(sk, block_k).to(q.device()));
    return attention_forward(q, k, v, m, layout_name, o);
  }
  const auto [out, out4] = output_for(q4, v4, layout, q);
  SparseAttentionParams p;
  p.scale = default_scale(o.scale, q4.size(3));
  p.block_q = block_q;
  p.block_k = block_k;
  if (b * hq * sq > 0) {
    const Tensor in[] = {q4, k4, v4, mask};
    dispatch(OpId::sparse_attention, in, {&out4, 1}, &p);
  }
  return out;
}

namespace {
// Validates cu_seqlens on the host: (batch + 1) entries, 0, non-decreasing, ending at total.
Tensor checked_cu_seqlens(const Tensor& cu, int64_t total, const char* name) {
  MINDIESD_CHECK(cu.dim() == 1 && cu.size(0) >= 2, InvalidArgument, "attention_varlen: ", name,
                 " must be 1-d with batch + 1 >= 2 entries, got ", cu.shape().str());
  MINDIESD_CHECK(cu.dtype() == DType::i32 || cu.dtype() == DType::i64, InvalidArgument,
                 "attention_varlen: ", name, " must be i32 or i64, got ", dtype_name(cu.dtype()));
  const Tensor host = cu.to(Device::cpu()).to(DType::i64).contiguous();
  const int64_t* p = host.data<int64_t>();
  MINDIESD_CHECK(p[0] == 0, InvalidArgument, "attention_varlen: ", name, " must start at 0, got ",
                 p[0]);
  for (int64_t i = 1; i < host.numel(); ++i)
    MINDIESD_CHECK(p[i] >= p[i - 1], InvalidArgument, "attention_varlen: ", name,
                   " is not non-decreasing at entry ", i, " (", p[i - 1], " then ", p[i], ")");
  MINDIESD_CHECK(p[host.numel() - 1] == total, InvalidArgument, "attention_varlen: ", name,
                 " ends at ", p[host.numel() - 1], " but the packed tensor has ", total, " tokens");
  return cu.to(DType::i32);
}
}  // namespace

Tensor attention_forward_varlen(const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& cu_seqlens_q, const Tensor& cu_seqlens_k,
                                bool causal, std::optional<float> scale) {
  for (const auto& [t, name] : {std::pair{&q, "q"}, std::pair{&k, "k"}, std::pair{&v, "v"}})
    MINDIESD_CHECK(t->dim() == 3, InvalidArgument, "attention_varlen: ", name,
                   " must be (tokens, heads, head_dim), got ", t->shape().str());
  check_qkv(q, k, v, 0, 2, 1, -1);
  const Tensor cq = checked_cu_seqlens(cu_seqlens_q, q.size(0), "cu_seqlens_q");
  const Tensor ck = checked_cu_seqlens(cu_seqlens_k, k.size(0), "cu_seqlens_k");
  MINDIESD_CHECK(cq.size(0) == ck.size(0), InvalidArgument,
                 "attention_varlen: cu_seqlens_q has ", cq.size(0), " entries, cu_seqlens_k ",
                 ck.size(0));
  const Tensor out = Tensor::empty({q.size(0), q.size(1), v.size(2)}, q.dtype(), q.device());
  AttentionParams p;
  p.scale = default_scale(scale, q.size(2));
  p.causal = causal;
  const Tensor in[] = {q, k, v, cq, ck};
  dispatch(OpId::attention_varlen, in, {&out, 1}, &p);
  return out;
}

Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Context& ctx) {
  return ctx.attention ? ctx.attention->attention(ctx, q, k, v) : attention_forward(q, k, v);
}

}  // namespace mindiesd::layer
