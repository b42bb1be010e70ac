// Quantization through the real pipelines (the tiny FLUX and Wan2.1 T2V / I2V golden folders, f32):
// a setting that quantizes nothing is bit-identical to the float pipeline; every scheme stays
// within its stated PSNR bound of the float output on the same noise (each bound is the PSNR
// measured when it was set, on this machine, minus 6 dB: about twice the error); a quantized
// folder written in the suite's format loads without the float weights and gives the same
// output as the model it was written from, bit for bit; calibrated static schemes (W8A8 with
// SmoothQuant, W8A8_TIMESTEP) run from such a folder; and broken folders fail naming the file
// and the tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "compare.h"
#include "mindiesd/io/png.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/flux/flux_transformer.h"
#include "mindiesd/models/wan/wan_transformer.h"
#include "mindiesd/pipelines/flux_pipeline.h"
#include "mindiesd/pipelines/wan_pipeline.h"
#include "mindiesd/quant/calibration.h"
#include "mindiesd/quant/quant_format.h"
#include "test_util.h"

namespace mindiesd {
namespace {

namespace fs = std::filesystem;

const std::string kFlux = MINDIESD_SOURCE_DIR "/tests/data/golden/flux/pipeline";
const std::string kWan = MINDIESD_SOURCE_DIR "/tests/data/golden/wan_pipeline";

double psnr(const Tensor& a, const Tensor& b) { return test::psnr01(a, b); }

// ---- FLUX ----

pipelines::FluxPipeline flux(const std::string& dir,
                             std::optional<std::string> quant = std::nullopt) {
  pipelines::FluxPipelineOptions o;
  o.dtype = DType::f32;
  o.vae_tiling = pipelines::FluxPipelineOptions::VaeTiling::off;
  if (quant) o.quant = quant::parse_quant_spec(*quant);
  return pipelines::FluxPipeline::load(dir, o);
}

pipelines::FluxRequest flux_request(
    const std::string& prompt = "a small red circle at the top left") {
  pipelines::FluxRequest r;
  r.prompts = {prompt};
  r.negative_prompts = {""};
  r.true_cfg_scale = 3.0;
  r.width = r.height = 32;
  r.num_inference_steps = 6;
  r.max_sequence_length = 16;
  r.seed = 7;
  return r;
}

Tensor flux_images(pipelines::FluxPipeline& p, quant::Calibrator* cal = nullptr,
                   const std::string& prompt = "a small red circle at the top left") {
  pipelines::FluxRequest r = flux_request(prompt);
  r.linear_observer = cal;
  return p.generate(r).images;
}

// A calibrated quantized copy of the FLUX golden in `out` (two prompts; smoothing as asked).
void write_calibrated_flux(const std::string& spec, double alpha, const fs::path& out) {
  pipelines::FluxPipeline p = flux(kFlux);
  quant::QuantConfig cfg = quant::parse_quant_spec(spec);
  cfg.smooth_alpha = alpha;
  const quant::Calibration c =
      quant::calibrate(p.transformer(), cfg, [&](quant::Calibrator& cal, int, int) {
        for (const char* prompt :
             {"a small red circle at the top left", "a blue square on a white background"})
          flux_images(p, &cal, prompt);
      });
  const auto q = quant::quantize(p.transformer(), cfg, &c);
  quant::save_quantized_pipeline(kFlux, out, cfg.algo, quant::quantized_layers(q));
}

TEST(QuantPipelines, FluxNothingQuantizedIsBitIdentical) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipeline plain = flux(kFlux), none = flux(kFlux, "w8a8_dynamic:exclude=*");
  ASSERT_TRUE(none.quant_report().has_value());
  EXPECT_EQ(none.quant_report()->quantized, 0);
  EXPECT_EQ(flux_images(none).to_vector(), flux_images(plain).to_vector());
}

struct Bound {
  const char* spec;
  double min_psnr;
};

TEST(QuantPipelines, FluxSchemesStayNearFloat) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipeline plain = flux(kFlux);
  const Tensor want = flux_images(plain);
  const Bound bounds[] = {{"w8a8_dynamic", 67.0},      {"fp8", 54.7},   {"w8a16", 73.6},
                          {"w8a16:group=32", 73.0},    {"w4a16", 47.3}, {"w4a16:group=32", 47.5},
                          {"w8a8_dynamic:all=1", 54.7}};
  for (const Bound& b : bounds) {
    pipelines::FluxPipeline q = flux(kFlux, b.spec);
    ASSERT_GT(q.quant_report()->quantized, 0) << b.spec;
    const double p = psnr(flux_images(q), want);
    std::printf("  %-22s %s  PSNR %6.2f dB\n", b.spec, q.quant_report()->str().c_str(), p);
    EXPECT_GE(p, b.min_psnr) << b.spec;
  }
}

