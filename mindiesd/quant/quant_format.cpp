#include "mindiesd/quant/quant_format.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"
#include "mindiesd/io/json_util.h"

namespace mindiesd::quant {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDescriptionPrefix = "quant_model_description_";
constexpr int64_t kMaxDescriptionBytes = int64_t{64} << 20;
constexpr const char* kRunnable = "W8A8, W8A8_DYNAMIC, W8A8_TIMESTEP, W8A16, W4A16, FP8_DYNAMIC";
// A layer's tensors under the suite's names (mul_scale is stored as "div.mul_scale").
constexpr const char* kLayerTensors[] = {"weight",       "weight_scale", "bias",      "input_scale",
                                         "input_offset", "deq_scale",    "quant_bias"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string description_file_name(QuantAlgo a) {
  return kDescriptionPrefix + lower(algo_name(a)) + ".json";
}
std::string weight_file_name(QuantAlgo a) {
  return "quant_model_weight_" + lower(algo_name(a)) + ".safetensors";
}

std::optional<fs::path> find_quant_description(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  std::optional<fs::path> found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kDescriptionPrefix, 0) != 0 || e.path().extension() != ".json") continue;
    MINDIESD_CHECK(!found, InvalidArgument, dir.string(),
                   ": more than one quantization description (", found->filename().string(),
                   " and ", name, ")");
    found = e.path();
  }
  return found;
}

QuantDescription parse_quant_description(std::string_view text, std::string_view source) {
  const std::string src(source);
  const nlohmann::json j = io::parse_json_strict(text, src);
  MINDIESD_CHECK(j.is_object(), Corrupt, src, ": the description must be a JSON object, got ",
                 io::json_type_word(j));
  QuantDescription d;
  auto t = j.find("model_quant_type");
  MINDIESD_CHECK(t != j.end(), Corrupt, src, ": model_quant_type is missing");
  MINDIESD_CHECK(t->is_string(), Corrupt, src, ": model_quant_type must be a string, got ",
                 io::json_type_word(*t));
  MINDIESD_CHECK(algo_from_name(t->get<std::string>(), &d.model_quant_type), Unsupported, src,
                 ": model_quant_type '", t->get<std::string>(), "' is not one this build runs (",
                 kRunnable, ")");
  for (const auto& [key, value] : j.items()) {
    if (key == "model_quant_type") continue;
    MINDIESD_CHECK(value.is_string(), Corrupt, src, ": entry '", key,
                   "' must be an algorithm name or \"FLOAT\", got ", io::json_type_word(value));
    const std::string v = value.get<std::string>();
    QuantAlgo a;
    MINDIESD_CHECK(v == "FLOAT" || algo_from_name(v, &a), Unsupported, src, ": entry '", key,
                   "': algorithm '", v, "' is not one this build runs (", kRunnable, ")");
    d.entries[key] = v;
  }
  return d;
}

QuantizedCheckpoint QuantizedCheckpoint::open(const fs::path& dir) {
  const std::optional<fs::path> desc = find_quant_description(dir);
  MINDIESD_CHECK(desc.has_value(), NotFound, dir.string(), ": no ", kDescriptionPrefix, "*.json");
  const std::string src = desc->string();
  QuantDescription d =
      parse_quant_description(io::read_file(*desc, kMaxDescriptionBytes, "a JSON file"), src);
  QuantizedCheckpoint q;
  q.description_ = *desc;
  q.model_type_ = d.model_quant_type;
  q.entries_ = std::move(d.entries);
  // The weight file named after the description's suffix (the suite's pairing).
  const std::string suffix = desc->stem().string().substr(std::string(kDescriptionPrefix).size());
  const fs::path weights = dir / ("quant_model_weight_" + suffix + ".safetensors");
  MINDIESD_CHECK(fs::exists(weights), NotFound, src, ": its weight file ", weights.string(),
                 " is missing");
  q.store_ = io::WeightStore::open(weights);
  return q;
}

std::optional<QuantAlgo> QuantizedCheckpoint::algo_of(const std::string& layer) const {
  for (const std::string& key : {layer + ".weight", layer + ".linear.weight", layer}) {
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    QuantAlgo a;
    if (it->second == "FLOAT" || !algo_from_name(it->second, &a)) return std::nullopt;
    return a;
  }
  return std::nullopt;
}

