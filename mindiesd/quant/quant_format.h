// The suite's on-disk format for quantized models (msmodelslim's layout, read by
// mindiesd.quantization.quantize; ../shared/specs/quant-parallel.md section 1), in a model
// component's folder next to its config.json:
//   quant_model_description_<algo>.json    {"model_quant_type": "<ALGO>", "<tensor>": "<ALGO>" |
//                                           "FLOAT", ...}: every tensor of the model, each marked
//                                           with its layer's algorithm or FLOAT
//   quant_model_weight_<algo>.safetensors  every tensor: the float ones under their diffusers
//                                           names, a quantized layer's as quant_linear.h lists
//                                           them under "<layer>.", or with smoothing, mul_scale
//                                           as "<layer>.div.mul_scale" and the rest under
//                                           "<layer>.linear."
// A folder holding these needs no float weights: load_transformer() binds the float tensors and
// the quantized layers from the one file.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/weights.h"
#include "mindiesd/quant/quant_config.h"
#include "mindiesd/quant/quant_linear.h"

namespace mindiesd::quant {

// The quant_model_description_*.json in `dir`, if there is one (InvalidArgument when there are
// several).
std::optional<std::filesystem::path> find_quant_description(const std::filesystem::path& dir);

// A description's content: its model_quant_type and each entry (tensor name -> algorithm or
// "FLOAT"). Corrupt / Unsupported naming `source` as QuantizedCheckpoint::open reports them.
struct QuantDescription {
  QuantAlgo model_quant_type = QuantAlgo::W8A8_DYNAMIC;
  std::map<std::string, std::string> entries;
};
QuantDescription parse_quant_description(std::string_view text, std::string_view source);

class QuantizedCheckpoint {
 public:
  // Reads the description in `dir` and maps its weight file. Corrupt / InvalidArgument naming
  // the file for a malformed description: not an object, no model_quant_type, a value that is
  // not a string, an algorithm this build does not run.
  static QuantizedCheckpoint open(const std::filesystem::path& dir);

  QuantAlgo model_quant_type() const { return model_type_; }
  const io::WeightStore& store() const { return store_; }
  // The layer's algorithm per the description (nullopt: FLOAT or not listed).
  std::optional<QuantAlgo> algo_of(const std::string& layer) const;
  // Builds each quantized layer from its tensors when a model binds it (errors name the layer's
  // tensor); `policy` is W8A8_TIMESTEP's.
  models::LinearLoader loader(const TimestepPolicyConfig& policy = {}) const;

 private:
  QuantAlgo model_type_ = QuantAlgo::W8A8_DYNAMIC;
  std::map<std::string, std::string> entries_;
  std::filesystem::path description_;
  io::WeightStore store_;
};

// The file names for an algorithm: quant_model_description_w8a8_dynamic.json, ...
std::string description_file_name(QuantAlgo algo);
std::string weight_file_name(QuantAlgo algo);

// Writes the two files into `dir` for a model bound from `source`: each of source's tensors
// as it is (FLOAT), except the weight and bias of a layer in `layers`, which are replaced by the
// layer's tensors. Files are written atomically.
void save_quantized(const std::filesystem::path& dir, QuantAlgo algo, const io::WeightStore& source,
                    const std::map<std::string, std::shared_ptr<const QuantizedLinear>>& layers);

// A quantized copy of the pipeline folder `model_dir` at `out_dir` (which must not exist or be
// empty): every file linked (copied across file systems) except the transformer's float
// weights, and the two files of save_quantized() in out_dir/transformer.
void save_quantized_pipeline(
    const std::filesystem::path& model_dir, const std::filesystem::path& out_dir, QuantAlgo algo,
    const std::map<std::string, std::shared_ptr<const QuantizedLinear>>& layers);

// The quantized layers of a model, by name.
template <typename Model>
std::map<std::string, std::shared_ptr<const QuantizedLinear>> quantized_layers(const Model& model) {
  std::map<std::string, std::shared_ptr<const QuantizedLinear>> out;
  model.for_each_linear([&](const layer::Linear& l) {
    if (auto q = std::dynamic_pointer_cast<const QuantizedLinear>(l.impl)) out[l.name] = q;
  });
  return out;
}

// A transformer component, float or quantized (a folder with a quant description).
template <typename Model, typename Config>
Model load_transformer(const io::Component& component, DType dtype) {
  if (!find_quant_description(component.dir)) return Model::load(component, dtype);
  io::ConfigReader reader = component.config_reader();
  Config config = Config::read(reader);
  const QuantizedCheckpoint q = QuantizedCheckpoint::open(component.dir);
  return Model::from_weights(std::move(config), q.store(), dtype, q.loader());
}

}  // namespace mindiesd::quant
