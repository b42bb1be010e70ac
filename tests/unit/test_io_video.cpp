// Video writers: MP4 (H.264 / mpeg4 fallback), animated GIF and PNG frame folders, checked with
// ffprobe (installed by scripts/install-deps.sh) for frame count, rate and size; error cases.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/png.h"
#include "mindiesd/io/video.h"
#include "test_util.h"

namespace mindiesd::io {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;

// (F, 3, H, W) f32 in [0, 1]: a moving gradient, a bit outside [0, 1] at the edges (clamped).
Tensor float_frames(int64_t f, int64_t h, int64_t w) {
  std::vector<float> v(static_cast<size_t>(f * 3 * h * w));
  size_t k = 0;
  for (int64_t i = 0; i < f; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          v[k++] = -0.1f +
                   1.2f * static_cast<float>((x + y * c + i * 5) % w) / static_cast<float>(w - 1);
  return Tensor::from_vector(v, {f, 3, h, w});
}

Tensor u8_frames(int64_t f, int64_t h, int64_t w) {
  Tensor t = Tensor::empty({f, h, w, 3}, DType::u8);
  auto* p = t.data<uint8_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<uint8_t>((i * 7) & 0xff);
  return t;
}

struct Probe {
  int64_t frames = -1;
  int64_t width = -1;
  int64_t height = -1;
  std::string rate;  // "16/1"
  std::string codec;
};

Probe ffprobe(const fs::path& file) {
  const std::string cmd =
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=nb_read_frames,r_frame_rate,width,height,codec_name -of json '" +
      file.string() + "' 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run ffprobe";
    return {};
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int rc = ::pclose(pipe);
  if (rc != 0) {
    ADD_FAILURE() << "ffprobe failed (is it on PATH? scripts/install-deps.sh installs ffmpeg): "
                  << out;
    return {};
  }
  const auto j = nlohmann::json::parse(out);
  const auto& s = j.at("streams").at(0);
  Probe p;
  p.frames = std::stoll(s.at("nb_read_frames").get<std::string>());
  p.width = s.at("width").get<int64_t>();
  p.height = s.at("height").get<int64_t>();
  p.rate = s.at("r_frame_rate").get<std::string>();
  p.codec = s.at("codec_name").get<std::string>();
  return p;
}

double rate_value(const std::string& r) {
  const auto slash = r.find('/');
  return std::stod(r.substr(0, slash)) / std::stod(r.substr(slash + 1));
}

// Only the file itself: no temporary left behind.
void expect_only(const fs::path& dir, const std::vector<std::string>& names) {
  std::vector<std::string> got;
  for (const auto& e : fs::directory_iterator(dir)) got.push_back(e.path().filename().string());
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = names;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST(IoVideo, Mp4FloatFrames16Fps) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("FFmpeg");
  TempDir dir("video");
  const VideoWriteInfo info = write_mp4(dir / "a.mp4", float_frames(9, 48, 64), 16);
  EXPECT_EQ(info.encoder, "libx264");
  EXPECT_TRUE(info.note.empty()) << info.note;
  EXPECT_EQ(info.frames, 9);
  const Probe p = ffprobe(dir / "a.mp4");
  EXPECT_EQ(p.codec, "h264");
  EXPECT_EQ(p.frames, 9);
  EXPECT_EQ(p.width, 64);
  EXPECT_EQ(p.height, 48);
  EXPECT_EQ(p.rate, "16/1");
  expect_only(dir.path(), {"a.mp4"});
}

TEST(IoVideo, Mp4NtscRateAndU8Frames) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("FFmpeg");
  TempDir dir("video");
  write_mp4(dir / "b.mp4", u8_frames(9, 48, 64), FrameRate{24000, 1001});
  Probe p = ffprobe(dir / "b.mp4");
  EXPECT_EQ(p.frames, 9);
  EXPECT_EQ(p.rate, "24000/1001");
  EXPECT_EQ(p.width, 64);
  EXPECT_EQ(p.height, 48);
  // A double rate, and the mpeg4 fallback forced.
  Mp4Options o;
  o.encoder = "mpeg4";
  const VideoWriteInfo info = write_mp4(dir / "c.mp4", u8_frames(9, 48, 64), 12.5, o);
  EXPECT_EQ(info.encoder, "mpeg4");
  EXPECT_EQ(info.fps.str(), "25/2");
  p = ffprobe(dir / "c.mp4");
  EXPECT_EQ(p.codec, "mpeg4");
  EXPECT_EQ(p.frames, 9);
  EXPECT_EQ(p.rate, "25/2");
}

TEST(IoVideo, Gif) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("FFmpeg");
  TempDir dir("video");
  write_gif(dir / "a.gif", float_frames(9, 48, 64), 16);
  Probe p = ffprobe(dir / "a.gif");
  EXPECT_EQ(p.codec, "gif");
  EXPECT_EQ(p.frames, 9);
  EXPECT_EQ(p.width, 64);
  EXPECT_EQ(p.height, 48);
  // GIF delays are in 1/100 s: 16 fps is 6.25 cs, so the probed rate is near, not exact.
  EXPECT_NEAR(rate_value(p.rate), 16.0, 1.0) << p.rate;
  write_gif(dir / "b.gif", u8_frames(9, 48, 64), FrameRate{24000, 1001});
  p = ffprobe(dir / "b.gif");
  EXPECT_EQ(p.frames, 9);
  EXPECT_NEAR(rate_value(p.rate), 23.976, 1.0) << p.rate;
  expect_only(dir.path(), {"a.gif", "b.gif"});
}

