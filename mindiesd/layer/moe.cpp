#include "mindiesd/layer/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::layer {

namespace {

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

bool is_index(DType t) { return t == DType::i32 || t == DType::i64; }

// A host i64 tensor holding `v`, moved to `device`.
Tensor index_tensor(const std::vector<int64_t>& v, Device device) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::i64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return device.is_cpu() ? t : t.to(device);
}

}  // namespace

MoeRoute moe_route(const Tensor& logits, int64_t top_k, MoeScoring scoring, bool normalize_topk,
                   const Tensor& selection_bias, double scale) {
  MINDIESD_CHECK(logits.defined() && logits.dim() == 2 && is_float(logits.dtype()), InvalidArgument,
                 "moe_route: logits must be a (tokens, experts) float tensor, got ",
                 logits.defined() ? logits.str() : std::string("an undefined tensor"));
  const int64_t T = logits.size(0), E = logits.size(1);
  MINDIESD_CHECK(top_k >= 1 && top_k <= E, InvalidArgument, "moe_route: top_k = ", top_k,
                 " must be in [1, ", E, "] for logits ", logits.shape().str());
  std::vector<float> bias;
  if (selection_bias.defined()) {
    MINDIESD_CHECK(selection_bias.dim() == 1 && selection_bias.size(0) == E &&
                       is_float(selection_bias.dtype()),
                   InvalidArgument, "moe_route: selection_bias ", selection_bias.shape().str(),
                   " must be a float tensor of shape ", Shape{E}.str(), " for logits ",
                   logits.shape().str());
    bias = selection_bias.to_vector();
  }
  const std::vector<float> l = logits.to_vector();  // row-major (T, E), any device / strides

  Tensor ids = Tensor::empty({T, top_k}, DType::i64);
  Tensor weights = Tensor::empty({T, top_k}, DType::f32);
  int64_t* id_out = ids.data<int64_t>();
  float* w_out = weights.data<float>();
  std::vector<double> score(E), key(E);
  std::vector<int64_t> order(E);
  for (int64_t t = 0; t < T; ++t) {
    const float* row = l.data() + t * E;
    if (scoring == MoeScoring::softmax) {
      double mx = -INFINITY;
      for (int64_t e = 0; e < E; ++e) mx = std::max(mx, static_cast<double>(row[e]));
      double sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += score[e] = std::exp(row[e] - mx);
      for (int64_t e = 0; e < E; ++e) score[e] /= sum;
    } else {
      for (int64_t e = 0; e < E; ++e)
        score[e] = 1.0 / (1.0 + std::exp(-static_cast<double>(row[e])));
    }
    for (int64_t e = 0; e < E; ++e) key[e] = score[e] + (bias.empty() ? 0.0 : bias[e]);
    // Descending key, ties (and NaN against NaN) by the lower id; NaN ranks first as in
    // torch.topk. A strict weak order, so the selection is well defined.
    std::iota(order.begin(), order.end(), int64_t{0});
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int64_t a, int64_t b) {
      const bool na = std::isnan(key[a]), nb = std::isnan(key[b]);
      if (na != nb) return na;
      if (!na && key[a] != key[b]) return key[a] > key[b];
      return a < b;
    });
    double total = 0;
    for (int64_t j = 0; j < top_k; ++j) total += score[order[j]];
    const double norm = normalize_topk ? scale / (total + 1e-20) : scale;
    for (int64_t j = 0; j < top_k; ++j) {
      id_out[t * top_k + j] = order[j];
      w_out[t * top_k + j] = static_cast<float>(score[order[j]] * norm);
    }
  }
  if (!logits.device().is_cpu()) return {ids.to(logits.device()), weights.to(logits.device())};
  return {ids, weights};
}

