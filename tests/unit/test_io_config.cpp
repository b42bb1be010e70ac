// ConfigReader and the typed diffusers configs: real configs as published, diffusers' defaults,
// unknown-field tracking, and one test per kind of bad field (kind + file + field in the message).
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <string>
#include <string_view>

#include "mindiesd/core/error.h"
#include "mindiesd/io/config.h"
#include "test_util.h"

namespace mindiesd::io {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;
using test::write_file;

ConfigReader reader(std::string_view json) { return ConfigReader::from_string(json, "cfg.json"); }

// Reading `json` as T fails with InvalidArgument naming cfg.json, `field` and `needle`.
template <typename T>
void expect_field_error(std::string_view json, std::string_view field, std::string_view needle) {
  expect_error(
      [&] {
        ConfigReader r = reader(json);
        T::read(r);
      },
      ErrorKind::InvalidArgument,
      {"cfg.json", std::string("field '") + std::string(field) + "'", needle});
}

// black-forest-labs/FLUX.1-dev vae/config.json
const char* kFluxVae = R"({
  "_class_name": "AutoencoderKL",
  "_diffusers_version": "0.30.0.dev0",
  "_name_or_path": "../checkpoints/flux-dev",
  "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
                       "DownEncoderBlock2D"],
  "force_upcast": true,
  "in_channels": 3,
  "latent_channels": 16,
  "latents_mean": null,
  "latents_std": null,
  "layers_per_block": 2,
  "mid_block_add_attention": true,
  "norm_num_groups": 32,
  "out_channels": 3,
  "sample_size": 1024,
  "scaling_factor": 0.3611,
  "shift_factor": 0.1159,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D",
                     "UpDecoderBlock2D"],
  "use_post_quant_conv": false,
  "use_quant_conv": false
})";

// black-forest-labs/FLUX.1-dev transformer/config.json
const char* kFluxTransformer = R"({
  "_class_name": "FluxTransformer2DModel",
  "_diffusers_version": "0.30.0.dev0",
  "attention_head_dim": 128,
  "guidance_embeds": true,
  "in_channels": 64,
  "joint_attention_dim": 4096,
  "num_attention_heads": 24,
  "num_layers": 19,
  "num_single_layers": 38,
  "patch_size": 1,
  "pooled_projection_dim": 768
})";

// black-forest-labs/FLUX.1-dev scheduler/scheduler_config.json
const char* kFluxScheduler = R"({
  "_class_name": "FlowMatchEulerDiscreteScheduler",
  "_diffusers_version": "0.30.0.dev0",
  "base_image_seq_len": 256,
  "base_shift": 0.5,
  "max_image_seq_len": 4096,
  "max_shift": 1.15,
  "num_train_timesteps": 1000,
  "shift": 3.0,
  "use_dynamic_shifting": true
})";

// Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json
const char* kWan13B = R"({
  "_class_name": "WanTransformer3DModel",
  "_diffusers_version": "0.33.0.dev0",
  "added_kv_proj_dim": null,
  "attention_head_dim": 128,
  "cross_attn_norm": true,
  "eps": 1e-06,
  "ffn_dim": 8960,
  "freq_dim": 256,
  "image_dim": null,
  "in_channels": 16,
  "num_attention_heads": 12,
  "num_layers": 30,
  "out_channels": 16,
  "patch_size": [1, 2, 2],
  "qk_norm": "rms_norm_across_heads",
  "rope_max_seq_len": 1024,
  "text_dim": 4096
})";

// ---- ConfigReader ---------------------------------------------------------------------------

