#include "mindiesd/io/diffusers.h"

#include <algorithm>
#include <map>
#include <set>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"
#include "mindiesd/io/json_util.h"

namespace mindiesd::io {

namespace fs = std::filesystem;

const char* component_kind_name(ComponentKind kind) {
  switch (kind) {
    case ComponentKind::Model:
      return "model";
    case ComponentKind::Scheduler:
      return "scheduler";
    case ComponentKind::Tokenizer:
      return "tokenizer";
    case ComponentKind::Processor:
      return "processor";
  }
  return "?";
}

namespace {

// model_index.json, configs and weight indexes are small; a cap keeps a wrong path (a 10 GB
// file named config.json) from being read into memory.
constexpr int64_t kMaxJsonBytes = int64_t{64} << 20;

nlohmann::json read_json(const fs::path& p) {
  return parse_json_strict(read_file(p, kMaxJsonBytes, "a JSON file"), p.string());
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// The kind follows diffusers/transformers class naming: *Scheduler, *Tokenizer[Fast],
// *ImageProcessor / *FeatureExtractor / *Processor; everything else is a model with weights.
ComponentKind kind_from_class(std::string_view cls) {
  if (contains(cls, "Scheduler")) return ComponentKind::Scheduler;
  if (contains(cls, "Tokenizer")) return ComponentKind::Tokenizer;
  if (contains(cls, "Processor") || contains(cls, "FeatureExtractor")) {
    return ComponentKind::Processor;
  }
  return ComponentKind::Model;
}

const char* config_file_for(ComponentKind kind) {
  switch (kind) {
    case ComponentKind::Model:
      return "config.json";
    case ComponentKind::Scheduler:
      return "scheduler_config.json";
    case ComponentKind::Tokenizer:
      return "tokenizer_config.json";
    case ComponentKind::Processor:
      return "preprocessor_config.json";
  }
  return "config.json";
}

constexpr const char* kTokenizerFileNames[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
};

// The weight layouts diffusers and transformers save, by variant ("" = none):
//   <base>.safetensors                      <base>.<variant>.safetensors
//   <base>.safetensors.index.json           <base>.safetensors.index.<variant>.json
// (+ shards named by the index), for base diffusion_pytorch_model (diffusers) and model
// (transformers).
std::map<std::string, WeightFiles> find_weights(const fs::path& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec)) names.insert(entry.path().filename().string());
  }
  MINDIESD_CHECK(!ec, Io, dir.string(), ": cannot list directory: ", ec.message());

  std::map<std::string, WeightFiles> found;
  for (const std::string base : {"diffusion_pytorch_model", "model"}) {
    std::map<std::string, WeightFiles> here;
    for (const std::string& n : names) {
      if (!n.starts_with(base + ".")) continue;
      const std::string rest = n.substr(base.size() + 1);
      if (rest == "safetensors.index.json" ||
          (rest.starts_with("safetensors.index.") && rest.ends_with(".json"))) {
        const std::string variant =
            rest == "safetensors.index.json"
                ? std::string()
                : rest.substr(18,
                              rest.size() - 18 - 5);  // between "safetensors.index." and ".json"
        if (variant.find('.') != std::string::npos) continue;
        WeightFiles w;
        w.variant = variant;
        w.index = dir / n;
        // Shards are listed for display; WeightStore::open_index validates them when opened.
        const nlohmann::json j = read_json(w.index);
        std::set<std::string> shards;
        if (j.is_object() && j.contains("weight_map") && j["weight_map"].is_object()) {
          for (const auto& [tensor, file] : j["weight_map"].items()) {
            if (file.is_string()) shards.insert(file.get<std::string>());
          }
        }
        for (const std::string& s : shards) w.files.push_back(dir / s);
        here[variant] = std::move(w);  // an index wins over a single file, as in diffusers
      } else if (rest == "safetensors" || rest.ends_with(".safetensors")) {
        const std::string variant =
            rest == "safetensors" ? std::string() : rest.substr(0, rest.size() - 12);
        // <base>.<variant>-00001-of-00002.safetensors is a variant shard, not a single file.
        if (variant.empty() && rest != "safetensors") continue;
        if (variant.find('.') != std::string::npos || contains(variant, "-of-")) continue;
        if (here.count(variant) && !here[variant].index.empty()) continue;
        WeightFiles w;
        w.variant = variant;
        w.files.push_back(dir / n);
        here[variant] = std::move(w);
      }
    }
    for (auto& [variant, w] : here) found.emplace(variant, std::move(w));  // first base wins
  }
  return found;
}

// Finds the component's config (required except for tokenizers), weights and tokenizer files.
void scan_component(Component& c, const DiffusersOpenOptions& options) {
  const fs::path cfg = c.dir / config_file_for(c.kind);
  if (is_file(cfg)) {
    c.config_path = cfg;
    c.config = read_json(cfg);
    MINDIESD_CHECK(c.config.is_object(), Corrupt, cfg.string(),
                   ": a config must be a JSON object, got ", json_type_word(c.config));
  } else {
    MINDIESD_CHECK(c.kind == ComponentKind::Tokenizer, NotFound, "component '", c.name, "' (",
                   c.class_name.empty() ? "unknown class" : c.class_name, ") has no ",
                   cfg.filename().string(), " at ", cfg.string());
  }

  std::map<std::string, WeightFiles> weights = find_weights(c.dir);
  for (const auto& [variant, w] : weights) c.variants.push_back(variant);
  if (!weights.empty()) {
    auto pick = weights.end();
    if (!options.variant.empty()) pick = weights.find(options.variant);
    if (pick == weights.end()) pick = weights.find("");
    for (const char* v : {"bf16", "fp16"}) {
      if (pick == weights.end()) pick = weights.find(v);
    }
    if (pick == weights.end()) pick = weights.begin();
    c.weights = pick->second;
  }

  for (const char* name : kTokenizerFileNames) {
    if (is_file(c.dir / name)) c.tokenizer_files.push_back(c.dir / name);
  }
}

}  // namespace

