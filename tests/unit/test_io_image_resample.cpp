// Pillow-exact resize and transformers-exact centre crop, byte for byte against
// tests/data/golden/image_resample/resample.safetensors (written by
// tools/golden/make_image_resample_golden.py from Pillow's Image.resize and
// transformers.image_transforms.center_crop; the tensor names are listed in its docstring), and
// the argument checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/image_resample.h"
#include "mindiesd/io/safetensors.h"
#include "test_util.h"

namespace mindiesd::io {
namespace {

using test::expect_error;

const std::string kGolden =
    MINDIESD_SOURCE_DIR "/tests/data/golden/image_resample/resample.safetensors";

const WeightStore& golden() {
  static const WeightStore store = WeightStore::open(kGolden);
  return store;
}

// An (H, W, C) u8 image.
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> px;
};

Image load(const std::string& name) {
  const Tensor t = golden().get(name).contiguous();
  Image im;
  EXPECT_EQ(t.dtype(), DType::u8) << name;
  EXPECT_EQ(t.dim(), 3) << name;
  if (t.dtype() != DType::u8 || t.dim() != 3) return im;
  im.height = t.size(0);
  im.width = t.size(1);
  im.channels = t.size(2);
  const uint8_t* p = t.data<uint8_t>();
  im.px.assign(p, p + t.numel());
  return im;
}

// "a.b.c" -> {"a", "b", "c"}.
std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = s.find('.', start)) != std::string::npos; start = dot + 1) {
    parts.push_back(s.substr(start, dot - start));
  }
  parts.push_back(s.substr(start));
  return parts;
}

// Empty when equal; otherwise how many bytes differ and where the first one is.
std::string diff(const std::vector<uint8_t>& got, const Image& want) {
  if (got.size() != want.px.size()) {
    return "size " + std::to_string(got.size()) + " != " + std::to_string(want.px.size());
  }
  size_t n = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want.px[i] && n++ == 0) first = i;
  }
  if (n == 0) return {};
  const size_t pix = first / static_cast<size_t>(want.channels);
  return std::to_string(n) + " bytes differ; first at y " +
         std::to_string(pix / static_cast<size_t>(want.width)) + " x " +
         std::to_string(pix % static_cast<size_t>(want.width)) + " channel " +
         std::to_string(first % static_cast<size_t>(want.channels)) + ": got " +
         std::to_string(got[first]) + ", Pillow " + std::to_string(want.px[first]);
}

const std::map<std::string, ResampleFilter> kFilters = {
    {"nearest", ResampleFilter::nearest},
    {"bilinear", ResampleFilter::bilinear},
    {"bicubic", ResampleFilter::bicubic},
    {"lanczos", ResampleFilter::lanczos},
};

TEST(ImageResample, MatchesPillowResize) {
  std::map<std::string, int> per_filter;
  for (const std::string& name : golden().names()) {
    const std::vector<std::string> parts = split_dots(name);
    if (parts.size() != 3 || !kFilters.contains(parts[1])) continue;
    SCOPED_TRACE(name);
    const Image src = load(parts[0] + ".src");
    const Image want = load(name);
    ASSERT_EQ(want.channels, src.channels);
    ASSERT_EQ(parts[2], std::to_string(want.width) + "x" + std::to_string(want.height));
    const std::vector<uint8_t> got =
        resize_u8(src.px, src.width, src.height, src.channels, want.width, want.height,
                  kFilters.at(parts[1]));
    EXPECT_EQ(diff(got, want), "");
    ++per_filter[parts[1]];
  }
  // 37 target sizes over 5 images, each with every filter.
  for (const auto& [filter, unused] : kFilters) EXPECT_EQ(per_filter[filter], 37) << filter;
}

TEST(ImageResample, MatchesTransformersCenterCrop) {
  int cases = 0;
  for (const std::string& name : golden().names()) {
    const std::vector<std::string> parts = split_dots(name);
    if (parts.size() != 3 || parts[1] != "crop") continue;
    SCOPED_TRACE(name);
    const Image src = load(parts[0] + ".src");
    const Image want = load(name);
    ASSERT_EQ(want.channels, src.channels);
    const std::vector<uint8_t> got = center_crop_u8(src.px, src.width, src.height,
                                                    src.channels, want.width, want.height);
    EXPECT_EQ(diff(got, want), "");
    ++cases;
  }
  EXPECT_EQ(cases, 14);
}

// CLIPImageProcessor's resize (shortest_edge 32, bicubic) of the 40x56 image: 32x44.
TEST(ImageResample, MatchesClipImageProcessor) {
  const Image src = load("grad.src");
  const Image want = load("clip.grad");
  ASSERT_EQ(want.width, 32);
  ASSERT_EQ(want.height, 44);
  EXPECT_EQ(diff(resize_u8(src.px, 40, 56, 3, 32, 44, ResampleFilter::bicubic), want), "");
}

