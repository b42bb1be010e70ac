#include "mindiesd/kernel/ref/attention.h"

#include <cmath>
#include <vector>

namespace mindiesd::ref {

Array attention(const Array& q, const Array& k, const Array& v, const Array& mask, bool mask_is_bool,
                double scale, bool causal) {
  const int64_t b = q.shape[0], hq = q.shape[1], sq = q.shape[2], d = q.shape[3];
  const int64_t hkv = k.shape[1], sk = k.shape[2], dv = v.shape[3];
  Array out(Shape{b, hq, sq, dv});
  std::vector<double> logits(sk);
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t hk = h / (hq / hkv);
      for (int64_t i = 0; i < sq; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < sk; ++j) {
          double s = 0;
          for (int64_t t = 0; t < d; ++t) {
            const int64_t qi[4] = {bi, h, i, t}, ki[4] = {bi, hk, j, t};
            s += q.at(qi, 4) * k.at(ki, 4);
          }
          s *= scale;
          if (mask.numel()) {
            const int64_t mi[4] = {bi, h, i, j};
            const double m = mask.at(mi, 4, true);
            s = mask_is_bool ? (m != 0 ? s : -INFINITY) : s + m;
          }
          if (causal && j > i + (sk - sq)) s = -INFINITY;
          logits[j] = s;
          mx = std::max(mx, s);
        }
        double sum = 0;
        for (int64_t j = 0; j < sk; ++j) {
          logits[j] = mx == -INFINITY ? 0.0 : std::exp(logits[j] - mx);
          sum += logits[j];
        }
        for (int64_t t = 0; t < dv; ++t) {
          double acc = 0;
          for (int64_t j = 0; j < sk; ++j) {
            const int64_t vi[4] = {bi, hk, j, t};
            acc += logits[j] * v.at(vi, 4);
          }
          out.v[((bi * hq + h) * sq + i) * dv + t] = sum > 0 ? acc / sum : 0.0;
        }
      }
    }
  return out;
}

}  // namespace mindiesd::ref
