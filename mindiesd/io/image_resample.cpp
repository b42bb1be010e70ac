// Pillow's resize and transformers' center_crop for 8-bit HWC images; see image_resample.h.
//
// The arithmetic follows Pillow 13's libImaging (Resample.c for the convolution filters,
// Geometry.c's ImagingScaleAffine for nearest, Convert.c's RGBA <-> RGBa for the alpha
// premultiplication); every floating-point expression keeps Pillow's operation order, since a
// different rounding of one coefficient can move an output byte by one.
#include "mindiesd/io/image_resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <string_view>

#include "mindiesd/core/error.h"

// Pillow's C is compiled without contracting a * b + c into an FMA; so must this be, or the
// coefficients can differ in the last bit. GCC in ISO mode (-std=c++20) does not contract.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace mindiesd::io {
namespace {

// ---- the filters (Resample.c), each with its support at scale 1 ----

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// Keys' cubic convolution with a = -0.5, in Pillow's evaluation order.
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * std::numbers::pi;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}

struct Kernel {
  double (*fn)(double);
  double support;
};

Kernel kernel_of(ResampleFilter filter) {
  switch (filter) {
    case ResampleFilter::bilinear:
      return {bilinear_filter, 1.0};
    case ResampleFilter::bicubic:
      return {bicubic_filter, 2.0};
    case ResampleFilter::lanczos:
      return {lanczos_filter, 3.0};
    case ResampleFilter::nearest:
      break;
  }
  MINDIESD_THROW(InvalidArgument, "resize_u8: unknown resample filter ", static_cast<int>(filter));
}

// Fixed point for 8-bit images: 8 bits of result, 2 bits of headroom for the negative lobes
// and for partial sums above 1.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int64_t kHalf = int64_t{1} << (kPrecisionBits - 1);

// Pillow's clip8: the sum's integer part (arithmetic shift, i.e. floor) clamped to [0, 255].
// Accumulating in 64 bits gives Pillow's 32-bit sums exactly (they cannot overflow: at most
// 255 * sum|k| * 2^22 with sum|k| < 1.5 for these filters) without relying on wrap-around.
inline uint8_t clip8(int64_t acc) {
  return static_cast<uint8_t>(std::clamp<int64_t>(acc >> kPrecisionBits, 0, 255));
}

// One axis's taps: output i reads `count[i]` inputs from `first[i]` with the fixed-point
// weights at weights[i * ksize ...].
struct Taps {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;
};

// Pillow's precompute_coeffs (box = the whole axis) followed by normalize_coeffs_8bpc.
Taps precompute_taps(int in_size, int out_size, const Kernel& kernel) {
  // Pillow passes the box as floats: (double)(float(in_size) - 0.0f), exact up to 2^24.
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;  // widen the support when shrinking
  const double support = kernel.support * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const double inv_filterscale = 1.0 / filterscale;

  Taps taps;
  taps.ksize = ksize;
  taps.first.resize(static_cast<size_t>(out_size));
  taps.count.resize(static_cast<size_t>(out_size));
  taps.weights.assign(static_cast<size_t>(out_size) * static_cast<size_t>(ksize), 0);
  std::vector<double> k(static_cast<size_t>(ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    // (int) truncates toward zero, as in C; negatives clamp to 0 either way.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = kernel.fn((static_cast<double>(x + xmin) - center + 0.5) * inv_filterscale);
      k[static_cast<size_t>(x)] = w;
      ww += w;
    }
    if (ww != 0.0) {
      for (int x = 0; x < xmax; ++x) k[static_cast<size_t>(x)] /= ww;
    }
    int32_t* out = &taps.weights[static_cast<size_t>(xx) * static_cast<size_t>(ksize)];
    for (int x = 0; x < xmax; ++x) {
      const double v = k[static_cast<size_t>(x)] * (1 << kPrecisionBits);
      out[x] = static_cast<int32_t>(v < 0 ? -0.5 + v : 0.5 + v);  // round half away from 0
    }
    taps.first[static_cast<size_t>(xx)] = xmin;
    taps.count[static_cast<size_t>(xx)] = xmax;
  }
  return taps;
}

