#include "mindiesd/kernel/ref/ref.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mindiesd/core/error.h"
#include "mindiesd/core/philox.h"

namespace mindiesd::ref {

int64_t Array::index(const int64_t* idx, int nd, bool broadcast) const {
  int64_t flat = 0;
  const int lead = nd - shape.size();
  for (int d = 0; d < shape.size(); ++d) {
    const int64_t i = broadcast && shape[d] == 1 ? 0 : idx[d + lead];
    flat = flat * shape[d] + i;
  }
  return flat;
}

bool next_index(const Shape& shape, int64_t* idx) {
  for (int d = shape.size() - 1; d >= 0; --d) {
    if (++idx[d] < shape[d]) return true;
    idx[d] = 0;
  }
  return false;
}

Array from_tensor(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  Array a(c.shape());
  if (c.dtype() == DType::i64) {
    for (int64_t i = 0; i < a.numel(); ++i) a.v[i] = static_cast<double>(c.data<int64_t>()[i]);
    return a;
  }
  const std::vector<float> f = c.to_vector();
  for (int64_t i = 0; i < a.numel(); ++i) a.v[i] = f[i];
  return a;
}

namespace {

double unary_value(double x, UnaryKind k, double alpha, double beta) {
  switch (k) {
    case UnaryKind::neg: return -x;
    case UnaryKind::abs: return std::fabs(x);
    case UnaryKind::exp: return std::exp(x);
    case UnaryKind::log: return std::log(x);
    case UnaryKind::sqrt: return std::sqrt(x);
    case UnaryKind::rsqrt: return 1.0 / std::sqrt(x);
    case UnaryKind::sin: return std::sin(x);
    case UnaryKind::cos: return std::cos(x);
    case UnaryKind::tanh: return std::tanh(x);
    case UnaryKind::sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case UnaryKind::silu: return x / (1.0 + std::exp(-x));
    case UnaryKind::gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case UnaryKind::gelu_tanh:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case UnaryKind::relu: return x > 0 ? x : 0.0;
    case UnaryKind::square: return x * x;
    case UnaryKind::reciprocal: return 1.0 / x;
    case UnaryKind::affine: return alpha * x + beta;
    case UnaryKind::pow_scalar: return std::pow(x, alpha);
    case UnaryKind::clamp: return std::isnan(x) ? x : std::min(std::max(x, alpha), beta);
  }
  return 0.0;
}

double binary_value(double a, double b, BinaryKind k) {
  switch (k) {
    case BinaryKind::add: return a + b;
    case BinaryKind::sub: return a - b;
    case BinaryKind::mul: return a * b;
    case BinaryKind::div: return a / b;
    case BinaryKind::maximum: return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
    case BinaryKind::minimum: return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b);
    case BinaryKind::pow: return std::pow(a, b);
    case BinaryKind::eq: return a == b;
    case BinaryKind::ne: return a != b;
    case BinaryKind::lt: return a < b;
    case BinaryKind::le: return a <= b;
    case BinaryKind::gt: return a > b;
    case BinaryKind::ge: return a >= b;
  }
  return 0.0;
}

Shape broadcast(const Shape& a, const Shape& b) {
  const int n = std::max(a.size(), b.size());
  Shape s;
  s.resize(n);
  for (int i = 0; i < n; ++i) {
    const int ia = a.size() - n + i, ib = b.size() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    s[i] = da == 1 ? db : da;
  }
  return s;
}

}  // namespace

Array unary(const Array& x, UnaryKind kind, double alpha, double beta) {
  Array y(x.shape);
  for (int64_t i = 0; i < x.numel(); ++i) y.v[i] = unary_value(x.v[i], kind, alpha, beta);
  return y;
}

Array binary(const Array& a, const Array& b, BinaryKind kind) {
  Array y(broadcast(a.shape, b.shape));
  int64_t idx[kMaxDims] = {};
  const int nd = y.shape.size();
  int64_t i = 0;
  do {
    if (y.numel() == 0) break;
    y.v[i++] = binary_value(a.at(idx, nd, true), b.at(idx, nd, true), kind);
  } while (next_index(y.shape, idx));
  return y;
}

