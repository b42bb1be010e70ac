#include "mindiesd/core/ops.h"

#include <algorithm>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"

namespace mindiesd::ops {

namespace {
void run(OpId op, std::initializer_list<Tensor> in, const Tensor& out, const void* params) {
  dispatch(op, std::span<const Tensor>(in.begin(), in.size()), {&out, 1}, params);
}

Tensor random(const Shape& shape, const RandomParams& p, DType dtype, Device device) {
  MINDIESD_CHECK(is_floating(dtype), InvalidArgument, "random noise needs a float dtype, got ",
                 dtype_name(dtype));
  Tensor out = Tensor::empty(shape, dtype, device);
  run(OpId::random, {}, out, &p);
  return out;
}
}  // namespace

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor out = Tensor::empty(shape, dtype, device);
  const FillParams p{value};
  run(OpId::fill, {}, out, &p);
  return out;
}

Tensor randn(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype, Device device) {
  return random(shape, RandomParams{RandomKind::normal, seed, offset, 0.0f, 1.0f}, dtype, device);
}

Tensor rand(const Shape& shape, uint64_t seed, uint64_t offset, float low, float high, DType dtype,
            Device device) {
  return random(shape, RandomParams{RandomKind::uniform, seed, offset, low, high}, dtype, device);
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  const bool fa = is_floating(a), fb = is_floating(b);
  if (fa && fb) return DType::f32;  // mixed float widths compute and store in f32
  if (fa) return a;
  if (fb) return b;
  if (a == DType::boolean) return b;
  if (b == DType::boolean) return a;
  // u8 with i8 needs a signed type holding both ranges (PyTorch picks i16, which we lack).
  if ((a == DType::u8 && b == DType::i8) || (a == DType::i8 && b == DType::u8)) return DType::i32;
  return dtype_bits(a) >= dtype_bits(b) ? a : b;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what) {
  const int n = std::max(a.size(), b.size());
  Shape out;
  out.resize(n);
  for (int i = 0; i < n; ++i) {
    const int ia = a.size() - n + i, ib = b.size() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    MINDIESD_CHECK(da == db || da == 1 || db == 1, InvalidArgument, what, ": shapes ", a.str(),
                   " and ", b.str(), " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor unary(const Tensor& x, UnaryKind kind, float alpha, float beta) {
  const DType t = is_floating(x.dtype()) ? x.dtype() : DType::f32;
  Tensor out = Tensor::empty(x.shape(), t, x.device());
  const UnaryParams p{kind, alpha, beta};
  run(OpId::unary, {x}, out, &p);
  return out;
}

Tensor binary(const Tensor& a, const Tensor& b, BinaryKind kind) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "binary op");
  DType t = promote_types(a.dtype(), b.dtype());
  if (kind == BinaryKind::div || kind == BinaryKind::pow) t = is_floating(t) ? t : DType::f32;
  if (is_comparison(kind)) t = DType::boolean;
  Tensor out = Tensor::empty(shape, t, a.device());
  const BinaryParams p{kind};
  run(OpId::binary, {a.expand(shape), b.expand(shape)}, out, &p);
  return out;
}

Tensor ternary(const Tensor& a, const Tensor& b, const Tensor& c, TernaryKind kind) {
  const Shape shape = broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), "ternary op"),
                                       c.shape(), "ternary op");
  DType t = kind == TernaryKind::where ? promote_types(b.dtype(), c.dtype())
                                       : promote_types(promote_types(a.dtype(), b.dtype()), c.dtype());
  if (!is_floating(t)) t = DType::f32;
  Tensor out = Tensor::empty(shape, t, a.device());
  const TernaryParams p{kind};
  run(OpId::ternary, {a.expand(shape), b.expand(shape), c.expand(shape)}, out, &p);
  return out;
}

