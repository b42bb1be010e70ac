// Pillow-exact image resizing and transformers-exact centre cropping of 8-bit images, so that
// image preprocessing (diffusers' VaeImageProcessor, transformers' CLIP / SigLIP processors,
// both of which resize through PIL) gives the same bytes as the Python pipelines.
//
// Images are interleaved HWC u8 buffers, row-major, with 1 (Pillow mode "L"), 3 ("RGB") or 4
// ("RGBA") channels. resize_u8 equals Pillow's `Image.resize((out_width, out_height), resample)`
// with no box and no reducing_gap (what diffusers and transformers call), bit for bit:
//   - nearest: Pillow's affine nearest-neighbour scaling (source index = floor of the pixel
//     centre mapped back, stepped by repeated double addition as Pillow does);
//   - bilinear / bicubic (a = -0.5) / lanczos (a = 3): Pillow's separable convolution with the
//     support widened by the downscale factor (antialiasing), horizontal pass first (rounded to
//     u8), then vertical, each pass skipped when its size is unchanged, 22-bit fixed-point
//     coefficients and Pillow's rounding and clipping;
//   - 4 channels with a filter other than nearest: premultiplied by alpha before and
//     un-premultiplied after, as Image.resize does for RGBA (via mode "RGBa");
//   - an unchanged size returns a copy for every filter (Image.resize does the same).
// center_crop_u8 equals transformers.image_transforms.center_crop on a channels-last array,
// including its zero padding (centred, extra pixel after) when the crop exceeds the image.
//
// Bad arguments (sizes < 1 or > 65536, a buffer shorter than width * height * channels, a
// channel count other than 1, 3, 4) throw mindiesd::Error of kind InvalidArgument naming the
// argument. Only the first width * height * channels bytes of `src` are read.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mindiesd::io {

// PIL.Image.Resampling.NEAREST, BILINEAR, BICUBIC, LANCZOS.
enum class ResampleFilter { nearest, bilinear, bicubic, lanczos };

// The largest width or height either function accepts (Pillow works in int and float).
inline constexpr int64_t kMaxResampleSize = 65536;

// Returns out_height * out_width * channels bytes.
std::vector<uint8_t> resize_u8(std::span<const uint8_t> src, int64_t width, int64_t height,
                               int64_t channels, int64_t out_width, int64_t out_height,
                               ResampleFilter filter);

// Returns crop_height * crop_width * channels bytes: the window at
// top = (height - crop_height) // 2, left = (width - crop_width) // 2 (floor division); along an
// axis where the crop is larger than the image, the image is placed at
// ceil((crop - size) / 2) and the rest is zero.
std::vector<uint8_t> center_crop_u8(std::span<const uint8_t> src, int64_t width, int64_t height,
                                    int64_t channels, int64_t crop_width, int64_t crop_height);

}  // namespace mindiesd::io
