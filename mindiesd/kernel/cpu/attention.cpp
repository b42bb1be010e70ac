// Flash-style attention on CPU (Dao et al., FlashAttention, 2022): for each (batch, head,
// block of queries) the keys are streamed in blocks, logits are formed in registers/L1, and an
// online softmax (running max and sum per row) rescales the output accumulator, so no
// Sq x Sk matrix ever exists. All arithmetic is f32 whatever the input dtype.
//
// Micro-kernels use GCC vector extensions (16 x f32 = one AVX-512 register; two AVX2
// registers elsewhere): logits for 4 query rows x 64 keys live in 16 accumulators, and the
// P @ V update works on 4 rows x 32 output columns.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"
#include "mindiesd/kernel/cpu/vec_math.h"

namespace mindiesd::cpu {

namespace {

using v16 = float __attribute__((vector_size(64), may_alias, aligned(64)));

constexpr int kBq = 64;  // query rows per work item
constexpr int kBk = 64;  // keys per inner block (4 vectors)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// One attention problem: 4-D views q (B, Hq, Sq, D), k/v (B, Hkv, Sk, D/Dv), out
// (B, Hq, Sq, Dv), an optional mask view already expanded to (B, Hq, Sq, Sk), and for the
// block-sparse op a kept-block mask (B, Hq, nQ, nK) with its block sizes (multiples of kBq and
// kBk, so a work item lies in one query block and a key tile in one key block).
struct Problem {
  Tensor q, k, v, mask, out;
  Tensor block_mask;
  int64_t block_q = 0, block_k = 0;

  // Whether query rows [q0, q0 + kBq) of (b, h) attend the key tile starting at k0.
  bool keeps(int64_t b, int64_t h, int64_t q0, int64_t k0) const {
    if (!block_mask.defined()) return true;
    const auto* m = static_cast<const uint8_t*>(block_mask.storage()->data());
    return m[block_mask.offset() + b * block_mask.stride(0) + h * block_mask.stride(1) +
             (q0 / block_q) * block_mask.stride(2) + (k0 / block_k) * block_mask.stride(3)] != 0;
  }
  // Key tiles an item visits: its share of the work.
  int64_t tiles(int64_t b, int64_t h, int64_t q0) const {
    int64_t n = 0;
    for (int64_t k0 = 0; k0 < k.size(2); k0 += kBk) n += keeps(b, h, q0, k0);
    return n;
  }
};

// Per-thread buffers. K and V of the (problem, batch, kv head) being worked on are converted to
// f32 once — K transposed to kt[D][Sk rounded up to kBk], V to vb[Sk][Dv rounded to 16] — and
// reused by every query block and every query head of the GQA group that follows. kt is
// blocked as [Sk / kBk][D][kBk] so that one key block is 32 KB of consecutive memory (a
// [D][Sk] layout strides by Sk floats and, at Sk = 1024, aliases every row to one L1 set).
struct Scratch {
  std::vector<float> raw;
  float *q, *s, *o, *row, *m, *l;
  std::vector<float> kt_raw, vb_raw;
  float *kt = nullptr, *vb = nullptr;
  int64_t ld = 0;  // Sk rounded up to kBk
  int64_t cached_problem = -1, cached_b = -1, cached_h = -1;

  Scratch(int64_t d, int64_t dvp) {
    const int64_t dp = round16(d);
    const int64_t sizes[] = {kBq * dp, kBq * kBk, kBq * dvp, std::max<int64_t>(dp, dvp) + kBk,
                             kBq, kBq};
    int64_t total = 0;
    for (int64_t s : sizes) total += round16(s) + 16;
    raw.assign(total, 0.0f);
    float* p = raw.data();
    auto take = [&](int64_t n) {
      float* a = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
      p = a + round16(n);
      return a;
    };
    q = take(sizes[0]);
    s = take(sizes[1]);
    o = take(sizes[2]);
    row = take(sizes[3]);
    m = take(sizes[4]);
    l = take(sizes[5]);
  }