Tensor reduce(const Tensor& x, std::span<const int> dims, ReduceKind kind, bool keepdim,
              int correction) {
  uint32_t mask = 0;
  if (dims.empty()) {
    mask = (1u << x.dim()) - 1;
  } else {
    for (int d : dims) {
      const int w = x.wrap_dim(d);
      MINDIESD_CHECK(!((mask >> w) & 1u), InvalidArgument, "reduce: dim ", w, " repeated");
      mask |= 1u << w;
    }
  }
  Shape kept = x.shape();
  for (int d = 0; d < x.dim(); ++d)
    if ((mask >> d) & 1u) kept[d] = 1;
  const DType t = is_floating(x.dtype()) ? x.dtype() : DType::f32;
  Tensor out = Tensor::empty(kept, t, x.device());
  const ReduceParams p{kind, mask, correction};
  run(OpId::reduce, {x}, out, &p);
  if (keepdim) return out;
  Shape squeezed;
  for (int d = 0; d < x.dim(); ++d)
    if (!((mask >> d) & 1u)) squeezed.push_back(x.size(d));
  return out.view(squeezed);
}

Tensor softmax(const Tensor& x, int dim) {
  const int d = x.wrap_dim(dim);
  MINDIESD_CHECK(is_floating(x.dtype()), InvalidArgument, "softmax of a ", dtype_name(x.dtype()),
                 " tensor");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  const SoftmaxParams p{d};
  run(OpId::softmax, {x}, out, &p);
  return out;
}

Tensor matmul(const Tensor& a, const Tensor& b, const Tensor& bias, std::optional<DType> out_dtype) {
  MINDIESD_CHECK(a.dim() >= 1 && b.dim() >= 1, InvalidArgument, "matmul of 0-d tensors");
  // 1-D operands follow torch.matmul: a vector is a 1-row / 1-column matrix, dropped after.
  const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
  const Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
  const int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
  MINDIESD_CHECK(b2.size(-2) == k, InvalidArgument, "matmul: inner dims differ, ", a.shape().str(),
                 " @ ", b.shape().str());
  Shape ab = a2.shape(), bb = b2.shape();
  ab.resize(ab.size() - 2);
  bb.resize(bb.size() - 2);
  Shape batch = broadcast_shapes(ab, bb, "matmul batch dims");
  // Rank-pad both operands with size-1 batch dims (oneDNN broadcasts those).
  Tensor ea = a2, eb = b2;
  while (ea.dim() < batch.size() + 2) ea = ea.unsqueeze(0);
  while (eb.dim() < batch.size() + 2) eb = eb.unsqueeze(0);
  if (bias.defined()) {
    MINDIESD_CHECK(bias.dim() == 1 && bias.size(0) == n, InvalidArgument, "matmul: bias of shape ",
                   bias.shape().str(), " for an output with ", n, " columns");
  }
  Shape os = batch;
  os.push_back(m);
  os.push_back(n);
  Tensor out = Tensor::empty(os, out_dtype.value_or(a.dtype()), a.device());
  const MatmulParams p{};
  if (bias.defined()) {
    run(OpId::matmul, {ea, eb, bias}, out, &p);
  } else {
    run(OpId::matmul, {ea, eb}, out, &p);
  }
  if (a.dim() == 1) out = out.squeeze(-2);
  if (b.dim() == 1) out = out.squeeze(-1);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  MINDIESD_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1),
                 InvalidArgument, "linear: input ", x.shape().str(), " and weight ",
                 weight.shape().str(), " (expected (out, ", x.dim() ? x.size(-1) : 0, "))");
  return matmul(x, weight.transpose(0, 1), bias);
}

