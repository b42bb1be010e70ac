#include "mindiesd/layer/rope.h"

#include <cmath>
#include <cstdio>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::layer {

RopeMode parse_rotated_mode(std::string_view rotated_mode) {
  if (rotated_mode == "rotated_half") return RopeMode::rotate_half;
  if (rotated_mode == "rotated_interleaved") return RopeMode::interleaved;
  MINDIESD_THROW(InvalidArgument, "rotary_position_embedding: rotated_mode '", rotated_mode,
                 "' is not one of rotated_half, rotated_interleaved");
}

namespace {

bool is_rope_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// x as the kernel's (B, S, H, D) view, for layout "BSND" or "BNSD"; `bnsd` reports which.
Tensor x_view(const Tensor& x, std::string_view layout, bool* bnsd) {
  MINDIESD_CHECK(layout == "BSND" || layout == "BNSD", InvalidArgument,
                 "rotary_position_embedding: layout '", layout, "' is not one of BSND, BNSD");
  *bnsd = layout == "BNSD";
  MINDIESD_CHECK(x.dim() == 3 || x.dim() == 4, InvalidArgument,
                 "rotary_position_embedding: x must be 4-d (", layout,
                 ") or 3-d without the batch dim, got ", x.shape().str());
  MINDIESD_CHECK(is_rope_float(x.dtype()), InvalidArgument,
                 "rotary_position_embedding: x must be f32, bf16 or f16, got ",
                 dtype_name(x.dtype()));
  const Tensor x4 = x.dim() == 3 ? x.unsqueeze(0) : x;
  MINDIESD_CHECK(x4.size(3) % 2 == 0, InvalidArgument,
                 "rotary_position_embedding: head_dim must be even, x is ", x.shape().str());
  return *bnsd ? x4.permute({0, 2, 1, 3}) : x4;
}

// A table as a (B, S, H, D) view broadcast to x4's shape.
Tensor table_view(const Tensor& t, const Tensor& x, const Tensor& x4, bool bnsd, const char* name) {
  MINDIESD_CHECK(t.defined(), InvalidArgument, "rotary_position_embedding: ", name,
                 " is undefined");
  MINDIESD_CHECK(is_rope_float(t.dtype()), InvalidArgument, "rotary_position_embedding: ", name,
                 " must be f32, bf16 or f16, got ", dtype_name(t.dtype()));
  MINDIESD_CHECK(t.device() == x.device(), InvalidArgument, "rotary_position_embedding: ", name,
                 " is on ", t.device().str(), ", x on ", x.device().str());
  Tensor v;
  if (t.dim() == 2) {
    v = t.unsqueeze(0).unsqueeze(2);  // (S, D) -> (1, S, 1, D)
  } else if (t.dim() == 3) {
    v = t.unsqueeze(2);  // (B, S, D) -> (B, S, 1, D)
  } else if (t.dim() == 4) {
    v = bnsd ? t.permute({0, 2, 1, 3}) : t;
  } else {
    MINDIESD_THROW(InvalidArgument, "rotary_position_embedding: ", name,
                   " must be (S, D), (B, S, D) or 4-d in x's layout, got ", t.shape().str());
  }
  bool ok = true;
  for (int d = 0; d < 4; ++d) ok &= v.size(d) == x4.size(d) || (v.size(d) == 1 && d != 3);
  MINDIESD_CHECK(ok, InvalidArgument, "rotary_position_embedding: ", name, " of shape ",
                 t.shape().str(), " does not match x of shape ", x.shape().str(),
                 " (sequence length ", x4.size(1), ", head_dim ", x4.size(3), ")");
  return v.expand(x4.shape());
}

void run_rope(const Tensor& x4, const Tensor& cos4, const Tensor& sin4, const Tensor& out4,
              RopeMode mode) {
  if (x4.numel() == 0) return;
  const RopeParams p{mode};
  const Tensor in[] = {x4, cos4, sin4};
  dispatch(OpId::rope, in, {&out4, 1}, &p);
}

}  // namespace

Tensor rotary_position_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                 std::string_view rotated_mode, std::string_view layout) {
  const RopeMode mode = parse_rotated_mode(rotated_mode);
  bool bnsd = false;
  const Tensor x4 = x_view(x, layout, &bnsd);
  const Tensor c4 = table_view(cos, x, x4, bnsd, "cos");
  const Tensor s4 = table_view(sin, x, x4, bnsd, "sin");
  // Allocated in the caller's layout, so the result is contiguous as x would be.
  const Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor out4 = out.dim() == 3 ? out.unsqueeze(0) : out;
  if (bnsd) out4 = out4.permute({0, 2, 1, 3});
  run_rope(x4, c4, s4, out4, mode);
  return out;
}