Array ternary(const Array& a, const Array& b, const Array& c, TernaryKind kind) {
  Array y(broadcast(broadcast(a.shape, b.shape), c.shape));
  int64_t idx[kMaxDims] = {};
  const int nd = y.shape.size();
  int64_t i = 0;
  do {
    if (y.numel() == 0) break;
    const double x0 = a.at(idx, nd, true), x1 = b.at(idx, nd, true), x2 = c.at(idx, nd, true);
    switch (kind) {
      case TernaryKind::where: y.v[i] = x0 != 0 ? x1 : x2; break;
      case TernaryKind::fma: y.v[i] = x0 * x1 + x2; break;
      case TernaryKind::lerp: y.v[i] = x0 + x2 * (x1 - x0); break;
    }
    ++i;
  } while (next_index(y.shape, idx));
  return y;
}

Array reduce(const Array& x, uint32_t mask, ReduceKind kind, int correction) {
  Shape os = x.shape;
  for (int d = 0; d < os.size(); ++d)
    if ((mask >> d) & 1u) os[d] = 1;
  const int nd = x.shape.size();
  std::vector<std::vector<double>> groups(os.numel());
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  const Array out_index(os);
  if (x.numel() > 0) {
    do {
      groups[out_index.index(idx, nd, true)].push_back(x.v[i++]);
    } while (next_index(x.shape, idx));
  }
  Array y(os);
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& v = groups[g];
    double s = 0, mx = -INFINITY, mn = INFINITY;
    bool nan = false;
    for (double e : v) {
      s += e;
      mx = std::max(mx, e);
      mn = std::min(mn, e);
      nan |= std::isnan(e);
    }
    const double n = static_cast<double>(v.size());
    const double mean = s / n;
    double q = 0;
    for (double e : v) q += (e - mean) * (e - mean);
    switch (kind) {
      case ReduceKind::sum: y.v[g] = s; break;
      case ReduceKind::mean: y.v[g] = mean; break;
      case ReduceKind::max: y.v[g] = nan ? NAN : mx; break;
      case ReduceKind::min: y.v[g] = nan ? NAN : mn; break;
      case ReduceKind::var: y.v[g] = n - correction > 0 ? q / (n - correction) : NAN; break;
    }
  }
  return y;
}

Array softmax(const Array& x, int dim) {
  const Array mx = reduce(x, 1u << dim, ReduceKind::max);
  Array e(x.shape);
  const int nd = x.shape.size();
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  if (x.numel() == 0) return e;
  do {
    e.v[i] = std::exp(x.v[i] - mx.at(idx, nd, true));
    ++i;
  } while (next_index(x.shape, idx));
  const Array s = reduce(e, 1u << dim, ReduceKind::sum);
  std::fill(idx, idx + kMaxDims, 0);
  i = 0;
  do {
    e.v[i] /= s.at(idx, nd, true);
    ++i;
  } while (next_index(x.shape, idx));
  return e;
}

Array matmul(const Array& a, const Array& b, const Array& bias) {
  const int na = a.shape.size(), nb = b.shape.size();
  const int64_t m = a.shape[na - 2], k = a.shape[na - 1], n = b.shape[nb - 1];
  Shape ba = a.shape, bb = b.shape;
  ba.resize(na - 2);
  bb.resize(nb - 2);
  Shape os = broadcast(ba, bb);
  const int nbatch = os.size();
  os.push_back(m);
  os.push_back(n);
  Array y(os);
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  do {
    double s = bias.numel() ? bias.v[idx[nbatch + 1]] : 0.0;
    int64_t ia[kMaxDims], ib[kMaxDims];
    std::copy(idx, idx + nbatch, ia);
    std::copy(idx, idx + nbatch, ib);
    for (int64_t p = 0; p < k; ++p) {
      ia[nbatch] = idx[nbatch];
      ia[nbatch + 1] = p;
      ib[nbatch] = p;
      ib[nbatch + 1] = idx[nbatch + 1];
      s += a.at(ia, nbatch + 2, true) * b.at(ib, nbatch + 2, true);
    }
    y.v[i++] = s;
  } while (next_index(os, idx));
  return y;
}

Array concat(const std::vector<Array>& xs, int dim) {
  Shape os = xs[0].shape;
  os[dim] = 0;
  for (const Array& x : xs) os[dim] += x.shape[dim];
  Array y(os);
  const int nd = os.size();
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  if (y.numel() == 0) return y;
  do {
    int64_t j = idx[dim];
    size_t part = 0;
    while (j >= xs[part].shape[dim]) j -= xs[part++].shape[dim];
    int64_t src[kMaxDims];
    std::copy(idx, idx + nd, src);
    src[dim] = j;
    y.v[i++] = xs[part].at(src, nd);
  } while (next_index(os, idx));
  return y;
}

