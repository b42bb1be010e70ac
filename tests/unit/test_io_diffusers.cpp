// DiffusersFolder: pipeline and single-component folders laid out as diffusers saves them,
// weight variants and sharded weights, and the errors for missing or malformed pieces.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>

#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/io/diffusers.h"
#include "test_util.h"

namespace mindiesd::io {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;
using test::write_file;

Tensor zeros_of(const Shape& shape, DType dtype = DType::bf16) {
  Tensor t = Tensor::empty(shape, dtype);
  std::fill_n(static_cast<uint8_t*>(t.data_ptr()), t.nbytes(), uint8_t{0});
  return t;
}

void write_weights(const fs::path& p, const std::string& name, DType dtype = DType::bf16) {
  fs::create_directories(p.parent_path());
  save_safetensors(p, {{name, zeros_of({2, 3}, dtype)}});
}

// A small Flux-like pipeline folder with every kind of component.
void make_pipeline(const fs::path& root) {
  write_file(root / "model_index.json", R"({
    "_class_name": "FluxPipeline",
    "_diffusers_version": "0.30.0.dev0",
    "force_zeros_for_empty_prompt": true,
    "boundary_ratio": 0.875,
    "safety_checker": [null, null],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "transformer": ["diffusers", "FluxTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"]
  })");
  write_file(root / "scheduler" / "scheduler_config.json",
             R"({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0})");
  write_file(root / "text_encoder" / "config.json",
             R"({"architectures": ["CLIPTextModel"], "hidden_size": 32,
                 "transformers_version": "4.44.0"})");
  write_weights(root / "text_encoder" / "model.safetensors", "text_model.embeddings.weight");
  for (const char* f :
       {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
    write_file(root / "tokenizer" / f, "{}");
  }
  write_file(root / "transformer" / "config.json",
             R"({"_class_name": "FluxTransformer2DModel", "num_layers": 1})");
  write_weights(root / "transformer" / "diffusion_pytorch_model-00001-of-00002.safetensors", "a");
  write_weights(root / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors", "b");
  write_file(root / "transformer" / "diffusion_pytorch_model.safetensors.index.json",
             R"({"metadata": {"total_size": 24}, "weight_map": {
                 "a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                 "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}})");
  write_file(root / "vae" / "config.json", R"({"_class_name": "AutoencoderKL"})");
  write_weights(root / "vae" / "diffusion_pytorch_model.safetensors", "decoder.w", DType::f32);
  write_weights(root / "vae" / "diffusion_pytorch_model.fp16.safetensors", "decoder.w", DType::f16);
}

TEST(IoDiffusers, OpensPipelineFolder) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  const DiffusersFolder f = DiffusersFolder::open(dir.path());
  EXPECT_TRUE(f.is_pipeline());
  EXPECT_EQ(f.class_name(), "FluxPipeline");
  EXPECT_EQ(f.diffusers_version(), "0.30.0.dev0");
  std::vector<std::string> names;
  for (const Component& c : f.components()) names.push_back(c.name);
  // Pipeline options (true, 0.875) are not components; [null, null] is, disabled.
  EXPECT_EQ(names, (std::vector<std::string>{"safety_checker", "scheduler", "text_encoder",
                                             "tokenizer", "transformer", "vae"}));

  EXPECT_FALSE(f.component("safety_checker").enabled);

  const Component& sched = f.component("scheduler");
  EXPECT_EQ(sched.kind, ComponentKind::Scheduler);
  EXPECT_EQ(sched.library, "diffusers");
  EXPECT_EQ(sched.config_path.filename(), "scheduler_config.json");
  EXPECT_FALSE(sched.weights.has_value());
  EXPECT_DOUBLE_EQ(sched.config["shift"].get<double>(), 3.0);

  const Component& te = f.component("text_encoder");
  EXPECT_EQ(te.kind, ComponentKind::Model);
  EXPECT_EQ(te.library, "transformers");
  ASSERT_TRUE(te.weights.has_value());
  EXPECT_EQ(te.weights->files.front().filename(), "model.safetensors");
  EXPECT_TRUE(te.open_weights().has("text_model.embeddings.weight"));

  const Component& tok = f.component("tokenizer");
  EXPECT_EQ(tok.kind, ComponentKind::Tokenizer);
  EXPECT_EQ(tok.tokenizer_files.size(), 4u);
  EXPECT_FALSE(tok.weights.has_value());

  const Component& tr = f.component("transformer");
  ASSERT_TRUE(tr.weights.has_value());
  EXPECT_EQ(tr.weights->index.filename(), "diffusion_pytorch_model.safetensors.index.json");
  EXPECT_EQ(tr.weights->files.size(), 2u);
  EXPECT_EQ(tr.variants, (std::vector<std::string>{""}));  // shards are not variants
  const WeightStore ws = tr.open_weights();
  EXPECT_TRUE(ws.sharded());
  EXPECT_EQ(ws.names(), (std::vector<std::string>{"a", "b"}));

  const Component& vae = f.component("vae");
  EXPECT_EQ(vae.class_name, "AutoencoderKL");
  EXPECT_EQ(vae.variants, (std::vector<std::string>{"", "fp16"}));
  EXPECT_EQ(vae.weights->variant, "");
  EXPECT_EQ(vae.open_weights().info("decoder.w").dtype, DType::f32);
  ConfigReader r = vae.config_reader();
  EXPECT_EQ(r.source(), (dir / "vae" / "config.json").string());
  EXPECT_EQ(AutoencoderKLConfig::read(r).latent_channels, 4);
}