const Tensor& rotary_position_embedding_(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                         std::string_view rotated_mode, std::string_view layout) {
  const RopeMode mode = parse_rotated_mode(rotated_mode);
  bool bnsd = false;
  const Tensor x4 = x_view(x, layout, &bnsd);
  for (int d = 0; d < x.dim(); ++d)
    MINDIESD_CHECK(x.stride(d) != 0 || x.size(d) <= 1, InvalidArgument,
                   "rotary_position_embedding_: x ", x.str(),
                   " is a broadcast view (stride 0 in dim ", d, ") and cannot be written in place");
  run_rope(x4, table_view(cos, x, x4, bnsd, "cos"), table_view(sin, x, x4, bnsd, "sin"), x4, mode);
  return x;
}

// ---- tables ----

namespace {

void check_dim(int64_t dim, const char* what) {
  MINDIESD_CHECK(dim > 0 && dim % 2 == 0, InvalidArgument, what,
                 ": rotary dim must be even and positive, got ", dim);
}

// One axis of get_1d_rotary_pos_embed(use_real=True) written into columns [col, col + dim) of
// row-major (S, width) cos/sin buffers. The float32 path rounds every step to f32 as PyTorch
// does; exp/pow/cos are evaluated in double and rounded once, which agrees with PyTorch's own
// float kernels to within their 1-ulp error.
void axis_table(int64_t dim, std::span<const double> positions, const Rope1dOptions& o,
                int64_t width, int64_t col, float* cos_out, float* sin_out) {
  const int64_t half = dim / 2;
  std::vector<double> freqs(half);
  const double theta = o.theta * o.ntk_factor;
  for (int64_t k = 0; k < half; ++k) {
    if (o.freqs_dtype == FreqsDtype::f64) {
      freqs[k] = 1.0 / std::pow(theta, static_cast<double>(2 * k) / static_cast<double>(dim)) /
                 o.linear_factor;
    } else {
      // 1.0 / (theta ** (arange(0, dim, 2, f32) / dim)) / linear_factor, in f32 steps.
      const float e = static_cast<float>(static_cast<double>(2 * k) / static_cast<double>(dim));
      const float p = static_cast<float>(
          std::pow(static_cast<double>(static_cast<float>(theta)), static_cast<double>(e)));
      const float f = 1.0f / p;
      freqs[k] = static_cast<float>(static_cast<double>(f) /
                                    static_cast<double>(static_cast<float>(o.linear_factor)));
    }
  }
  const int64_t n = static_cast<int64_t>(positions.size());
  for (int64_t s = 0; s < n; ++s) {
    float* crow = cos_out + s * width + col;
    float* srow = sin_out + s * width + col;
    for (int64_t k = 0; k < half; ++k) {
      double angle;
      if (o.freqs_dtype == FreqsDtype::f64) {
        angle = positions[s] * freqs[k];
      } else {
        angle =
            static_cast<float>(static_cast<double>(static_cast<float>(positions[s])) * freqs[k]);
      }
      const float c = static_cast<float>(std::cos(angle));
      const float si = static_cast<float>(std::sin(angle));
      const int64_t a = o.repeat_interleave_real ? 2 * k : k;
      const int64_t b = o.repeat_interleave_real ? 2 * k + 1 : k + half;
      crow[a] = crow[b] = c;
      srow[a] = srow[b] = si;
    }
  }
}

RopeTables make_tables(std::vector<float>&& c, std::vector<float>&& s, int64_t rows, int64_t width,
                       Device device) {
  RopeTables t{Tensor::from_vector(c, {rows, width}), Tensor::from_vector(s, {rows, width})};
  if (!device.is_cpu()) {
    t.cos = t.cos.to(device);
    t.sin = t.sin.to(device);
  }
  return t;
}

std::vector<double> positions_of(const Tensor& t) {
  const std::vector<float> f = t.to_vector();
  return std::vector<double>(f.begin(), f.end());
}

}  // namespace