Array pad(const Array& x, const PadParams& p) {
  Shape os = x.shape;
  const int nd = os.size();
  for (int d = 0; d < nd; ++d) os[d] += p.before[d] + p.after[d];
  Array y(os);
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  if (y.numel() == 0) return y;
  do {
    int64_t src[kMaxDims];
    bool fill = false;
    for (int d = 0; d < nd; ++d) {
      int64_t s = idx[d] - p.before[d];
      const int64_t n = x.shape[d];
      if (s < 0 || s >= n) {
        if (p.mode == PadMode::constant) fill = true;
        else if (p.mode == PadMode::replicate) s = s < 0 ? 0 : n - 1;
        else s = s < 0 ? -s : 2 * (n - 1) - s;  // reflect (pad < n)
      }
      src[d] = s;
    }
    y.v[i++] = fill ? p.value : x.at(src, nd);
  } while (next_index(os, idx));
  return y;
}

Array index_select(const Array& x, int dim, const std::vector<int64_t>& index) {
  Shape os = x.shape;
  os[dim] = static_cast<int64_t>(index.size());
  Array y(os);
  const int nd = os.size();
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  if (y.numel() == 0) return y;
  do {
    int64_t src[kMaxDims];
    std::copy(idx, idx + nd, src);
    src[dim] = index[idx[dim]];
    y.v[i++] = x.at(src, nd);
  } while (next_index(os, idx));
  return y;
}

Array gather(const Array& x, int dim, const Array& index) {
  Array y(index.shape);
  const int nd = index.shape.size();
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  if (y.numel() == 0) return y;
  do {
    int64_t src[kMaxDims];
    std::copy(idx, idx + nd, src);
    src[dim] = static_cast<int64_t>(index.v[i]);
    y.v[i++] = x.at(src, nd);
  } while (next_index(index.shape, idx));
  return y;
}

Array conv(const Array& x, const Array& w, const Array& bias, const ConvParams& p) {
  const int sp = p.spatial;
  Shape os{x.shape[0], w.shape[0]};
  for (int i = 0; i < sp; ++i)
    os.push_back((x.shape[2 + i] + 2 * p.padding[i] - p.dilation[i] * (w.shape[2 + i] - 1) - 1) /
                     p.stride[i] + 1);
  Array y(os);
  const int64_t cin_g = w.shape[1], cout_g = w.shape[0] / p.groups;
  Shape ks;
  for (int i = 0; i < sp; ++i) ks.push_back(w.shape[2 + i]);
  int64_t idx[kMaxDims] = {};
  int64_t i = 0;
  do {
    const int64_t n = idx[0], o = idx[1], g = o / cout_g;
    double s = bias.numel() ? bias.v[o] : 0.0;
    for (int64_t ci = 0; ci < cin_g; ++ci) {
      int64_t kidx[3] = {};
      do {
        int64_t xi[kMaxDims] = {n, g * cin_g + ci};
        int64_t wi[kMaxDims] = {o, ci};
        bool inside = true;
        for (int d = 0; d < sp; ++d) {
          const int64_t pos = idx[2 + d] * p.stride[d] - p.padding[d] + kidx[d] * p.dilation[d];
          inside &= pos >= 0 && pos < x.shape[2 + d];
          xi[2 + d] = pos;
          wi[2 + d] = kidx[d];
        }
        if (inside) s += x.at(xi, sp + 2) * w.at(wi, sp + 2);
      } while (next_index(ks, kidx));
    }
    y.v[i++] = s;
  } while (next_index(os, idx));
  return y;
}