// Horizontal pass over rows [row_begin, row_end) of a (height, in_w, C) image into
// (row_end - row_begin, out_w, C), each value rounded to u8 (Pillow keeps the intermediate
// image in 8 bits).
template <int C>
void resample_horizontal(const uint8_t* src, int in_w, int row_begin, int row_end,
                         const Taps& taps, int out_w, uint8_t* dst) {
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* line = src + static_cast<size_t>(y) * static_cast<size_t>(in_w) * C;
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * static_cast<size_t>(out_w) * C;
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &taps.weights[static_cast<size_t>(xx) * static_cast<size_t>(taps.ksize)];
      const uint8_t* in = line + static_cast<size_t>(taps.first[static_cast<size_t>(xx)]) * C;
      const int n = taps.count[static_cast<size_t>(xx)];
      int64_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = kHalf;
      for (int x = 0; x < n; ++x) {
        for (int c = 0; c < C; ++c) acc[c] += int64_t{in[x * C + c]} * k[x];
      }
      for (int c = 0; c < C; ++c) out[xx * C + c] = clip8(acc[c]);
    }
  }
}

// Vertical pass: (in_h, w, C) -> (out_h, w, C); `row_offset` is the index of src's first row in
// the taps' coordinates (the horizontal pass only produced the rows the taps read).
void resample_vertical(const uint8_t* src, int row_offset, int64_t row_len, const Taps& taps,
                       int out_h, uint8_t* dst) {
  std::vector<int64_t> acc(static_cast<size_t>(row_len));
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &taps.weights[static_cast<size_t>(yy) * static_cast<size_t>(taps.ksize)];
    const int first = taps.first[static_cast<size_t>(yy)] - row_offset;
    const int n = taps.count[static_cast<size_t>(yy)];
    std::fill(acc.begin(), acc.end(), kHalf);
    // Integer sums: adding row by row gives the same totals as Pillow's per-pixel loop.
    for (int y = 0; y < n; ++y) {
      const uint8_t* in = src + static_cast<size_t>(first + y) * static_cast<size_t>(row_len);
      const int64_t w = k[y];
      for (int64_t j = 0; j < row_len; ++j) acc[static_cast<size_t>(j)] += int64_t{in[j]} * w;
    }
    uint8_t* out = dst + static_cast<size_t>(yy) * static_cast<size_t>(row_len);
    for (int64_t j = 0; j < row_len; ++j) out[j] = clip8(acc[static_cast<size_t>(j)]);
  }
}

// Pillow's ImagingResampleInner with box = the whole image. Each pass rounds to u8, so the
// order matters: horizontal first, except when the height shrinks by more pixels than twice
// the width's shrink (Pillow 13 then runs the vertical pass first, to shorten the horizontal
// one). A pass whose size does not change is skipped.
template <int C>
std::vector<uint8_t> resample_convolve(const uint8_t* src, int w, int h, int out_w, int out_h,
                                       const Kernel& kernel) {
  const bool need_h = out_w != w;
  const bool need_v = out_h != h;
  const bool vertical_first = (h - out_h) > 0 && (h - out_h) > (w - out_w) * 2;
  std::vector<uint8_t> out(static_cast<size_t>(out_w) * static_cast<size_t>(out_h) * C);
  if (!need_h) {
    resample_vertical(src, 0, int64_t{w} * C, precompute_taps(h, out_h, kernel), out_h,
                      out.data());
    return out;
  }
  const Taps htaps = precompute_taps(w, out_w, kernel);
  if (!need_v) {
    resample_horizontal<C>(src, w, 0, h, htaps, out_w, out.data());
    return out;
  }
  const Taps vtaps = precompute_taps(h, out_h, kernel);
  if (vertical_first) {
    std::vector<uint8_t> tmp(static_cast<size_t>(w) * static_cast<size_t>(out_h) * C);
    resample_vertical(src, 0, int64_t{w} * C, vtaps, out_h, tmp.data());
    resample_horizontal<C>(tmp.data(), w, 0, out_h, htaps, out_w, out.data());
    return out;
  }
  // Horizontal first, over the source rows the vertical taps read.
  const int row_begin = vtaps.first.front();
  const int row_end = vtaps.first.back() + vtaps.count.back();
  std::vector<uint8_t> tmp(static_cast<size_t>(row_end - row_begin) *
                           static_cast<size_t>(out_w) * C);
  resample_horizontal<C>(src, w, row_begin, row_end, htaps, out_w, tmp.data());
  resample_vertical(tmp.data(), row_begin, int64_t{out_w} * C, vtaps, out_h, out.data());
  return out;
}