namespace {

void check_route(const Tensor& x, const MoeRoute& route, int64_t num_experts) {
  MINDIESD_CHECK(x.defined() && x.dim() == 2 && is_float(x.dtype()), InvalidArgument,
                 "moe_forward: x must be a (tokens, hidden) float tensor, got ",
                 x.defined() ? x.str() : std::string("an undefined tensor"));
  const Tensor& ids_t = route.expert_ids;
  const Tensor& w_t = route.weights;
  MINDIESD_CHECK(
      ids_t.defined() && ids_t.dim() == 2 && ids_t.size(0) == x.size(0) && is_index(ids_t.dtype()),
      InvalidArgument, "moe_forward: route.expert_ids must be (", x.size(0), ", k) i32/i64 for x ",
      x.shape().str(), ", got ",
      ids_t.defined() ? ids_t.str() : std::string("an undefined tensor"));
  MINDIESD_CHECK(w_t.defined() && w_t.shape() == ids_t.shape() && is_float(w_t.dtype()),
                 InvalidArgument,
                 "moe_forward: route.weights must be float of the shape of "
                 "route.expert_ids ",
                 ids_t.shape().str(), ", got ",
                 w_t.defined() ? w_t.str() : std::string("an undefined tensor"));
  MINDIESD_CHECK(num_experts >= 1, InvalidArgument, "moe_forward: num_experts = ", num_experts,
                 " must be at least 1");
  MINDIESD_CHECK(ids_t.device() == x.device() && w_t.device() == x.device(), InvalidArgument,
                 "moe_forward: route on ", ids_t.device().str(), " / ", w_t.device().str(),
                 " but x on ", x.device().str());
}

// The T*K (token, slot) pairs of a route counting-sorted by expert, stable in (token, slot)
// order, and x's rows gathered in that order.
struct ExpertOrder {
  std::vector<int64_t> start;     // E + 1: expert e's rows are [start[e], start[e + 1])
  std::vector<int64_t> position;  // pair i = token * K + slot -> its sorted row
  Tensor rows;                    // (T*K, H): x's rows in sorted order
};

ExpertOrder sort_by_expert(const Tensor& x, const MoeRoute& route, int64_t num_experts) {
  const int64_t T = x.size(0), K = route.expert_ids.size(1);
  const std::vector<float> idv = route.expert_ids.to_vector();
  ExpertOrder o;
  o.start.assign(num_experts + 1, 0);
  for (size_t i = 0; i < idv.size(); ++i) {
    const float e = idv[i];
    MINDIESD_CHECK(e >= 0 && e < static_cast<float>(num_experts), InvalidArgument,
                   "moe_forward: route.expert_ids[", i / K, ", ", i % K, "] = ", e,
                   " is outside [0, ", num_experts, ")");
    ++o.start[static_cast<int64_t>(e) + 1];
  }
  for (int64_t e = 0; e < num_experts; ++e) o.start[e + 1] += o.start[e];
  std::vector<int64_t> fill(o.start.begin(), o.start.end() - 1);
  std::vector<int64_t> sorted_token(T * K);
  o.position.resize(T * K);
  for (int64_t i = 0; i < T * K; ++i) {
    const int64_t e = static_cast<int64_t>(idv[i]);
    o.position[i] = fill[e];
    sorted_token[fill[e]++] = i / K;
  }
  o.rows = ops::index_select(x, 0, index_tensor(sorted_token, x.device()));
  return o;
}

// ys (T*K, H) f32 in sorted order -> back to (token, slot) order, scaled by the weights and
// summed over the slots in order, rounded once to x's dtype.
Tensor combine(const Tensor& ys, const ExpertOrder& o, const MoeRoute& route, const Tensor& x) {
  const int64_t T = x.size(0), H = x.size(1), K = route.expert_ids.size(1);
  const Tensor back = ops::index_select(ys, 0, index_tensor(o.position, x.device())).view({T, K, H});
  const Tensor& w_t = route.weights;
  const Tensor w = (w_t.dtype() == DType::f32 ? w_t : w_t.to(DType::f32)).reshape({T, K, 1});
  const Tensor y = K == 1 ? ops::mul(back, w).view({T, H}) : ops::sum(ops::mul(back, w), {1});
  return y.to(x.dtype());
}

}  // namespace