TEST(IoConfigReader, ReadsEveryType) {
  ConfigReader r = reader(R"({"b": true, "i": -3, "big": 9000000000, "d": 2, "f": 0.5,
    "s": "x", "li": [1, 2], "ld": [1, 2.5], "ls": ["a"], "n": null})");
  EXPECT_TRUE(r.required<bool>("b"));
  EXPECT_EQ(r.required<int>("i"), -3);
  EXPECT_EQ(r.required<int64_t>("big"), 9000000000);
  EXPECT_EQ(r.required<double>("d"), 2.0);  // integers are numbers
  EXPECT_EQ(r.required<double>("f"), 0.5);
  EXPECT_EQ(r.required<std::string>("s"), "x");
  EXPECT_EQ(r.required<std::vector<int64_t>>("li"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(r.required<std::vector<double>>("ld"), (std::vector<double>{1, 2.5}));
  EXPECT_EQ(r.required<std::vector<std::string>>("ls"), (std::vector<std::string>{"a"}));
  EXPECT_EQ(r.nullable<int64_t>("n", 7), std::nullopt);
  EXPECT_EQ(r.nullable<int64_t>("absent", 7), 7);
  EXPECT_EQ(r.optional<int64_t>("absent2", 5), 5);
  EXPECT_TRUE(r.unknown_keys().empty());
}

TEST(IoConfigReader, TracksUnknownKeysButNotMetadata) {
  ConfigReader r = reader(R"({"_class_name": "X", "_diffusers_version": "0.1", "used": 1,
    "later": 2, "zz_new_field": 3, "aa_other": [1]})");
  r.required<int64_t>("used");
  r.mark_used("later");
  EXPECT_EQ(r.unknown_keys(), (std::vector<std::string>{"aa_other", "zz_new_field"}));
  EXPECT_EQ(r.metadata_keys(), (std::vector<std::string>{"_class_name", "_diffusers_version"}));
  EXPECT_EQ(r.class_name(), "X");
}

TEST(IoConfigReader, MissingRequiredField) {
  expect_error([] { reader("{}").required<int64_t>("in_channels"); }, ErrorKind::InvalidArgument,
               {"cfg.json", "field 'in_channels'", "missing"});
}

TEST(IoConfigReader, IntegerGivenString) {
  expect_error([] { reader(R"({"in_channels": "3"})").required<int64_t>("in_channels"); },
               ErrorKind::InvalidArgument,
               {"cfg.json", "field 'in_channels'", "expected integer", "string \"3\""});
}

TEST(IoConfigReader, IntegerGivenFloat) {
  expect_error([] { reader(R"({"n": 3.0})").required<int64_t>("n"); }, ErrorKind::InvalidArgument,
               {"cfg.json", "field 'n'", "expected integer", "number"});
}

TEST(IoConfigReader, IntegerOutOfRange) {
  expect_error([] { reader(R"({"n": 3000000000})").required<int>("n"); },
               ErrorKind::InvalidArgument, {"cfg.json", "field 'n'", "out of range"});
  expect_error([] { reader(R"({"n": 18446744073709551615})").required<int64_t>("n"); },
               ErrorKind::InvalidArgument, {"cfg.json", "field 'n'", "out of range"});
}

TEST(IoConfigReader, BoolGivenInteger) {
  expect_error([] { reader(R"({"force_upcast": 1})").required<bool>("force_upcast"); },
               ErrorKind::InvalidArgument,
               {"cfg.json", "field 'force_upcast'", "expected boolean", "integer 1"});
}

TEST(IoConfigReader, NumberGivenString) {
  expect_error([] { reader(R"({"shift": "3"})").required<double>("shift"); },
               ErrorKind::InvalidArgument, {"cfg.json", "field 'shift'", "expected number"});
}

TEST(IoConfigReader, StringGivenList) {
  expect_error([] { reader(R"({"act_fn": ["silu"]})").required<std::string>("act_fn"); },
               ErrorKind::InvalidArgument,
               {"cfg.json", "field 'act_fn'", "expected string", "list"});
}

TEST(IoConfigReader, ListGivenScalar) {
  expect_error([] { reader(R"({"l": 4})").required<std::vector<int64_t>>("l"); },
               ErrorKind::InvalidArgument, {"cfg.json", "field 'l'", "list of integers"});
}

