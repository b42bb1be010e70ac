#include "mindiesd/io/video.h"

#include <fcntl.h>
#include <unistd.h>

extern "C" {
#if MINDIESD_CPU_DEPS
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/rational.h>
#include <libswscale/swscale.h>
#endif
}

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <system_error>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/io/png.h"

namespace mindiesd::io {

namespace fs = std::filesystem;

FrameRate::FrameRate(double fps) {
  // Non-positive, NaN and infinite rates come out as n/0, 0/0 or -n/d: check_fps rejects them.
#if MINDIESD_CPU_DEPS
  const AVRational q = av_d2q(fps, 1001 * 1000);
  num = q.num;
  den = q.den;
#else
  // The last continued-fraction convergent with numerator and denominator <= 1001000.
  if (!std::isfinite(fps) || fps <= 0) {
    num = std::isnan(fps) ? 0 : (fps > 0 ? 1 : -1);
    den = 0;
    return;
  }
  int64_t p0 = 0, q0 = 1, p1 = 1, q1 = 0;
  double x = fps;
  for (int i = 0; i < 64; ++i) {
    const double a = std::floor(x);
    if (a > 1001000.0) break;
    const int64_t ai = static_cast<int64_t>(a);
    const int64_t p2 = ai * p1 + p0, q2 = ai * q1 + q0;
    if (p2 > 1001000 || q2 > 1001000) break;
    p0 = p1, q0 = q1, p1 = p2, q1 = q2;
    if (x - a < 1e-12) break;
    x = 1.0 / (x - a);
  }
  num = p1;
  den = q1;
#endif
}

std::string FrameRate::str() const {
  return den == 1 ? std::to_string(num) : str_cat(num, "/", den);
}

namespace {

void check_fps(const FrameRate& fps, const std::string& who) {
  MINDIESD_CHECK(fps.num > 0 && fps.den > 0 && fps.num <= INT32_MAX && fps.den <= INT32_MAX,
                 InvalidArgument, who, ": fps must be a positive, finite rate, got ", fps.num, "/",
                 fps.den);
}

#if MINDIESD_CPU_DEPS
std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

// libav* log to stderr at INFO by default (x264 prints its statistics there); a library must not
// print behind its caller's back, so lower the level once unless someone already changed it.
void quiet_libav() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_ERROR);
  });
}

// A temporary file next to `path`, removed on destruction unless committed (renamed over path).
class TempFile {
 public:
  explicit TempFile(const fs::path& path) : path_(path) {
    static std::atomic<int> counter{0};
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    std::error_code ec;
    MINDIESD_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), InvalidArgument,
                   path.string(), ": ", dir.string(), " is not a directory");
    MINDIESD_CHECK(fs::is_directory(dir, ec), NotFound, path.string(), ": directory ", dir.string(),
                   " does not exist");
    MINDIESD_CHECK(!fs::is_directory(path, ec), InvalidArgument, path.string(), ": is a directory");
    tmp_ = dir / str_cat(".", path.filename().string(), ".tmp.", ::getpid(), ".", counter++);
  }
  ~TempFile() {
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const fs::path& tmp() const { return tmp_; }
  void commit() {
    const int fd = ::open(tmp_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      MINDIESD_THROW(Io, path_.string(), ": cannot rename ", tmp_.string(),
                     " into place: ", std::strerror(errno));
    }
    committed_ = true;
  }

 private:
  fs::path path_;
  fs::path tmp_;
  bool committed_ = false;
};

// Owners of the libav* objects, freed however far setup got.
struct Muxer {
  AVFormatContext* fmt = nullptr;
  AVCodecContext* codec = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  SwsContext* sws = nullptr;
  bool header_written = false;
  bool trailer_written = false;
  ~Muxer() {
    if (fmt != nullptr && header_written && !trailer_written) av_write_trailer(fmt);
    if (fmt != nullptr && fmt->pb != nullptr) avio_closep(&fmt->pb);
    avformat_free_context(fmt);
    avcodec_free_context(&codec);
    av_frame_free(&frame);
    av_packet_free(&packet);
    sws_freeContext(sws);
  }
};