TEST(IoVideo, GifKeepsFewColoursExactly) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("FFmpeg");
  // Four flat colours survive the palette exactly: decode frame 0 with ffmpeg as PNG.
  TempDir dir("video");
  Tensor t = Tensor::zeros({2, 8, 8, 3}, DType::u8);
  auto* p = t.data<uint8_t>();
  const uint8_t colours[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 200, 200}};
  for (int64_t i = 0; i < 2 * 8 * 8; ++i)
    for (int c = 0; c < 3; ++c) p[i * 3 + c] = colours[(i / 16) % 4][c];
  write_gif(dir / "c.gif", t, 8);
  const std::string cmd = "ffmpeg -v error -i '" + (dir / "c.gif").string() +
                          "' -frames:v 1 -pix_fmt rgb24 '" + (dir / "c0.png").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const Tensor back = read_png(dir / "c0.png");
  ASSERT_EQ(back.shape().str(), Tensor::empty({8, 8, 3}, DType::u8).shape().str());
  EXPECT_EQ(std::memcmp(back.data<uint8_t>(), p, 8 * 8 * 3), 0);
}

TEST(IoVideo, PngFrames) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("libpng (PNG reading)");
  TempDir dir("video");
  const fs::path out = dir / "frames";
  write_png_frames(out, float_frames(9, 48, 64), 16);
  std::vector<std::string> names;
  for (int i = 0; i < 9; ++i) names.push_back("frame_000" + std::to_string(i) + ".png");
  expect_only(out, names);
  for (const auto& n : names) {
    const Tensor img = read_png(out / n);
    EXPECT_EQ(img.size(0), 48);
    EXPECT_EQ(img.size(1), 64);
    EXPECT_EQ(img.size(2), 3);
  }
  // Frame 0, pixel (0, 0): -0.1 clamps to 0; rounding as to_u8_hwc.
  EXPECT_EQ(read_png(out / "frame_0000.png").data<uint8_t>()[0], 0);
  // A shorter rerun replaces the old frames; other files stay.
  test::write_file(out / "notes.txt", "keep");
  write_png_frames(out, u8_frames(3, 4, 6), 16);
  expect_only(out, {"frame_0000.png", "frame_0001.png", "frame_0002.png", "notes.txt"});
  expect_only(dir.path(), {"frames"});
}