TEST(IoConfigReader, ListWithBadElement) {
  expect_error([] { reader(R"({"l": [1, "2", 3]})").required<std::vector<int64_t>>("l"); },
               ErrorKind::InvalidArgument, {"cfg.json", "field 'l'", "element 1", "string"});
}

TEST(IoConfigReader, NullInNonNullableField) {
  expect_error([] { reader(R"({"n": null})").optional<int64_t>("n", 1); },
               ErrorKind::InvalidArgument, {"cfg.json", "field 'n'", "null"});
  expect_error([] { reader(R"({"n": null})").required<int64_t>("n"); }, ErrorKind::InvalidArgument,
               {"cfg.json", "field 'n'", "null"});
}

TEST(IoConfigReader, MalformedJson) {
  expect_error([] { reader(R"({"a": 1,)"); }, ErrorKind::Corrupt, {"cfg.json", "not valid JSON"});
}

TEST(IoConfigReader, DuplicateKey) {
  expect_error([] { reader(R"({"a": 1, "b": {"c": 1, "c": 2}})"); }, ErrorKind::Corrupt,
               {"cfg.json", "'c'", "twice", "/b"});
  expect_error([] { reader(R"({"a": 1, "a": 2})"); }, ErrorKind::Corrupt,
               {"cfg.json", "'a'", "twice", "top-level"});
}

TEST(IoConfigReader, NotAnObject) {
  expect_error([] { reader("[1, 2]"); }, ErrorKind::Corrupt, {"cfg.json", "object", "list"});
}

TEST(IoConfigReader, NotUtf8) {
  expect_error([] { reader("{\"a\": \"\xc3\x28\"}"); }, ErrorKind::Corrupt, {"cfg.json", "UTF-8"});
}

TEST(IoConfigReader, TooDeep) {
  const std::string deep = "{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}";
  expect_error([&] { reader(deep); }, ErrorKind::Corrupt, {"cfg.json", "deep"});
}

TEST(IoConfigReader, FromFile) {
  TempDir dir("io_cfg");
  const fs::path p = dir / "config.json";
  write_file(p, R"({"x": 1})");
  ConfigReader r = ConfigReader::from_file(p);
  EXPECT_EQ(r.source(), p.string());
  EXPECT_EQ(r.required<int64_t>("x"), 1);
  expect_error([&] { ConfigReader::from_file(dir / "absent.json"); }, ErrorKind::NotFound,
               {"absent.json"});
  write_file(p, R"({"x": )");
  expect_error([&] { ConfigReader::from_file(p); }, ErrorKind::Corrupt, {p.string()});
}

// ---- AutoencoderKL --------------------------------------------------------------------------

TEST(IoConfigAutoencoderKL, FluxVae) {
  ConfigReader r = reader(kFluxVae);
  const auto c = AutoencoderKLConfig::read(r);
  EXPECT_EQ(c.latent_channels, 16);
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{128, 256, 512, 512}));
  EXPECT_EQ(c.down_block_types.size(), 4u);
  EXPECT_EQ(c.layers_per_block, 2);
  EXPECT_EQ(c.sample_size, 1024);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.3611);
  ASSERT_TRUE(c.shift_factor.has_value());
  EXPECT_DOUBLE_EQ(*c.shift_factor, 0.1159);
  EXPECT_FALSE(c.latents_mean.has_value());
  EXPECT_FALSE(c.use_quant_conv);
  EXPECT_FALSE(c.use_post_quant_conv);
  EXPECT_TRUE(c.mid_block_add_attention);
  EXPECT_TRUE(r.unknown_keys().empty());
}