// Sends `frame` (nullptr flushes) and writes every packet the encoder returns.
void encode_and_write(Muxer& m, AVStream* st, AVFrame* frame, const std::string& who) {
  int rc = avcodec_send_frame(m.codec, frame);
  MINDIESD_CHECK(rc >= 0, Internal, who, ": ", m.codec->codec->name,
                 " encoder refused a frame: ", av_error_text(rc));
  for (;;) {
    rc = avcodec_receive_packet(m.codec, m.packet);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
    MINDIESD_CHECK(rc >= 0, Internal, who, ": ", m.codec->codec->name,
                   " encoder failed: ", av_error_text(rc));
    av_packet_rescale_ts(m.packet, m.codec->time_base, st->time_base);
    m.packet->stream_index = st->index;
    rc = av_interleaved_write_frame(m.fmt, m.packet);
    av_packet_unref(m.packet);
    MINDIESD_CHECK(rc >= 0, Io, who, ": writing a packet failed: ", av_error_text(rc));
  }
}

// The shared body of write_mp4 / write_gif. `setup` configures m.codec (pix_fmt and options)
// before it is opened; `fill` writes frame i's pixels into m.frame.
template <typename Setup, typename Fill>
void mux(const fs::path& path, const char* format, const AVCodec* encoder, const Tensor& u8,
         FrameRate fps, AVDictionary* codec_opts, AVDictionary* mux_opts, Setup&& setup,
         Fill&& fill) {
  // The option dictionaries are ours from here on: freed on every path, thrown errors included
  // (TempFile throws for a missing folder before anything else is set up).
  struct DictGuard {
    AVDictionary** a;
    AVDictionary** b;
    ~DictGuard() {
      av_dict_free(a);
      av_dict_free(b);
    }
  } dicts{&codec_opts, &mux_opts};
  quiet_libav();
  const std::string who = path.string();
  const int frames = static_cast<int>(u8.size(0));
  const int height = static_cast<int>(u8.size(1));
  const int width = static_cast<int>(u8.size(2));
  TempFile tmp(path);
  Muxer m;

  int rc = avformat_alloc_output_context2(&m.fmt, nullptr, format, tmp.tmp().c_str());
  MINDIESD_CHECK(rc >= 0 && m.fmt != nullptr, Internal, who, ": no ", format,
                 " muxer in this libavformat: ", av_error_text(rc));
  AVStream* st = avformat_new_stream(m.fmt, nullptr);
  MINDIESD_CHECK(st != nullptr, OutOfMemory, who, ": cannot create a stream");
  m.codec = avcodec_alloc_context3(encoder);
  MINDIESD_CHECK(m.codec != nullptr, OutOfMemory, who, ": cannot create an encoder");
  m.codec->width = width;
  m.codec->height = height;
  m.codec->time_base = AVRational{static_cast<int>(fps.den), static_cast<int>(fps.num)};
  m.codec->framerate = AVRational{static_cast<int>(fps.num), static_cast<int>(fps.den)};
  if ((m.fmt->oformat->flags & AVFMT_GLOBALHEADER) != 0) {
    m.codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  }
  setup(m.codec);
  rc = avcodec_open2(m.codec, encoder, &codec_opts);
  MINDIESD_CHECK(rc >= 0, Internal, who, ": cannot open the ", encoder->name, " encoder for ",
                 width, "x", height, " at ", fps.str(), " fps: ", av_error_text(rc));
  rc = avcodec_parameters_from_context(st->codecpar, m.codec);
  MINDIESD_CHECK(rc >= 0, Internal, who, ": ", av_error_text(rc));
  st->time_base = m.codec->time_base;
  st->avg_frame_rate = m.codec->framerate;
  st->r_frame_rate = m.codec->framerate;

  rc = avio_open(&m.fmt->pb, tmp.tmp().c_str(), AVIO_FLAG_WRITE);
  MINDIESD_CHECK(rc >= 0, Io, who, ": cannot create ", tmp.tmp().string(), ": ", av_error_text(rc));
  rc = avformat_write_header(m.fmt, &mux_opts);
  MINDIESD_CHECK(rc >= 0, Io, who, ": cannot write the ", format, " header: ", av_error_text(rc));
  m.header_written = true;

  m.frame = av_frame_alloc();
  m.packet = av_packet_alloc();
  MINDIESD_CHECK(m.frame != nullptr && m.packet != nullptr, OutOfMemory, who,
                 ": cannot allocate a frame");
  m.frame->format = m.codec->pix_fmt;
  m.frame->width = width;
  m.frame->height = height;
  rc = av_frame_get_buffer(m.frame, 0);
  MINDIESD_CHECK(rc >= 0, OutOfMemory, who, ": cannot allocate a frame: ", av_error_text(rc));
  for (int i = 0; i < frames; ++i) {
    rc = av_frame_make_writable(m.frame);
    MINDIESD_CHECK(rc >= 0, OutOfMemory, who, ": ", av_error_text(rc));
    fill(m, i);
    m.frame->pts = i;
    encode_and_write(m, st, m.frame, who);
  }
  encode_and_write(m, st, nullptr, who);
  rc = av_write_trailer(m.fmt);
  m.trailer_written = true;
  MINDIESD_CHECK(rc >= 0, Io, who, ": cannot finish the ", format, " file: ", av_error_text(rc));
  rc = avio_closep(&m.fmt->pb);
  MINDIESD_CHECK(rc >= 0, Io, who, ": closing failed: ", av_error_text(rc));
  tmp.commit();
}