models::LinearLoader QuantizedCheckpoint::loader(const TimestepPolicyConfig& policy) const {
  const QuantizedCheckpoint self = *this;  // the store is shared; the loader outlives this object
  return [self, policy](
             const std::string& layer,
             std::vector<std::string>* consumed) -> std::shared_ptr<const layer::LinearImpl> {
    const std::optional<QuantAlgo> a = self.algo_of(layer);
    if (!a) return nullptr;
    const std::string smooth = layer + ".div.mul_scale";
    const bool smoothed = self.store_.has(smooth);
    const std::string prefix = smoothed ? layer + ".linear." : layer + ".";
    TensorMap t;
    for (const char* name : kLayerTensors) {
      if (!self.store_.has(prefix + name)) continue;
      t[name] = self.store_.get(prefix + name);
      consumed->push_back(prefix + name);
    }
    if (smoothed) {
      t["mul_scale"] = self.store_.get(smooth);
      consumed->push_back(smooth);
    }
    MINDIESD_CHECK(t.count("weight"), InvalidArgument, self.store_.path().string(), ": layer ",
                   layer, " is ", algo_name(*a), " in ", self.description_.filename().string(),
                   " but its tensor ", prefix, "weight is missing");
    return QuantizedLinear::from_tensors(*a, layer, std::move(t), policy);
  };
}

void save_quantized(const fs::path& dir, QuantAlgo algo, const io::WeightStore& source,
                    const std::map<std::string, std::shared_ptr<const QuantizedLinear>>& layers) {
  fs::create_directories(dir);
  nlohmann::ordered_json desc;
  desc["model_quant_type"] = algo_name(algo);
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::set<std::string> replaced;
  for (const auto& [name, q] : layers) {
    const bool smoothed = q->tensors().count("mul_scale") > 0;
    for (const auto& [tn, t] : q->tensors()) {
      const std::string key =
          tn == "mul_scale" ? name + ".div.mul_scale" : name + (smoothed ? ".linear." : ".") + tn;
      // W4A16 holds its weight packed; the file keeps the int4 values in int8.
      tensors.emplace_back(key, t.dtype() == DType::i4 ? t.to(DType::i8) : t);
      desc[key] = algo_name(q->algo());
    }
    replaced.insert(name + ".weight");
    replaced.insert(name + ".bias");
  }
  for (const std::string& n : source.names()) {
    if (replaced.count(n)) continue;
    tensors.emplace_back(n, source.get(n));
    desc[n] = "FLOAT";
  }
  // Larger elements first keeps every tensor aligned to its element size.
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    return dtype_bits(a.second.dtype()) > dtype_bits(b.second.dtype());
  });
  io::save_safetensors(dir / weight_file_name(algo), tensors);
  const std::string text = desc.dump(2) + "\n";
  io::write_file_atomic(dir / description_file_name(algo),
                        [&](io::FileSink& f) { f.write(text.data(), text.size()); });
}

void save_quantized_pipeline(
    const fs::path& model_dir, const fs::path& out_dir, QuantAlgo algo,
    const std::map<std::string, std::shared_ptr<const QuantizedLinear>>& layers) {
  std::error_code ec;
  MINDIESD_CHECK(!fs::exists(out_dir, ec) || fs::is_empty(out_dir, ec), InvalidArgument,
                 out_dir.string(), " exists and is not empty");
  const io::DiffusersFolder folder = io::DiffusersFolder::open(model_dir);
  const io::Component& transformer = folder.component("transformer");
  const fs::path tdir = fs::canonical(transformer.dir);
  fs::create_directories(out_dir);
  for (auto it = fs::recursive_directory_iterator(model_dir);
       it != fs::recursive_directory_iterator(); ++it) {
    const fs::path dst = out_dir / fs::relative(it->path(), model_dir);
    if (it->is_directory()) {
      fs::create_directories(dst);
      continue;
    }
    const std::string name = it->path().filename().string();
    if (fs::canonical(it->path().parent_path()) == tdir &&
        (name.find(".safetensors") != std::string::npos || name.starts_with("quant_model_")))
      continue;  // the float weights (and their index) stay behind
    fs::create_hard_link(it->path(), dst, ec);
    if (ec) fs::copy_file(it->path(), dst);
  }
  save_quantized(out_dir / fs::relative(transformer.dir, model_dir), algo,
                 transformer.open_weights(), layers);
}

}  // namespace mindiesd::quant