RopeTables rope_1d(int64_t dim, std::span<const double> positions, const Rope1dOptions& options,
                   Device device) {
  check_dim(dim, "rope_1d");
  MINDIESD_CHECK(options.theta > 0 && options.ntk_factor > 0 && options.linear_factor != 0,
                 InvalidArgument, "rope_1d: theta ", options.theta, " and ntk_factor ",
                 options.ntk_factor, " must be positive and linear_factor non-zero");
  const int64_t n = static_cast<int64_t>(positions.size());
  std::vector<float> c(n * dim), s(n * dim);
  axis_table(dim, positions, options, dim, 0, c.data(), s.data());
  return make_tables(std::move(c), std::move(s), n, dim, device);
}

RopeTables rope_1d(int64_t dim, int64_t seq_len, const Rope1dOptions& options, Device device) {
  MINDIESD_CHECK(seq_len >= 0, InvalidArgument, "rope_1d: negative seq_len ", seq_len);
  std::vector<double> pos(seq_len);
  for (int64_t i = 0; i < seq_len; ++i) pos[i] = static_cast<double>(i);
  return rope_1d(dim, pos, options, device);
}

RopeTables rope_1d(int64_t dim, const Tensor& positions, const Rope1dOptions& options) {
  MINDIESD_CHECK(positions.defined() && positions.dim() == 1, InvalidArgument,
                 "rope_1d: positions must be 1-d, got ",
                 positions.defined() ? positions.shape().str() : std::string("undefined"));
  return rope_1d(dim, positions_of(positions), options, positions.device());
}

RopeTables flux_rope(const Tensor& ids, std::span<const int64_t> axes_dim, double theta) {
  MINDIESD_CHECK(ids.defined() && ids.dim() == 2, InvalidArgument,
                 "flux_rope: ids must be (S, n_axes), got ",
                 ids.defined() ? ids.shape().str() : std::string("undefined"));
  const int64_t n = ids.size(0), axes = ids.size(1);
  MINDIESD_CHECK(static_cast<int64_t>(axes_dim.size()) == axes, InvalidArgument, "flux_rope: ids ",
                 ids.shape().str(), " have ", axes, " axes but axes_dim has ", axes_dim.size(),
                 " entries");
  int64_t width = 0;
  for (int64_t d : axes_dim) {
    check_dim(d, "flux_rope");
    width += d;
  }
  const std::vector<float> flat = ids.to_vector();  // ids.float()
  std::vector<float> c(n * width), s(n * width);
  Rope1dOptions o;
  o.theta = theta;
  o.freqs_dtype = FreqsDtype::f64;  // FluxPosEmbed passes float64 (except on MPS/NPU)
  std::vector<double> pos(n);
  int64_t col = 0;
  for (int64_t a = 0; a < axes; ++a) {
    for (int64_t i = 0; i < n; ++i) pos[i] = flat[i * axes + a];
    axis_table(axes_dim[a], pos, o, width, col, c.data(), s.data());
    col += axes_dim[a];
  }
  return make_tables(std::move(c), std::move(s), n, width, ids.device());
}

Tensor flux_ids(int64_t txt_len, int64_t height, int64_t width, Device device) {
  MINDIESD_CHECK(txt_len >= 0 && height >= 0 && width >= 0, InvalidArgument,
                 "flux_ids: negative size (", txt_len, ", ", height, ", ", width, ")");
  std::vector<float> v((txt_len + height * width) * 3, 0.0f);
  for (int64_t r = 0; r < height; ++r)
    for (int64_t q = 0; q < width; ++q) {
      float* row = v.data() + (txt_len + r * width + q) * 3;
      row[1] = static_cast<float>(r);
      row[2] = static_cast<float>(q);
    }
  Tensor t = Tensor::from_vector(v, {txt_len + height * width, 3});
  return device.is_cpu() ? t : t.to(device);
}

std::array<int64_t, 3> wan_rope_axes(int64_t head_dim) {
  const int64_t hw = 2 * (head_dim / 6);
  return {head_dim - 2 * hw, hw, hw};
}