// ---- GIF palette: median cut over a 5-bit-per-channel histogram of all frames ----

constexpr int kBins = 32 * 32 * 32;

struct Bin {
  uint32_t count = 0;
  uint64_t r = 0, g = 0, b = 0;
};

struct Box {
  std::vector<int> bins;  // indices of non-empty bins
};

int bin_of(const uint8_t* p) { return ((p[0] >> 3) << 10) | ((p[1] >> 3) << 5) | (p[2] >> 3); }
int bin_channel(int bin, int c) { return (bin >> (10 - 5 * c)) & 31; }

struct Palette {
  std::vector<std::array<uint8_t, 3>> colors;
  std::vector<uint8_t> index_of_bin;  // kBins entries
};

Palette median_cut(const Tensor& u8) {
  std::vector<Bin> hist(kBins);
  const auto* p = u8.data<uint8_t>();
  const int64_t pixels = u8.numel() / 3;
  for (int64_t i = 0; i < pixels; ++i, p += 3) {
    Bin& b = hist[static_cast<size_t>(bin_of(p))];
    ++b.count;
    b.r += p[0];
    b.g += p[1];
    b.b += p[2];
  }
  std::vector<Box> boxes(1);
  for (int i = 0; i < kBins; ++i)
    if (hist[static_cast<size_t>(i)].count != 0) boxes[0].bins.push_back(i);

  auto range = [](const Box& box, int c) {
    int lo = 31, hi = 0;
    for (int bin : box.bins) {
      lo = std::min(lo, bin_channel(bin, c));
      hi = std::max(hi, bin_channel(bin, c));
    }
    return hi - lo;
  };
  while (boxes.size() < 256) {
    // Split the box with the widest channel range (ties: the most pixels).
    int best = -1, best_c = 0, best_range = 0;
    for (size_t k = 0; k < boxes.size(); ++k) {
      if (boxes[k].bins.size() < 2) continue;
      for (int c = 0; c < 3; ++c) {
        const int r = range(boxes[k], c);
        if (r > best_range) {
          best = static_cast<int>(k);
          best_c = c;
          best_range = r;
        }
      }
    }
    if (best < 0) break;
    Box& box = boxes[static_cast<size_t>(best)];
    std::sort(box.bins.begin(), box.bins.end(),
              [&](int a, int b) { return bin_channel(a, best_c) < bin_channel(b, best_c); });
    uint64_t total = 0;
    for (int bin : box.bins) total += hist[static_cast<size_t>(bin)].count;
    uint64_t acc = 0;
    size_t cut = 1;
    for (size_t j = 0; j + 1 < box.bins.size(); ++j) {
      acc += hist[static_cast<size_t>(box.bins[j])].count;
      cut = j + 1;
      if (2 * acc >= total) break;
    }
    Box upper;
    upper.bins.assign(box.bins.begin() + static_cast<std::ptrdiff_t>(cut), box.bins.end());
    box.bins.resize(cut);
    boxes.push_back(std::move(upper));
  }

  Palette pal;
  pal.index_of_bin.assign(kBins, 0);
  for (const Box& box : boxes) {
    uint64_t n = 0, r = 0, g = 0, b = 0;
    for (int bin : box.bins) {
      const Bin& h = hist[static_cast<size_t>(bin)];
      n += h.count;
      r += h.r;
      g += h.g;
      b += h.b;
    }
    if (n == 0) continue;
    pal.colors.push_back({static_cast<uint8_t>((r + n / 2) / n),
                          static_cast<uint8_t>((g + n / 2) / n),
                          static_cast<uint8_t>((b + n / 2) / n)});
  }
  // Each used bin maps to its nearest palette colour (measured from the bin's mean colour).
  for (int i = 0; i < kBins; ++i) {
    const Bin& h = hist[static_cast<size_t>(i)];
    if (h.count == 0) continue;
    const int64_t r = static_cast<int64_t>((h.r + h.count / 2) / h.count);
    const int64_t g = static_cast<int64_t>((h.g + h.count / 2) / h.count);
    const int64_t b = static_cast<int64_t>((h.b + h.count / 2) / h.count);
    int64_t best = INT64_MAX;
    for (size_t k = 0; k < pal.colors.size(); ++k) {
      const int64_t dr = r - pal.colors[k][0], dg = g - pal.colors[k][1], db = b - pal.colors[k][2];
      const int64_t d = dr * dr + dg * dg + db * db;
      if (d < best) {
        best = d;
        pal.index_of_bin[static_cast<size_t>(i)] = static_cast<uint8_t>(k);
      }
    }
  }
  return pal;
}
#endif  // MINDIESD_CPU_DEPS

}  // namespace