TEST(IoDiffusers, PreferredVariant) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  DiffusersOpenOptions o;
  o.variant = "fp16";
  const DiffusersFolder f = DiffusersFolder::open(dir.path(), o);
  EXPECT_EQ(f.component("vae").weights->variant, "fp16");
  EXPECT_EQ(f.component("vae").open_weights().info("decoder.w").dtype, DType::f16);
  // A component without the variant keeps its default weights.
  EXPECT_EQ(f.component("text_encoder").weights->variant, "");
}

TEST(IoDiffusers, OnlyVariantWeightsPicksBf16First) {
  TempDir dir("io_df");
  write_file(dir / "config.json", R"({"_class_name": "AutoencoderKL",
                                      "_diffusers_version": "0.31.0"})");
  write_weights(dir / "diffusion_pytorch_model.fp16.safetensors", "w", DType::f16);
  write_weights(dir / "diffusion_pytorch_model.bf16.safetensors", "w", DType::bf16);
  const DiffusersFolder f = DiffusersFolder::open(dir.path());
  EXPECT_EQ(f.components().front().variants, (std::vector<std::string>{"bf16", "fp16"}));
  EXPECT_EQ(f.components().front().weights->variant, "bf16");
}

TEST(IoDiffusers, ShardedVariantIndex) {
  TempDir dir("io_df");
  write_file(dir / "config.json", R"({"_class_name": "WanTransformer3DModel"})");
  write_weights(dir / "diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "a");
  write_weights(dir / "diffusion_pytorch_model.fp16-00002-of-00002.safetensors", "b");
  write_file(dir / "diffusion_pytorch_model.safetensors.index.fp16.json",
             R"({"weight_map": {"a": "diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
                                "b": "diffusion_pytorch_model.fp16-00002-of-00002.safetensors"}})");
  const DiffusersFolder f = DiffusersFolder::open(dir.path());
  const Component& c = f.components().front();
  EXPECT_EQ(c.variants, (std::vector<std::string>{"fp16"}));
  ASSERT_TRUE(c.weights.has_value());
  EXPECT_EQ(c.weights->variant, "fp16");
  EXPECT_EQ(c.open_weights().size(), 2u);
}

TEST(IoDiffusers, SingleComponentFolder) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  const DiffusersFolder f = DiffusersFolder::open(dir / "vae");
  EXPECT_FALSE(f.is_pipeline());
  EXPECT_EQ(f.class_name(), "AutoencoderKL");
  ASSERT_EQ(f.components().size(), 1u);
  EXPECT_EQ(f.components().front().name, "vae");
  EXPECT_TRUE(f.model_index().is_null());
  EXPECT_TRUE(f.has("vae"));

  const DiffusersFolder te = DiffusersFolder::open(dir / "text_encoder/");
  EXPECT_EQ(te.components().front().name, "text_encoder");
  EXPECT_EQ(te.components().front().library, "transformers");

  const DiffusersFolder s = DiffusersFolder::open(dir / "scheduler");
  EXPECT_EQ(s.components().front().kind, ComponentKind::Scheduler);
  EXPECT_EQ(s.class_name(), "FlowMatchEulerDiscreteScheduler");
}

TEST(IoDiffusers, PathToModelIndexMeansItsFolder) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  EXPECT_TRUE(DiffusersFolder::open(dir / "model_index.json").is_pipeline());
}

