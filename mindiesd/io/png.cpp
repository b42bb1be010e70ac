#include "mindiesd/io/png.h"

#if MINDIESD_CPU_DEPS
#include <png.h>
#endif

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"

namespace mindiesd::io {

namespace {
// PNG's own limit on a dimension (2^31 - 1); libpng's default user limit is 1,000,000.
constexpr int64_t kMaxPngDim = 1000000;
}  // namespace

#if MINDIESD_CPU_DEPS
// libpng reports errors by longjmp-ing to a setjmp point. A longjmp that skips a frame holding an
// object with a non-trivial destructor is undefined behaviour, so the functions below that call
// setjmp (read_header, read_rows, write_image) are plain C in spirit: their frames and everything
// between them and libpng hold only trivially destructible data, and libpng's callbacks never
// throw. The C++ side (tensors, vectors, exceptions) lives in their callers, which turn a false
// return into a mindiesd::Error carrying the message the error callback saved.

namespace {

constexpr size_t kMessageBytes = 512;
constexpr size_t kWarningBytes = 200;

// Shared prefix of the read and write states: where libpng's error callback leaves its message.
struct ErrorSink {
  char message[kMessageBytes];
  char last_warning[kWarningBytes];
  bool out_of_memory;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  // libpng often warns with the specifics ("Image width is zero in IHDR") and then fails with a
  // generic error ("Invalid IHDR data"); keep both.
  if (sink->last_warning[0] != '\0') {
    std::snprintf(sink->message, kMessageBytes, "%.300s (%.190s)", msg != nullptr ? msg : "error",
                  sink->last_warning);
  } else {
    std::snprintf(sink->message, kMessageBytes, "%.300s", msg != nullptr ? msg : "unknown error");
  }
  png_longjmp(png, 1);
}
// Warnings (a bad CRC on an ancillary chunk, an unknown chunk) do not stop decoding, and a
// library must not print to stderr behind its caller's back; the last one is kept for context.
void on_warning(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->last_warning, kWarningBytes, "%.190s", msg != nullptr ? msg : "");
}

// ---- decoding ----

struct ReadState {
  ErrorSink err;  // first member: libpng gets a ReadState* as its error pointer
  const uint8_t* data;
  size_t size;
  size_t pos;
};

void read_bytes(png_structp png, png_bytep out, size_t n) {
  auto* st = static_cast<ReadState*>(png_get_io_ptr(png));
  if (n > st->size - st->pos) png_error(png, "truncated (unexpected end of data)");
  std::memcpy(out, st->data + st->pos, n);
  st->pos += n;
}

struct HeaderInfo {
  png_uint_32 width;
  png_uint_32 height;
  int channels;
  size_t rowbytes;
};

bool read_header(png_structp png, png_infop info, HeaderInfo* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  const bool has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (has_trns) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_scale_16(png);
  // Two channels (gray + alpha) is not an output layout: widen to RGBA.
  if (color == PNG_COLOR_TYPE_GRAY_ALPHA || (color == PNG_COLOR_TYPE_GRAY && has_trns)) {
    png_set_gray_to_rgb(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->width = png_get_image_width(png, info);
  out->height = png_get_image_height(png, info);
  out->channels = png_get_channels(png, info);
  out->rowbytes = png_get_rowbytes(png, info);
  return true;
}

bool read_rows(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

// Destroys the read structs however far their creation got.
struct ReadGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadGuard() {
    if (png != nullptr) png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
};

// ---- encoding ----

struct WriteState {
  ErrorSink err;  // first member, as in ReadState
  uint8_t* data;  // malloc'd: growing a std::vector here could throw through libpng
  size_t size;
  size_t capacity;
};

void write_bytes(png_structp png, png_bytep in, size_t n) {
  auto* st = static_cast<WriteState*>(png_get_io_ptr(png));
  if (n > st->capacity - st->size) {
    size_t cap = st->capacity == 0 ? 4096 : st->capacity;
    while (cap - st->size < n) {
      if (cap > SIZE_MAX / 2) {
        st->err.out_of_memory = true;
        png_error(png, "encoded image too large");
      }
      cap *= 2;
    }
    void* grown = std::realloc(st->data, cap);
    if (grown == nullptr) {
      st->err.out_of_memory = true;
      png_error(png, "out of memory");
    }
    st->data = static_cast<uint8_t*>(grown);
    st->capacity = cap;
  }
  std::memcpy(st->data + st->size, in, n);
  st->size += n;
}
void flush_bytes(png_structp) {}

bool write_image(png_structp png, png_infop info, png_uint_32 width, png_uint_32 height,
                 int color_type, int level, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_compression_level(png, level);
  png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

struct WriteGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  WriteState* state = nullptr;
  ~WriteGuard() {
    if (png != nullptr) png_destroy_write_struct(&png, info != nullptr ? &info : nullptr);
    if (state != nullptr) std::free(state->data);
  }
};

}  // namespace

Tensor decode_png(std::span<const uint8_t> bytes, std::string_view source, int64_t max_pixels) {
  MINDIESD_CHECK(bytes.size() >= 8 && png_sig_cmp(bytes.data(), 0, 8) == 0, Corrupt, source,
                 ": not a PNG file (bad signature)");
  ReadState st{};
  st.data = bytes.data();
  st.size = bytes.size();
  ReadGuard g;
  g.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, on_error, on_warning);
  MINDIESD_CHECK(g.png != nullptr, OutOfMemory, source, ": cannot create a PNG decoder");
  g.info = png_create_info_struct(g.png);
  MINDIESD_CHECK(g.info != nullptr, OutOfMemory, source, ": cannot create a PNG decoder");
  png_set_read_fn(g.png, &st, read_bytes);

  HeaderInfo h{};
  if (!read_header(g.png, g.info, &h)) {
    MINDIESD_THROW(Corrupt, source, ": corrupt PNG: ", st.err.message);
  }
  const int64_t pixels = static_cast<int64_t>(h.width) * static_cast<int64_t>(h.height);
  MINDIESD_CHECK(pixels <= max_pixels, Unsupported, source, ": PNG of ", h.width, "x", h.height,
                 " pixels is over the limit of ", max_pixels, " pixels");
  MINDIESD_CHECK((h.channels == 1 || h.channels == 3 || h.channels == 4) &&
                     h.rowbytes == static_cast<size_t>(h.width) * static_cast<size_t>(h.channels),
                 Internal, source, ": PNG decoded to an unexpected layout (", h.channels,
                 " channels, ", h.rowbytes, " bytes per row)");

  Tensor out = Tensor::empty(
      {static_cast<int64_t>(h.height), static_cast<int64_t>(h.width), h.channels}, DType::u8);
  auto* base = static_cast<png_bytep>(out.data_ptr());
  std::vector<png_bytep> rows(h.height);
  for (png_uint_32 y = 0; y < h.height; ++y) rows[y] = base + static_cast<size_t>(y) * h.rowbytes;
  if (!read_rows(g.png, g.info, rows.data())) {
    MINDIESD_THROW(Corrupt, source, ": corrupt PNG: ", st.err.message);
  }
  return out;
}

#else
Tensor decode_png(std::span<const uint8_t>, std::string_view source, int64_t) {
  MINDIESD_THROW(Unsupported, source, ": reading PNG needs libpng, and this build has none ",
                 "(MINDIESD_CPU_DEPS=OFF)");
}
#endif

Tensor read_png(const std::filesystem::path& path, int64_t max_pixels) {
  const std::shared_ptr<MappedFile> file = MappedFile::open(path);
  return decode_png(file->bytes(), path.string(), max_pixels);
}

namespace {

#if !MINDIESD_CPU_DEPS
// Without libpng: a valid PNG whose zlib stream holds stored (uncompressed) deflate blocks
// (RFC 1950/1951) and filter type 0 on every row. Larger files, same pixels.
uint32_t crc32_update(uint32_t crc, const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void put_chunk(std::vector<uint8_t>& out, const char type[5], const std::vector<uint8_t>& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  const size_t at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_be32(out, crc32_update(0xffffffffu, out.data() + at, out.size() - at) ^ 0xffffffffu);
}

std::vector<uint8_t> encode_stored(const uint8_t* pixels, int64_t w, int64_t h, int64_t c) {
  std::vector<uint8_t> raw;  // filter byte 0 + the row, for every row
  const auto rowbytes = static_cast<size_t>(w * c);
  raw.reserve(static_cast<size_t>(h) * (rowbytes + 1));
  for (int64_t y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), pixels + y * rowbytes, pixels + (y + 1) * rowbytes);
  }
  std::vector<uint8_t> z = {0x78, 0x01};  // zlib: deflate, 32 KB window, no dictionary
  for (size_t at = 0; at < raw.size(); at += 65535) {  // raw holds >= 1 filter byte
    const size_t n = std::min<size_t>(65535, raw.size() - at);
    z.push_back(at + n == raw.size() ? 1 : 0);  // BFINAL, BTYPE = stored
    z.push_back(static_cast<uint8_t>(n));
    z.push_back(static_cast<uint8_t>(n >> 8));
    z.push_back(static_cast<uint8_t>(~n));
    z.push_back(static_cast<uint8_t>(~n >> 8));
    z.insert(z.end(), raw.begin() + static_cast<ptrdiff_t>(at),
             raw.begin() + static_cast<ptrdiff_t>(at + n));
  }
  uint32_t s1 = 1, s2 = 0;  // Adler-32
  for (uint8_t b : raw) {
    s1 = (s1 + b) % 65521;
    s2 = (s2 + s1) % 65521;
  }
  put_be32(z, (s2 << 16) | s1);

  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, static_cast<uint32_t>(w));
  put_be32(ihdr, static_cast<uint32_t>(h));
  ihdr.push_back(8);                                  // bit depth
  ihdr.push_back(c == 1 ? 0 : (c == 3 ? 2 : 6));      // grey, RGB, RGBA
  ihdr.insert(ihdr.end(), {0, 0, 0});                 // deflate, adaptive filters, no interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", {});
  return out;
}
#endif

// `who` starts every message: "encode_png" or the path being written.
std::vector<uint8_t> encode(const Tensor& image, int compression_level, const std::string& who) {
  MINDIESD_CHECK(image.defined(), InvalidArgument, who, ": undefined tensor");
  MINDIESD_CHECK(image.dtype() == DType::u8, InvalidArgument, who, ": image must be u8, got ",
                 dtype_name(image.dtype()), " ", image.shape().str());
  MINDIESD_CHECK(image.dim() == 2 || image.dim() == 3, InvalidArgument, who,
                 ": image must be (H, W, C) or (H, W), got shape ", image.shape().str());
  const int64_t h = image.size(0);
  const int64_t w = image.size(1);
  const int64_t c = image.dim() == 3 ? image.size(2) : 1;
  MINDIESD_CHECK(c == 1 || c == 3 || c == 4, InvalidArgument, who,
                 ": image must have 1, 3 or 4 channels, got shape ", image.shape().str());
  MINDIESD_CHECK(h >= 1 && w >= 1 && h <= kMaxPngDim && w <= kMaxPngDim, InvalidArgument, who,
                 ": image size ", w, "x", h, " is outside 1..", kMaxPngDim);
  MINDIESD_CHECK(compression_level >= 0 && compression_level <= 9, InvalidArgument, who,
                 ": compression level must be 0..9, got ", compression_level);

  Tensor img = image.device().is_cpu() ? image : image.to(Device::cpu());
  img = img.contiguous();
#if MINDIESD_CPU_DEPS
  auto* base = static_cast<png_bytep>(img.data_ptr());
  const auto rowbytes = static_cast<size_t>(w * c);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y)
    rows[static_cast<size_t>(y)] = base + static_cast<size_t>(y) * rowbytes;
  const int color =
      c == 1 ? PNG_COLOR_TYPE_GRAY : (c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA);