// Saved and loaded: the folder holds no float transformer weights and runs bit-identically to
// the model it was written from.
TEST(QuantPipelines, FluxFolderRoundTripIsBitIdentical) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  for (const char* spec : {"w8a8_dynamic", "w4a16:group=32", "fp8"}) {
    test::TempDir dir("quant_flux");
    pipelines::FluxPipeline on_the_fly = flux(kFlux, spec);
    quant::save_quantized_pipeline(kFlux, dir / "q", quant::parse_quant_spec(spec).algo,
                                   quant::quantized_layers(on_the_fly.transformer()));
    for (const auto& e : fs::directory_iterator(dir / "q" / "transformer"))
      EXPECT_EQ(e.path().filename().string().find("diffusion_pytorch_model"), std::string::npos);
    pipelines::FluxPipeline loaded = flux((dir / "q").string());
    EXPECT_EQ(loaded.quant_report()->quantized, on_the_fly.quant_report()->quantized) << spec;
    EXPECT_EQ(flux_images(loaded).to_vector(), flux_images(on_the_fly).to_vector()) << spec;
    test::expect_error([&] { flux((dir / "q").string(), "w8a8_dynamic"); },
                       ErrorKind::InvalidArgument,
                       {"holds a quantized checkpoint", "float models only"});
  }
}

TEST(QuantPipelines, FluxCalibratedStaticSchemes) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipeline plain = flux(kFlux);
  const Tensor want = flux_images(plain);
  const struct {
    const char* spec;
    double alpha, min_psnr;
  } cases[] = {{"w8a8", 0.0, 66.0},
               {"w8a8", 0.5, 67.0},
               {"w8a8_timestep", 0.0, 65.5},
               {"w8a8_dynamic", 0.5, 68.5}};
  for (const auto& c : cases) {
    test::TempDir dir("quant_static");
    write_calibrated_flux(c.spec, c.alpha, dir / "q");
    pipelines::FluxPipeline q = flux((dir / "q").string());
    const double p = psnr(flux_images(q), want);
    std::printf("  %-14s smooth %.1f  PSNR %6.2f dB\n", c.spec, c.alpha, p);
    EXPECT_GE(p, c.min_psnr) << c.spec << " alpha " << c.alpha;
  }
}

// W8A8_TIMESTEP calibrated on 6 steps: a 6-step request runs, an 8-step one is refused at step 6
// (the suite's check would let step 6 through and index past its table).
TEST(QuantPipelines, TimestepFolderRefusesStepsPastItsCalibration) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  test::TempDir dir("quant_ts");
  write_calibrated_flux("w8a8_timestep", 0.0, dir / "q");
  pipelines::FluxPipeline q = flux((dir / "q").string());
  pipelines::FluxRequest r = flux_request();
  r.num_inference_steps = 8;
  test::expect_error([&] { q.generate(r); }, ErrorKind::InvalidArgument, {"step 6", "steps 0..5"});
}

// ---- broken folders ----

