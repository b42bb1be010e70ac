// Binding a model to a diffusers/transformers state dict.
//
// A model asks for each tensor by its state-dict name and expected shape while it is built;
// nothing is thrown per tensor. finish() then reports every problem at once — tensors that are
// missing, tensors whose shape differs from what the config implies, and tensors in the file
// that the model never asked for — so a wrong config or a truncated checkpoint names all the
// offending tensors in one error instead of failing on the first.
//
//   BoundWeights w(store, DType::bf16, "FluxTransformer2DModel");
//   Tensor q = w.take("transformer_blocks.0.attn.to_q.weight", {inner, dim});
//   ...
//   w.finish();  // InvalidArgument listing missing / mis-shaped / unexpected names
//
// Tensors stored in the compute dtype are the mmapped tensors themselves (no copy); others are
// converted once at bind time.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/core/tensor.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/layer/embedding.h"
#include "mindiesd/layer/linear.h"

namespace mindiesd::models {

// Supplies a linear layer that a checkpoint holds quantized (quant/quant_format.h): the layer's
// impl, with the names of the tensors it read appended to `consumed`; nullptr for a layer the
// checkpoint holds as float.
using LinearLoader = std::function<std::shared_ptr<const layer::LinearImpl>(
    const std::string& layer, std::vector<std::string>* consumed)>;

class BoundWeights {
 public:
  // `what` names the model in errors ("FluxTransformer2DModel at <path>").
  BoundWeights(io::WeightStore store, DType dtype, std::string what);

  DType dtype() const { return dtype_; }
  const io::WeightStore& store() const { return store_; }

  // The tensor `name`, converted to dtype() (or to `dtype` when given). A missing or
  // mis-shaped tensor is recorded and an undefined Tensor returned; finish() reports it.
  Tensor take(std::string_view name, const Shape& shape);
  Tensor take(std::string_view name, const Shape& shape, DType dtype);
  // For tensors a config may or may not have (a bias of a bias=False layer): undefined when
  // absent, recorded as used when present (still shape-checked).
  Tensor take_optional(std::string_view name, const Shape& shape);
  // The linear layer `name` ("<name>.weight" (out, in) and "<name>.bias" (out), in dtype() or
  // `dtype`), or its quantized form when the loader has one (checked against out and in).
  layer::Linear linear(const std::string& name, int64_t out, int64_t in);
  layer::Linear linear(const std::string& name, int64_t out, int64_t in, DType dtype);
  void set_linear_loader(LinearLoader loader) { loader_ = std::move(loader); }
  // Marks tensors as known but unused (buffers like position_ids that a port recomputes).
  void ignore(std::string_view name);

  // InvalidArgument listing every missing, mis-shaped and unexpected tensor (up to 20 of
  // each, then a count). No-op when the binding is complete.
  void finish() const;

 private:
  io::WeightStore store_;
  DType dtype_;
  std::string what_;
  std::set<std::string, std::less<>> used_;
  std::vector<std::string> missing_, misshaped_;
  LinearLoader loader_;
};

// A layer::ModuleWeights over tensors already bound (name -> tensor), for the layer functions
// that look weights up by their diffusers names.
layer::ModuleWeights module_weights_of(std::shared_ptr<const std::map<std::string, Tensor>> map,
                                       std::string prefix = "");

// Replaces every defined tensor among `tensors` with its copy on `device` (the models' to()).
void move_tensors(std::initializer_list<Tensor*> tensors, Device device);

// The same weights with every tensor on `device` (copied there; `map` itself when it is already
// there).
std::shared_ptr<const std::map<std::string, Tensor>> weights_on(
    std::shared_ptr<const std::map<std::string, Tensor>> map, Device device);

}  // namespace mindiesd::models