  WriteState st{};
  WriteGuard g;
  g.state = &st;
  g.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, on_error, on_warning);
  MINDIESD_CHECK(g.png != nullptr, OutOfMemory, who, ": cannot create a PNG encoder");
  g.info = png_create_info_struct(g.png);
  MINDIESD_CHECK(g.info != nullptr, OutOfMemory, who, ": cannot create a PNG encoder");
  png_set_write_fn(g.png, &st, write_bytes, flush_bytes);
  if (!write_image(g.png, g.info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), color,
                   compression_level, rows.data())) {
    if (st.err.out_of_memory) {
      MINDIESD_THROW(OutOfMemory, who, ": ", st.err.message, " (", w, "x", h, ")");
    }
    MINDIESD_THROW(Internal, who, ": libpng: ", st.err.message);
  }
  return std::vector<uint8_t>(st.data, st.data + st.size);
#else
  return encode_stored(static_cast<const uint8_t*>(img.data_ptr()), w, h, c);
#endif
}

}  // namespace

std::vector<uint8_t> encode_png(const Tensor& image, int compression_level) {
  return encode(image, compression_level, "encode_png");
}

void write_png(const std::filesystem::path& path, const Tensor& image, int compression_level) {
  const std::vector<uint8_t> bytes = encode(image, compression_level, path.string());
  write_file_atomic(path, [&](FileSink& sink) { sink.write(bytes.data(), bytes.size()); });
}

}  // namespace mindiesd::io
