#include "mindiesd/pipelines/image_processing.h"

#include <cmath>
#include <span>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/io/image_resample.h"

namespace mindiesd::pipelines {

namespace {

void check_image(const Tensor& image, const char* who) {
  MINDIESD_CHECK(image.defined() && image.dtype() == DType::u8 && image.dim() == 3 &&
                     (image.size(2) == 1 || image.size(2) == 3 || image.size(2) == 4) &&
                     image.size(0) > 0 && image.size(1) > 0,
                 InvalidArgument, who, ": expected a u8 (H, W, 1 | 3 | 4) image, got ",
                 image.defined() ? str_cat(dtype_name(image.dtype()), " ", image.shape().str())
                                 : std::string("an undefined tensor"));
}

// PIL.Image.Resampling values as preprocessor_config.json stores them.
io::ResampleFilter filter_of(int resample) {
  switch (resample) {
    case 0:
      return io::ResampleFilter::nearest;
    case 1:
      return io::ResampleFilter::lanczos;
    case 2:
      return io::ResampleFilter::bilinear;
    case 3:
      return io::ResampleFilter::bicubic;
    default:
      MINDIESD_THROW(Unsupported, "image resample ", resample,
                     " is not supported (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic)");
  }
}

std::span<const uint8_t> bytes_of(const Tensor& rgb) {
  return {rgb.data<uint8_t>(), static_cast<size_t>(rgb.numel())};
}

Tensor u8_image(std::vector<uint8_t> bytes, int64_t h, int64_t w) {
  Tensor t = Tensor::empty({h, w, 3}, DType::u8);
  std::copy(bytes.begin(), bytes.end(), t.data<uint8_t>());
  return t;
}

}  // namespace

Tensor to_rgb_u8(const Tensor& image) {
  check_image(image, "to_rgb_u8");
  const Tensor src = image.contiguous();
  const int64_t h = src.size(0), w = src.size(1), c = src.size(2);
  if (c == 3) return src;
  Tensor out = Tensor::empty({h, w, 3}, DType::u8);
  const uint8_t* s = src.data<uint8_t>();
  uint8_t* d = out.data<uint8_t>();
  for (int64_t i = 0; i < h * w; ++i) {
    for (int64_t k = 0; k < 3; ++k) d[i * 3 + k] = s[i * c + (c == 1 ? 0 : k)];
  }
  return out;
}

ClipImageProcessorConfig ClipImageProcessorConfig::read(io::ConfigReader& r) {
  ClipImageProcessorConfig c;
  for (const char* key : {"image_processor_type", "processor_class", "feature_extractor_type",
                          "do_convert_rgb", "default_to_square"}) {
    r.mark_used(key);
  }
  c.do_resize = r.optional("do_resize", c.do_resize);
  if (r.has("size")) {
    r.mark_used("size");
    const nlohmann::json& s = r.json().at("size");
    if (s.is_number_integer()) {
      c.shortest_edge = s.get<int64_t>();
    } else {
      r.check(
          s.is_object() && s.contains("shortest_edge") && s["shortest_edge"].is_number_integer(),
          "size", "only {\"shortest_edge\": N} is supported");
      c.shortest_edge = s["shortest_edge"].get<int64_t>();
    }
  }
  c.resample = r.optional("resample", c.resample);
  c.do_center_crop = r.optional("do_center_crop", c.do_center_crop);
  if (r.has("crop_size")) {
    r.mark_used("crop_size");
    const nlohmann::json& s = r.json().at("crop_size");
    if (s.is_number_integer()) {
      c.crop_height = c.crop_width = s.get<int64_t>();
    } else {
      r.check(s.is_object() && s.contains("height") && s.contains("width") &&
                  s["height"].is_number_integer() && s["width"].is_number_integer(),
              "crop_size", "expected {\"height\": H, \"width\": W}");
      c.crop_height = s["height"].get<int64_t>();
      c.crop_width = s["width"].get<int64_t>();
    }
  }
  c.do_rescale = r.optional("do_rescale", c.do_rescale);
  c.rescale_factor = r.optional("rescale_factor", c.rescale_factor);
  c.do_normalize = r.optional("do_normalize", c.do_normalize);
  for (const char* key : {"image_mean", "image_std"}) {
    const auto v = r.optional<std::vector<double>>(key, {});
    if (v.empty()) continue;
    r.check(v.size() == 3, key, str_cat("needs 3 entries, got ", v.size()));
    auto& dst = std::string_view(key) == "image_mean" ? c.image_mean : c.image_std;
    std::copy(v.begin(), v.end(), dst.begin());
  }
  r.check(c.shortest_edge > 0 && c.shortest_edge <= 16384, "size",
          str_cat("shortest_edge must be in [1, 16384], got ", c.shortest_edge));
  r.check(c.crop_height > 0 && c.crop_width > 0 && c.crop_height <= 16384 && c.crop_width <= 16384,
          "crop_size", "must be positive and at most 16384");
  for (double s : c.image_std) r.check(s > 0, "image_std", "entries must be positive");
  filter_of(c.resample);  // Unsupported for an unknown filter, at load time
  return c;
}

Tensor clip_image_preprocess(const Tensor& image, const ClipImageProcessorConfig& c) {
  Tensor rgb = to_rgb_u8(image);
  int64_t h = rgb.size(0), w = rgb.size(1);
  if (c.do_resize) {
    // get_resize_output_image_size(default_to_square=False): the short side becomes
    // shortest_edge, the long side int(shortest_edge * long / short).
    const bool portrait = h >= w;
    const int64_t s = portrait ? w : h, l = portrait ? h : w;
    const auto new_l = static_cast<int64_t>(static_cast<double>(c.shortest_edge) *
                                            static_cast<double>(l) / static_cast<double>(s));
    const int64_t nh = portrait ? new_l : c.shortest_edge, nw = portrait ? c.shortest_edge : new_l;
    rgb = u8_image(io::resize_u8(bytes_of(rgb), w, h, 3, nw, nh, filter_of(c.resample)), nh, nw);
    h = nh;
    w = nw;
  }
  if (c.do_center_crop) {
    rgb = u8_image(io::center_crop_u8(bytes_of(rgb), w, h, 3, c.crop_width, c.crop_height),
                   c.crop_height, c.crop_width);
    h = c.crop_height;
    w = c.crop_width;
  }
  // rescale: u8 * factor in f64, then f32; normalize: (x - mean) / std in f32.
  Tensor out = Tensor::empty({1, 3, h, w}, DType::f32);
  const uint8_t* s = rgb.data<uint8_t>();
  float* d = out.data<float>();
  for (int64_t k = 0; k < 3; ++k) {
    const auto mean = static_cast<float>(c.image_mean[k]);
    const auto std = static_cast<float>(c.image_std[k]);
    for (int64_t i = 0; i < h * w; ++i) {
      float v = s[i * 3 + k];
      if (c.do_rescale)
        v = static_cast<float>(static_cast<double>(s[i * 3 + k]) * c.rescale_factor);
      if (c.do_normalize) v = (v - mean) / std;
      d[k * h * w + i] = v;
    }
  }
  return out;
}

Tensor vae_image_preprocess(const Tensor& image, int64_t height, int64_t width) {
  MINDIESD_CHECK(height > 0 && width > 0 && height <= 16384 && width <= 16384, InvalidArgument,
                 "vae_image_preprocess: target size ", width, "x", height, " is out of range");
  const Tensor rgb = to_rgb_u8(image);
  const std::vector<uint8_t> resized = io::resize_u8(bytes_of(rgb), rgb.size(1), rgb.size(0), 3,
                                                     width, height, io::ResampleFilter::lanczos);
  // pil_to_numpy: astype(float32) / 255.0; normalize: 2 * x - 1 (two f32 roundings).
  Tensor out = Tensor::empty({1, 3, height, width}, DType::f32);
  float* d = out.data<float>();
  for (int64_t k = 0; k < 3; ++k) {
    for (int64_t i = 0; i < height * width; ++i) {
      const float v = static_cast<float>(resized[i * 3 + k]) / 255.0f;
      d[k * height * width + i] = 2.0f * v - 1.0f;
    }
  }
  return out;
}

}  // namespace mindiesd::pipelines
