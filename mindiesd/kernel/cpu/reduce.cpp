// Reductions (sum, mean, max, min, var) over any set of dims, and softmax along one dim.
//
// Values are loaded in f32 chunks and combined in double: per chunk a sum and a centred sum
// of squares, merged with Chan's parallel formula, so var stays accurate for large means
// and a reduction split across threads gives the same answer up to rounding.
#include <cmath>
#include <limits>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"
#include "mindiesd/kernel/cpu/vec_math.h"

namespace mindiesd::cpu {

namespace {

constexpr int64_t kChunk = 512;

struct Partial {
  double n = 0, mean = 0, m2 = 0;
  float max = -std::numeric_limits<float>::infinity();
  float min = std::numeric_limits<float>::infinity();
  bool nan = false;

  void add_chunk(const float* x, int64_t len) {
    double s = 0;
    float mx = max, mn = min;
    for (int64_t i = 0; i < len; ++i) {
      s += x[i];
      mx = x[i] > mx ? x[i] : mx;
      mn = x[i] < mn ? x[i] : mn;
    }
    for (int64_t i = 0; i < len; ++i) nan |= x[i] != x[i];
    const double cm = s / static_cast<double>(len);
    double q = 0;
    for (int64_t i = 0; i < len; ++i) q += (x[i] - cm) * (x[i] - cm);
    merge(Partial{static_cast<double>(len), cm, q, mx, mn, false});
  }
  void merge(const Partial& o) {
    if (o.n == 0) return;
    const double tot = n + o.n;
    const double d = o.mean - mean;
    mean += d * o.n / tot;
    m2 += o.m2 + d * d * n * o.n / tot;
    n = tot;
    max = std::max(max, o.max);
    min = std::min(min, o.min);
    nan |= o.nan;
  }
  float result(ReduceKind k, int correction) const {
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    switch (k) {
      case ReduceKind::sum: return static_cast<float>(mean * n);
      case ReduceKind::mean: return static_cast<float>(mean);
      case ReduceKind::max: return nan ? qnan : max;
      case ReduceKind::min: return nan ? qnan : min;
      case ReduceKind::var:
        return n - correction > 0 ? static_cast<float>(m2 / (n - correction)) : qnan;
    }
    return 0.0f;
  }
};

void reduce_kernel(const OpCall& c) {
  const auto& p = c.p<ReduceParams>();
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  Shape kept_shape, kept_in_st, kept_out_st, red_shape, red_st;
  for (int d = 0; d < x.dim(); ++d) {
    if ((p.dims_mask >> d) & 1u) {
      red_shape.push_back(x.size(d));
      red_st.push_back(x.stride(d));
    } else {
      kept_shape.push_back(x.size(d));
      kept_in_st.push_back(x.stride(d));
      kept_out_st.push_back(out.stride(d));
    }
  }
  const int64_t n_out = kept_shape.numel();
  const int64_t n_red = red_shape.numel();
  StridedRuns<1> red(red_shape, {&red_st});
  const int64_t rs = red.inner_stride(0);
  const void* base = x.storage()->data();

  auto partial_of = [&](int64_t in_off, int64_t b, int64_t e) {
    Partial acc;
    float buf[kChunk];
    red.for_runs(b, e, [&](const std::array<int64_t, 1>& off, int64_t len) {
      for (int64_t i = 0; i < len; i += kChunk) {
        const int64_t n = std::min(kChunk, len - i);
        load_as_f32(base, x.dtype(), in_off + off[0] + i * rs, rs, n, buf);
        acc.add_chunk(buf, n);
      }
    });
    return acc;
  };
  auto offsets_of = [&](int64_t o, int64_t* in_off, int64_t* out_off) {
    *in_off = x.offset();
    *out_off = out.offset();
    for (int d = kept_shape.size() - 1; d >= 0; --d) {
      const int64_t i = o % kept_shape[d];
      o /= kept_shape[d];
      *in_off += i * kept_in_st[d];
      *out_off += i * kept_out_st[d];
    }
  };
  void* obase = out.storage()->data();

  if (n_out >= num_threads() || n_red < (1 << 16)) {
    parallel_for(0, n_out, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, n_red)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t o = b; o < e; ++o) {
                     int64_t io, oo;
                     offsets_of(o, &io, &oo);
                     const float r = n_red == 0 ? (p.kind == ReduceKind::sum ? 0.0f : NAN)
                                                : partial_of(io, 0, n_red).result(p.kind, p.correction);
                     store_from_f32(obase, out.dtype(), oo, 1, 1, &r);
                   }
                 });
    return;
  }
  // Few outputs, long reductions: split each reduction across threads.
  const int nt = num_threads();
  std::vector<Partial> parts(nt);
  for (int64_t o = 0; o < n_out; ++o) {
    int64_t io, oo;
    offsets_of(o, &io, &oo);
    parallel_for(0, nt, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) parts[t] = partial_of(io, n_red * t / nt, n_red * (t + 1) / nt);
    });
    Partial acc;
    for (const Partial& q : parts) acc.merge(q);
    const float r = acc.result(p.kind, p.correction);
    store_from_f32(obase, out.dtype(), oo, 1, 1, &r);
  }
}

void softmax_kernel(const OpCall& c) {
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  const int dim = c.p<SoftmaxParams>().dim;
  const int64_t len = x.size(dim);
  const int64_t xs = x.stride(dim), os = out.stride(dim);
  // Rows: every index of the other dims.
  Shape row_shape, row_xst, row_ost;
  for (int d = 0; d < x.dim(); ++d) {
    if (d == dim) continue;
    row_shape.push_back(x.size(d));
    row_xst.push_back(x.stride(d));
    row_ost.push_back(out.stride(d));
  }
  StridedRuns<2> rows(row_shape, {&row_xst, &row_ost});
  const void* xb = x.storage()->data();
  void* ob = out.storage()->data();
  parallel_for(0, rows.numel(), std::max<int64_t>(1, 4096 / std::max<int64_t>(1, len)),
               [&](int64_t b, int64_t e) {
                 std::vector<float> buf(len);
                 rows.for_runs(b, e, [&](const std::array<int64_t, 2>& off, int64_t n) {
                   for (int64_t r = 0; r < n; ++r) {
                     const int64_t xo = x.offset() + off[0] + r * rows.inner_stride(0);
                     const int64_t oo = out.offset() + off[1] + r * rows.inner_stride(1);
                     load_as_f32(xb, x.dtype(), xo, xs, len, buf.data());
                     float mx = -std::numeric_limits<float>::infinity();
                     for (int64_t i = 0; i < len; ++i) mx = buf[i] > mx ? buf[i] : mx;
                     // A row of -inf (fully masked) gives NaN, as in PyTorch.
                     float sum = 0.0f;
                     for (int64_t i = 0; i < len; ++i) {
                       buf[i] = exp_f32(buf[i] - mx);
                       sum += buf[i];
                     }
                     const float inv = 1.0f / sum;
                     for (int64_t i = 0; i < len; ++i) buf[i] *= inv;
                     store_from_f32(ob, out.dtype(), oo, os, len, buf.data());
                   }
                 });
               });
}

}  // namespace

void register_reduce_kernels(KernelRegistry& r) {
  const DTypeSet in{DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2,
                    DType::i8,  DType::u8,  DType::i32,  DType::i64,     DType::boolean};
  r.add(OpId::reduce, DeviceType::CPU, {in}, kFloatTypes, reduce_kernel);
  r.add(OpId::softmax, DeviceType::CPU, {kFloatTypes}, kFloatTypes, softmax_kernel);
}

}  // namespace mindiesd::cpu
