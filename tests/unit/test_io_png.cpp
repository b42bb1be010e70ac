// PNG read/write: round trips through files and memory, every colour type and bit depth the
// decoder normalises (PNGs built chunk by chunk here, so each case is exactly what it says), and
// truncated / corrupt / hostile inputs.
#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/png.h"
#include "test_util.h"

namespace mindiesd::io {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;
using test::write_file;

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// ---- building PNGs by hand ----

void put32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string chunk(const char* type, std::string_view data) {
  std::string s;
  put32(s, static_cast<uint32_t>(data.size()));
  std::string body = std::string(type, 4) + std::string(data);
  s += body;
  put32(s, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()),
                                       static_cast<uInt>(body.size()))));
  return s;
}

std::string zlib(std::string_view raw) {
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::string out(n, '\0');
  compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(raw.data()),
            static_cast<uLong>(raw.size()), 6);
  out.resize(n);
  return out;
}

// `rows`: the scanlines without filter bytes (filter 0 is added to each).
std::string make_png(uint32_t w, uint32_t h, int depth, int color,
                     const std::vector<std::string>& rows,
                     const std::vector<std::string>& extra_chunks = {}) {
  std::string s = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr += static_cast<char>(depth);
  ihdr += static_cast<char>(color);
  ihdr += std::string(3, '\0');  // compression, filter, interlace
  s += chunk("IHDR", ihdr);
  for (const std::string& c : extra_chunks) s += c;
  std::string raw;
  for (const std::string& r : rows) raw += '\0' + r;
  s += chunk("IDAT", zlib(raw));
  s += chunk("IEND", "");
  return s;
}

std::string bytes_of(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s += static_cast<char>(b);
  return s;
}

std::vector<int> pixels(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  return std::vector<int>(p, p + t.numel());
}

Tensor patterned(int64_t h, int64_t w, int64_t c) {
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<uint8_t>(i * 37 + 11);
  return t;
}

// ---- round trips ----------------------------------------------------------------------------

TEST(IoPng, RoundTripInMemory) {
  for (int64_t c : {1, 3, 4}) {
    for (auto [h, w] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {64, 3}}) {
      const Tensor img = patterned(h, w, c);
      const std::vector<uint8_t> png = encode_png(img);
      const Tensor back = decode_png(png);
      EXPECT_EQ(back.shape(), (Shape{h, w, c}));
      EXPECT_EQ(back.dtype(), DType::u8);
      EXPECT_EQ(pixels(back), pixels(img)) << h << "x" << w << "x" << c;
    }
  }
}

TEST(IoPng, RoundTripFile) {
  TempDir dir("io_png");
  const fs::path p = dir / "out.png";
  const Tensor img = patterned(5, 9, 3);
  write_png(p, img, 9);
  EXPECT_EQ(pixels(read_png(p)), pixels(img));
  write_png(p, patterned(2, 2, 4), 0);  // replaces the file
  EXPECT_EQ(read_png(p).shape(), (Shape{2, 2, 4}));
}

TEST(IoPng, TwoDimensionalInputIsGray) {
  Tensor img = Tensor::empty({3, 4}, DType::u8);
  std::memset(img.data_ptr(), 77, 12);
  const Tensor back = decode_png(encode_png(img));
  EXPECT_EQ(back.shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(pixels(back), std::vector<int>(12, 77));
}

TEST(IoPng, NonContiguousInput) {
  const Tensor img = patterned(4, 6, 3);
  const Tensor view = img.transpose(0, 1);  // (6, 4, 3) view
  ASSERT_FALSE(view.is_contiguous());
  const Tensor back = decode_png(encode_png(view));
  EXPECT_EQ(back.shape(), (Shape{6, 4, 3}));
  EXPECT_EQ(pixels(back), pixels(view.contiguous()));
}

// ---- decoding every flavour -----------------------------------------------------------------

TEST(IoPng, PaletteToRgb) {
  const std::string plte = chunk("PLTE", bytes_of({255, 0, 0, 0, 0, 255}));
  const std::string png = make_png(2, 1, 8, 3, {bytes_of({1, 0})}, {plte});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(pixels(t), (std::vector<int>{0, 0, 255, 255, 0, 0}));
}

TEST(IoPng, PaletteWithTransparencyToRgba) {
  const std::string plte = chunk("PLTE", bytes_of({255, 0, 0, 0, 0, 255}));
  const std::string trns = chunk("tRNS", bytes_of({128}));  // entry 0 half transparent
  const std::string png = make_png(2, 1, 8, 3, {bytes_of({0, 1})}, {plte, trns});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 2, 4}));
  EXPECT_EQ(pixels(t), (std::vector<int>{255, 0, 0, 128, 0, 0, 255, 255}));
}

