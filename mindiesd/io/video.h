// Video out: MP4 (H.264 through libavcodec / libavformat / libswscale), animated GIF (libavcodec's
// gif encoder fed a median-cut palette computed here) and a folder of PNG frames.
//
// Frames are a tensor on any device, any strides, in one of two layouts:
//   - f32 / f16 / bf16 (F, 3, H, W) in [0, 1], what the video pipelines produce; values are
//     clamped to [0, 1] and rounded half-to-even (x * 255), as pipelines::to_u8_hwc and
//     diffusers' numpy_to_pil do;
//   - u8 (F, H, W, 3).
// A single image ((3, H, W) or (H, W, 3)) is not a video: the rank must be 4.
//
// Errors (mindiesd::Error, the message names the path): InvalidArgument for an undefined or empty
// tensor, a wrong rank / layout / dtype, fps <= 0 or not finite, an odd width or height for MP4
// (yuv420p subsamples 2x2; we do not pad or crop behind the caller's back: the pipelines produce
// multiples of 16, and a caller with odd sizes can pad the tensor itself); NotFound when the
// parent folder does not exist; Io when the file cannot be created or written; Internal for an
// encoder failure. Every writer writes to a temporary name in the target folder and renames it
// into place only when complete, so a failure leaves an existing file untouched and no partial
// file behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "mindiesd/core/tensor.h"

namespace mindiesd::io {

// A positive frame rate as a rational (24000/1001 for NTSC film) or from a double (converted to
// the nearest rational with a denominator up to 1001 * 1000; 23.976 -> 2997/125).
struct FrameRate {
  int64_t num = 16;
  int64_t den = 1;

  FrameRate() = default;
  FrameRate(int64_t num_, int64_t den_) : num(num_), den(den_) {}
  // NOLINTNEXTLINE(google-explicit-constructor): `write_mp4(p, frames, 16)` reads naturally.
  FrameRate(int fps) : num(fps), den(1) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  FrameRate(double fps);

  double value() const { return static_cast<double>(num) / static_cast<double>(den); }
  std::string str() const;  // "16" or "24000/1001"
};

struct Mp4Options {
  // "" picks libx264 when this libavcodec has it, else the built-in "mpeg4" encoder (MPEG-4
  // part 2: plays everywhere, larger files). Naming one forces it (Unsupported when this
  // libavcodec lacks it).
  std::string encoder;
  int crf = 18;                   // libx264 constant rate factor, 0 (lossless) .. 51
  std::string preset = "medium";  // libx264 preset (ultrafast .. veryslow)
  int mpeg4_qscale = 3;           // mpeg4 fallback quantiser, 1 (best) .. 31
  bool faststart = true;          // moov atom first, so a browser can start playing at once
};

// What a writer did, for the caller to show or log (mindiesd never prints behind its caller).
struct VideoWriteInfo {
  std::string encoder;  // "libx264", "mpeg4", "gif", "png"
  int64_t frames = 0;
  int64_t width = 0;
  int64_t height = 0;
  FrameRate fps;
  // Non-empty when the result is not what one would expect, e.g. "libx264 is not available in
  // this libavcodec: wrote MPEG-4 part 2 (mpeg4) instead of H.264".
  std::string note;
};

// MP4, yuv420p, H.264 (libx264) or the mpeg4 fallback; width and height must be even.
VideoWriteInfo write_mp4(const std::filesystem::path& path, const Tensor& frames, FrameRate fps,
                         const Mp4Options& options = {});

// Animated GIF looping forever, one global 256-colour palette (median cut over all frames, no
// dithering). GIF stores delays in 1/100 s, so a rate like 16 fps is rendered as alternating
// 6 and 7 cs delays that keep the average exact; `loop` = 0 loops forever, n plays n + 1 times.
VideoWriteInfo write_gif(const std::filesystem::path& path, const Tensor& frames, FrameRate fps,
                         int loop = 0);

// `folder`/frame_0000.png, frame_0001.png, ... (at least 4 digits, more when F > 10000). The
// folder is created when missing (its parent must exist); frame_*.png files already in it are
// replaced, other files are left alone. The frames are written to a temporary sibling folder and
// moved in only when all are written. `fps` is only checked and reported.
VideoWriteInfo write_png_frames(const std::filesystem::path& folder, const Tensor& frames,
                                FrameRate fps, int compression_level = 6);

// (F, 3, H, W) float in [0, 1] or u8 (F, H, W, 3) -> contiguous CPU u8 (F, H, W, 3). `who` starts
// any error message (the path being written).
Tensor video_frames_to_u8(const Tensor& frames, const std::string& who = "video frames");

}  // namespace mindiesd::io