// A copy of the dynamic folder whose description or weights `edit` changes.
class BrokenFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
    pipelines::FluxPipeline p = flux(kFlux, "w8a8_dynamic");
    quant::save_quantized_pipeline(kFlux, dir_ / "q", quant::QuantAlgo::W8A8_DYNAMIC,
                                   quant::quantized_layers(p.transformer()));
  }
  fs::path transformer() const { return dir_ / "q" / "transformer"; }
  fs::path description() const {
    return transformer() / "quant_model_description_w8a8_dynamic.json";
  }
  fs::path weights() const { return transformer() / "quant_model_weight_w8a8_dynamic.safetensors"; }
  void write_description(const std::string& text) const {
    fs::remove(description());  // a hard link would otherwise change nothing else; it is ours
    std::ofstream(description()) << text;
  }
  // Rewrites the weight file with tensor `name` replaced (undefined: removed).
  void replace_tensor(const std::string& name, const Tensor& t) const {
    const io::WeightStore store = io::WeightStore::open(weights());
    std::vector<std::pair<std::string, Tensor>> ts;
    for (const std::string& n : store.names()) {
      if (n != name)
        ts.emplace_back(n, store.get(n).clone());
      else if (t.defined())
        ts.emplace_back(n, t);
    }
    fs::remove(weights());
    io::save_safetensors(weights(), ts);
  }
  void expect_load_error(ErrorKind kind, std::initializer_list<std::string_view> needles) const {
    test::expect_error([&] { flux((dir_ / "q").string()); }, kind, needles);
  }
  test::TempDir dir_{"quant_broken"};
};

const char* const kLayer = "transformer_blocks.0.attn.to_q";

TEST_F(BrokenFolder, DescriptionWithoutModelQuantType) {
  write_description("{\"transformer_blocks.0.attn.to_q.weight\": \"W8A8_DYNAMIC\"}");
  expect_load_error(ErrorKind::Corrupt,
                    {"quant_model_description_w8a8_dynamic.json", "model_quant_type"});
}

TEST_F(BrokenFolder, UnknownAlgorithm) {
  write_description(
      "{\"model_quant_type\": \"W8A8_DYNAMIC\", \"transformer_blocks.0.attn.to_q.weight\": "
      "\"W4A4_MXFP4\"}");
  expect_load_error(ErrorKind::Unsupported,
                    {"transformer_blocks.0.attn.to_q.weight", "W4A4_MXFP4"});
}

TEST_F(BrokenFolder, NotJson) {
  write_description("{\"model_quant_type\": ");
  expect_load_error(ErrorKind::Corrupt, {"quant_model_description_w8a8_dynamic.json"});
}

TEST_F(BrokenFolder, MissingScale) {
  replace_tensor(std::string(kLayer) + ".weight_scale", Tensor());
  expect_load_error(ErrorKind::InvalidArgument, {std::string(kLayer) + ".weight_scale", "missing"});
}

TEST_F(BrokenFolder, ScaleOfTheWrongShape) {
  replace_tensor(std::string(kLayer) + ".weight_scale", Tensor::zeros({3}, DType::f32));
  expect_load_error(ErrorKind::InvalidArgument, {std::string(kLayer) + ".weight_scale", "(3,)"});
}

TEST_F(BrokenFolder, MissingFloatTensor) {
  replace_tensor("x_embedder.weight", Tensor());
  expect_load_error(ErrorKind::InvalidArgument, {"missing", "x_embedder.weight"});
}

TEST_F(BrokenFolder, MissingWeightFile) {
  fs::remove(weights());
  expect_load_error(ErrorKind::NotFound, {"quant_model_weight_w8a8_dynamic.safetensors"});
}

// ---- Wan ----

pipelines::WanPipeline wan(const std::string& dir,
                           std::optional<std::string> quant = std::nullopt) {
  pipelines::WanPipelineOptions o;
  o.dtype = DType::f32;
  if (quant) o.quant = quant::parse_quant_spec(*quant);
  return pipelines::WanPipeline::load(dir, o);
}

