#include "mindiesd/layer/activation.h"

#include <cctype>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::layer {

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {
      "gelu",  "gelu-tanh", "gelu_tanh", "gelu-fast", "gelu-quick", "quick_gelu", "silu",
      "swish", "silu_fp32", "relu",      "sigmoid",   "tanh",       "identity"};
  return names;
}

namespace {
Tensor quick_gelu(const Tensor& x) {
  // diffusers ApproximateGELU: x * torch.sigmoid(1.702 * x), three rounded ops in PyTorch.
  return ops::mul(x, ops::sigmoid(ops::affine(x, 1.702f, 0.0f)));
}
}  // namespace

ActivationFn get_activation_layer(std::string_view name) {
  std::string n(name);
  for (char& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (n == "gelu") return [](const Tensor& x) { return ops::gelu(x); };
  if (n == "gelu-tanh" || n == "gelu_tanh" || n == "gelu-fast")
    return [](const Tensor& x) { return ops::gelu(x, /*tanh_approx=*/true); };
  if (n == "gelu-quick" || n == "quick_gelu") return quick_gelu;
  if (n == "silu" || n == "swish" || n == "silu_fp32")
    return [](const Tensor& x) { return ops::silu(x); };
  if (n == "relu") return [](const Tensor& x) { return ops::relu(x); };
  if (n == "sigmoid") return [](const Tensor& x) { return ops::sigmoid(x); };
  if (n == "tanh") return [](const Tensor& x) { return ops::tanh(x); };
  if (n == "identity") return [](const Tensor& x) { return x; };
  std::string valid;
  for (const std::string& v : activation_names()) valid += (valid.empty() ? "" : ", ") + v;
  MINDIESD_THROW(InvalidArgument, "get_activation_layer: unknown activation '", name,
                 "'; valid names: ", valid);
}

Tensor gated_activation(const Tensor& x, const ActivationFn& act) {
  MINDIESD_CHECK(x.dim() >= 1 && x.size(-1) % 2 == 0, InvalidArgument,
                 "gated activation: the last dim of ", x.shape().str(),
                 " must be even (hidden and gate halves)");
  const int64_t f = x.size(-1) / 2;
  const Tensor hidden = x.narrow(-1, 0, f);
  const Tensor gate = x.narrow(-1, f, f);
  return ops::mul(hidden, act(gate));
}

Tensor geglu(const Tensor& x, bool tanh_approximation) {
  return gated_activation(x, [=](const Tensor& g) { return ops::gelu(g, tanh_approximation); });
}

Tensor swiglu(const Tensor& x) {
  return gated_activation(x, [](const Tensor& g) { return ops::silu(g); });
}

}  // namespace mindiesd::layer