Tensor video_frames_to_u8(const Tensor& frames, const std::string& who) {
  MINDIESD_CHECK(frames.defined(), InvalidArgument, who, ": undefined frames tensor");
  MINDIESD_CHECK(frames.dim() == 4, InvalidArgument, who,
                 ": frames must be (F, 3, H, W) float in [0, 1] or u8 (F, H, W, 3), got ",
                 dtype_name(frames.dtype()), " ", frames.shape().str());
  const bool is_float =
      frames.dtype() == DType::f32 || frames.dtype() == DType::f16 || frames.dtype() == DType::bf16;
  MINDIESD_CHECK(is_float || frames.dtype() == DType::u8, InvalidArgument, who,
                 ": frames must be f32/f16/bf16 (F, 3, H, W) or u8 (F, H, W, 3), got ",
                 dtype_name(frames.dtype()), " ", frames.shape().str());
  if (is_float) {
    MINDIESD_CHECK(frames.size(1) == 3, InvalidArgument, who,
                   ": float frames must be (F, 3, H, W), got ", frames.shape().str());
  } else {
    MINDIESD_CHECK(frames.size(3) == 3, InvalidArgument, who,
                   ": u8 frames must be (F, H, W, 3), got ", frames.shape().str());
  }
  MINDIESD_CHECK(frames.numel() > 0, InvalidArgument, who, ": no frames (empty tensor ",
                 frames.shape().str(), ")");
  Tensor cpu = frames.device().is_cpu() ? frames : frames.to(Device::cpu());
  if (!is_float) return cpu.contiguous();
  const Tensor fhwc = cpu.permute({0, 2, 3, 1}).to(DType::f32).contiguous();
  Tensor out = Tensor::empty(fhwc.shape(), DType::u8);
  const float* src = fhwc.data<float>();
  auto* dst = out.data<uint8_t>();
  const int64_t n = fhwc.numel();
  for (int64_t i = 0; i < n; ++i) {
    // As pipelines::to_u8_hwc: clamp, scale, round half-to-even (NaN -> 0).
    const float v = std::isnan(src[i]) ? 0.0f : std::clamp(src[i], 0.0f, 1.0f);
    dst[i] = static_cast<uint8_t>(std::nearbyint(v * 255.0f));
  }
  return out;
}

