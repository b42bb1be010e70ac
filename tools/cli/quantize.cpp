// `mindiesd quantize`: a quantized copy of a FLUX.1 or Wan2.1 diffusers folder in the suite's
// format (quant/quant_format.h). Static schemes and SmoothQuant are calibrated first: the float
// pipeline runs the calibration prompts while a quant::Calibrator records every selected
// layer's input ranges per denoising step (with smoothing on a static scheme, a second pass
// records them under the smoothing). The folder is written by quant::save_quantized_pipeline.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli_util.h"
#include "generate.h"
#include "mindiesd/core/error.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "mindiesd/models/wan/wan_transformer.h"
#include "mindiesd/pipelines/flux_pipeline.h"
#include "mindiesd/pipelines/wan_pipeline.h"
#include "mindiesd/quant/calibration.h"
#include "mindiesd/quant/quant_format.h"

namespace mindiesd::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kHelp =
    "usage: mindiesd quantize --model DIR --algo ALGO --out DIR [options]\n"
    "  --model DIR              a FLUX.1 or Wan2.1 diffusers folder (float weights)\n"
    "  --algo ALGO              W8A8_DYNAMIC, W8A8 (static, calibrated), W8A8_TIMESTEP (static\n"
    "                           per step, calibrated), W8A16, W4A16, FP8 (names as --quant's,\n"
    "                           with its :key=value options, e.g. W4A16:group=64)\n"
    "  --out DIR                the quantized folder to write (must not exist or be empty)\n"
    "  --calib-prompts FILE     calibration prompts, one per line (default: 8 built-in prompts)\n"
    "  --smooth ALPHA           SmoothQuant with migration strength ALPHA in (0, 1] (W8A8*;\n"
    "                           the suite's default is 0.5)\n"
    "  --steps N --size WxH --frames F --seed S   the calibration runs' settings (default: the\n"
    "                           model's mindiesd_defaults.json, else the pipeline's defaults;\n"
    "                           W8A8_TIMESTEP calibrates steps 0..N-1)\n"
    "  --dtype bf16|f32         the dtype calibration runs in (default bf16)\n"
    "  --quiet                  no progress\n";

// Varied subjects, styles and compositions (calibration wants the activation ranges a model
// meets in use, not one prompt's).
const char* const kDefaultPrompts[] = {
    "a photograph of a red fox in a snowy forest at dawn",
    "an oil painting of a harbour town with sailing boats",
    "a close-up portrait of an old man with a grey beard, studio lighting",
    "a futuristic city skyline at night with neon signs",
    "a bowl of fruit on a wooden table, still life",
    "a watercolour of mountains and a lake under a cloudy sky",
    "a small blue square and a yellow circle on a white background",
    "a cat sleeping on a windowsill in the afternoon sun",
};

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError{"--calib-prompts: cannot read " + path};
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) out.push_back(line);
  if (out.empty()) throw UsageError{"--calib-prompts: " + path + " holds no prompt"};
  return out;
}

struct Settings {
  std::optional<int64_t> steps, frames, width, height;
  uint64_t seed = 0;
  bool quiet = false;
};

template <typename Request>
void apply(const Settings& s, Request& r) {
  if (s.steps) r.num_inference_steps = *s.steps;
  if (s.width) r.width = *s.width;
  if (s.height) r.height = *s.height;
  r.seed = s.seed;
}

// Runs every prompt through `pipe` with the calibrator watching (quant::calibrate decides the
// passes).
template <typename Pipeline, typename Request>
quant::Calibration calibrate(Pipeline& pipe, const std::vector<Request>& requests,
                             const quant::QuantConfig& cfg, bool quiet) {
  return quant::calibrate(pipe.transformer(), cfg,
                          [&](quant::Calibrator& cal, int pass, int passes) {
                            for (size_t i = 0; i < requests.size(); ++i) {
                              Request r = requests[i];
                              r.linear_observer = &cal;
                              if (!quiet)
                                std::fprintf(stderr, "calibration%s: prompt %zu of %zu\n",
                                             passes == 2 ? (pass ? " (pass 2)" : " (pass 1)") : "",
                                             i + 1, requests.size());
                              pipe.validate(r);
                              pipe.generate(r);
                            }
                          });
}

}  // namespace

const char* quantize_help() { return kHelp; }

