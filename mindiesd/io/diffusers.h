// diffusers model folders: a pipeline folder (model_index.json + one sub-folder per component)
// or a single component folder (config.json or scheduler_config.json directly inside).
//
// model_index.json maps component names to [library, class] ("vae": ["diffusers",
// "AutoencoderKL"]); [null, null] marks a component the pipeline was saved without. Keys starting
// with '_' are metadata (_class_name, _diffusers_version) and other values (booleans, numbers)
// are pipeline options, not components.
//
// Opening a folder finds, for each component, its config file (parsed strictly), its weight
// files and its tokenizer files; weights are not mapped until open_weights(). Weight files are
// looked for as diffusers and transformers save them: diffusion_pytorch_model.safetensors or
// model.safetensors, their sharded form (*.safetensors.index.json + shards), and variants
// (diffusion_pytorch_model.fp16.safetensors, *.safetensors.index.fp16.json).
//
// Errors: NotFound for a missing folder, model_index.json/config.json, component folder or
// component config; Corrupt for malformed JSON (naming the file) or a model_index.json without
// _class_name.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/io/config.h"
#include "mindiesd/io/safetensors.h"

namespace mindiesd::io {

enum class ComponentKind { Model, Scheduler, Tokenizer, Processor };
const char* component_kind_name(ComponentKind kind);

// Which weight files a component uses.
struct WeightFiles {
  std::string variant;                       // "" for the default weights, else "fp16", ...
  std::filesystem::path index;               // the shard index, empty when not sharded
  std::vector<std::filesystem::path> files;  // the single file, or the shards named by the index
};

struct Component {
  std::string name;        // key in model_index.json, or the folder name for a single component
  std::string library;     // "diffusers", "transformers", ...; empty when not known
  std::string class_name;  // "AutoencoderKL", "CLIPTextModel", ...
  bool enabled = true;     // false for a [null, null] entry (no folder, nothing to load)
  ComponentKind kind = ComponentKind::Model;
  std::filesystem::path dir;
  std::filesystem::path config_path;   // empty when the component has no config (tokenizers)
  nlohmann::json config;               // the parsed config (an object), or null
  std::optional<WeightFiles> weights;  // nullopt when the folder holds no safetensors weights
  std::vector<std::string> variants;   // weight variants present, "" = default; sorted
  std::vector<std::filesystem::path> tokenizer_files;  // listed, not loaded

  // The config as a ConfigReader (NotFound when the component has no config).
  ConfigReader config_reader() const;
  // Maps the weights (NotFound when there are none; WeightStore's errors otherwise).
  WeightStore open_weights() const;
};

struct DiffusersOpenOptions {
  // Weight variant to prefer ("fp16", "bf16", ...). A component without that variant falls back
  // to its default weights. When empty: the default weights, or, for a component that has only
  // variants, bf16, then fp16, then the first in name order.
  std::string variant;
};

class DiffusersFolder {
 public:
  static DiffusersFolder open(const std::filesystem::path& dir,
                              const DiffusersOpenOptions& options = {});

  const std::filesystem::path& path() const { return path_; }
  bool is_pipeline() const { return pipeline_; }
  // The pipeline's _class_name, or the single component's class.
  const std::string& class_name() const { return class_name_; }
  const std::string& diffusers_version() const { return diffusers_version_; }
  // model_index.json (null for a single component folder).
  const nlohmann::json& model_index() const { return model_index_; }
  // Components sorted by name; disabled ([null, null]) ones included.
  const std::vector<Component>& components() const { return components_; }
  bool has(std::string_view name) const;
  // NotFound (listing the components there are) when absent.
  const Component& component(std::string_view name) const;

 private:
  std::filesystem::path path_;
  bool pipeline_ = false;
  std::string class_name_;
  std::string diffusers_version_;
  nlohmann::json model_index_;
  std::vector<Component> components_;
};

}  // namespace mindiesd::io