// Pillow's nearest-neighbour scaling (ImagingScaleAffine): the source position of output x is
// a0 / 2 + x * a0 with a0 = in / out, accumulated by repeated addition; truncated to an index.
// Positions outside the source (only possible through rounding) read as 0, as Pillow's
// zero-filled output leaves them.
std::vector<int> nearest_indices(int in_size, int out_size) {
  const double a0 = static_cast<double>(in_size) / out_size;
  std::vector<int> idx(static_cast<size_t>(out_size));
  double pos = 0.0 + a0 * 0.5;
  for (int i = 0; i < out_size; ++i) {
    const int v = pos < 0.0 ? -1 : static_cast<int>(pos);
    idx[static_cast<size_t>(i)] = v < in_size ? v : -1;
    pos += a0;
  }
  return idx;
}

std::vector<uint8_t> resample_nearest(const uint8_t* src, int w, int h, int c, int out_w,
                                      int out_h) {
  const std::vector<int> xs = nearest_indices(w, out_w);
  const std::vector<int> ys = nearest_indices(h, out_h);
  std::vector<uint8_t> out(static_cast<size_t>(out_w) * static_cast<size_t>(out_h) *
                               static_cast<size_t>(c),
                           0);
  for (int y = 0; y < out_h; ++y) {
    const int sy = ys[static_cast<size_t>(y)];
    if (sy < 0) continue;
    const uint8_t* line = src + static_cast<size_t>(sy) * static_cast<size_t>(w) * c;
    uint8_t* o = out.data() + static_cast<size_t>(y) * static_cast<size_t>(out_w) * c;
    for (int x = 0; x < out_w; ++x) {
      const int sx = xs[static_cast<size_t>(x)];
      if (sx < 0) continue;
      std::memcpy(o + static_cast<size_t>(x) * c, line + static_cast<size_t>(sx) * c,
                  static_cast<size_t>(c));
    }
  }
  return out;
}

// Convert.c's rgbA2rgba: colour * alpha / 255, rounded (MULDIV255).
void premultiply(std::vector<uint8_t>& px) {
  for (size_t i = 0; i + 3 < px.size(); i += 4) {
    const unsigned alpha = px[i + 3];
    for (size_t c = 0; c < 3; ++c) {
      const unsigned t = px[i + c] * alpha + 128;
      px[i + c] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
    }
  }
}

// Convert.c's rgba2rgbA: colour * 255 / alpha, truncated and clipped; alpha 0 or 255 untouched.
void unpremultiply(std::vector<uint8_t>& px) {
  for (size_t i = 0; i + 3 < px.size(); i += 4) {
    const unsigned alpha = px[i + 3];
    if (alpha == 0 || alpha == 255) continue;
    for (size_t c = 0; c < 3; ++c) {
      px[i + c] = static_cast<uint8_t>(std::min(255u, 255u * px[i + c] / alpha));
    }
  }
}

void check_extent(std::string_view fn, std::string_view name, int64_t v) {
  MINDIESD_CHECK(v >= 1 && v <= kMaxResampleSize, InvalidArgument, fn, ": ", name,
                 " must be in [1, ", kMaxResampleSize, "], got ", v);
}

