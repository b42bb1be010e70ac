// Input images for the image-conditioned pipelines, prepared as diffusers / transformers prepare
// them with Pillow, bit for bit up to the float conversion (io/image_resample.h resizes like
// Pillow's Image.resize):
//   clip_image_preprocess   transformers CLIPImageProcessor (preprocessor_config.json): RGB,
//                           resize the shortest edge (bicubic by default), centre crop, rescale
//                           by 1/255 in f64 then f32, normalise with image_mean / image_std
//   vae_image_preprocess    diffusers VaeImageProcessor.preprocess (Wan's VideoProcessor):
//                           Lanczos resize straight to (height, width), / 255 in f32, 2x - 1
// Images are CPU u8 tensors (H, W, C) as io::read_png returns them; gray and RGBA are converted
// to RGB as PIL's convert("RGB") does (gray replicated, alpha dropped).
#pragma once

#include <array>
#include <cstdint>

#include "mindiesd/core/tensor.h"
#include "mindiesd/io/config.h"

namespace mindiesd::pipelines {

// (H, W, 1 | 3 | 4) u8 -> (H, W, 3) u8. InvalidArgument for anything else.
Tensor to_rgb_u8(const Tensor& image);

// transformers CLIPImageProcessor's preprocessor_config.json (the fields that change pixels).
struct ClipImageProcessorConfig {
  bool do_resize = true;
  int64_t shortest_edge = 224;  // size.shortest_edge
  int resample = 3;             // PIL.Image.Resampling: 0 nearest, 2 bilinear, 3 bicubic, 1 lanczos
  bool do_center_crop = true;
  int64_t crop_height = 224, crop_width = 224;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};

  // InvalidArgument naming the field for sizes other than size.shortest_edge, an unknown
  // resample, non-positive sizes or stds.
  static ClipImageProcessorConfig read(io::ConfigReader& reader);
};

// One image -> pixel_values (1, 3, crop_height, crop_width) f32.
Tensor clip_image_preprocess(const Tensor& image, const ClipImageProcessorConfig& config);

// One image -> (1, 3, height, width) f32 in [-1, 1].
Tensor vae_image_preprocess(const Tensor& image, int64_t height, int64_t width);

}  // namespace mindiesd::pipelines