Tensor moe_forward(const Tensor& x, const MoeRoute& route, int64_t num_experts,
                   const MoeExpertFn& expert) {
  check_route(x, route, num_experts);
  MINDIESD_CHECK(static_cast<bool>(expert), InvalidArgument,
                 "moe_forward: expert callable is empty");
  const int64_t T = x.size(0), H = x.size(1), K = route.expert_ids.size(1);
  if (T == 0 || K == 0 || H == 0) return Tensor::zeros({T, H}, x.dtype(), x.device());
  const ExpertOrder o = sort_by_expert(x, route, num_experts);
  std::vector<Tensor> outs;
  for (int64_t e = 0; e < num_experts; ++e) {
    const int64_t n = o.start[e + 1] - o.start[e];
    if (n == 0) continue;  // empty expert: no GEMM at all
    const Tensor y = expert(e, o.rows.narrow(0, o.start[e], n));
    MINDIESD_CHECK(
        y.defined() && y.dim() == 2 && y.size(0) == n && y.size(1) == H && is_float(y.dtype()),
        InvalidArgument, "moe_forward: expert ", e, " returned ",
        y.defined() ? y.str() : std::string("an undefined tensor"), " for ", n, " rows; expected (",
        n, ", ", H, ") float");
    MINDIESD_CHECK(y.device() == x.device(), InvalidArgument, "moe_forward: expert ", e,
                   " returned a tensor on ", y.device().str(), ", x is on ", x.device().str());
    outs.push_back(y.dtype() == DType::f32 ? y : y.to(DType::f32));
  }
  const Tensor ys = outs.size() == 1 ? outs[0] : ops::cat(outs, 0);  // (T*K, H) f32, expert order
  return combine(ys, o, route, x);
}

Tensor moe_forward(const Tensor& x, const MoeRoute& route, const MoeExperts& experts) {
  const Tensor& wg = experts.w_gate;
  const Tensor& wu = experts.w_up;
  const Tensor& wd = experts.w_down;
  MINDIESD_CHECK(wg.defined() && wu.defined() && wd.defined(), InvalidArgument,
                 "moe_forward: MoeExperts has an undefined weight");
  MINDIESD_CHECK(x.defined() && x.dim() == 2, InvalidArgument,
                 "moe_forward: x must be a (tokens, hidden) tensor, got ",
                 x.defined() ? x.str() : std::string("an undefined tensor"));
  const int64_t H = x.size(1);
  const int64_t E = wg.dim() == 3 ? wg.size(0) : -1, I = wg.dim() == 3 ? wg.size(1) : -1;
  MINDIESD_CHECK(wg.dim() == 3 && wg.size(2) == H && wu.shape() == wg.shape() && wd.dim() == 3 &&
                     wd.size(0) == E && wd.size(1) == H && wd.size(2) == I,
                 InvalidArgument, "moe_forward: stacked experts w_gate ", wg.shape().str(),
                 ", w_up ", wu.shape().str(), ", w_down ", wd.shape().str(), " do not fit x ",
                 x.shape().str(), " (expected (E, I, ", H, "), (E, I, ", H, "), (E, ", H, ", I))");
  MINDIESD_CHECK(wg.dtype() == x.dtype() && wu.dtype() == x.dtype() && wd.dtype() == x.dtype(),
                 InvalidArgument, "moe_forward: stacked expert weights must have x's dtype ",
                 dtype_name(x.dtype()));
  MINDIESD_CHECK(wg.device() == x.device() && wu.device() == x.device() &&
                     wd.device() == x.device(),
                 InvalidArgument, "moe_forward: stacked expert weights must be on x's device ",
                 x.device().str());
  check_route(x, route, E);
  const int64_t T = x.size(0), K = route.expert_ids.size(1);
  if (T == 0 || K == 0 || H == 0) return Tensor::zeros({T, H}, x.dtype(), x.device());
  const ExpertOrder o = sort_by_expert(x, route, E);
  const Tensor offsets = index_tensor(o.start, x.device());
  const Tensor g = ops::grouped_matmul(o.rows, wg, offsets, DType::f32);
  const Tensor u = ops::grouped_matmul(o.rows, wu, offsets, DType::f32);
  const Tensor h = ops::mul(ops::silu(g), u);
  const Tensor hx = x.dtype() == DType::f32 ? h : h.to(x.dtype());
  return combine(ops::grouped_matmul(hx, wd, offsets, DType::f32), o, route, x);
}