// Validates the source description; returns width * height * channels.
size_t check_source(std::string_view fn, std::span<const uint8_t> src, int64_t width,
                    int64_t height, int64_t channels) {
  check_extent(fn, "width", width);
  check_extent(fn, "height", height);
  MINDIESD_CHECK(channels == 1 || channels == 3 || channels == 4, InvalidArgument, fn,
                 ": channels must be 1, 3 or 4, got ", channels);
  const int64_t need = width * height * channels;
  MINDIESD_CHECK(static_cast<int64_t>(src.size()) >= need, InvalidArgument, fn, ": src has ",
                 src.size(), " bytes, a ", width, "x", height, " image with ", channels,
                 " channels needs ", need);
  return static_cast<size_t>(need);
}

}  // namespace

std::vector<uint8_t> resize_u8(std::span<const uint8_t> src, int64_t width, int64_t height,
                               int64_t channels, int64_t out_width, int64_t out_height,
                               ResampleFilter filter) {
  const size_t n = check_source("resize_u8", src, width, height, channels);
  check_extent("resize_u8", "out_width", out_width);
  check_extent("resize_u8", "out_height", out_height);
  const auto w = static_cast<int>(width), h = static_cast<int>(height);
  const auto ow = static_cast<int>(out_width), oh = static_cast<int>(out_height);
  const auto c = static_cast<int>(channels);

  // Image.resize returns a plain copy for an unchanged size (no RGBA premultiply round trip).
  if (ow == w && oh == h) return {src.begin(), src.begin() + static_cast<std::ptrdiff_t>(n)};
  if (filter == ResampleFilter::nearest) return resample_nearest(src.data(), w, h, c, ow, oh);

  const Kernel kernel = kernel_of(filter);
  switch (c) {
    case 1:
      return resample_convolve<1>(src.data(), w, h, ow, oh, kernel);
    case 3:
      return resample_convolve<3>(src.data(), w, h, ow, oh, kernel);
    default: {
      // RGBA is resized as premultiplied "RGBa" and converted back, as Image.resize does.
      std::vector<uint8_t> pre(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(n));
      premultiply(pre);
      std::vector<uint8_t> out = resample_convolve<4>(pre.data(), w, h, ow, oh, kernel);
      unpremultiply(out);
      return out;
    }
  }
}

std::vector<uint8_t> center_crop_u8(std::span<const uint8_t> src, int64_t width, int64_t height,
                                    int64_t channels, int64_t crop_width, int64_t crop_height) {
  check_source("center_crop_u8", src, width, height, channels);
  check_extent("center_crop_u8", "crop_width", crop_width);
  check_extent("center_crop_u8", "crop_height", crop_height);

  // Per axis: the source start, the destination start and the length copied. A crop within the
  // image starts at floor((size - crop) / 2); a larger one is zero-padded, the image starting at
  // ceil((crop - size) / 2) (transformers pads to the crop and then crops at offset 0).
  struct Span1 {
    int64_t src, dst, len;
  };
  const auto axis = [](int64_t size, int64_t crop) -> Span1 {
    if (crop <= size) return {(size - crop) / 2, 0, crop};
    return {0, (crop - size + 1) / 2, size};
  };
  const Span1 ax = axis(width, crop_width);
  const Span1 ay = axis(height, crop_height);

  std::vector<uint8_t> out(static_cast<size_t>(crop_width * crop_height * channels), 0);
  const auto row_bytes = static_cast<size_t>(ax.len * channels);
  for (int64_t y = 0; y < ay.len; ++y) {
    const uint8_t* s = src.data() + ((ay.src + y) * width + ax.src) * channels;
    uint8_t* d = out.data() + ((ay.dst + y) * crop_width + ax.dst) * channels;
    std::memcpy(d, s, row_bytes);
  }
  return out;
}

}  // namespace mindiesd::io