Tensor grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& offsets,
                      std::optional<DType> out_dtype) {
  MINDIESD_CHECK(x.defined() && w.defined() && offsets.defined(), InvalidArgument,
                 "grouped_matmul: undefined operand");
  MINDIESD_CHECK(x.dim() == 2 && w.dim() == 3 && w.size(2) == x.size(1), InvalidArgument,
                 "grouped_matmul: x ", x.shape().str(), " and w ", w.shape().str(),
                 " (expected (R, K) and (E, N, K))");
  MINDIESD_CHECK(kFloatTypes.contains(x.dtype()) && w.dtype() == x.dtype(), InvalidArgument,
                 "grouped_matmul: x and w must share a float dtype, got ", dtype_name(x.dtype()),
                 " and ", dtype_name(w.dtype()));
  MINDIESD_CHECK(offsets.dim() == 1 && offsets.size(0) == w.size(0) + 1 &&
                     (offsets.dtype() == DType::i64 || offsets.dtype() == DType::i32),
                 InvalidArgument, "grouped_matmul: offsets must be i32/i64 of shape (",
                 w.size(0) + 1, ") for ", w.size(0), " groups, got ", offsets.str());
  const DType od = out_dtype.value_or(x.dtype());
  MINDIESD_CHECK(kFloatTypes.contains(od), InvalidArgument, "grouped_matmul: out dtype ",
                 dtype_name(od));
  // Kernels see unit column strides and i64 offsets.
  const Tensor xc = x.stride(1) == 1 ? x : x.contiguous();
  const Tensor wc = w.stride(2) == 1 ? w : w.contiguous();
  const Tensor off = offsets.dtype() == DType::i64 ? offsets.contiguous() : offsets.to(DType::i64);
  Tensor out = Tensor::zeros({x.size(0), w.size(1)}, od, x.device());
  if (out.numel() > 0 && w.size(0) > 0) run(OpId::grouped_matmul, {xc, wc, off}, out, nullptr);
  return out;
}

Tensor cat(std::span<const Tensor> xs, int dim) {
  MINDIESD_CHECK(!xs.empty(), InvalidArgument, "cat of an empty list");
  const Tensor& first = xs[0];
  const int d = first.wrap_dim(dim);
  Shape shape = first.shape();
  shape[d] = 0;
  DType t = first.dtype();
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    MINDIESD_CHECK(x.dim() == first.dim(), InvalidArgument, "cat: tensor ", i, " has shape ",
                   x.shape().str(), ", tensor 0 has ", first.shape().str());
    for (int j = 0; j < x.dim(); ++j)
      MINDIESD_CHECK(j == d || x.size(j) == first.size(j), InvalidArgument, "cat along dim ", d,
                     ": tensor ", i, " has shape ", x.shape().str(), ", tensor 0 has ",
                     first.shape().str());
    shape[d] += x.size(d);
    t = promote_types(t, x.dtype());
  }
  Tensor out = Tensor::empty(shape, t, first.device());
  const ConcatParams p{d};
  dispatch(OpId::concat, xs, {&out, 1}, &p);
  return out;
}

std::vector<Tensor> split(const Tensor& x, std::span<const int64_t> sizes, int dim) {
  const int d = x.wrap_dim(dim);
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  MINDIESD_CHECK(total == x.size(d), InvalidArgument, "split sizes add to ", total, ", dim ", d,
                 " of ", x.shape().str(), " has ", x.size(d));
  std::vector<Tensor> parts;
  int64_t at = 0;
  for (int64_t s : sizes) {
    parts.push_back(x.slice(d, at, at + s));
    at += s;
  }
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim) {
  MINDIESD_CHECK(chunks > 0, InvalidArgument, "chunk count must be positive, got ", chunks);
  const int d = x.wrap_dim(dim);
  const int64_t step = (x.size(d) + chunks - 1) / chunks;
  std::vector<Tensor> parts;
  for (int64_t at = 0; at < x.size(d); at += step) parts.push_back(x.slice(d, at, at + step));
  return parts;
}

