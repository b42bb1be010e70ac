#include "mindiesd/models/weights.h"

#include <algorithm>
#include <map>
#include <memory>

#include "mindiesd/core/error.h"

namespace mindiesd::models {

BoundWeights::BoundWeights(io::WeightStore store, DType dtype, std::string what)
    : store_(std::move(store)), dtype_(dtype), what_(std::move(what)) {
  MINDIESD_CHECK(store_.valid(), InvalidArgument, what_, ": no weights to bind");
}

Tensor BoundWeights::take(std::string_view name, const Shape& shape) {
  return take(name, shape, dtype_);
}

Tensor BoundWeights::take(std::string_view name, const Shape& shape, DType dtype) {
  if (!store_.has(name)) {
    missing_.push_back(str_cat(name, " ", shape.str()));
    return Tensor();
  }
  used_.emplace(name);
  const io::TensorInfo& info = store_.info(name);
  if (info.shape != shape) {
    misshaped_.push_back(str_cat(name, " is ", info.shape.str(), ", expected ", shape.str()));
    return Tensor();
  }
  Tensor t = store_.get(name);
  return t.dtype() == dtype ? t : t.to(dtype);
}

Tensor BoundWeights::take_optional(std::string_view name, const Shape& shape) {
  if (!store_.has(name)) return Tensor();
  return take(name, shape);
}

layer::Linear BoundWeights::linear(const std::string& name, int64_t out, int64_t in) {
  return linear(name, out, in, dtype_);
}

layer::Linear BoundWeights::linear(const std::string& name, int64_t out, int64_t in, DType dtype) {
  if (loader_) {
    std::vector<std::string> consumed;
    if (auto impl = loader_(name, &consumed)) {
      for (std::string& c : consumed) used_.insert(std::move(c));
      if (impl->out_features() != out || impl->in_features() != in) {
        misshaped_.push_back(str_cat(name, " (", impl->describe(), ") is (", impl->out_features(),
                                     ", ", impl->in_features(), "), expected (", out, ", ", in,
                                     ")"));
        return {name, Tensor(), Tensor(), nullptr};
      }
      return {name, Tensor(), Tensor(), std::move(impl)};
    }
  }
  return {name, take(name + ".weight", {out, in}, dtype), take(name + ".bias", {out}, dtype),
          nullptr};
}

void BoundWeights::ignore(std::string_view name) {
  if (store_.has(name)) used_.emplace(name);
}

namespace {
void append_list(std::string& msg, const char* title, const std::vector<std::string>& names) {
  if (names.empty()) return;
  msg += str_cat("\n  ", title, " (", names.size(), "):");
  for (size_t i = 0; i < names.size() && i < 20; ++i) msg += "\n    " + names[i];
  if (names.size() > 20) msg += str_cat("\n    ... and ", names.size() - 20, " more");
}
}  // namespace

void BoundWeights::finish() const {
  std::vector<std::string> unexpected;
  for (const std::string& n : store_.names())
    if (!used_.count(n)) unexpected.push_back(n);
  if (missing_.empty() && misshaped_.empty() && unexpected.empty()) return;
  std::string msg = str_cat(what_, ": the weights in ", store_.path().string(),
                            " do not match the model's config");
  append_list(msg, "missing", missing_);
  append_list(msg, "wrong shape", misshaped_);
  append_list(msg, "unexpected", unexpected);
  MINDIESD_THROW(InvalidArgument, msg);
}

layer::ModuleWeights module_weights_of(std::shared_ptr<const std::map<std::string, Tensor>> map,
                                       std::string prefix) {
  return layer::module_weights(
      [map](const std::string& name) {
        auto it = map->find(name);
        return it == map->end() ? Tensor() : it->second;
      },
      std::move(prefix));
}

void move_tensors(std::initializer_list<Tensor*> tensors, Device device) {
  for (Tensor* t : tensors) {
    if (t->defined()) *t = t->to(device);
  }
}

std::shared_ptr<const std::map<std::string, Tensor>> weights_on(
    std::shared_ptr<const std::map<std::string, Tensor>> map, Device device) {
  const bool there = std::all_of(map->begin(), map->end(), [&](const auto& kv) {
    return !kv.second.defined() || kv.second.device() == device;
  });
  if (there) return map;
  auto moved = std::make_shared<std::map<std::string, Tensor>>();
  for (const auto& [name, t] : *map) (*moved)[name] = t.defined() ? t.to(device) : t;
  return moved;
}

}  // namespace mindiesd::models
