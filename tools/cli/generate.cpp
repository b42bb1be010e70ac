// `mindiesd generate`: text-to-image from a diffusers FLUX.1 folder (WanPipeline folders go to
// generate_video.cpp), with a progress bar on
// stderr and a summary of where the time and memory went.
#include "generate.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli_util.h"
#include "mindiesd/core/error.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/png.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/pipelines/flux_pipeline.h"

namespace mindiesd::cli {

namespace {

namespace fs = std::filesystem;
using pipelines::FluxPipeline;
using pipelines::FluxPipelineOptions;
using pipelines::FluxRequest;

// out.png -> out-3.png for the 4th of several images.
fs::path numbered(const fs::path& out, size_t i, size_t n) {
  if (n == 1) return out;
  fs::path p = out;
  p.replace_filename(out.stem().string() + "-" + std::to_string(i) + out.extension().string());
  return p;
}

constexpr const char* kHelpOptions =
    "usage: mindiesd generate [--model DIR] --prompt TEXT [options]\n"
    "  --model DIR              a diffusers FluxPipeline folder (FLUX.1-dev/schnell layout);\n"
    "                           default $MINDIESD_MODEL, else the bundled "
    "models/tiny-flux-shapes.\n"
    "                           A folder's mindiesd_defaults.json replaces the defaults below\n"
    "  --prompt TEXT            repeat for a batch of prompts\n"
    "  --prompt-2 TEXT          T5 prompt (default: the prompt); once per --prompt\n"
    "  --negative-prompt TEXT   with --true-cfg > 1: true classifier-free guidance\n"
    "  --true-cfg S             true CFG scale (default 1: off)\n"
    "  --steps N                denoising steps (default 28)\n"
    "  --size WxH               image size, multiples of 16 for FLUX.1 (default 1024x1024)\n"
    "  --guidance G             distilled guidance scale (default 3.5)\n"
    "  --seed S                 noise seed (default 0); image k of a batch uses the same\n"
    "                           seed's stream, so a batch's first image equals a single run\n"
    "  --num-images N           images per prompt (default 1)\n"
    "  --max-sequence-length L  T5 tokens (default 512)\n"
    "  --dtype bf16|f32         compute dtype (default bf16)\n"
    "  --device cpu|cuda[:N]    where the models run (default cpu)\n"
    "  --cuda-graphs            with --device cuda: each transformer call after the first is\n"
    "                           one CUDA graph launch (same results, less launch overhead)\n"
    "  --vae-tiling auto|on|off tiled VAE decoding (default auto: above 1024x1024)\n"
    "  --out FILE               output PNG (default out.png; several images: out-0.png, ...)\n"
    "  --latents FILE           initial packed latents (a safetensors file with one tensor,\n"
    "                           (images, tokens, channels)) instead of seeded noise, e.g. to\n"
    "                           compare with diffusers on the same noise\n"
    "  --quiet                  no progress bar\n";

// The options above plus the --cache options both commands share.
const char* help_text() {
  static const std::string text = std::string(kHelpOptions) + kCacheHelp + kQuantHelp + kAttentionHelp;
  return text.c_str();
}

}  // namespace

// Wan folders (model_index.json's _class_name) are run by the video command.
bool is_video_pipeline(const fs::path& folder) {
  std::ifstream in(folder / "model_index.json");
  if (!in) return false;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("_class_name") &&
         (j["_class_name"] == "WanPipeline" || j["_class_name"] == "WanImageToVideoPipeline");
}

// A model folder may carry the settings it was made for in mindiesd_defaults.json (diffusers
// ignores the file): they replace the built-in defaults; command-line flags replace both.
// Returns the default negative prompt, if the file names one.
std::optional<std::string> apply_model_defaults(const fs::path& folder, FluxRequest& req) {
  const fs::path file = folder / "mindiesd_defaults.json";
  if (!fs::exists(file)) return std::nullopt;
  std::ifstream in(file);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  MINDIESD_CHECK(j.is_object(), Corrupt, file.string(), ": not a JSON object");
  std::optional<std::string> negative;
  for (const auto& [key, v] : j.items()) {
    auto number = [&] {
      MINDIESD_CHECK(v.is_number(), Corrupt, file.string(), ": '", key, "' must be a number");
      return v.get<double>();
    };
    auto integer = [&] {
      MINDIESD_CHECK(v.is_number_integer() && v.get<int64_t>() > 0, Corrupt, file.string(), ": '",
                     key, "' must be a positive integer");
      return v.get<int64_t>();
    };
    if (key == "height")
      req.height = integer();
    else if (key == "width")
      req.width = integer();
    else if (key == "num_inference_steps")
      req.num_inference_steps = integer();
    else if (key == "max_sequence_length")
      req.max_sequence_length = integer();
    else if (key == "guidance_scale")
      req.guidance_scale = number();
    else if (key == "true_cfg_scale")
      req.true_cfg_scale = number();
    else if (key == "negative_prompt") {
      MINDIESD_CHECK(v.is_string(), Corrupt, file.string(), ": 'negative_prompt' must be a string");
      negative = v.get<std::string>();
    } else if (!key.starts_with("_")) {  // "_comment" and the like
      MINDIESD_THROW(Corrupt, file.string(), ": unknown setting '", key, "'");
    }
  }
  return negative;
}

const char* generate_help() { return help_text(); }

int cmd_generate(const std::vector<std::string>& args) {
  FluxRequest req;
  FluxPipelineOptions options;
  std::string model;
  fs::path out = "out.png";
  std::string latents_path;
  bool quiet = false;
  std::optional<std::string> default_negative;
  try {
    model = model_folder(args);
    if (is_video_pipeline(model)) return cmd_generate_video(args, model);
    default_negative = apply_model_defaults(model, req);
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) throw UsageError{a + " needs a value"};
        return args[++i];
      };
      if (a == "--model")
        model = value();
      else if (a == "--prompt")
        req.prompts.push_back(value());
      else if (a == "--prompt-2")
        req.prompts_2.push_back(value());
      else if (a == "--negative-prompt")
        req.negative_prompts.push_back(value());
      else if (a == "--true-cfg")
        req.true_cfg_scale = parse_number<double>(a, value());
      else if (a == "--steps")
        req.num_inference_steps = parse_number<int64_t>(a, value());
      else if (a == "--size")
        std::tie(req.width, req.height) = parse_size(value());
      else if (a == "--guidance")
        req.guidance_scale = parse_number<double>(a, value());
      else if (a == "--seed")
        req.seed = parse_number<uint64_t>(a, value());
      else if (a == "--num-images")
        req.num_images_per_prompt = parse_number<int64_t>(a, value());
      else if (a == "--max-sequence-length")
        req.max_sequence_length = parse_number<int64_t>(a, value());
      else if (a == "--out")
        out = value();
      else if (a == "--latents")
        latents_path = value();
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
      else if (a == "--vae-tiling") {
        const std::string& t = value();
        if (t == "auto")
          options.vae_tiling = FluxPipelineOptions::VaeTiling::automatic;
        else if (t == "on")
          options.vae_tiling = FluxPipelineOptions::VaeTiling::on;
        else if (t == "off")
          options.vae_tiling = FluxPipelineOptions::VaeTiling::off;
        else
          throw UsageError{"--vae-tiling: auto, on or off, got '" + t + "'"};
      } else {
        throw UsageError{"unknown option '" + a + "'"};
      }
    }
    if (req.prompts.empty()) throw UsageError{"--prompt TEXT is required"};
    if (req.negative_prompts.empty() && default_negative && req.true_cfg_scale > 1.0)
      req.negative_prompts.assign(req.prompts.size(), *default_negative);
    if (out.extension() != ".png") throw UsageError{"--out: only .png output is supported"};
  } catch (const UsageError& e) {
    std::cerr << "mindiesd generate: " << e.message << "\n\n" << help_text();
    return 2;
  }

  const fs::path out_dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  MINDIESD_CHECK(fs::is_directory(out_dir), NotFound, "output folder ", out_dir.string(),
                 " does not exist");
  if (!latents_path.empty()) {
    const io::WeightStore file = io::WeightStore::open(latents_path);
    MINDIESD_CHECK(file.size() == 1, InvalidArgument, latents_path, " holds ", file.size(),
                   " tensors; --latents needs exactly one");
    req.latents = file.get(file.names().front()).to(DType::f32).contiguous();
  }
  FluxPipeline pipe = FluxPipeline::load(model, options);
  pipe.validate(req);  // before anything heavy: bad sizes, steps, prompts, memory
  const bool tty = isatty(STDERR_FILENO);
  if (!quiet) req.on_step = [tty](const pipelines::StepInfo& s) { print_progress(s, tty); };
  const pipelines::FluxResult r = pipe.generate(req);

  const size_t n = static_cast<size_t>(r.images.size(0));
  for (size_t i = 0; i < n; ++i) {
    const fs::path p = numbered(out, i, n);
    io::write_png(p, pipelines::to_u8_hwc(r.images.select(0, static_cast<int64_t>(i))));
    std::cout << "wrote " << p.string() << " (" << req.width << "x" << req.height << ")\n";
  }
  const auto& t = r.timings;
  print_summary({t.load_s, t.text_encoding_s, t.denoising_s, t.decoding_s, req.num_inference_steps,
                 r.peak_allocated_bytes, r.peak_reserved_bytes, r.peak_rss_bytes, req.cache,
                 r.cache_stats, req.true_cfg_scale > 1.0 && !req.negative_prompts.empty(),
                 pipe.quant_report(), options.attention_quant, req.sparse_attention,
                 r.sparse_stats});
  return 0;
}

}  // namespace mindiesd::cli