#if MINDIESD_CPU_DEPS
VideoWriteInfo write_mp4(const fs::path& path, const Tensor& frames, FrameRate fps,
                         const Mp4Options& options) {
  const std::string who = path.string();
  check_fps(fps, who);
  const Tensor u8 = video_frames_to_u8(frames, who);
  const int64_t f = u8.size(0), h = u8.size(1), w = u8.size(2);
  MINDIESD_CHECK(w % 2 == 0 && h % 2 == 0, InvalidArgument, who, ": MP4 (yuv420p) needs an even ",
                 "width and height, got ", w, "x", h, " (pad or crop the frames first)");
  MINDIESD_CHECK(w <= 16384 && h <= 16384, InvalidArgument, who, ": frame size ", w, "x", h,
                 " is over 16384");
  MINDIESD_CHECK(f <= INT32_MAX, InvalidArgument, who, ": too many frames (", f, ")");
  MINDIESD_CHECK(options.crf >= 0 && options.crf <= 51, InvalidArgument, who,
                 ": crf must be 0..51, got ", options.crf);
  MINDIESD_CHECK(options.mpeg4_qscale >= 1 && options.mpeg4_qscale <= 31, InvalidArgument, who,
                 ": mpeg4_qscale must be 1..31, got ", options.mpeg4_qscale);

  VideoWriteInfo info;
  const AVCodec* enc = nullptr;
  if (options.encoder.empty()) {
    enc = avcodec_find_encoder_by_name("libx264");
    if (enc == nullptr) {
      enc = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
      info.note =
          "libx264 is not available in this libavcodec: wrote MPEG-4 part 2 (mpeg4) "
          "instead of H.264";
    }
  } else {
    enc = avcodec_find_encoder_by_name(options.encoder.c_str());
  }
  MINDIESD_CHECK(enc != nullptr, Unsupported, who, ": no ",
                 options.encoder.empty() ? std::string("libx264 or mpeg4") : options.encoder,
                 " encoder in this libavcodec");
  MINDIESD_CHECK(enc->type == AVMEDIA_TYPE_VIDEO, InvalidArgument, who, ": ", enc->name,
                 " is not a video encoder");
  const bool x264 = std::strcmp(enc->name, "libx264") == 0;

  AVDictionary* codec_opts = nullptr;
  AVDictionary* mux_opts = nullptr;
  if (x264) {
    av_dict_set(&codec_opts, "preset", options.preset.c_str(), 0);
    av_dict_set(&codec_opts, "crf", std::to_string(options.crf).c_str(), 0);
  }
  if (options.faststart) av_dict_set(&mux_opts, "movflags", "+faststart", 0);

  const int width = static_cast<int>(w), height = static_cast<int>(h);
  mux(
      path, "mp4", enc, u8, fps, codec_opts, mux_opts,
      [&](AVCodecContext* c) {
        c->pix_fmt = AV_PIX_FMT_YUV420P;
        // swscale's RGB -> YUV default is BT.601, limited range: say so in the stream.
        c->color_range = AVCOL_RANGE_MPEG;
        c->colorspace = AVCOL_SPC_SMPTE170M;
        c->color_primaries = AVCOL_PRI_BT709;
        c->color_trc = AVCOL_TRC_IEC61966_2_1;
        c->gop_size = 12;
        if (!x264) {
          c->flags |= AV_CODEC_FLAG_QSCALE;
          c->global_quality = FF_QP2LAMBDA * options.mpeg4_qscale;
        }
      },
      [&](Muxer& m, int i) {
        if (m.sws == nullptr) {
          m.sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                                 SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
          MINDIESD_CHECK(m.sws != nullptr, Internal, who,
                         ": cannot create an RGB -> YUV converter");
        }
        const uint8_t* src[1] = {u8.data<uint8_t>() + static_cast<int64_t>(i) * h * w * 3};
        const int stride[1] = {width * 3};
        sws_scale(m.sws, src, stride, 0, height, m.frame->data, m.frame->linesize);
      });
  info.encoder = enc->name;
  info.frames = f;
  info.width = w;
  info.height = h;
  info.fps = fps;
  return info;
}

VideoWriteInfo write_gif(const fs::path& path, const Tensor& frames, FrameRate fps, int loop) {
  const std::string who = path.string();
  check_fps(fps, who);
  const Tensor u8 = video_frames_to_u8(frames, who);
  const int64_t f = u8.size(0), h = u8.size(1), w = u8.size(2);
  MINDIESD_CHECK(w <= 65535 && h <= 65535, InvalidArgument, who, ": GIF frames are at most ",
                 "65535x65535, got ", w, "x", h);
  MINDIESD_CHECK(f <= INT32_MAX, InvalidArgument, who, ": too many frames (", f, ")");
  MINDIESD_CHECK(loop >= 0 && loop <= 65535, InvalidArgument, who, ": loop must be 0..65535, got ",
                 loop);
  const AVCodec* enc = avcodec_find_encoder(AV_CODEC_ID_GIF);
  MINDIESD_CHECK(enc != nullptr, Unsupported, who, ": no gif encoder in this libavcodec");

  const Palette pal = median_cut(u8);
  AVDictionary* mux_opts = nullptr;
  av_dict_set(&mux_opts, "loop", std::to_string(loop).c_str(), 0);
  mux(
      path, "gif", enc, u8, fps, nullptr, mux_opts,
      [&](AVCodecContext* c) { c->pix_fmt = AV_PIX_FMT_PAL8; },
      [&](Muxer& m, int i) {
        const uint8_t* src = u8.data<uint8_t>() + static_cast<int64_t>(i) * h * w * 3;
        for (int64_t y = 0; y < h; ++y) {
          uint8_t* row = m.frame->data[0] + y * m.frame->linesize[0];
          for (int64_t x = 0; x < w; ++x, src += 3) {
            row[x] = pal.index_of_bin[static_cast<size_t>(bin_of(src))];
          }
        }
        auto* colors = reinterpret_cast<uint32_t*>(m.frame->data[1]);
        for (size_t k = 0; k < 256; ++k) {
          colors[k] = k < pal.colors.size()
                          ? 0xff000000u | (uint32_t{pal.colors[k][0]} << 16) |
                                (uint32_t{pal.colors[k][1]} << 8) | uint32_t{pal.colors[k][2]}
                          : 0xff000000u;
        }
      });
  VideoWriteInfo info;
  info.encoder = "gif";
  info.frames = f;
  info.width = w;
  info.height = h;
  info.fps = fps;
  return info;
}