TEST(ImageResample, UnchangedSizeIsACopy) {
  // Alpha strictly between 0 and 255: a premultiply round trip would change these colours.
  const std::vector<uint8_t> px = {255, 7, 130, 3, 99, 200, 1, 77, 12, 34, 56, 128};
  for (const auto& [name, filter] : kFilters) {
    EXPECT_EQ(resize_u8(px, 3, 1, 4, 3, 1, filter), px) << name;
    EXPECT_EQ(resize_u8(px, 1, 3, 4, 1, 3, filter), px) << name;
  }
  EXPECT_EQ(center_crop_u8(px, 3, 1, 4, 3, 1), px);
}

TEST(ImageResample, ReadsOnlyTheImageBytesOfALongerBuffer) {
  const std::vector<uint8_t> px = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 99, 99};
  const std::vector<uint8_t> exact(px.begin(), px.begin() + 12);
  for (const auto& [name, filter] : kFilters) {
    EXPECT_EQ(resize_u8(px, 2, 2, 3, 3, 5, filter), resize_u8(exact, 2, 2, 3, 3, 5, filter))
        << name;
  }
  EXPECT_EQ(center_crop_u8(px, 2, 2, 3, 1, 1), center_crop_u8(exact, 2, 2, 3, 1, 1));
}

TEST(ImageResample, ConstantImagesStayConstant) {
  for (int64_t c : {1, 3, 4}) {
    const std::vector<uint8_t> px(static_cast<size_t>(13 * 9 * c), 200);
    for (const auto& [name, filter] : kFilters) {
      const std::vector<uint8_t> out = resize_u8(px, 13, 9, c, 5, 31, filter);
      EXPECT_EQ(out, std::vector<uint8_t>(static_cast<size_t>(5 * 31 * c), 200))
          << name << " channels " << c;
    }
  }
}

TEST(ImageResample, LargestSizeIsAccepted) {
  const std::vector<uint8_t> px(kMaxResampleSize, 3);
  EXPECT_EQ(resize_u8(px, kMaxResampleSize, 1, 1, 2, 1, ResampleFilter::bilinear),
            std::vector<uint8_t>(2, 3));
  EXPECT_EQ(resize_u8(px, 1, kMaxResampleSize, 1, 1, 3, ResampleFilter::lanczos),
            std::vector<uint8_t>(3, 3));
  // Height 1 -> 2 pads one zero row above (ceil((2 - 1) / 2) = 1).
  EXPECT_EQ(center_crop_u8(px, kMaxResampleSize, 1, 1, 4, 2),
            (std::vector<uint8_t>{0, 0, 0, 0, 3, 3, 3, 3}));
}

TEST(ImageResample, RejectsBadArguments) {
  const std::vector<uint8_t> px(4 * 3 * 3, 1);
  const auto resize = [&](int64_t w, int64_t h, int64_t c, int64_t ow, int64_t oh) {
    return [=, &px] { resize_u8(px, w, h, c, ow, oh, ResampleFilter::bicubic); };
  };
  const auto kind = ErrorKind::InvalidArgument;
  expect_error(resize(0, 3, 3, 2, 2), kind, {"resize_u8", "width", "got 0"});
  expect_error(resize(4, -1, 3, 2, 2), kind, {"resize_u8", "height", "got -1"});
  expect_error(resize(65537, 3, 3, 2, 2), kind, {"width", "65536", "got 65537"});
  expect_error(resize(4, 3, 3, 0, 2), kind, {"out_width", "got 0"});
  expect_error(resize(4, 3, 3, 2, -5), kind, {"out_height", "got -5"});
  expect_error(resize(4, 3, 3, 2, 65537), kind, {"out_height", "got 65537"});
  expect_error(resize(4, 3, 2, 2, 2), kind, {"channels", "1, 3 or 4", "got 2"});
  expect_error(resize(4, 3, 0, 2, 2), kind, {"channels", "got 0"});
  expect_error(resize(4, 3, 5, 2, 2), kind, {"channels", "got 5"});
  expect_error(resize(4, 4, 3, 2, 2), kind, {"src has 36 bytes", "4x4", "needs 48"});
  expect_error([] { resize_u8({}, 1, 1, 1, 2, 2, ResampleFilter::nearest); }, kind,
               {"src has 0 bytes"});
  expect_error([&] { resize_u8(px, 4, 3, 3, 2, 2, static_cast<ResampleFilter>(9)); }, kind,
               {"filter", "9"});

  const auto crop = [&](int64_t w, int64_t h, int64_t c, int64_t cw, int64_t ch) {
    return [=, &px] { center_crop_u8(px, w, h, c, cw, ch); };
  };
  expect_error(crop(0, 3, 3, 2, 2), kind, {"center_crop_u8", "width", "got 0"});
  expect_error(crop(4, 3, 3, 0, 2), kind, {"crop_width", "got 0"});
  expect_error(crop(4, 3, 3, 2, -1), kind, {"crop_height", "got -1"});
  expect_error(crop(4, 3, 3, 2, 70000), kind, {"crop_height", "got 70000"});
  expect_error(crop(4, 3, 7, 2, 2), kind, {"channels", "got 7"});
  expect_error(crop(5, 3, 3, 2, 2), kind, {"src has 36 bytes", "needs 45"});
}

}  // namespace
}  // namespace mindiesd::io
