// PNG read/write: round trips through files and memory, every colour type and bit depth the
// decoder normalises (PNGs built chunk by chunk here, so each case is exactly what it says), and
// truncated / corrupt / hostile inputs.
#include <gtest/gtest.h>

#if MINDIESD_CPU_DEPS
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

#else  // without libpng: the stored-deflate encoder, checked field by field

#include <cstdint>
#include <string>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/png.h"
#include "test_util.h"

namespace mindiesd::io {
namespace {

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         b[at + 3];
}

// Bit-serial CRC-32 (ISO-HDLC), independent of the encoder's table-driven one.
uint32_t crc32_bitwise(const uint8_t* p, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

struct Chunk {
  std::string type;
  std::vector<uint8_t> data;
};

// Splits a PNG into chunks, checking the signature and every CRC.
std::vector<Chunk> chunks_of(const std::vector<uint8_t>& png) {
  const std::vector<uint8_t> sig = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_TRUE(std::equal(sig.begin(), sig.end(), png.begin()));
  std::vector<Chunk> out;
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint32_t len = be32(png, at);
    Chunk c{std::string(png.begin() + at + 4, png.begin() + at + 8),
            std::vector<uint8_t>(png.begin() + at + 8, png.begin() + at + 8 + len)};
    EXPECT_EQ(be32(png, at + 8 + len), crc32_bitwise(png.data() + at + 4, len + 4)) << c.type;
    out.push_back(std::move(c));
    at += 12 + len;
  }
  return out;
}

// The rows of a zlib stream made only of stored blocks, checking its header and Adler-32.
std::vector<uint8_t> inflate_stored(const std::vector<uint8_t>& z) {
  EXPECT_EQ((z[0] * 256 + z[1]) % 31, 0) << "zlib header check bits";
  EXPECT_EQ(z[0] & 0x0f, 8) << "deflate";
  std::vector<uint8_t> raw;
  size_t at = 2;
  bool final = false;
  while (!final) {
    final = z[at] & 1;
    EXPECT_EQ(z[at] >> 1, 0) << "stored block";
    const size_t n = z[at + 1] | (z[at + 2] << 8);
    EXPECT_EQ(n ^ 0xffff, static_cast<size_t>(z[at + 3] | (z[at + 4] << 8)));
    raw.insert(raw.end(), z.begin() + at + 5, z.begin() + at + 5 + n);
    at += 5 + n;
  }
  uint64_t a = 1, b = 0;
  for (uint8_t v : raw) {
    a = (a + v) % 65521;
    b = (b + a) % 65521;
  }
  EXPECT_EQ(be32(z, at), static_cast<uint32_t>((b << 16) | a));
  EXPECT_EQ(at + 4, z.size());
  return raw;
}

void expect_stored_png_holds(const Tensor& image) {
  const int64_t h = image.size(0), w = image.size(1), c = image.dim() == 3 ? image.size(2) : 1;
  const std::vector<Chunk> cs = chunks_of(encode_png(image));
  ASSERT_EQ(cs.size(), 3u);
  ASSERT_EQ(cs[0].type, "IHDR");
  EXPECT_EQ(be32(cs[0].data, 0), w);
  EXPECT_EQ(be32(cs[0].data, 4), h);
  EXPECT_EQ(cs[0].data[8], 8);
  EXPECT_EQ(cs[0].data[9], c == 1 ? 0 : (c == 3 ? 2 : 6));
  ASSERT_EQ(cs[1].type, "IDAT");
  EXPECT_EQ(cs[2].type, "IEND");
  const std::vector<uint8_t> raw = inflate_stored(cs[1].data);
  ASSERT_EQ(raw.size(), static_cast<size_t>(h * (w * c + 1)));
  const auto* px = image.data<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    ASSERT_EQ(raw[y * (w * c + 1)], 0) << "filter type of row " << y;
    for (int64_t i = 0; i < w * c; ++i) ASSERT_EQ(raw[y * (w * c + 1) + 1 + i], px[y * w * c + i]);
  }
}

Tensor pattern(Shape shape) {
  Tensor t = Tensor::empty(shape, DType::u8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37 + 11);
  return t;
}

TEST(PngWithoutLibpng, WritesValidStoredPngsOfEveryChannelCount) {
  expect_stored_png_holds(pattern({2, 3, 3}));
  expect_stored_png_holds(pattern({5, 4}));
  expect_stored_png_holds(pattern({1, 1, 4}));
  // Over 65535 bytes of rows: several stored blocks, only the last one final.
  expect_stored_png_holds(pattern({150, 160, 4}));
}

TEST(PngWithoutLibpng, ReadingSaysWhatIsMissing) {
  const std::vector<uint8_t> bytes = encode_png(pattern({2, 2, 3}));
  test::expect_error([&] { decode_png(bytes, "frame.png"); }, ErrorKind::Unsupported,
                     {"frame.png", "libpng"});
  // Two channels are no PNG colour type: the checks run before either encoder.
  test::expect_error([&] { encode_png(pattern({2, 2, 2})); }, ErrorKind::InvalidArgument,
                     {"channels"});
}

}  // namespace
}  // namespace mindiesd::io
#endif