RopeTables rope_3d(int64_t frames, int64_t height, int64_t width, int64_t head_dim,
                   const Rope3dOptions& options, Device device) {
  MINDIESD_CHECK(frames >= 0 && height >= 0 && width >= 0, InvalidArgument,
                 "rope_3d: negative grid (", frames, ", ", height, ", ", width, ")");
  std::array<int64_t, 3> axes = wan_rope_axes(head_dim);
  if (!options.axes_dim.empty()) {
    MINDIESD_CHECK(options.axes_dim.size() == 3, InvalidArgument,
                   "rope_3d: axes_dim needs 3 entries (t, h, w), got ", options.axes_dim.size());
    axes = {options.axes_dim[0], options.axes_dim[1], options.axes_dim[2]};
  }
  MINDIESD_CHECK(axes[0] + axes[1] + axes[2] == head_dim, InvalidArgument, "rope_3d: axes_dim (",
                 axes[0], ", ", axes[1], ", ", axes[2], ") does not add up to head_dim ", head_dim);
  for (int64_t d : axes) check_dim(d, "rope_3d");
  Rope1dOptions o;
  o.theta = options.theta;
  o.freqs_dtype = options.freqs_dtype;
  // One small table per axis (positions 0..n-1, as Wan's max_seq_len tables sliced to the grid),
  // then each token row gathers its (f, h, w) rows.
  const int64_t sizes[3] = {frames, height, width};
  std::vector<float> ac[3], as[3];
  for (int a = 0; a < 3; ++a) {
    std::vector<double> pos(sizes[a]);
    for (int64_t i = 0; i < sizes[a]; ++i) pos[i] = static_cast<double>(i);
    ac[a].resize(sizes[a] * axes[a]);
    as[a].resize(sizes[a] * axes[a]);
    axis_table(axes[a], pos, o, axes[a], 0, ac[a].data(), as[a].data());
  }
  const int64_t n = frames * height * width;
  std::vector<float> c(n * head_dim), s(n * head_dim);
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t h = 0; h < height; ++h)
      for (int64_t w = 0; w < width; ++w) {
        const int64_t row = ((f * height + h) * width + w) * head_dim;
        const int64_t idx[3] = {f, h, w};
        int64_t col = 0;
        for (int a = 0; a < 3; ++a) {
          std::copy_n(ac[a].data() + idx[a] * axes[a], axes[a], c.data() + row + col);
          std::copy_n(as[a].data() + idx[a] * axes[a], axes[a], s.data() + row + col);
          col += axes[a];
        }
      }
  return make_tables(std::move(c), std::move(s), n, head_dim, device);
}

// ---- cache ----

namespace {
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
}  // namespace

template <typename Build>
RopeTables RopeCache::get(const std::string& key, Build&& build) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    ++hits_;
    it->second.last_use = ++clock_;
    return it->second.tables;
  }
  ++misses_;
  RopeTables t = build();
  if (entries_.size() >= capacity_) {
    auto oldest = entries_.begin();
    for (auto e = entries_.begin(); e != entries_.end(); ++e)
      if (e->second.last_use < oldest->second.last_use) oldest = e;
    entries_.erase(oldest);
  }
  entries_.emplace(key, Entry{t, ++clock_});
  return t;
}

RopeTables RopeCache::rope_1d(int64_t dim, int64_t seq_len, const Rope1dOptions& o, Device device) {
  const std::string key =
      str_cat("1d|", dim, "|", seq_len, "|", num(o.theta), "|", num(o.linear_factor), "|",
              num(o.ntk_factor), "|", o.repeat_interleave_real, "|",
              static_cast<int>(o.freqs_dtype), "|", device.str());
  return get(key, [&] { return layer::rope_1d(dim, seq_len, o, device); });
}

RopeTables RopeCache::flux(int64_t txt_len, int64_t height, int64_t width,
                           std::span<const int64_t> axes_dim, double theta, Device device) {
  std::string key =
      str_cat("flux|", txt_len, "|", height, "|", width, "|", num(theta), "|", device.str());
  for (int64_t d : axes_dim) key += str_cat("|", d);
  return get(key,
             [&] { return flux_rope(flux_ids(txt_len, height, width, device), axes_dim, theta); });
}

RopeTables RopeCache::rope_3d(int64_t frames, int64_t height, int64_t width, int64_t head_dim,
                              const Rope3dOptions& o, Device device) {
  std::string key = str_cat("3d|", frames, "|", height, "|", width, "|", head_dim, "|",
                            num(o.theta), "|", static_cast<int>(o.freqs_dtype), "|", device.str());
  for (int64_t d : o.axes_dim) key += str_cat("|", d);
  return get(key, [&] { return layer::rope_3d(frames, height, width, head_dim, o, device); });
}

size_t RopeCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

int64_t RopeCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

int64_t RopeCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

void RopeCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.clear();
}

}  // namespace mindiesd::layer