TEST(IoConfigAutoencoderKL, DiffusersDefaults) {
  ConfigReader r = reader("{}");
  const auto c = AutoencoderKLConfig::read(r);
  EXPECT_EQ(c.in_channels, 3);
  EXPECT_EQ(c.out_channels, 3);
  EXPECT_EQ(c.down_block_types, (std::vector<std::string>{"DownEncoderBlock2D"}));
  EXPECT_EQ(c.up_block_types, (std::vector<std::string>{"UpDecoderBlock2D"}));
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{64}));
  EXPECT_EQ(c.layers_per_block, 1);
  EXPECT_EQ(c.act_fn, "silu");
  EXPECT_EQ(c.latent_channels, 4);
  EXPECT_EQ(c.norm_num_groups, 32);
  EXPECT_EQ(c.sample_size, 32);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
  EXPECT_FALSE(c.shift_factor.has_value());
  EXPECT_FALSE(c.latents_std.has_value());
  EXPECT_TRUE(c.force_upcast);
  EXPECT_TRUE(c.use_quant_conv);
  EXPECT_TRUE(c.use_post_quant_conv);
  EXPECT_TRUE(c.mid_block_add_attention);
}

TEST(IoConfigAutoencoderKL, LatentsMeanAndListSampleSize) {
  ConfigReader r = reader(R"({"latent_channels": 2, "latents_mean": [0.5, -1],
    "latents_std": [1, 2], "sample_size": [512, 768]})");
  const auto c = AutoencoderKLConfig::read(r);
  EXPECT_EQ(*c.latents_mean, (std::vector<double>{0.5, -1}));
  EXPECT_EQ(c.sample_size, 512);
}

TEST(IoConfigAutoencoderKL, UnknownFieldIsReported) {
  ConfigReader r = reader(R"({"_class_name": "AutoencoderKL", "in_channels": 3,
    "brand_new_option": true})");
  AutoencoderKLConfig::read(r);
  EXPECT_EQ(r.unknown_keys(), (std::vector<std::string>{"brand_new_option"}));
}

TEST(IoConfigAutoencoderKL, WrongClass) {
  expect_error(
      [] {
        ConfigReader r = reader(kFluxTransformer);
        AutoencoderKLConfig::read(r);
      },
      ErrorKind::InvalidArgument, {"cfg.json", "FluxTransformer2DModel", "AutoencoderKL"});
}

TEST(IoConfigAutoencoderKL, BlockOutChannelsWrongType) {
  expect_field_error<AutoencoderKLConfig>(R"({"block_out_channels": "128,256"})",
                                          "block_out_channels", "list of integers");
}

TEST(IoConfigAutoencoderKL, BlockTypesCountMismatch) {
  expect_field_error<AutoencoderKLConfig>(
      R"({"block_out_channels": [64, 128], "down_block_types": ["DownEncoderBlock2D"],
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]})",
      "down_block_types", "1 entries");
}

TEST(IoConfigAutoencoderKL, ChannelsNotDivisibleByGroups) {
  expect_field_error<AutoencoderKLConfig>(R"({"block_out_channels": [48], "norm_num_groups": 32})",
                                          "block_out_channels", "norm_num_groups=32");
}

TEST(IoConfigAutoencoderKL, NonPositiveChannels) {
  expect_field_error<AutoencoderKLConfig>(R"({"latent_channels": 0})", "latent_channels",
                                          "positive");
}

TEST(IoConfigAutoencoderKL, LatentsMeanWrongLength) {
  expect_field_error<AutoencoderKLConfig>(R"({"latent_channels": 4, "latents_mean": [1, 2]})",
                                          "latents_mean", "latent_channels is 4");
}

// ---- Flux transformer -----------------------------------------------------------------------

TEST(IoConfigFlux, FluxDev) {
  ConfigReader r = reader(kFluxTransformer);
  const auto c = FluxTransformer2DModelConfig::read(r);
  EXPECT_EQ(c.patch_size, 1);
  EXPECT_EQ(c.in_channels, 64);
  EXPECT_EQ(c.out_channels, 64);  // absent (None) means in_channels
  EXPECT_EQ(c.num_layers, 19);
  EXPECT_EQ(c.num_single_layers, 38);
  EXPECT_EQ(c.attention_head_dim, 128);
  EXPECT_EQ(c.num_attention_heads, 24);
  EXPECT_EQ(c.joint_attention_dim, 4096);
  EXPECT_EQ(c.pooled_projection_dim, 768);
  EXPECT_TRUE(c.guidance_embeds);
  EXPECT_EQ(c.axes_dims_rope, (std::vector<int64_t>{16, 56, 56}));
  EXPECT_TRUE(r.unknown_keys().empty());
}