Array interpolate(const Array& x, int64_t oh, int64_t ow, const InterpolateParams& p) {
  const int64_t ih = x.shape[2], iw = x.shape[3];
  auto scale = [&](int64_t in, int64_t out, double given) {
    if (p.align_corners) return out > 1 ? double(in - 1) / double(out - 1) : 0.0;
    return given > 0 ? given : double(in) / double(out);
  };
  const double sh = scale(ih, oh, p.scale_h), sw = scale(iw, ow, p.scale_w);
  Array y(Shape{x.shape[0], x.shape[1], oh, ow});
  int64_t idx[4] = {};
  int64_t i = 0;
  do {
    auto src = [&](int64_t o, double s, int64_t in, int64_t* i0, int64_t* i1, double* l) {
      if (p.mode == InterpolateMode::bilinear) {
        double v = p.align_corners ? s * o : std::max(s * (o + 0.5) - 0.5, 0.0);
        *i0 = std::min<int64_t>(static_cast<int64_t>(v), in - 1);
        *i1 = std::min<int64_t>(*i0 + 1, in - 1);
        *l = v - *i0;
      } else {
        const double v = p.mode == InterpolateMode::nearest ? std::floor(o * s) : std::floor((o + 0.5) * s);
        *i0 = *i1 = std::min<int64_t>(static_cast<int64_t>(v), in - 1);
        *l = 0;
      }
    };
    int64_t y0, y1, x0, x1;
    double ly, lx;
    src(idx[2], sh, ih, &y0, &y1, &ly);
    src(idx[3], sw, iw, &x0, &x1, &lx);
    auto px = [&](int64_t yy, int64_t xx) {
      const int64_t q[4] = {idx[0], idx[1], yy, xx};
      return x.at(q, 4);
    };
    y.v[i++] = (1 - ly) * ((1 - lx) * px(y0, x0) + lx * px(y0, x1)) +
               ly * ((1 - lx) * px(y1, x0) + lx * px(y1, x1));
  } while (next_index(y.shape, idx));
  return y;
}

Array random(const Shape& shape, const RandomParams& p) {
  Array y(shape);
  for (int64_t i = 0; i < y.numel(); ++i) {
    const uint64_t g = p.offset + static_cast<uint64_t>(i);
    const Philox4 w = philox_block(p.seed, g / 4);
    const int lane = static_cast<int>(g % 4);
    if (p.kind == RandomKind::uniform) {
      y.v[i] = p.a + (double(p.b) - p.a) * ((w.v[lane] >> 8) * 0x1p-24);
    } else {
      const int pair = lane & 2;
      const double u1 = (w.v[pair] >> 8) * 0x1p-24 + 0x1p-24;
      const double u2 = (w.v[pair + 1] >> 8) * 0x1p-24;
      const double r = std::sqrt(-2.0 * std::log(u1));
      const double z = (lane & 1) ? r * std::sin(2 * M_PI * u2) : r * std::cos(2 * M_PI * u2);
      y.v[i] = p.a + p.b * z;
    }
  }
  return y;
}

// ---- norms ----

namespace {
// Row-wise norm over the last dim, `rms` selecting RMSNorm; per-channel affine optional.
Array row_norm(const Array& x, const Array& weight, const Array& bias, double eps, bool rms) {
  MINDIESD_ASSERT(x.shape.size() >= 1, "row_norm of a 0-d array");
  const int64_t c = x.shape[x.shape.size() - 1];
  Array y(x.shape);
  if (c == 0) return y;
  for (int64_t r = 0; r < x.numel() / c; ++r) {
    const double* v = &x.v[r * c];
    double mean = 0, q = 0;
    if (!rms) {
      for (int64_t i = 0; i < c; ++i) mean += v[i];
      mean /= static_cast<double>(c);
    }
    for (int64_t i = 0; i < c; ++i) q += (v[i] - mean) * (v[i] - mean);
    const double rstd = 1.0 / std::sqrt(q / static_cast<double>(c) + eps);
    for (int64_t i = 0; i < c; ++i) {
      double o = (v[i] - mean) * rstd;
      if (weight.numel()) o *= weight.v[i];
      if (bias.numel()) o += bias.v[i];
      y.v[r * c + i] = o;
    }
  }
  return y;
}
}  // namespace

Array layer_norm(const Array& x, const Array& weight, const Array& bias, double eps) {
  return row_norm(x, weight, bias, eps, false);
}

Array rms_norm(const Array& x, const Array& weight, const Array& bias, double eps) {
  return row_norm(x, weight, bias, eps, true);
}