#else
VideoWriteInfo write_mp4(const fs::path& path, const Tensor&, FrameRate, const Mp4Options&) {
  MINDIESD_THROW(Unsupported, path.string(), ": MP4 needs FFmpeg, and this build has none ",
                 "(MINDIESD_CPU_DEPS=OFF); write PNG frames instead");
}

VideoWriteInfo write_gif(const fs::path& path, const Tensor&, FrameRate, int) {
  MINDIESD_THROW(Unsupported, path.string(), ": GIF needs FFmpeg, and this build has none ",
                 "(MINDIESD_CPU_DEPS=OFF); write PNG frames instead");
}
#endif

VideoWriteInfo write_png_frames(const fs::path& folder, const Tensor& frames, FrameRate fps,
                                int compression_level) {
  const std::string who = folder.string();
  check_fps(fps, who);
  const Tensor u8 = video_frames_to_u8(frames, who);
  const int64_t f = u8.size(0);
  MINDIESD_CHECK(compression_level >= 0 && compression_level <= 9, InvalidArgument, who,
                 ": compression level must be 0..9, got ", compression_level);
  fs::path target = folder;
  if (!target.has_filename()) target = target.parent_path();  // "out/" -> "out"
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  MINDIESD_CHECK(fs::is_directory(parent, ec), NotFound, who, ": directory ", parent.string(),
                 " does not exist");
  MINDIESD_CHECK(!fs::exists(target, ec) || fs::is_directory(target, ec), InvalidArgument, who,
                 ": exists and is not a folder");

  int digits = 4;
  for (int64_t n = f - 1; n >= 10000; n /= 10) ++digits;
  auto name = [&](int64_t i) {
    std::string s = std::to_string(i);
    return "frame_" +
           std::string(
               static_cast<size_t>(std::max<int64_t>(0, digits - static_cast<int64_t>(s.size()))),
               '0') +
           s + ".png";
  };

  static std::atomic<int> counter{0};
  const fs::path tmp =
      parent / str_cat(".", target.filename().string(), ".tmp.", ::getpid(), ".", counter++);
  struct TmpDir {
    fs::path p;
    ~TmpDir() {
      std::error_code e;
      fs::remove_all(p, e);
    }
  } guard{tmp};
  fs::create_directory(tmp, ec);
  MINDIESD_CHECK(!ec, Io, who, ": cannot create ", tmp.string(), ": ", ec.message());
  for (int64_t i = 0; i < f; ++i) write_png(tmp / name(i), u8.select(0, i), compression_level);

  if (!fs::exists(target, ec)) {
    fs::rename(tmp, target, ec);
    MINDIESD_CHECK(!ec, Io, who, ": cannot move ", tmp.string(), " into place: ", ec.message());
  } else {
    // Replace the frames of an earlier run (a longer one leaves no stale tail behind).
    for (const auto& e : fs::directory_iterator(target, ec)) {
      const std::string n = e.path().filename().string();
      if (n.starts_with("frame_") && n.ends_with(".png") && e.is_regular_file()) {
        fs::remove(e.path(), ec);
      }
    }
    for (int64_t i = 0; i < f; ++i) {
      fs::rename(tmp / name(i), target / name(i), ec);
      MINDIESD_CHECK(!ec, Io, who, ": cannot move ", name(i), " into place: ", ec.message());
    }
  }
  VideoWriteInfo info;
  info.encoder = "png";
  info.frames = f;
  info.width = u8.size(2);
  info.height = u8.size(1);
  info.fps = fps;
  return info;
}

}  // namespace mindiesd::io