TEST(IoPng, LowBitDepthGrayTo8Bit) {
  // 1-bit gray, 8 pixels: 1 0 1 0 0 0 0 1
  const std::string png = make_png(8, 1, 1, 0, {bytes_of({0b10100001})});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 8, 1}));
  EXPECT_EQ(pixels(t), (std::vector<int>{255, 0, 255, 0, 0, 0, 0, 255}));
}

TEST(IoPng, SixteenBitRgbScaledTo8Bit) {
  const std::string png = make_png(1, 1, 16, 2, {bytes_of({0xff, 0xff, 0x80, 0x80, 0x00, 0x00})});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 1, 3}));
  EXPECT_EQ(pixels(t), (std::vector<int>{255, 128, 0}));
}

TEST(IoPng, GrayAlphaToRgba) {
  const std::string png = make_png(2, 1, 8, 4, {bytes_of({100, 200, 7, 255})});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 2, 4}));
  EXPECT_EQ(pixels(t), (std::vector<int>{100, 100, 100, 200, 7, 7, 7, 255}));
}

TEST(IoPng, SixteenBitGrayAlphaToRgba) {
  const std::string png = make_png(1, 1, 16, 4, {bytes_of({0x12, 0x34, 0xff, 0xff})});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 1, 4}));
  EXPECT_EQ(pixels(t)[3], 255);
  EXPECT_EQ(pixels(t)[0], pixels(t)[1]);
}

TEST(IoPng, GrayWithTransparentColourToRgba) {
  const std::string trns = chunk("tRNS", bytes_of({0, 0}));  // gray 0 is transparent
  const std::string png = make_png(2, 1, 8, 0, {bytes_of({0, 90})}, {trns});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 2, 4}));
  EXPECT_EQ(pixels(t), (std::vector<int>{0, 0, 0, 0, 90, 90, 90, 255}));
}

TEST(IoPng, RgbWithTransparentColourToRgba) {
  const std::string trns = chunk("tRNS", bytes_of({0, 1, 0, 2, 0, 3}));
  const std::string png = make_png(2, 1, 8, 2, {bytes_of({1, 2, 3, 4, 5, 6})}, {trns});
  const Tensor t = decode_png(as_bytes(png));
  EXPECT_EQ(t.shape(), (Shape{1, 2, 4}));
  EXPECT_EQ(pixels(t), (std::vector<int>{1, 2, 3, 0, 4, 5, 6, 255}));
}

// Interlaced PNGs are easiest to get from libpng itself.
bool write_interlaced(const char* path, const Tensor& rgb) {
  FILE* fp = std::fopen(path, "wb");
  if (fp == nullptr) return false;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows(static_cast<size_t>(rgb.size(0)));
  for (size_t y = 0; y < rows.size(); ++y) {
    rows[y] = static_cast<png_bytep>(rgb.data_ptr()) + y * static_cast<size_t>(rgb.size(1) * 3);
  }
  if (setjmp(png_jmpbuf(png)) != 0) {
    png_destroy_write_struct(&png, &info);
    std::fclose(fp);
    return false;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, static_cast<png_uint_32>(rgb.size(1)),
               static_cast<png_uint_32>(rgb.size(0)), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(fp);
  return true;
}

TEST(IoPng, InterlacedIsDeinterlaced) {
  TempDir dir("io_png");
  const fs::path p = dir / "adam7.png";
  const Tensor img = patterned(11, 9, 3);
  ASSERT_TRUE(write_interlaced(p.c_str(), img));
  EXPECT_EQ(pixels(read_png(p)), pixels(img));
}

// ---- bad input ------------------------------------------------------------------------------

TEST(IoPngBad, FileMissing) {
  TempDir dir("io_png");
  expect_error([&] { read_png(dir / "none.png"); }, ErrorKind::NotFound, {"none.png"});
}

TEST(IoPngBad, EmptyFile) {
  TempDir dir("io_png");
  const fs::path p = dir / "empty.png";
  write_file(p, "");
  expect_error([&] { read_png(p); }, ErrorKind::Corrupt, {p.string(), "not a PNG"});
}

TEST(IoPngBad, NotAPng) {
  TempDir dir("io_png");
  const fs::path p = dir / "fake.png";
  write_file(p, "GIF89a this is not a png at all");
  expect_error([&] { read_png(p); }, ErrorKind::Corrupt, {p.string(), "bad signature"});
  expect_error([] { decode_png(as_bytes("xx"), "upload.png"); }, ErrorKind::Corrupt,
               {"upload.png"});
}

TEST(IoPngBad, TruncatedInPixelData) {
  const std::vector<uint8_t> good = encode_png(patterned(32, 32, 3), 0);
  TempDir dir("io_png");
  const fs::path p = dir / "trunc.png";
  write_file(p, std::string_view(reinterpret_cast<const char*>(good.data()), good.size() / 2));
  expect_error([&] { read_png(p); }, ErrorKind::Corrupt, {p.string(), "corrupt PNG"});
}

TEST(IoPngBad, TruncatedInHeader) {
  const std::vector<uint8_t> good = encode_png(patterned(4, 4, 3));
  expect_error([&] { decode_png(std::span(good.data(), 20), "head.png"); }, ErrorKind::Corrupt,
               {"head.png", "truncated"});
}

TEST(IoPngBad, MissingEnd) {
  const std::vector<uint8_t> good = encode_png(patterned(4, 4, 3));
  // Drop IEND (12 bytes): the pixels are all there but the file is not complete.
  expect_error([&] { decode_png(std::span(good.data(), good.size() - 12), "noend.png"); },
               ErrorKind::Corrupt, {"noend.png"});
}

TEST(IoPngBad, BadCrcInPixelData) {
  std::string png = make_png(2, 1, 8, 0, {bytes_of({1, 2})});
  const size_t idat = png.find("IDAT");
  uint32_t len = 0;
  for (size_t i = idat - 4; i < idat; ++i) len = (len << 8) | static_cast<uint8_t>(png[i]);
  const size_t crc = idat + 4 + len;  // the data is intact; its checksum is not
  png[crc] = static_cast<char>(png[crc] ^ 0x55);
  expect_error([&] { decode_png(as_bytes(png), "crc.png"); }, ErrorKind::Corrupt,
               {"crc.png", "CRC"});
}

TEST(IoPngBad, BadZlibStream) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, 4);
  put32(ihdr, 4);
  ihdr += bytes_of({8, 0, 0, 0, 0});
  png += chunk("IHDR", ihdr) + chunk("IDAT", "this is not zlib data") + chunk("IEND", "");
  expect_error([&] { decode_png(as_bytes(png), "zlib.png"); }, ErrorKind::Corrupt, {"zlib.png"});
}