TEST(IoVideo, Errors) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("FFmpeg");
  TempDir dir("video");
  const Tensor good = u8_frames(2, 4, 6);
  expect_error(
      [&] {
        write_mp4(dir / "x.mp4", Tensor::empty({0, 4, 6, 3}, DType::u8), 16);
      },
      ErrorKind::InvalidArgument, {"x.mp4", "no frames"});
  expect_error(
      [&] {
        write_gif(dir / "x.gif", Tensor::empty({2, 4, 6, 4}, DType::u8), 16);
      },
      ErrorKind::InvalidArgument, {"x.gif", "(F, H, W, 3)", "(2, 4, 6, 4)"});
  expect_error(
      [&] {
        write_mp4(dir / "x.mp4", Tensor::empty({2, 4, 6, 3}, DType::f32), 16);
      },
      ErrorKind::InvalidArgument, {"(F, 3, H, W)"});
  expect_error(
      [&] {
        write_mp4(dir / "x.mp4", Tensor::empty({4, 6, 3}, DType::u8), 16);
      },
      ErrorKind::InvalidArgument, {"x.mp4", "(F, H, W, 3)"});
  expect_error(
      [&] {
        write_mp4(dir / "x.mp4", Tensor::empty({2, 4, 6, 3}, DType::i32), 16);
      },
      ErrorKind::InvalidArgument, {"i32"});
  expect_error([&] { write_mp4(dir / "x.mp4", u8_frames(2, 5, 6), 16); },
               ErrorKind::InvalidArgument, {"even", "6x5"});
  expect_error([&] { write_mp4(dir / "x.mp4", good, 0); }, ErrorKind::InvalidArgument, {"fps"});
  expect_error([&] { write_gif(dir / "x.gif", good, -2.0); }, ErrorKind::InvalidArgument,
               {"fps", "-2"});
  expect_error([&] { write_png_frames(dir / "f", good, std::nan("")); }, ErrorKind::InvalidArgument,
               {"fps"});
  expect_error(
      [&] {
        write_mp4(dir / "x.mp4", good, FrameRate{16, 0});
      },
      ErrorKind::InvalidArgument, {"fps"});
  expect_error([&] { write_mp4(dir / "missing" / "x.mp4", good, 16); }, ErrorKind::NotFound,
               {"missing"});
  expect_error([&] { write_gif(dir / "missing" / "x.gif", good, 16); }, ErrorKind::NotFound,
               {"missing"});
  expect_error([&] { write_png_frames(dir / "missing" / "f", good, 16); }, ErrorKind::NotFound,
               {"missing"});
  expect_error([&] { write_mp4(dir.path(), good, 16); }, ErrorKind::InvalidArgument, {"directory"});
  Mp4Options o;
  o.encoder = "no_such_encoder";
  expect_error([&] { write_mp4(dir / "x.mp4", good, 16, o); }, ErrorKind::Unsupported,
               {"no_such_encoder"});
  test::write_file(dir / "file", "x");
  expect_error([&] { write_png_frames(dir / "file", good, 16); }, ErrorKind::InvalidArgument,
               {"not a folder"});
  // Nothing half-written, and the existing plain file untouched.
  expect_only(dir.path(), {"file"});
  // An existing MP4 survives a failed rewrite.
  write_mp4(dir / "keep.mp4", good, 16);
  const std::string before = test::read_file(dir / "keep.mp4");
  expect_error([&] { write_mp4(dir / "keep.mp4", u8_frames(2, 5, 6), 16); },
               ErrorKind::InvalidArgument, {"even"});
  EXPECT_EQ(test::read_file(dir / "keep.mp4"), before);
  expect_only(dir.path(), {"file", "keep.mp4"});
}

TEST(IoVideo, UnwritablePath) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("FFmpeg");
  // /proc takes no new files, not even from root.
  expect_error([&] { write_mp4("/proc/mindiesd_test_video.mp4", u8_frames(2, 4, 6), 16); },
               ErrorKind::Io, {"/proc/mindiesd_test_video.mp4", "cannot create"});
  expect_error([&] { write_gif("/proc/mindiesd_test_video.gif", u8_frames(2, 4, 6), 16); },
               ErrorKind::Io, {"mindiesd_test_video.gif"});
}

TEST(IoVideo, ReadOnlyFolder) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can write anywhere";
  TempDir dir("video");
  fs::create_directory(dir / "ro");
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  expect_error([&] { write_mp4(dir / "ro" / "x.mp4", u8_frames(2, 4, 6), 16); }, ErrorKind::Io,
               {"x.mp4"});
  fs::permissions(dir / "ro", fs::perms::owner_all);
}

}  // namespace
}  // namespace mindiesd::io