int cmd_quantize(const std::vector<std::string>& args) {
  std::string model, out, prompts_file;
  std::optional<quant::QuantConfig> cfg;
  double smooth = 0;
  DType dtype = DType::bf16;
  Settings set;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) throw UsageError{a + " needs a value"};
        return args[++i];
      };
      if (a == "--model")
        model = value();
      else if (a == "--out")
        out = value();
      else if (a == "--algo")
        cfg = parse_quant(value());
      else if (a == "--calib-prompts")
        prompts_file = value();
      else if (a == "--smooth") {
        smooth = parse_number<double>(a, value());
        if (!(smooth > 0 && smooth <= 1)) throw UsageError{"--smooth: alpha must be in (0, 1]"};
      } else if (a == "--steps")
        set.steps = parse_number<int64_t>(a, value());
      else if (a == "--frames")
        set.frames = parse_number<int64_t>(a, value());
      else if (a == "--size") {
        const auto [w, h] = parse_size(value());
        set.width = w;
        set.height = h;
      } else if (a == "--seed")
        set.seed = parse_number<uint64_t>(a, value());
      else if (a == "--dtype")
        dtype = parse_dtype(value());
      else if (a == "--quiet")
        set.quiet = true;
      else
        throw UsageError{"unknown option '" + a + "'"};
    }
    if (model.empty()) model = model_folder(args);
    if (!cfg) throw UsageError{"--algo ALGO is required"};
    if (out.empty()) throw UsageError{"--out DIR is required"};
    if (smooth > 0 &&
        (cfg->algo == quant::QuantAlgo::W8A16 || cfg->algo == quant::QuantAlgo::W4A16))
      throw UsageError{"--smooth applies to schemes that quantize activations (W8A8*, FP8)"};
    cfg->smooth_alpha = smooth;
  } catch (const UsageError& e) {
    std::cerr << "mindiesd quantize: " << e.message << "\n\n" << kHelp;
    return 2;
  }
  std::error_code ec;
  MINDIESD_CHECK(
      !fs::exists(out, ec) || fs::is_empty(out, ec), InvalidArgument, "--out ", out,
      " exists and is not empty");  // checked again when writing; here before calibrating
  MINDIESD_CHECK(!quant::find_quant_description(fs::path(model) / "transformer"), InvalidArgument,
                 model, ": the transformer is already quantized");
  const std::vector<std::string> prompts =
      prompts_file.empty()
          ? std::vector<std::string>(std::begin(kDefaultPrompts), std::end(kDefaultPrompts))
          : read_prompts(prompts_file);
  const bool calibrated = quant::needs_calibration(cfg->algo) || cfg->smooth_alpha > 0;
  const auto t0 = std::chrono::steady_clock::now();

  // The quantized transformer and the float checkpoint it came from, per family.
  auto run = [&](auto& pipe, auto requests) {
    std::optional<quant::Calibration> cal;
    if (calibrated) cal = calibrate(pipe, requests, *cfg, set.quiet);
    quant::QuantReport report;
    const auto q = quant::quantize(pipe.transformer(), *cfg, cal ? &*cal : nullptr, &report);
    quant::save_quantized_pipeline(model, out, cfg->algo, quant::quantized_layers(q));
    std::cout << "wrote " << out << ": " << report.str()
              << (calibrated ? str_cat(", calibrated on ", prompts.size(), " prompts") : "")
              << " in " << format_seconds(pipelines::seconds_since(t0)) << "\n";
  };
  if (is_video_pipeline(model)) {
    pipelines::WanPipelineOptions o;
    o.dtype = dtype;
    pipelines::WanPipeline pipe = pipelines::WanPipeline::load(model, o);
    std::vector<pipelines::WanRequest> reqs;
    for (const std::string& p : prompts) {
      pipelines::WanRequest r;
      r.prompts = {p};
      apply(set, r);
      if (set.frames) r.num_frames = *set.frames;
      reqs.push_back(r);
    }
    run(pipe, reqs);
  } else {
    pipelines::FluxPipelineOptions o;
    o.dtype = dtype;
    o.vae_tiling = pipelines::FluxPipelineOptions::VaeTiling::off;
    pipelines::FluxPipeline pipe = pipelines::FluxPipeline::load(model, o);
    std::vector<pipelines::FluxRequest> reqs;
    for (const std::string& p : prompts) {
      pipelines::FluxRequest r;
      const std::optional<std::string> negative = apply_model_defaults(model, r);
      r.prompts = {p};
      if (negative && r.true_cfg_scale > 1.0) r.negative_prompts = {*negative};
      apply(set, r);
      reqs.push_back(r);
    }
    run(pipe, reqs);
  }
  return 0;
}

}  // namespace mindiesd::cli