Tensor pad(const Tensor& x, std::span<const int64_t> pads, PadMode mode, float value) {
  MINDIESD_CHECK(pads.size() % 2 == 0 && static_cast<int>(pads.size()) / 2 <= x.dim(),
                 InvalidArgument, "pad: ", pads.size(), " pad values for a ", x.dim(), "-d tensor");
  PadParams p;
  p.mode = mode;
  p.value = value;
  Shape shape = x.shape();
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int d = x.dim() - 1 - static_cast<int>(i);
    p.before[d] = pads[2 * i];
    p.after[d] = pads[2 * i + 1];
    MINDIESD_CHECK(p.before[d] >= 0 && p.after[d] >= 0, Unsupported,
                   "pad: negative padding (cropping) is not supported, use slice");
    if (mode == PadMode::reflect)
      MINDIESD_CHECK(p.before[d] < x.size(d) && p.after[d] < x.size(d), InvalidArgument,
                     "reflect pad of ", p.before[d], "/", p.after[d], " on dim ", d, " of size ",
                     x.size(d), " must be smaller than the dim");
    if (mode != PadMode::constant)
      MINDIESD_CHECK(x.size(d) > 0, InvalidArgument, "pad: cannot ", mode == PadMode::reflect ? "reflect" : "replicate",
                     " an empty dim ", d);
    shape[d] += p.before[d] + p.after[d];
  }
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.numel() > 0) run(OpId::pad, {x}, out, &p);
  return out;
}

Tensor repeat(const Tensor& x, std::span<const int64_t> repeats) {
  MINDIESD_CHECK(static_cast<int>(repeats.size()) >= x.dim(), InvalidArgument, "repeat: ",
                 repeats.size(), " repeat counts for a ", x.dim(), "-d tensor");
  // repeat = copy of the view (r0, s0, r1, s1, ...) with stride 0 on each r_i.
  const int n = static_cast<int>(repeats.size());
  Tensor v = x;
  while (v.dim() < n) v = v.unsqueeze(0);
  Shape expanded, final_shape;
  Tensor interleaved = v;
  for (int i = n - 1; i >= 0; --i) interleaved = interleaved.unsqueeze(i);
  for (int i = 0; i < n; ++i) {
    MINDIESD_CHECK(repeats[i] >= 0, InvalidArgument, "repeat: negative count ", repeats[i]);
    expanded.push_back(repeats[i]);
    expanded.push_back(v.size(i));
    final_shape.push_back(repeats[i] * v.size(i));
  }
  Tensor out = Tensor::empty(expanded, x.dtype(), x.device());
  if (out.numel() > 0) out.copy_(interleaved.expand(expanded));
  return out.view(final_shape);
}

namespace {
void check_index_tensor(const Tensor& index, const char* op) {
  MINDIESD_CHECK(index.dtype() == DType::i32 || index.dtype() == DType::i64, InvalidArgument, op,
                 ": index must be i32 or i64, got ", dtype_name(index.dtype()));
}
}  // namespace

Tensor index_select(const Tensor& x, int dim, const Tensor& index) {
  check_index_tensor(index, "index_select");
  MINDIESD_CHECK(index.dim() == 1, InvalidArgument, "index_select: index must be 1-D, got ",
                 index.shape().str());
  const int d = x.wrap_dim(dim);
  Shape shape = x.shape();
  shape[d] = index.size(0);
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  const IndexParams p{d};
  if (out.numel() > 0) run(OpId::index_select, {x, index}, out, &p);
  return out;
}

Tensor gather(const Tensor& x, int dim, const Tensor& index) {
  check_index_tensor(index, "gather");
  const int d = x.wrap_dim(dim);
  MINDIESD_CHECK(index.dim() == x.dim(), InvalidArgument, "gather: index ", index.shape().str(),
                 " must have the rank of input ", x.shape().str());
  for (int i = 0; i < x.dim(); ++i)
    MINDIESD_CHECK(i == d || index.size(i) <= x.size(i), InvalidArgument, "gather: index ",
                   index.shape().str(), " exceeds input ", x.shape().str(), " in dim ", i);
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  const IndexParams p{d};
  if (out.numel() > 0) run(OpId::gather, {x, index}, out, &p);
  return out;
}