MoeExperts stack_experts(std::span<const MoeExpert> experts) {
  MINDIESD_CHECK(!experts.empty(), InvalidArgument, "stack_experts: no experts");
  std::vector<Tensor> g, u, d;
  for (const MoeExpert& e : experts) {
    MINDIESD_CHECK(e.w_gate.defined() && e.w_up.defined() && e.w_down.defined(), InvalidArgument,
                   "stack_experts: an expert has an undefined weight");
    g.push_back(e.w_gate.unsqueeze(0));
    u.push_back(e.w_up.unsqueeze(0));
    d.push_back(e.w_down.unsqueeze(0));
  }
  return {ops::cat(g, 0), ops::cat(u, 0), ops::cat(d, 0)};
}

Tensor moe_forward(const Tensor& x, const MoeRoute& route, std::span<const MoeExpert> experts) {
  MINDIESD_CHECK(x.defined() && x.dim() == 2, InvalidArgument,
                 "moe_forward: x must be a (tokens, hidden) tensor, got ",
                 x.defined() ? x.str() : std::string("an undefined tensor"));
  MINDIESD_CHECK(!experts.empty(), InvalidArgument, "moe_forward: experts is empty");
  const int64_t H = x.size(1);
  for (size_t e = 0; e < experts.size(); ++e) {
    const MoeExpert& ex = experts[e];
    MINDIESD_CHECK(ex.w_gate.defined() && ex.w_up.defined() && ex.w_down.defined(), InvalidArgument,
                   "moe_forward: experts[", e, "] has an undefined weight");
    const int64_t I = ex.w_gate.dim() == 2 ? ex.w_gate.size(0) : -1;
    MINDIESD_CHECK(
        ex.w_gate.dim() == 2 && ex.w_gate.size(1) == H && ex.w_up.shape() == ex.w_gate.shape() &&
            ex.w_down.dim() == 2 && ex.w_down.size(0) == H && ex.w_down.size(1) == I,
        InvalidArgument, "moe_forward: experts[", e, "] w_gate ", ex.w_gate.shape().str(),
        ", w_up ", ex.w_up.shape().str(), ", w_down ", ex.w_down.shape().str(), " do not fit x ",
        x.shape().str(), " (expected (I, ", H, "), (I, ", H, "), (", H, ", I))");
    MINDIESD_CHECK(ex.w_gate.dtype() == x.dtype() && ex.w_up.dtype() == x.dtype() &&
                       ex.w_down.dtype() == x.dtype(),
                   InvalidArgument, "moe_forward: experts[", e, "] weights must have x's dtype ",
                   dtype_name(x.dtype()));
  }
  const DType dt = x.dtype();
  return moe_forward(
      x, route, static_cast<int64_t>(experts.size()),
      [&experts, dt](int64_t e, const Tensor& rows) {
        const MoeExpert& ex = experts[e];
        const Tensor g = ops::matmul(rows, ex.w_gate.transpose(0, 1), Tensor(), DType::f32);
        const Tensor u = ops::matmul(rows, ex.w_up.transpose(0, 1), Tensor(), DType::f32);
        const Tensor h = ops::mul(ops::silu(g), u);
        return ops::matmul(dt == DType::f32 ? h : h.to(dt), ex.w_down.transpose(0, 1), Tensor(),
                           DType::f32);
      });
}

}  // namespace mindiesd::layer