Tensor wan_videos(pipelines::WanPipeline& p, const std::string& kind) {
  pipelines::WanRequest r;
  r.prompts = {"a cat walks on the grass"};
  r.height = 32;
  r.width = 48;
  r.num_frames = 5;
  r.num_inference_steps = 6;
  r.guidance_scale = 5.0;
  r.max_sequence_length = kind == "i2v" ? 512 : 16;
  r.seed = 3;
  if (kind == "i2v") r.image = io::read_png(kWan + "/i2v/input.png");
  return p.generate(r).videos;
}

class WanQuant : public ::testing::TestWithParam<const char*> {};

TEST_P(WanQuant, SchemesStayNearFloatAndRoundTrip) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  const std::string kind = GetParam(), dir = kWan + "/" + kind;
  pipelines::WanPipeline plain = wan(dir);
  const Tensor want = wan_videos(plain, kind);
  pipelines::WanPipeline none = wan(dir, "w8a8_dynamic:exclude=*");
  EXPECT_EQ(wan_videos(none, kind).to_vector(), want.to_vector());
  // the worse of T2V and I2V minus 6 dB
  const Bound bounds[] = {
      {"w8a8_dynamic", 44.7}, {"fp8", 32.2}, {"w8a16", 55.4}, {"w4a16:group=32", 29.5}};
  for (const Bound& b : bounds) {
    pipelines::WanPipeline q = wan(dir, b.spec);
    const Tensor got = wan_videos(q, kind);
    const double p = psnr(got, want);
    std::printf("  %s %-16s %s  PSNR %6.2f dB\n", kind.c_str(), b.spec,
                q.quant_report()->str().c_str(), p);
    EXPECT_GE(p, b.min_psnr) << kind << " " << b.spec;
    if (std::string(b.spec) == "w8a8_dynamic") {
      test::TempDir t("quant_wan");
      quant::save_quantized_pipeline(dir, t / "q", quant::QuantAlgo::W8A8_DYNAMIC,
                                     quant::quantized_layers(q.transformer()));
      pipelines::WanPipeline loaded = wan((t / "q").string());
      EXPECT_EQ(wan_videos(loaded, kind).to_vector(), got.to_vector());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(T2vI2v, WanQuant, ::testing::Values("t2v", "i2v"));

}  // namespace
}  // namespace mindiesd

// FP8 attention (emulated numerics) on every block attention of both families (bounds: measured
// minus 6 dB).
namespace mindiesd {
namespace {

TEST(QuantPipelines, Fp8AttentionStaysNearFloat) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  pipelines::FluxPipeline plain = flux(kFlux);
  const Tensor want = flux_images(plain);
  for (const auto& [spec, bound] : {std::pair{"fp8", 66.6}, std::pair{"fp8:rotate=1", 65.5}}) {
    pipelines::FluxPipelineOptions o;
    o.dtype = DType::f32;
    o.vae_tiling = pipelines::FluxPipelineOptions::VaeTiling::off;
    o.attention_quant = quant::parse_attention_quant_spec(spec);
    pipelines::FluxPipeline q = pipelines::FluxPipeline::load(kFlux, o);
    const double p = psnr(flux_images(q), want);
    std::printf("  flux attention %-14s PSNR %6.2f dB\n", spec, p);
    EXPECT_GE(p, bound) << spec;
  }
  for (const char* kind : {"t2v", "i2v"}) {
    const std::string dir = kWan + "/" + kind;
    pipelines::WanPipeline wp = wan(dir);
    const Tensor wv = wan_videos(wp, kind);
    // the worse of T2V and I2V minus 6 dB
    for (const auto& [spec, bound] : {std::pair{"fp8", 42.6}, std::pair{"fp8:rotate=1", 46.2}}) {
      pipelines::WanPipelineOptions o;
      o.dtype = DType::f32;
      o.attention_quant = quant::parse_attention_quant_spec(spec);
      pipelines::WanPipeline q = pipelines::WanPipeline::load(dir, o);
      const double p = psnr(wan_videos(q, kind), wv);
      std::printf("  wan %s attention %-14s PSNR %6.2f dB\n", kind, spec, p);
      EXPECT_GE(p, bound) << kind << " " << spec;
    }
  }
}

}  // namespace
}  // namespace mindiesd