Array group_norm(const Array& x, int64_t groups, const Array& weight, const Array& bias,
                 double eps) {
  MINDIESD_ASSERT(x.shape.size() >= 2 && groups > 0 && x.shape[1] % groups == 0,
                  "group_norm: shape ", x.shape.str(), ", groups ", groups);
  const int64_t n = x.shape[0], c = x.shape[1];
  const int64_t s = n * c == 0 ? 0 : x.numel() / (n * c);
  const int64_t block = c / groups * s;  // elements of one (sample, group), contiguous
  Array y(x.shape);
  for (int64_t b = 0; b < n * groups; ++b) {
    const double* v = &x.v[b * block];
    double mean = 0, q = 0;
    for (int64_t i = 0; i < block; ++i) mean += v[i];
    mean /= static_cast<double>(block);
    for (int64_t i = 0; i < block; ++i) q += (v[i] - mean) * (v[i] - mean);
    const double rstd = 1.0 / std::sqrt(q / static_cast<double>(block) + eps);
    for (int64_t i = 0; i < block; ++i) {
      const int64_t ch = (b % groups) * (c / groups) + i / s;
      double o = (v[i] - mean) * rstd;
      if (weight.numel()) o *= weight.v[ch];
      if (bias.numel()) o += bias.v[ch];
      y.v[b * block + i] = o;
    }
  }
  return y;
}

Array modulate(const Array& y, const Array& scale, const Array& shift) {
  Array out(y.shape);
  int64_t idx[kMaxDims] = {};
  const int nd = y.shape.size();
  int64_t i = 0;
  do {
    if (out.numel() == 0) break;
    out.v[i] = y.v[i] * (1.0 + scale.at(idx, nd, true)) + shift.at(idx, nd, true);
    ++i;
  } while (next_index(y.shape, idx));
  return out;
}

}  // namespace mindiesd::ref

// ---- rope ----
namespace mindiesd::ref {

Array rope(const Array& x, const Array& cos, const Array& sin, RopeMode mode) {
  MINDIESD_ASSERT(x.shape.size() == 4 && cos.shape.size() == 4 && sin.shape.size() == 4,
                  "ref::rope expects 4-d arrays");
  const int64_t d = x.shape[3], half = d / 2;
  Array out(x.shape);
  int64_t idx[4] = {0, 0, 0, 0};
  if (out.numel() == 0) return out;
  do {
    const int64_t j = idx[3];
    int64_t pair[4] = {idx[0], idx[1], idx[2], 0};
    double sign;
    if (mode == RopeMode::rotate_half) {
      pair[3] = j < half ? j + half : j - half;
      sign = j < half ? -1.0 : 1.0;
    } else {
      pair[3] = j ^ 1;
      sign = j % 2 == 0 ? -1.0 : 1.0;
    }
    const double v = x.at(idx, 4) * cos.at(idx, 4, true) + sign * x.at(pair, 4) * sin.at(idx, 4, true);
    out.v[out.index(idx, 4)] = v;
  } while (next_index(x.shape, idx));
  return out;
}

void rope_table_1d(int64_t dim, const std::vector<double>& positions, double theta,
                   bool repeat_interleave, Array* cos, Array* sin) {
  const int64_t n = static_cast<int64_t>(positions.size()), half = dim / 2;
  *cos = Array(Shape{n, dim});
  *sin = Array(Shape{n, dim});
  for (int64_t s = 0; s < n; ++s)
    for (int64_t k = 0; k < half; ++k) {
      const double a = positions[s] * std::pow(theta, -2.0 * k / dim);
      const int64_t i0 = repeat_interleave ? 2 * k : k;
      const int64_t i1 = repeat_interleave ? 2 * k + 1 : k + half;
      cos->v[s * dim + i0] = cos->v[s * dim + i1] = std::cos(a);
      sin->v[s * dim + i0] = sin->v[s * dim + i1] = std::sin(a);
    }
}

Array timestep_embedding(const std::vector<double>& timesteps, int64_t dim, bool flip_sin_to_cos,
                         double downscale_freq_shift, double scale, double max_period) {
  const int64_t n = static_cast<int64_t>(timesteps.size()), half = dim / 2;
  Array out(Shape{n, dim});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < half; ++k) {
      const double f = std::exp(-std::log(max_period) * k / (half - downscale_freq_shift));
      const double a = scale * timesteps[i] * f;
      out.v[i * dim + (flip_sin_to_cos ? half : 0) + k] = std::sin(a);
      out.v[i * dim + (flip_sin_to_cos ? 0 : half) + k] = std::cos(a);
    }
  return out;
}

}  // namespace mindiesd::ref