  static float* aligned(std::vector<float>& v, int64_t n) {
    v.resize(n + 16);
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
  }
};

const void* base_of(const Tensor& t) { return t.storage()->data(); }

float hmax(v16 x) {
  float m = x[0];
  for (int i = 1; i < 16; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

float row_max(const float* s) {
  const v16* v = reinterpret_cast<const v16*>(s);
  v16 m = v[0];
  for (int c = 1; c < kBk / 16; ++c) m = m > v[c] ? m : v[c];
  return hmax(m);
}

float row_sum(const float* s) {
  const v16* v = reinterpret_cast<const v16*>(s);
  v16 acc = v[0];
  for (int c = 1; c < kBk / 16; ++c) acc += v[c];
  float sum = 0.0f;
  for (int i = 0; i < 16; ++i) sum += acc[i];
  return sum;
}

// Fills the per-thread K/V cache for (problem, b, kv head hk) unless it already holds it.
void load_kv(const Tensor& k, const Tensor& v, int64_t problem, int64_t b, int64_t hk, Scratch& sc) {
  if (sc.cached_problem == problem && sc.cached_b == b && sc.cached_h == hk) return;
  const int64_t sk = k.size(2), d = k.size(3), dv = v.size(3), dvp = round16(dv);
  sc.ld = (sk + kBk - 1) / kBk * kBk;
  sc.kt = Scratch::aligned(sc.kt_raw, d * sc.ld);
  sc.vb = Scratch::aligned(sc.vb_raw, sc.ld * dvp);
  for (int64_t j = 0; j < sc.ld; ++j) {
    if (j < sk) {
      const int64_t off = k.offset() + b * k.stride(0) + hk * k.stride(1) + j * k.stride(2);
      load_as_f32(base_of(k), k.dtype(), off, k.stride(3), d, sc.row);
      float* kb = sc.kt + (j / kBk) * d * kBk + j % kBk;
      for (int64_t t = 0; t < d; ++t) kb[t * kBk] = sc.row[t];
      const int64_t voff = v.offset() + b * v.stride(0) + hk * v.stride(1) + j * v.stride(2);
      load_as_f32(base_of(v), v.dtype(), voff, v.stride(3), dv, sc.vb + j * dvp);
      for (int64_t t = dv; t < dvp; ++t) sc.vb[j * dvp + t] = 0.0f;
    } else {  // padding keys: zero logits (masked below) and zero values
      float* kb = sc.kt + (j / kBk) * d * kBk + j % kBk;
      for (int64_t t = 0; t < d; ++t) kb[t * kBk] = 0.0f;
      for (int64_t t = 0; t < dvp; ++t) sc.vb[j * dvp + t] = 0.0f;
    }
  }
  sc.cached_problem = problem;
  sc.cached_b = b;
  sc.cached_h = hk;
}

// Keeps loaded vectors in registers: GCC otherwise folds the same load into every FMA that
// uses it, which turns a 4-load, 16-FMA step into 16 loads and makes the loop load-bound.
inline void pin_one(v16& v) { asm("" : "+v"(v)); }
template <typename... V>
inline void pin(V&... v) {
  (pin_one(v), ...);
}

// s[4][kBk] = q[4 rows][d] . kt[d][kBk columns at stride ld]
inline void qk_4rows(const float* q, int64_t dp, const float* kt, int64_t ld, int64_t d, float* s) {
  v16 acc[4][4] = {};
  for (int64_t t = 0; t < d; ++t) {
    const v16* k = reinterpret_cast<const v16*>(kt + t * ld);
    v16 k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    pin(k0, k1, k2, k3);
    for (int r = 0; r < 4; ++r) {
      const float qv = q[r * dp + t];
      acc[r][0] += qv * k0;
      acc[r][1] += qv * k1;
      acc[r][2] += qv * k2;
      acc[r][3] += qv * k3;
    }
  }
  for (int r = 0; r < 4; ++r) {
    v16* out = reinterpret_cast<v16*>(s + r * kBk);
    for (int c = 0; c < 4; ++c) out[c] = acc[r][c];
  }
}

// o[4 rows][dvp] += p[4 rows][nk] @ vb[nk][dvp], 32 columns at a time.
inline void pv_4rows(const float* p, int64_t nk, const float* vb, int64_t dvp, float* o) {
  for (int64_t c = 0; c < dvp; c += 32) {
    const bool two = c + 16 < dvp;
    v16 acc[4][2];
    for (int r = 0; r < 4; ++r) {
      acc[r][0] = *reinterpret_cast<const v16*>(o + r * dvp + c);
      acc[r][1] = two ? *reinterpret_cast<const v16*>(o + r * dvp + c + 16) : v16{};
    }
    for (int64_t j = 0; j < nk; ++j) {
      v16 v0 = *reinterpret_cast<const v16*>(vb + j * dvp + c);
      v16 v1 = two ? *reinterpret_cast<const v16*>(vb + j * dvp + c + 16) : v16{};
      pin(v0, v1);
      for (int r = 0; r < 4; ++r) {
        const float pv = p[r * kBk + j];
        acc[r][0] += pv * v0;
        acc[r][1] += pv * v1;
      }
    }
    for (int r = 0; r < 4; ++r) {
      *reinterpret_cast<v16*>(o + r * dvp + c) = acc[r][0];
      if (two) *reinterpret_cast<v16*>(o + r * dvp + c + 16) = acc[r][1];
    }
  }
}

// Runs one (b, h, query block) item of a problem.
void attend_block(const Problem& pr, int64_t problem, const AttentionParams& p, int64_t b, int64_t h,
                  int64_t q0, Scratch& sc) {
  const Tensor &q = pr.q, &k = pr.k, &v = pr.v, &out = pr.out, &mask = pr.mask;
  const int64_t sq = q.size(2), sk = k.size(2), d = q.size(3), dv = v.size(3);
  const int64_t dp = round16(d), dvp = round16(dv);
  const int64_t hk = h / (q.size(1) / k.size(1));
  const int64_t nq = std::min<int64_t>(kBq, sq - q0);
  const int64_t nq4 = (nq + 3) / 4 * 4;
  const int64_t causal_shift = sk - sq;
  load_kv(k, v, problem, b, hk, sc);

  // Queries, pre-scaled; padded rows are zero and never stored.
  std::memset(sc.q, 0, sizeof(float) * kBq * dp);
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t off = q.offset() + b * q.stride(0) + h * q.stride(1) + (q0 + i) * q.stride(2);
    load_as_f32(base_of(q), q.dtype(), off, q.stride(3), d, sc.q + i * dp);
    for (int64_t t = 0; t < d; ++t) sc.q[i * dp + t] *= p.scale;
  }
  std::memset(sc.o, 0, sizeof(float) * kBq * dvp);
  for (int64_t i = 0; i < kBq; ++i) {
    sc.m[i] = kNegInf;
    sc.l[i] = 0.0f;
  }
  // Causal: keys beyond the last query row's horizon are never needed.
  const int64_t k_end = p.causal ? std::min<int64_t>(sk, q0 + nq + causal_shift) : sk;
  for (int64_t k0 = 0; k0 < k_end; k0 += kBk) {
    if (!pr.keeps(b, h, q0, k0)) continue;
    const int64_t nk = std::min<int64_t>(kBk, k_end - k0);
    for (int64_t i = 0; i < nq4; i += 4) qk_4rows(sc.q + i * dp, dp, sc.kt + k0 * d, kBk, d, sc.s + i * kBk);
    for (int64_t i = 0; i < nq; ++i) {
      float* s = sc.s + i * kBk;
      if (mask.defined()) {
        const int64_t off = mask.offset() + b * mask.stride(0) + h * mask.stride(1) +
                            (q0 + i) * mask.stride(2) + k0 * mask.stride(3);
        load_as_f32(base_of(mask), mask.dtype(), off, mask.stride(3), nk, sc.row);
        if (mask.dtype() == DType::boolean) {
          for (int64_t j = 0; j < nk; ++j) s[j] = sc.row[j] != 0.0f ? s[j] : kNegInf;
        } else {
          for (int64_t j = 0; j < nk; ++j) s[j] += sc.row[j];
        }
      }
      if (p.causal) {
        const int64_t last = q0 + i + causal_shift;  // the last key this row may see
        for (int64_t j = std::max<int64_t>(0, last - k0 + 1); j < nk; ++j) s[j] = kNegInf;
      }
      for (int64_t j = nk; j < kBk; ++j) s[j] = kNegInf;  // padding keys
      const float mx = std::max(sc.m[i], row_max(s));
      if (mx == kNegInf) {  // nothing visible yet in this row
        for (int64_t j = 0; j < kBk; ++j) s[j] = 0.0f;
        continue;
      }
      const float alpha = exp_f32(sc.m[i] - mx);  // 0 when the old max was -inf
      // Explicit vector exp and sum: GCC leaves this loop scalar and may not reassociate a
      // float sum on its own.
      v16* sv = reinterpret_cast<v16*>(s);
      for (int c = 0; c < kBk / 16; ++c) sv[c] = exp_v16(sv[c] - mx);
      sc.l[i] = sc.l[i] * alpha + row_sum(s);
      sc.m[i] = mx;
      if (alpha != 1.0f) {
        float* o = sc.o + i * dvp;
        for (int64_t t = 0; t < dvp; ++t) o[t] *= alpha;
      }
    }
    for (int64_t i = nq; i < nq4; ++i)
      for (int64_t j = 0; j < kBk; ++j) sc.s[i * kBk + j] = 0.0f;
    for (int64_t i = 0; i < nq4; i += 4) pv_4rows(sc.s + i * kBk, nk, sc.vb + k0 * dvp, dvp, sc.o + i * dvp);
  }
  for (int64_t i = 0; i < nq; ++i) {
    // A row that saw no key (all masked) outputs zeros rather than NaN.
    const float inv = sc.l[i] > 0.0f ? 1.0f / sc.l[i] : 0.0f;
    float* o = sc.o + i * dvp;
    for (int64_t t = 0; t < dv; ++t) o[t] *= inv;
    const int64_t off = out.offset() + b * out.stride(0) + h * out.stride(1) + (q0 + i) * out.stride(2);
    store_from_f32(out.storage()->data(), out.dtype(), off, out.stride(3), dv, o);
  }
}

void run_problems(const std::vector<Problem>& problems, const AttentionParams& p) {
  // Work items: (problem, b, h, query block), flattened for even splitting across threads.
  struct Item {
    int32_t problem;
    int32_t b, h;
    int64_t q0;
  };
  std::vector<Item> items;
  for (size_t i = 0; i < problems.size(); ++i) {
    const Tensor& q = problems[i].q;
    for (int64_t b = 0; b < q.size(0); ++b)
      for (int64_t h = 0; h < q.size(1); ++h)
        for (int64_t q0 = 0; q0 < q.size(2); q0 += kBq)
          items.push_back({static_cast<int32_t>(i), static_cast<int32_t>(b), static_cast<int32_t>(h), q0});
  }
  if (items.empty()) return;
  int64_t dmax = 0, dvmax = 0;
  for (const Problem& pr : problems) {
    dmax = std::max(dmax, pr.q.size(3));
    dvmax = std::max(dvmax, pr.v.size(3));
  }
  // Contiguous runs of items per thread (so K/V conversions are reused along a run), cut where
  // the running count of key tiles crosses an equal share: with a block mask, rows keep very
  // different numbers of blocks, and an equal count of items would leave threads idle.
  const int64_t n_items = static_cast<int64_t>(items.size());
  const int64_t threads = std::min<int64_t>(num_threads(), n_items);
  std::vector<int64_t> cut(threads + 1, n_items);
  cut[0] = 0;
  bool sparse = false;
  for (const Problem& pr : problems) sparse |= pr.block_mask.defined();
  if (sparse && threads > 1) {
    std::vector<int64_t> prefix(n_items + 1, 0);
    for (int64_t w = 0; w < n_items; ++w) {
      const Item& it = items[w];
      prefix[w + 1] = prefix[w] + 1 + problems[it.problem].tiles(it.b, it.h, it.q0);
    }
    for (int64_t t = 1; t < threads; ++t) {
      const int64_t share = prefix[n_items] * t / threads;
      cut[t] = std::lower_bound(prefix.begin(), prefix.end(), share) - prefix.begin();
    }
  } else {
    for (int64_t t = 1; t < threads; ++t) cut[t] = n_items * t / threads;
  }
  parallel_for(0, threads, 1, [&](int64_t lo, int64_t hi) {
    Scratch sc(dmax, round16(dvmax));
    for (int64_t t = lo; t < hi; ++t) {
      for (int64_t w = cut[t]; w < cut[t + 1]; ++w) {
        const Item& it = items[w];
        attend_block(problems[it.problem], it.problem, p, it.b, it.h, it.q0, sc);
      }
    }
  });
}

void attention_kernel(const OpCall& c) {
  Problem pr{c.inputs[0], c.inputs[1], c.inputs[2],
             c.inputs.size() > 3 ? c.inputs[3] : Tensor(), c.outputs[0], Tensor(), 0, 0};
  run_problems({pr}, c.p<AttentionParams>());
}

void sparse_attention_kernel(const OpCall& c) {
  const auto& sp = c.p<SparseAttentionParams>();
  const Problem pr{c.inputs[0], c.inputs[1], c.inputs[2], Tensor(), c.outputs[0],
                   c.inputs[3], sp.block_q, sp.block_k};
  AttentionParams p;
  p.scale = sp.scale;
  run_problems({pr}, p);
}

void attention_varlen_kernel(const OpCall& c) {
  const Tensor& q = c.inputs[0];
  const Tensor& k = c.inputs[1];
  const Tensor& v = c.inputs[2];
  const Tensor cq = c.inputs[3].contiguous(), ck = c.inputs[4].contiguous();
  const int32_t* pq = cq.data<int32_t>();
  const int32_t* pk = ck.data<int32_t>();
  std::vector<Problem> problems;
  // Each sequence is a (1, H, S_b, D) view of the packed (T, H, D) tensors.
  auto seq = [](const Tensor& t, int64_t a, int64_t e) { return t.slice(0, a, e).permute({1, 0, 2}).unsqueeze(0); };
  for (int64_t b = 0; b + 1 < cq.numel(); ++b) {
    problems.push_back({seq(q, pq[b], pq[b + 1]), seq(k, pk[b], pk[b + 1]), seq(v, pk[b], pk[b + 1]),
                        Tensor(), seq(c.outputs[0], pq[b], pq[b + 1]), Tensor(), 0, 0});
  }
  run_problems(problems, c.p<AttentionParams>());
}

}  // namespace

void register_attention_kernels(KernelRegistry& r) {
  const DTypeSet mask_types{DType::f32, DType::f16, DType::bf16, DType::boolean};
  r.add(OpId::attention, DeviceType::CPU, {kFloatTypes, kFloatTypes, kFloatTypes, mask_types},
        kFloatTypes, attention_kernel);
  r.add(OpId::sparse_attention, DeviceType::CPU,
        {kFloatTypes, kFloatTypes, kFloatTypes, DTypeSet{DType::boolean}}, kFloatTypes,
        sparse_attention_kernel);
  r.add(OpId::attention_varlen, DeviceType::CPU,
        {kFloatTypes, kFloatTypes, kFloatTypes, DTypeSet{DType::i32}}, kFloatTypes,
        attention_varlen_kernel);
}

}  // namespace mindiesd::cpu