TEST(IoConfigFlux, NullOutChannelsMeansInChannels) {
  ConfigReader r = reader(R"({"in_channels": 32, "out_channels": null})");
  EXPECT_EQ(FluxTransformer2DModelConfig::read(r).out_channels, 32);
  ConfigReader r2 = reader(R"({"in_channels": 32, "out_channels": 16})");
  EXPECT_EQ(FluxTransformer2DModelConfig::read(r2).out_channels, 16);
}

TEST(IoConfigFlux, TinyConfig) {
  ConfigReader r = reader(R"({"num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16,
    "num_attention_heads": 2, "joint_attention_dim": 32, "pooled_projection_dim": 32,
    "in_channels": 16, "axes_dims_rope": [4, 6, 6]})");
  EXPECT_EQ(FluxTransformer2DModelConfig::read(r).axes_dims_rope, (std::vector<int64_t>{4, 6, 6}));
}

TEST(IoConfigFlux, RopeAxesMustSumToHeadDim) {
  expect_field_error<FluxTransformer2DModelConfig>(
      R"({"attention_head_dim": 64, "axes_dims_rope": [16, 56, 56]})", "axes_dims_rope",
      "attention_head_dim");
}

TEST(IoConfigFlux, GuidanceEmbedsWrongType) {
  expect_field_error<FluxTransformer2DModelConfig>(R"({"guidance_embeds": "yes"})",
                                                   "guidance_embeds", "expected boolean");
}

// ---- Wan transformer ------------------------------------------------------------------------