namespace {
int64_t per_dim(const std::vector<int64_t>& v, int i, int64_t fallback, const char* name, int spatial) {
  if (v.empty()) return fallback;
  MINDIESD_CHECK(v.size() == 1 || static_cast<int>(v.size()) == spatial, InvalidArgument, "conv: ",
                 name, " needs 1 or ", spatial, " values, got ", v.size());
  return v.size() == 1 ? v[0] : v[i];
}

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvOptions& o, int spatial) {
  const char* name = spatial == 3 ? "conv3d" : "conv2d";
  MINDIESD_CHECK(x.dim() == spatial + 2 && w.dim() == spatial + 2, InvalidArgument, name,
                 ": input ", x.shape().str(), " and weight ", w.shape().str(), " must be ",
                 spatial + 2, "-d");
  MINDIESD_CHECK(o.groups >= 1 && x.size(1) % o.groups == 0 && w.size(0) % o.groups == 0 &&
                     w.size(1) * o.groups == x.size(1),
                 InvalidArgument, name, ": input ", x.shape().str(), " has ", x.size(1),
                 " channels but weight ", w.shape().str(), " expects ", w.size(1) * o.groups,
                 " (groups ", o.groups, ")");
  if (bias.defined())
    MINDIESD_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), InvalidArgument, name,
                   ": bias ", bias.shape().str(), " for ", w.size(0), " output channels");
  ConvParams p;
  p.spatial = spatial;
  p.groups = o.groups;
  Shape out_shape{x.size(0), w.size(0)};
  for (int i = 0; i < spatial; ++i) {
    p.stride[i] = per_dim(o.stride, i, 1, "stride", spatial);
    p.padding[i] = per_dim(o.padding, i, 0, "padding", spatial);
    p.dilation[i] = per_dim(o.dilation, i, 1, "dilation", spatial);
    MINDIESD_CHECK(p.stride[i] >= 1 && p.dilation[i] >= 1 && p.padding[i] >= 0, InvalidArgument,
                   name, ": stride and dilation must be >= 1 and padding >= 0");
    const int64_t eff = p.dilation[i] * (w.size(2 + i) - 1) + 1;
    const int64_t span = x.size(2 + i) + 2 * p.padding[i];
    MINDIESD_CHECK(span >= eff, InvalidArgument, name, ": kernel ", w.shape().str(),
                   " larger than the padded input ", x.shape().str());
    out_shape.push_back((span - eff) / p.stride[i] + 1);
  }
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (bias.defined()) {
    run(OpId::conv, {x, w, bias}, out, &p);
  } else {
    run(OpId::conv, {x, w}, out, &p);
  }
  return out;
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvOptions& o) {
  return conv(x, weight, bias, o, 2);
}

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvOptions& o) {
  return conv(x, weight, bias, o, 3);
}

Tensor interpolate(const Tensor& x, int64_t out_h, int64_t out_w, InterpolateMode mode,
                   bool align_corners, double scale_factor_h, double scale_factor_w) {
  MINDIESD_CHECK(x.dim() == 4, InvalidArgument, "interpolate: expected NCHW input, got ",
                 x.shape().str());
  MINDIESD_CHECK(out_h > 0 && out_w > 0 && x.size(2) > 0 && x.size(3) > 0, InvalidArgument,
                 "interpolate: empty input ", x.shape().str(), " or output ", out_h, "x", out_w);
  MINDIESD_CHECK(!align_corners || mode == InterpolateMode::bilinear, InvalidArgument,
                 "interpolate: align_corners only applies to bilinear");
  InterpolateParams p;
  p.mode = mode;
  p.align_corners = align_corners;
  p.scale_h = scale_factor_h > 0 ? 1.0 / scale_factor_h : 0.0;
  p.scale_w = scale_factor_w > 0 ? 1.0 / scale_factor_w : 0.0;
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  run(OpId::interpolate, {x}, out, &p);
  return out;
}

}  // namespace mindiesd::ops
