#include "mindiesd/core/op.h"

#include <algorithm>
#include <optional>
#include <string>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd {

const char* op_name(OpId op) {
  static constexpr const char* kNames[] = {
#define MINDIESD_OP_NAME(name) #name,
      MINDIESD_OPS(MINDIESD_OP_NAME)
#undef MINDIESD_OP_NAME
  };
  const int i = static_cast<int>(op);
  return i < kNumOps ? kNames[i] : "?";
}

bool KernelEntry::accepts(std::span<const DType> in, std::span<const DType> out) const {
  for (size_t i = 0; i < in.size(); ++i) {
    const DTypeSet& s = inputs.empty() ? DTypeSet::all() : inputs[std::min(i, inputs.size() - 1)];
    if (!s.contains(in[i])) return false;
  }
  for (DType t : out)
    if (!outputs.contains(t)) return false;
  return true;
}

void KernelRegistry::add(OpId op, DeviceType device, std::initializer_list<DTypeSet> inputs,
                         DTypeSet outputs, KernelFn fn) {
  entries_.push_back(KernelEntry{op, device, std::vector<DTypeSet>(inputs), outputs, fn});
}

const KernelEntry* KernelRegistry::find(OpId op, DeviceType device, std::span<const DType> in,
                                        std::span<const DType> out) const {
  for (const KernelEntry& e : entries_)
    if (e.op == op && e.device == device && e.accepts(in, out)) return &e;
  return nullptr;
}

void KernelRegistry::clear() { entries_.clear(); }

KernelRegistry& kernel_registry() {
  static KernelRegistry registry;
  return registry;
}

namespace {
std::string dtype_list(std::span<const DType> ts) {
  std::string s = "(";
  for (size_t i = 0; i < ts.size(); ++i) s += (i ? ", " : "") + std::string(dtype_name(ts[i]));
  return s + ")";
}
}  // namespace

void dispatch(OpId op, std::span<const Tensor> inputs, std::span<const Tensor> outputs,
              const void* params) {
  std::vector<DType> in_types, out_types;
  std::optional<Device> device;
  auto visit = [&](const Tensor& t, std::vector<DType>& types) {
    if (!t.defined()) return;
    types.push_back(t.dtype());
    if (!device) {
      device = t.device();
    } else {
      MINDIESD_CHECK(*device == t.device(), InvalidArgument, op_name(op),
                     ": tensors on different devices (", device->str(), " and ",
                     t.device().str(), ")");
    }
  };
  for (const Tensor& t : inputs) visit(t, in_types);
  for (const Tensor& t : outputs) visit(t, out_types);
  MINDIESD_ASSERT(device.has_value(), op_name(op), " called without tensors");
  Backend& backend = backend_for(*device);
  const KernelEntry* k = kernel_registry().find(op, device->type, in_types, out_types);
  MINDIESD_CHECK(k != nullptr, Unsupported, op_name(op), " has no ",
                 device_type_name(device->type), " kernel for inputs ", dtype_list(in_types),
                 " -> ", dtype_list(out_types));
  OpCall call{op, inputs, outputs, params, &backend.default_stream(device->index)};
  k->fn(call);
}

}  // namespace mindiesd