TEST(IoDiffusers, SymlinkedFilesAsInTheHubCache) {
  // huggingface_hub snapshots are folders of symlinks into a blobs/ folder.
  TempDir dir("io_df");
  make_pipeline(dir / "blobs");
  const fs::path snap = dir / "snapshot";
  fs::create_directories(snap / "vae");
  fs::create_symlink(dir / "blobs" / "model_index.json", snap / "model_index.json");
  fs::create_symlink(dir / "blobs" / "vae" / "config.json", snap / "vae" / "config.json");
  fs::create_symlink(dir / "blobs" / "vae" / "diffusion_pytorch_model.safetensors",
                     snap / "vae" / "diffusion_pytorch_model.safetensors");
  for (const char* c : {"scheduler", "text_encoder", "tokenizer", "transformer"}) {
    fs::create_directory_symlink(dir / "blobs" / c, snap / c);
  }
  const DiffusersFolder f = DiffusersFolder::open(snap);
  EXPECT_EQ(f.component("vae").open_weights().size(), 1u);
  EXPECT_EQ(f.component("transformer").open_weights().size(), 2u);
}

TEST(IoDiffusers, UnknownComponentName) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  const DiffusersFolder f = DiffusersFolder::open(dir.path());
  expect_error([&] { f.component("unet"); }, ErrorKind::NotFound, {"'unet'", "transformer, vae"});
}

TEST(IoDiffusers, ComponentWithoutWeights) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  fs::remove(dir / "vae" / "diffusion_pytorch_model.safetensors");
  fs::remove(dir / "vae" / "diffusion_pytorch_model.fp16.safetensors");
  const DiffusersFolder f = DiffusersFolder::open(dir.path());
  EXPECT_FALSE(f.component("vae").weights.has_value());
  expect_error([&] { f.component("vae").open_weights(); }, ErrorKind::NotFound,
               {"'vae'", "no safetensors weights"});
}

// ---- errors ---------------------------------------------------------------------------------

TEST(IoDiffusersBad, FolderMissing) {
  TempDir dir("io_df");
  expect_error([&] { DiffusersFolder::open(dir / "nope"); }, ErrorKind::NotFound, {"nope"});
}

TEST(IoDiffusersBad, NotADiffusersFolder) {
  TempDir dir("io_df");
  write_file(dir / "README.md", "hello");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::NotFound,
               {dir.path().string(), "model_index.json", "config.json"});
}

TEST(IoDiffusersBad, ComponentFolderMissing) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  fs::remove_all(dir / "vae");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::NotFound,
               {"model_index.json", "'vae'", "AutoencoderKL", "no folder"});
}

TEST(IoDiffusersBad, ComponentConfigMissing) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  fs::remove(dir / "transformer" / "config.json");
  expect_error(
      [&] { DiffusersFolder::open(dir.path()); }, ErrorKind::NotFound,
      {"'transformer'", "FluxTransformer2DModel", (dir / "transformer" / "config.json").string()});
}

TEST(IoDiffusersBad, SchedulerConfigMissing) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  fs::remove(dir / "scheduler" / "scheduler_config.json");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::NotFound,
               {"'scheduler'", "scheduler_config.json"});
}

TEST(IoDiffusersBad, ModelIndexMalformed) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  write_file(dir / "model_index.json", R"({"_class_name": "FluxPipeline", "vae": [)");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::Corrupt,
               {(dir / "model_index.json").string(), "not valid JSON"});
}

TEST(IoDiffusersBad, ModelIndexNotAnObject) {
  TempDir dir("io_df");
  write_file(dir / "model_index.json", R"(["FluxPipeline"])");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::Corrupt,
               {"model_index.json", "object"});
}

TEST(IoDiffusersBad, ModelIndexWithoutClassName) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  write_file(dir / "model_index.json", R"({"vae": ["diffusers", "AutoencoderKL"]})");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::Corrupt,
               {"model_index.json", "_class_name"});
}

TEST(IoDiffusersBad, ComponentNameLeavesFolder) {
  TempDir dir("io_df");
  write_file(dir / "model_index.json",
             R"({"_class_name": "P", "../outside": ["diffusers", "AutoencoderKL"]})");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::Corrupt,
               {"model_index.json", "'../outside'", "not a folder name"});
}

TEST(IoDiffusersBad, ComponentConfigMalformed) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  write_file(dir / "vae" / "config.json", R"({"_class_name": "AutoencoderKL",,})");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::Corrupt,
               {(dir / "vae" / "config.json").string(), "JSON"});
}

TEST(IoDiffusersBad, ComponentConfigNotAnObject) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  write_file(dir / "vae" / "config.json", "42");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::Corrupt,
               {(dir / "vae" / "config.json").string(), "object"});
}

TEST(IoDiffusersBad, WeightIndexMalformed) {
  TempDir dir("io_df");
  make_pipeline(dir.path());
  write_file(dir / "transformer" / "diffusion_pytorch_model.safetensors.index.json", "{oops");
  expect_error([&] { DiffusersFolder::open(dir.path()); }, ErrorKind::Corrupt,
               {"diffusion_pytorch_model.safetensors.index.json"});
}

}  // namespace
}  // namespace mindiesd::io
