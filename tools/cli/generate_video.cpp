// `mindiesd generate` on a diffusers WanPipeline folder: text-to-video written as MP4 (H.264),
// animated GIF or a folder of PNG frames, with the same progress bar and summary as images.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli_util.h"
#include "generate.h"
#include "mindiesd/core/error.h"
#include "mindiesd/io/png.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/io/video.h"
#include "mindiesd/pipelines/wan_pipeline.h"

namespace mindiesd::cli {

namespace {

namespace fs = std::filesystem;
using pipelines::WanPipeline;
using pipelines::WanPipelineOptions;
using pipelines::WanRequest;

constexpr const char* kVideoHelp =
    "usage: mindiesd generate --model WAN_DIR --prompt TEXT [--image FIRST.png] [options]\n"
    "  --model DIR              a diffusers WanPipeline (Wan2.1-T2V-1.3B/14B) or\n"
    "                           WanImageToVideoPipeline (Wan2.1-I2V-14B-480P/720P) folder\n"
    "  --image FILE             image-to-video folders: the first frame (PNG)\n"
    "  --prompt TEXT            repeat for a batch of prompts\n"
    "  --negative-prompt TEXT   classifier-free guidance against it (default \"\")\n"
    "  --guidance G             guidance scale (default 5.0; <= 1: no guidance)\n"
    "  --steps N                denoising steps (default 50)\n"
    "  --size WxH               frame size, multiples of 16 (default 832x480)\n"
    "  --frames N               frames, 4k + 1 (default 81)\n"
    "  --fps F                  frame rate of the written video (default 16, Wan's)\n"
    "  --seed S                 noise seed (default 0)\n"
    "  --num-videos N           videos per prompt (default 1)\n"
    "  --max-sequence-length L  UMT5 tokens (default 512)\n"
    "  --dtype bf16|f32         transformer / text encoder dtype (default bf16; the VAE is f32)\n"
    "  --device cpu|cuda[:N]    where the models run (default cpu)\n"
    "  --cuda-graphs            with --device cuda: each transformer call after the first is\n"
    "                           one CUDA graph launch (same results, less launch overhead)\n"
    "  --out PATH               out.mp4 (H.264), out.gif, or a folder (no extension or a\n"
    "                           trailing /) of frame_0000.png ...; several videos: out-0.mp4, ...\n"
    "  --latents FILE           initial latents (a safetensors file with one tensor,\n"
    "                           (videos, z_dim, T, H/8, W/8)) instead of seeded noise\n"
    "  --quiet                  no progress bar\n";

enum class Container { mp4, gif, png_frames };

Container container_of(const std::string& out) {
  const fs::path p(out);
  if (out.ends_with('/') || !p.has_extension()) return Container::png_frames;
  if (p.extension() == ".mp4") return Container::mp4;
  if (p.extension() == ".gif") return Container::gif;
  throw UsageError{"--out: a video is written as .mp4, .gif or a folder of PNG frames, got '" +
                   out + "'"};
}

// out.mp4 -> out-3.mp4, frames/ -> frames-3/ for the 4th of several videos.
fs::path numbered_video(std::string out, size_t i, size_t n) {
  while (out.size() > 1 && out.ends_with('/')) out.pop_back();
  fs::path p(out);
  if (n == 1) return p;
  p.replace_filename(p.stem().string() + "-" + std::to_string(i) + p.extension().string());
  return p;
}

}  // namespace

const char* generate_video_help() {
  static const std::string text = std::string(kVideoHelp) + kCacheHelp + kQuantHelp + kAttentionHelp;
  return text.c_str();
}

int cmd_generate_video(const std::vector<std::string>& args, const std::string& model) {
  WanRequest req;
  WanPipelineOptions options;
  std::string out = "out.mp4", latents_path, image_path;
  io::FrameRate fps(16);
  bool quiet = false;
  Container container = Container::mp4;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) throw UsageError{a + " needs a value"};
        return args[++i];
      };
      if (a == "--model")
        value();  // already resolved by the caller
      else if (a == "--prompt")
        req.prompts.push_back(value());
      else if (a == "--negative-prompt")
        req.negative_prompts.push_back(value());
      else if (a == "--guidance")
        req.guidance_scale = parse_number<double>(a, value());
      else if (a == "--steps")
        req.num_inference_steps = parse_number<int64_t>(a, value());
      else if (a == "--size")
        std::tie(req.width, req.height) = parse_size(value());
      else if (a == "--frames")
        req.num_frames = parse_number<int64_t>(a, value());
      else if (a == "--fps") {
        const double f = parse_number<double>(a, value());
        if (!(f > 0 && f <= 1000)) throw UsageError{"--fps must be in (0, 1000]"};
        fps = io::FrameRate(f);
      } else if (a == "--seed")
        req.seed = parse_number<uint64_t>(a, value());
      else if (a == "--num-videos")
        req.num_videos_per_prompt = parse_number<int64_t>(a, value());
      else if (a == "--max-sequence-length")
        req.max_sequence_length = parse_number<int64_t>(a, value());
      else if (a == "--out")
        out = value();
      else if (a == "--latents")
        latents_path = value();
      else if (a == "--image")
        image_path = value();
      else if (a == "--quiet")
        quiet = true;
      else if (a == "--dtype")
        options.dtype = parse_dtype(value());
      else if (a == "--device")
        options.device = parse_device(value());
      else if (a == "--cache")
        req.cache = parse_cache(value());
      else if (a == "--quant")
        options.quant = parse_quant(value());
      else if (a == "--quant-attention")
        options.attention_quant = parse_attention_quant(value());
      else if (a == "--attention")
        req.sparse_attention = parse_attention(value());
      else if (a == "--cuda-graphs")
        options.cuda_graphs = true;
      else {
        throw UsageError{"unknown option '" + a + "' for a video model"};
      }
    }
    if (req.prompts.empty()) throw UsageError{"--prompt TEXT is required"};
    container = container_of(out);
  } catch (const UsageError& e) {
    std::cerr << "mindiesd generate: " << e.message << "\n\n" << generate_video_help();
    return 2;
  }

  const fs::path target = numbered_video(out, 0, 1);
  const fs::path out_dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  MINDIESD_CHECK(fs::is_directory(out_dir), NotFound, "output folder ", out_dir.string(),
                 " does not exist");
  if (!latents_path.empty()) {
    const io::WeightStore file = io::WeightStore::open(latents_path);
    MINDIESD_CHECK(file.size() == 1, InvalidArgument, latents_path, " holds ", file.size(),
                   " tensors; --latents needs exactly one");
    req.latents = file.get(file.names().front()).to(DType::f32).contiguous();
  }
  if (!image_path.empty()) req.image = io::read_png(image_path);  // Corrupt / NotFound named
  WanPipeline pipe = WanPipeline::load(model, options);
  pipe.validate(req);  // before anything heavy: frames, sizes, prompts, memory
  const bool tty = isatty(STDERR_FILENO);
  if (!quiet) req.on_step = [tty](const pipelines::StepInfo& s) { print_progress(s, tty); };
  const pipelines::WanResult r = pipe.generate(req);

  const size_t n = static_cast<size_t>(r.videos.size(0));
  for (size_t i = 0; i < n; ++i) {
    const fs::path p = numbered_video(out, i, n);
    const Tensor frames = r.videos.select(0, static_cast<int64_t>(i));
    const io::VideoWriteInfo info = container == Container::mp4 ? io::write_mp4(p, frames, fps)
                                    : container == Container::gif
                                        ? io::write_gif(p, frames, fps)
                                        : io::write_png_frames(p, frames, fps);
    std::cout << "wrote " << p.string() << " (" << info.width << "x" << info.height << ", "
              << info.frames << " frames at " << info.fps.str() << " fps, " << info.encoder
              << ")\n";
    if (!info.note.empty()) std::cerr << "note: " << info.note << "\n";
  }
  const auto& t = r.timings;
  print_summary({t.load_s, t.text_encoding_s, t.denoising_s, t.decoding_s, req.num_inference_steps,
                 r.peak_allocated_bytes, r.peak_reserved_bytes, r.peak_rss_bytes, req.cache,
                 r.cache_stats, req.guidance_scale > 1.0, pipe.quant_report(),
                 options.attention_quant, req.sparse_attention, r.sparse_stats});
  return 0;
}

}  // namespace mindiesd::cli
