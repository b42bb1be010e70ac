// The quantization settings: the suite's algorithms by name (mindiesd.quantization: W8A8,
// W8A8_DYNAMIC, W8A8_TIMESTEP, W8A16, W4A16) plus FP8 E4M3 per-row dynamic (torchao's
// Float8DynamicActivationFloat8WeightConfig(PerRow), cache-dit's default), which layers they
// apply to, and the timestep policy of W8A8_TIMESTEP. What each scheme computes is written at its
// class in quant_linear.cpp; the CLI form is parse_quant_spec.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mindiesd::quant {

enum class QuantAlgo : uint8_t {
  W8A8,           // static: per-tensor affine activations (calibrated), per-channel weights
  W8A8_DYNAMIC,   // per-token symmetric activations, per-channel symmetric weights
  W8A8_TIMESTEP,  // W8A8 or W8A8_DYNAMIC chosen per denoising step (TimestepPolicyConfig)
  W8A16,          // int8 weights (per channel or per group), float activations
  W4A16,          // int4 weights, likewise
  FP8_DYNAMIC,    // e4m3 per-row activations and per-channel weights
};
// The suite's names ("W8A8_DYNAMIC", ...; "FP8_DYNAMIC" for the fp8 linear).
const char* algo_name(QuantAlgo algo);
bool algo_from_name(std::string_view name, QuantAlgo* out);
// Whether activations are quantized from calibrated ranges (W8A8, W8A8_TIMESTEP).
bool needs_calibration(QuantAlgo algo);

// W8A8_TIMESTEP's strategy per denoising step (the suite's TimestepPolicyConfig): steps
// registered "static" use the calibrated ranges of that step, every other step is dynamic.
class TimestepPolicyConfig {
 public:
  // Steps [first, last] (inclusive) use `strategy`, "static" or "dynamic"; later registrations
  // win where ranges overlap.
  TimestepPolicyConfig& register_steps(int64_t first, int64_t last, std::string_view strategy);
  bool is_static(int64_t step) const;
  bool empty() const { return ranges_.empty(); }
  std::string describe() const;  // "static 0-9, dynamic 5"

 private:
  struct Range {
    int64_t first, last;
    bool is_static;
  };
  std::vector<Range> ranges_;
};

struct QuantConfig {
  QuantAlgo algo = QuantAlgo::W8A8_DYNAMIC;
  // W8A16 / W4A16: input columns per weight scale; 0 = one scale per output channel. The field's
  // group sizes are 32, 64 and 128. A layer whose inputs the group does not divide gets one scale
  // per channel.
  int64_t group_size = 0;
  // Layers by diffusers module name. With default_exclusions, only the linears of the repeated
  // transformer blocks are quantized and their modulation (adaLN) projections are not: the
  // embedders, timestep / text projections and the final norm / projection stay float, as
  // cache-dit's regional quantization and the suite's exported models leave them. `exclude`
  // and `include` patterns (a '*' matches any run of characters; a pattern without '*' matches
  // as a substring) then remove or add layers, exclude winning.
  bool default_exclusions = true;
  std::vector<std::string> exclude, include;
  TimestepPolicyConfig timestep_policy;  // W8A8_TIMESTEP
  // Calibration (mindiesd quantize): SmoothQuant's migration strength alpha in (0, 1]; 0 = no
  // smoothing.
  double smooth_alpha = 0.0;
};

// "algo[:key=value,...]", the --quant form:
//   w8a8_dynamic | w8a8 | w8a8_timestep | w8a16 | w4a16 | fp8 (= fp8_dynamic)
//   group=32|64|128            (w8a16, w4a16)
//   exclude=P;P  include=P;P   (layer name patterns, ';'-separated)
//   all=1                      (no default exclusions)
//   static=A-B;C  dynamic=D-E  (w8a8_timestep: step ranges, inclusive)
// Names are case-insensitive. InvalidArgument naming the algorithm, key or value.
QuantConfig parse_quant_spec(std::string_view spec);

// One line: "W4A16 group=64 exclude=ff.net.2".
std::string describe(const QuantConfig& config);

// Whether the layer `name` is quantized under `config`.
bool selects(const QuantConfig& config, std::string_view name);

}  // namespace mindiesd::quant