TEST(IoPngBad, ZeroWidth) {
  const std::string png = make_png(0, 1, 8, 0, {});
  expect_error([&] { decode_png(as_bytes(png), "zero.png"); }, ErrorKind::Corrupt,
               {"zero.png", "width"});
}

TEST(IoPngBad, BadBitDepthForColourType) {
  const std::string png = make_png(1, 1, 4, 2, {bytes_of({0})});  // RGB cannot be 4-bit
  expect_error([&] { decode_png(as_bytes(png), "depth.png"); }, ErrorKind::Corrupt, {"depth.png"});
}

TEST(IoPngBad, DecompressionBombRefusedBeforeAllocating) {
  // Claims 100000 x 100000 pixels (10^10) in a file of a few dozen bytes.
  const std::string png = make_png(100000, 100000, 8, 0, {bytes_of({0})});
  expect_error([&] { decode_png(as_bytes(png), "bomb.png"); }, ErrorKind::Unsupported,
               {"bomb.png", "100000x100000", "limit"});
  const std::vector<uint8_t> small = encode_png(patterned(10, 10, 1));
  expect_error([&] { decode_png(small, "limited.png", 99); }, ErrorKind::Unsupported,
               {"limited.png", "limit of 99"});
}

TEST(IoPngBad, WriteWrongDType) {
  TempDir dir("io_png");
  const fs::path p = dir / "f.png";
  expect_error(
      [&] {
        write_png(p, Tensor::empty({2, 2, 3}, DType::f32));
      },
      ErrorKind::InvalidArgument, {p.string(), "u8", "f32"});
  EXPECT_FALSE(fs::exists(p));
}

TEST(IoPngBad, WriteWrongChannelCount) {
  expect_error(
      [] {
        encode_png(Tensor::empty({2, 2, 2}, DType::u8));
      },
      ErrorKind::InvalidArgument, {"1, 3 or 4 channels", "(2, 2, 2)"});
}

TEST(IoPngBad, WriteWrongRank) {
  expect_error(
      [] {
        encode_png(Tensor::empty({1, 2, 2, 3}, DType::u8));
      },
      ErrorKind::InvalidArgument, {"(H, W, C)"});
  expect_error([] { encode_png(Tensor()); }, ErrorKind::InvalidArgument, {"undefined"});
}

TEST(IoPngBad, WriteEmptyImage) {
  expect_error(
      [] {
        encode_png(Tensor::empty({0, 4, 3}, DType::u8));
      },
      ErrorKind::InvalidArgument, {"0"});
}

TEST(IoPngBad, WriteBadCompressionLevel) {
  expect_error([] { encode_png(patterned(1, 1, 3), 11); }, ErrorKind::InvalidArgument,
               {"compression level", "11"});
}

}  // namespace
}  // namespace mindiesd::io