ConfigReader Component::config_reader() const {
  MINDIESD_CHECK(!config.is_null(), NotFound, "component '", name, "' (", class_name,
                 ") has no config in ", dir.string());
  return ConfigReader(config, config_path.string());
}

WeightStore Component::open_weights() const {
  MINDIESD_CHECK(weights.has_value(), NotFound, "component '", name, "' (", class_name,
                 ") has no safetensors weights in ", dir.string());
  if (!weights->index.empty()) return WeightStore::open_index(weights->index);
  return WeightStore::open_files(weights->files);
}

DiffusersFolder DiffusersFolder::open(const fs::path& path, const DiffusersOpenOptions& options) {
  fs::path dir = path;
  // A path to model_index.json or config.json itself means its folder.
  if (is_file(dir) && (dir.filename() == "model_index.json" || dir.filename() == "config.json")) {
    dir = dir.parent_path();
  }
  std::error_code ec;
  MINDIESD_CHECK(fs::exists(dir, ec), NotFound, dir.string(), ": no such directory");
  MINDIESD_CHECK(is_dir(dir), InvalidArgument, dir.string(),
                 ": not a directory (expected a diffusers model folder)");

  DiffusersFolder f;
  f.path_ = dir;
  const fs::path index_path = dir / "model_index.json";
  if (is_file(index_path)) {
    f.pipeline_ = true;
    f.model_index_ = read_json(index_path);
    const std::string src = index_path.string();
    const nlohmann::json& mi = f.model_index_;
    MINDIESD_CHECK(mi.is_object(), Corrupt, src, ": must be a JSON object, got ",
                   json_type_word(mi));
    const auto cls = mi.find("_class_name");
    MINDIESD_CHECK(cls != mi.end() && cls->is_string(), Corrupt, src,
                   ": no \"_class_name\" string naming the pipeline class");
    f.class_name_ = cls->get<std::string>();
    const auto ver = mi.find("_diffusers_version");
    if (ver != mi.end() && ver->is_string()) f.diffusers_version_ = ver->get<std::string>();

    for (const auto& [key, value] : mi.items()) {
      if (key.starts_with('_')) continue;
      // A component is [library, class] with strings or nulls; anything else (true, 0.875,
      // a list of numbers) is a pipeline option.
      const bool is_component =
          value.is_array() && value.size() == 2 &&
          std::all_of(value.begin(), value.end(),
                      [](const nlohmann::json& e) { return e.is_string() || e.is_null(); });
      if (!is_component) continue;
      // The name is also the folder name; a name that leaves the pipeline folder is refused.
      MINDIESD_CHECK(!key.empty() && key != "." && key != ".." &&
                         key.find('/') == std::string::npos && key.find('\\') == std::string::npos,
                     Corrupt, src, ": component name '", key, "' is not a folder name");
      Component c;
      c.name = key;
      if (value[0].is_string()) c.library = value[0].get<std::string>();
      if (value[1].is_string()) c.class_name = value[1].get<std::string>();
      c.enabled = value[0].is_string() && value[1].is_string();
      c.kind = kind_from_class(c.class_name);
      c.dir = dir / key;
      if (c.enabled) {
        MINDIESD_CHECK(is_dir(c.dir), NotFound, src, ": component '", key, "' (", c.library, " ",
                       c.class_name, ") has no folder ", c.dir.string());
        scan_component(c, options);
      }
      f.components_.push_back(std::move(c));
    }
    return f;
  }

  // A single component folder.
  const bool has_model_config = is_file(dir / "config.json");
  const bool has_scheduler_config = is_file(dir / "scheduler_config.json");
  MINDIESD_CHECK(has_model_config || has_scheduler_config, NotFound, dir.string(),
                 ": not a diffusers folder (no model_index.json for a pipeline, no config.json or "
                 "scheduler_config.json for a component)");
  Component c;
  fs::path norm = dir.lexically_normal();
  if (!norm.has_filename()) norm = norm.parent_path();
  c.name = norm.filename().string();
  c.dir = dir;
  c.kind = has_model_config ? ComponentKind::Model : ComponentKind::Scheduler;
  scan_component(c, options);
  const auto cls = c.config.find("_class_name");
  if (cls != c.config.end() && cls->is_string()) c.class_name = cls->get<std::string>();
  if (c.config.contains("_diffusers_version")) {
    c.library = "diffusers";
    if (c.config["_diffusers_version"].is_string()) {
      f.diffusers_version_ = c.config["_diffusers_version"].get<std::string>();
    }
  } else if (c.config.contains("transformers_version")) {
    c.library = "transformers";
  }
  f.class_name_ = c.class_name;
  f.components_.push_back(std::move(c));
  return f;
}

bool DiffusersFolder::has(std::string_view name) const {
  return std::any_of(components_.begin(), components_.end(),
                     [&](const Component& c) { return c.name == name; });
}

const Component& DiffusersFolder::component(std::string_view name) const {
  for (const Component& c : components_) {
    if (c.name == name) return c;
  }
  std::string names;
  for (const Component& c : components_) names += (names.empty() ? "" : ", ") + c.name;
  MINDIESD_THROW(NotFound, path_.string(), ": no component '", name,
                 "' (it has: ", names.empty() ? std::string("none") : names, ")");
}

}  // namespace mindiesd::io
