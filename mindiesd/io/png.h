// PNG in and out (libpng), for files and for memory buffers (the HTTP service's uploads and
// responses).
//
// Images are CPU u8 tensors of shape (H, W, C) with C = 1 (gray), 3 (RGB) or 4 (RGBA). Decoding
// normalises every PNG flavour to one of those: palette -> RGB (RGBA when it has transparency),
// gray + alpha or gray with a transparent colour -> RGBA, 1/2/4-bit gray -> 8-bit, 16-bit -> 8-bit
// (rounded, not truncated), RGB with a transparent colour -> RGBA, interlaced -> progressive.
// Gamma and colour-profile chunks are ignored (the pixels are returned as stored).
//
// Errors name the file (or the `source` given for a buffer): Corrupt for a bad signature,
// truncated data, CRC or zlib errors; Unsupported for images over `max_pixels` (a decompression
// bomb guard: a 100-byte PNG can claim 100000 x 100000 pixels); InvalidArgument for a tensor
// write_png cannot store (not u8, wrong rank or channel count, empty); NotFound / Io for files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "mindiesd/core/tensor.h"

namespace mindiesd::io {

// 2^28 pixels (16k x 16k): 1 GiB as RGBA, far beyond any generated image.
inline constexpr int64_t kDefaultMaxPngPixels = int64_t{1} << 28;

Tensor read_png(const std::filesystem::path& path, int64_t max_pixels = kDefaultMaxPngPixels);
Tensor decode_png(std::span<const uint8_t> bytes, std::string_view source = "PNG data",
                  int64_t max_pixels = kDefaultMaxPngPixels);

// `image`: u8, (H, W, C) with C in {1, 3, 4}, or (H, W) for gray; any strides, any device.
// `compression_level`: zlib level 0 (fastest) .. 9 (smallest); 6 is libpng's and PIL's default.
// write_png replaces `path` atomically (temp file + rename).
void write_png(const std::filesystem::path& path, const Tensor& image, int compression_level = 6);
std::vector<uint8_t> encode_png(const Tensor& image, int compression_level = 6);

}  // namespace mindiesd::io