TEST(IoConfigWan, Wan21T2V13B) {
  ConfigReader r = reader(kWan13B);
  const auto c = WanTransformer3DModelConfig::read(r);
  EXPECT_EQ(c.patch_size, (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(c.num_attention_heads, 12);
  EXPECT_EQ(c.attention_head_dim, 128);
  EXPECT_EQ(c.ffn_dim, 8960);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.qk_norm, "rms_norm_across_heads");
  EXPECT_DOUBLE_EQ(c.eps, 1e-6);
  EXPECT_FALSE(c.image_dim.has_value());
  EXPECT_FALSE(c.added_kv_proj_dim.has_value());
  EXPECT_TRUE(r.unknown_keys().empty());
}

TEST(IoConfigWan, DiffusersDefaults) {
  ConfigReader r = reader("{}");
  const auto c = WanTransformer3DModelConfig::read(r);
  EXPECT_EQ(c.patch_size, (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(c.num_attention_heads, 40);
  EXPECT_EQ(c.attention_head_dim, 128);
  EXPECT_EQ(c.in_channels, 16);
  EXPECT_EQ(c.out_channels, 16);
  EXPECT_EQ(c.text_dim, 4096);
  EXPECT_EQ(c.freq_dim, 256);
  EXPECT_EQ(c.ffn_dim, 13824);
  EXPECT_EQ(c.num_layers, 40);
  EXPECT_TRUE(c.cross_attn_norm);
  EXPECT_EQ(c.qk_norm, "rms_norm_across_heads");
  EXPECT_EQ(c.rope_max_seq_len, 1024);
  EXPECT_FALSE(c.pos_embed_seq_len.has_value());
}

TEST(IoConfigWan, I2VFieldsAndNullQkNorm) {
  ConfigReader r = reader(R"({"image_dim": 1280, "added_kv_proj_dim": 5120, "qk_norm": null,
    "in_channels": 36, "out_channels": null})");
  const auto c = WanTransformer3DModelConfig::read(r);
  EXPECT_EQ(c.image_dim, 1280);
  EXPECT_EQ(c.added_kv_proj_dim, 5120);
  EXPECT_FALSE(c.qk_norm.has_value());
  EXPECT_EQ(c.out_channels, 36);
}

TEST(IoConfigWan, PatchSizeWrongLength) {
  expect_field_error<WanTransformer3DModelConfig>(R"({"patch_size": [2, 2]})", "patch_size",
                                                  "[t, h, w]");
}

TEST(IoConfigWan, EpsWrongType) {
  expect_field_error<WanTransformer3DModelConfig>(R"({"eps": "1e-6"})", "eps", "expected number");
}

// ---- FlowMatchEulerDiscreteScheduler --------------------------------------------------------

TEST(IoConfigFlowMatch, FluxScheduler) {
  ConfigReader r = reader(kFluxScheduler);
  const auto c = FlowMatchEulerDiscreteSchedulerConfig::read(r);
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_DOUBLE_EQ(c.shift, 3.0);
  EXPECT_TRUE(c.use_dynamic_shifting);
  EXPECT_EQ(c.base_shift, 0.5);
  EXPECT_EQ(c.max_shift, 1.15);
  EXPECT_EQ(c.base_image_seq_len, 256);
  EXPECT_EQ(c.max_image_seq_len, 4096);
  EXPECT_TRUE(r.unknown_keys().empty());
}

TEST(IoConfigFlowMatch, DiffusersDefaults) {
  ConfigReader r = reader("{}");
  const auto c = FlowMatchEulerDiscreteSchedulerConfig::read(r);
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_DOUBLE_EQ(c.shift, 1.0);
  EXPECT_FALSE(c.use_dynamic_shifting);
  EXPECT_FALSE(c.invert_sigmas);
  EXPECT_FALSE(c.shift_terminal.has_value());
  EXPECT_FALSE(c.use_karras_sigmas);
  EXPECT_FALSE(c.use_exponential_sigmas);
  EXPECT_FALSE(c.use_beta_sigmas);
  EXPECT_EQ(c.time_shift_type, "exponential");
  EXPECT_FALSE(c.stochastic_sampling);
}

TEST(IoConfigFlowMatch, IntegerShiftIsANumber) {
  ConfigReader r = reader(R"({"shift": 5, "shift_terminal": null})");
  EXPECT_DOUBLE_EQ(FlowMatchEulerDiscreteSchedulerConfig::read(r).shift, 5.0);
}

TEST(IoConfigFlowMatch, BadTimeShiftType) {
  expect_field_error<FlowMatchEulerDiscreteSchedulerConfig>(R"({"time_shift_type": "cubic"})",
                                                            "time_shift_type", "cubic");
}

TEST(IoConfigFlowMatch, TwoSigmaSchedules) {
  expect_field_error<FlowMatchEulerDiscreteSchedulerConfig>(
      R"({"use_karras_sigmas": true, "use_beta_sigmas": true})", "use_karras_sigmas", "only one");
}

TEST(IoConfigFlowMatch, DynamicShiftingNeedsBaseShift) {
  expect_field_error<FlowMatchEulerDiscreteSchedulerConfig>(
      R"({"use_dynamic_shifting": true, "base_shift": null})", "base_shift",
      "use_dynamic_shifting");
}

// ---- writing back ---------------------------------------------------------------------------

// Reads `r` as T, writes it back, reads that text again: the same struct, no unknown keys.
template <typename T>
void expect_round_trip(ConfigReader r) {
  const T c = T::read(r);
  const nlohmann::json j = c.to_json();
  EXPECT_EQ(j.at("_class_name"), T::kClassName);
  ConfigReader again = ConfigReader::from_string(j.dump(2), "again.json");
  EXPECT_TRUE(T::read(again) == c) << r.source() << " -> " << j.dump();
  EXPECT_TRUE(again.unknown_keys().empty()) << r.source();
}

TEST(IoConfigWrite, EveryCommittedConfigSurvivesARoundTrip) {
  int seen = 0;
  for (const char* root :
       {MINDIESD_SOURCE_DIR "/tests/data/golden", MINDIESD_SOURCE_DIR "/models"}) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
      const std::string name = e.path().filename().string();
      if (name != "config.json" && name != "scheduler_config.json") continue;
      ConfigReader r = ConfigReader::from_file(e.path());
      const std::string cls = r.class_name();
      SCOPED_TRACE(e.path().string());
      if (cls == AutoencoderKLConfig::kClassName)
        expect_round_trip<AutoencoderKLConfig>(r);
      else if (cls == AutoencoderKLWanConfig::kClassName)
        expect_round_trip<AutoencoderKLWanConfig>(r);
      else if (cls == FluxTransformer2DModelConfig::kClassName)
        expect_round_trip<FluxTransformer2DModelConfig>(r);
      else if (cls == WanTransformer3DModelConfig::kClassName)
        expect_round_trip<WanTransformer3DModelConfig>(r);
      else if (cls == FlowMatchEulerDiscreteSchedulerConfig::kClassName)
        expect_round_trip<FlowMatchEulerDiscreteSchedulerConfig>(r);
      else if (cls == UniPCMultistepSchedulerConfig::kClassName)
        expect_round_trip<UniPCMultistepSchedulerConfig>(r);
      else
        continue;
      ++seen;
    }
  }
  EXPECT_GE(seen, 19);  // every VAE, transformer and scheduler config of the goldens and the model
}

TEST(IoConfigWrite, ResolvedValuesAreWritten) {
  // A null out_channels is written as the in_channels it means; a list sample_size as its first
  // entry; every field is present, nullable ones as null.
  ConfigReader r = reader(R"({"in_channels": 12, "out_channels": null, "axes_dims_rope": [4, 4],
                             "attention_head_dim": 8})");
  const nlohmann::json j = FluxTransformer2DModelConfig::read(r).to_json();
  EXPECT_EQ(j.at("out_channels"), 12);
  EXPECT_EQ(j.at("num_single_layers"), 38);
  ConfigReader v = reader(R"({"sample_size": [96, 64]})");
  const nlohmann::json vj = AutoencoderKLConfig::read(v).to_json();
  EXPECT_EQ(vj.at("sample_size"), 96);
  EXPECT_TRUE(vj.at("shift_factor").is_null());
  expect_round_trip<FluxTransformer2DModelConfig>(reader(kFluxTransformer));
  expect_round_trip<AutoencoderKLConfig>(reader(kFluxVae));
  expect_round_trip<FlowMatchEulerDiscreteSchedulerConfig>(reader(kFluxScheduler));
  expect_round_trip<WanTransformer3DModelConfig>(reader(kWan13B));
}

TEST(IoConfigWrite, UniPCWithTrainedBetasIsNotWrittenBack) {
  ConfigReader r = reader(R"({"trained_betas": [0.1, 0.2]})");
  const UniPCMultistepSchedulerConfig c = UniPCMultistepSchedulerConfig::read(r);
  expect_error([&] { (void)c.to_json(); }, ErrorKind::Unsupported, {"trained_betas"});
}

TEST(IoConfigReader, NumberPastTheDoubleRange) {
  // In a file the parser refuses it; a config built in memory may hold infinity, refused too.
  expect_error([] { reader(R"({"eps": 1e999})"); }, ErrorKind::Corrupt, {"cfg.json", "1e999"});
  ConfigReader r(nlohmann::json{{"eps", -std::numeric_limits<double>::infinity()}}, "cfg.json");
  expect_error([&] { WanTransformer3DModelConfig::read(r); }, ErrorKind::InvalidArgument,
               {"cfg.json", "field 'eps'", "out of range"});
}

}  // namespace
}  // namespace mindiesd::io
