// FlowMatchEulerDiscreteScheduler against diffusers 0.42.1: the FLUX schedule recorded by
// tools/golden/make_flux_golden.py (dynamic shift from the image sequence length), and the
// static / linear / terminal-stretch schedules printed by diffusers for the configs below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compare.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/schedulers/flow_match_euler.h"
#include "mindiesd/schedulers/unipc_multistep.h"
#include "test_util.h"

namespace mindiesd {
namespace {

using schedulers::FlowMatchEulerDiscreteScheduler;
using test::expect_error;

const std::string kFlux = MINDIESD_SOURCE_DIR "/tests/data/golden/flux/io.safetensors";

io::FlowMatchEulerDiscreteSchedulerConfig flux_config() {
  io::FlowMatchEulerDiscreteSchedulerConfig c;  // FLUX.1-dev's scheduler_config.json
  c.shift = 3.0;
  c.use_dynamic_shifting = true;
  return c;
}

// FluxPipeline: sigmas = linspace(1, 1/N, N), mu = calculate_shift(image_seq_len).
std::vector<double> flux_sigmas(int n) {
  std::vector<double> s(n);
  for (int i = 0; i < n; ++i) s[i] = 1.0 + i * ((1.0 / n - 1.0) / (n - 1));
  s[n - 1] = 1.0 / n;
  return s;
}

void expect_same_floats(const std::vector<float>& got, const Tensor& want, const char* what) {
  const std::vector<float> w = want.to_vector();
  ASSERT_EQ(got.size(), w.size()) << what;
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(got[i], w[i]) << what << "[" << i << "]";
}

TEST(FlowMatchEuler, FluxScheduleEqualsDiffusersBitForBit) {
  const auto golden = io::WeightStore::open(kFlux);
  struct Run {
    const char* prefix;
    int steps;
    int64_t seq_len;
  };
  for (const Run& run : {Run{"b", 4, 64}, Run{"r", 3, 60}}) {
    FlowMatchEulerDiscreteScheduler s(flux_config());
    s.set_timesteps(run.steps, flux_sigmas(run.steps),
                    schedulers::flux_calculate_shift(run.seq_len));
    expect_same_floats(s.timesteps(), golden.get(std::string(run.prefix) + ".timesteps"),
                       "timesteps");
    expect_same_floats(s.sigmas(), golden.get(std::string(run.prefix) + ".sigmas"), "sigmas");
  }
}

TEST(FlowMatchEuler, DefaultSchedulesEqualDiffusers) {
  {  // FlowMatchEulerDiscreteScheduler(shift=3.0).set_timesteps(5)
    io::FlowMatchEulerDiscreteSchedulerConfig c;
    c.shift = 3.0;
    FlowMatchEulerDiscreteScheduler s(c);
    s.set_timesteps(5);
    const std::vector<double> t = {1000.0, 900.3590698242188, 751.12109375, 502.98504638671875,
                                   8.928571701049805};
    const std::vector<double> sig = {
        1.0, 0.9003590941429138, 0.7511211037635803, 0.5029850602149963, 0.008928571827709675, 0.0};
    for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(s.timesteps()[i], float(t[i])) << i;
    for (size_t i = 0; i < sig.size(); ++i) EXPECT_EQ(s.sigmas()[i], float(sig[i])) << i;
  }
  {  // (use_dynamic_shifting, time_shift_type="linear", shift_terminal=0.1).set_timesteps(4,
     // mu=0.8)
    io::FlowMatchEulerDiscreteSchedulerConfig c;
    c.use_dynamic_shifting = true;
    c.time_shift_type = "linear";
    c.shift_terminal = 0.1;
    FlowMatchEulerDiscreteScheduler s(c);
    s.set_timesteps(4, std::nullopt, 0.8);
    const std::vector<double> t = {1000.0, 653.8887329101562, 357.17962646484375, 100.0};
    for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(s.timesteps()[i], float(t[i])) << i;
    EXPECT_EQ(s.sigmas().back(), 0.0f);
  }
}

TEST(FlowMatchEuler, StepIsEulerOnTheVelocity) {
  FlowMatchEulerDiscreteScheduler s(flux_config());
  s.set_timesteps(4, flux_sigmas(4), 0.7);
  const Tensor x = ops::randn({2, 5, 3}, 1), v = ops::randn({2, 5, 3}, 2);
  const Tensor y = s.step(v, 1, x);
  const float dt = s.sigmas()[2] - s.sigmas()[1];
  const std::vector<float> xv = x.to_vector(), vv = v.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(yv[i], xv[i] + dt * vv[i]) << i;
  // bf16 model output: the product rounds to bf16, the sum to f32, the result to bf16.
  const Tensor yb = s.step(v.to(DType::bf16), 1, x.to(DType::bf16));
  EXPECT_EQ(yb.dtype(), DType::bf16);
  const std::vector<float> xb = x.to(DType::bf16).to_vector(), vb = v.to(DType::bf16).to_vector(),
                           ybv = yb.to_vector();
  for (size_t i = 0; i < xb.size(); ++i) {
    const float prod = bf16_to_f32(f32_to_bf16(dt * vb[i]));
    EXPECT_EQ(ybv[i], bf16_to_f32(f32_to_bf16(xb[i] + prod))) << i;
  }
}

TEST(FlowMatchEuler, BadArgumentsAreClearErrors) {
  FlowMatchEulerDiscreteScheduler s(flux_config());
  expect_error([&] { s.set_timesteps(4); }, ErrorKind::InvalidArgument, {"mu must be given"});
  expect_error([&] { s.set_timesteps(0, std::nullopt, 0.5); }, ErrorKind::InvalidArgument,
               {"num_inference_steps must be positive"});
  expect_error(
      [&] {
        s.set_timesteps(4, std::vector<double>{1, 0.5, 0.2}, 0.5);
      },
      ErrorKind::InvalidArgument, {"3 sigmas given"});
  expect_error(
      [&] {
        s.set_timesteps(2, std::vector<double>{1, 0}, 0.5);
      },
      ErrorKind::InvalidArgument, {"must lie in (0, 1]"});
  s.set_timesteps(2, std::vector<double>{1, 0.5}, 0.5);
  const Tensor x = ops::randn({4}, 1);
  expect_error([&] { s.step(x, 2, x); }, ErrorKind::InvalidArgument, {"outside [0, 2)"});
  expect_error([&] { s.step(x, 0, ops::randn({5}, 1)); }, ErrorKind::InvalidArgument, {"differ"});
  io::FlowMatchEulerDiscreteSchedulerConfig k;
  k.use_karras_sigmas = true;
  FlowMatchEulerDiscreteScheduler karras(k);
  expect_error([&] { karras.set_timesteps(4); }, ErrorKind::Unsupported, {"karras"});
}

// ---- UniPCMultistepScheduler (tools/golden/make_unipc_golden.py) ----

const std::string kUniPC = MINDIESD_SOURCE_DIR "/tests/data/golden/unipc";

nlohmann::json unipc_cases() {
  std::ifstream f(kUniPC + "/cases.json");
  return nlohmann::json::parse(f);
}

DType parse_dtype(const std::string& name) {
  DType t = DType::f32;
  EXPECT_TRUE(dtype_from_name(name, &t)) << name;
  return t;
}

schedulers::UniPCMultistepScheduler unipc_from(const nlohmann::json& config) {
  nlohmann::json j = config;
  j["_class_name"] = "UniPCMultistepScheduler";
  io::ConfigReader r(j, "unipc golden");
  return schedulers::UniPCMultistepScheduler(io::UniPCMultistepSchedulerConfig::read(r));
}

// Every golden case: the schedule bit for bit, then the whole denoising replayed on diffusers'
// model outputs, each step's sample against diffusers' (f32: measured <= 1.2e-6, the 3x3 solve
// and the f32 scalar chain; bf16 samples end to end: 2 of 720 elements a bf16 ulp off per step,
// one of them 2 ulps at steps 3-4 — not yet traced to the PyTorch op that rounds differently).
TEST(UniPCMultistepScheduler, ReplaysDiffusersGoldens) {
  const io::WeightStore g = io::WeightStore::open(kUniPC + "/io.safetensors");
  const nlohmann::json cases = unipc_cases();
  for (const auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    schedulers::UniPCMultistepScheduler s = unipc_from(c["config"]);
    std::optional<std::vector<double>> sigmas;
    if (!c["sigmas"].is_null()) sigmas = c["sigmas"].get<std::vector<double>>();
    std::optional<double> mu;
    if (!c["mu"].is_null()) mu = c["mu"].get<double>();
    s.set_timesteps(c["num_inference_steps"].get<int64_t>(), sigmas, mu);
    EXPECT_EQ(s.timesteps(), c["timesteps"].get<std::vector<int64_t>>());
    const std::vector<double> want_sigmas = c["schedule_sigmas"].get<std::vector<double>>();
    ASSERT_EQ(s.sigmas().size(), want_sigmas.size());
    for (size_t k = 0; k < want_sigmas.size(); ++k)
      EXPECT_EQ(s.sigmas()[k], static_cast<float>(want_sigmas[k])) << "sigma " << k;

    const DType sample_dt = parse_dtype(c["sample_dtype"].get<std::string>());
    const DType output_dt = parse_dtype(c["output_dtype"].get<std::string>());
    Tensor x = g.get(name + ".sample0").to(sample_dt);
    double worst = 0;
    for (int64_t i = 0; i < s.num_inference_steps(); ++i) {
      const std::string k = str_cat(name, ".", "model_output.", i);
      x = s.step(g.get(k).to(output_dt), x);
      ASSERT_EQ(x.dtype(), sample_dt);
      const std::vector<float> got = x.to_vector();
      const std::vector<float> want = g.get(str_cat(name, ".prev_sample.", i)).to_vector();
      if (name == "order3_bh1" && i == 8) {
        // The last step repeats the last sigma (sigma_min): diffusers' third-order update
        // divides by h = 0 and returns NaN; ours is the identity (ZeroLengthStepIsTheIdentity).
        EXPECT_TRUE(std::all_of(want.begin(), want.end(), [](float v) { return std::isnan(v); }));
        EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](float v) { return std::isfinite(v); }));
        continue;
      }
      const test::Diff d = test::diff_values(got, want);
      worst = std::max(worst, d.max_abs);
      int bad = 0;
      for (size_t e = 0; e < got.size(); ++e) {
        const double mag = std::max(1.0, std::fabs(double(want[e])));
        const double tol = sample_dt == DType::f32 ? 2e-6 * mag : std::ldexp(1.0, -6) * mag;
        // Written so that a NaN on either side counts as out of tolerance.
        if (!(std::fabs(double(got[e]) - want[e]) <= tol) && ++bad <= 3)
          ADD_FAILURE() << "step " << i << " element " << e << ": " << got[e] << " vs " << want[e];
      }
      EXPECT_EQ(bad, 0) << "step " << i;
      EXPECT_EQ(d.nonfinite, 0) << "step " << i;
    }
    std::printf("  unipc %-16s %2lld steps, max |diff| %.3g\n", name.c_str(),
                static_cast<long long>(s.num_inference_steps()), worst);
    EXPECT_THROW(s.step(g.get(name + ".sample0"), x), Error);  // past the last step
  }
}

TEST(UniPCMultistepScheduler, RefusesWhatItDoesNotImplement) {
  nlohmann::json c = unipc_cases()["wan"]["config"];
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, nlohmann::json>>{{"use_flow_sigmas", false},
                                                           {"prediction_type", "epsilon"},
                                                           {"predict_x0", false},
                                                           {"thresholding", true}}) {
    nlohmann::json bad = c;
    bad[field] = value;
    expect_error([&] { (void)unipc_from(bad); }, ErrorKind::Unsupported, {field});
  }
  nlohmann::json bad = c;
  bad["solver_order"] = 4;
  expect_error([&] { (void)unipc_from(bad); }, ErrorKind::InvalidArgument, {"solver_order"});
  schedulers::UniPCMultistepScheduler s = unipc_from(c);
  expect_error([&] { s.set_timesteps(3, std::vector<double>{1.0, 0.0}); },
                     ErrorKind::InvalidArgument, {"sigma 0"});
  c["use_dynamic_shifting"] = true;
  schedulers::UniPCMultistepScheduler d = unipc_from(c);
  expect_error([&] { d.set_timesteps(4); }, ErrorKind::InvalidArgument, {"mu is required"});
  expect_error([&] { (void)s.step(Tensor::zeros({2}, DType::f32), Tensor::zeros({2}, DType::f32)); },
                     ErrorKind::InvalidArgument, {"set_timesteps"});
}

TEST(UniPCMultistepScheduler, ZeroLengthStepIsTheIdentity) {
  // final_sigmas_type "sigma_min" repeats the last sigma, so the last step has h = 0; with the
  // corrector off the step must hand back its sample, for every solver order.
  for (int order : {1, 2, 3}) {
    nlohmann::json c = unipc_cases()["wan"]["config"];
    c["solver_order"] = order;
    c["solver_type"] = "bh1";
    c["lower_order_final"] = false;
    c["final_sigmas_type"] = "sigma_min";
    c["disable_corrector"] = {0, 1, 2, 3};
    schedulers::UniPCMultistepScheduler s = unipc_from(c);
    s.set_timesteps(4);
    ASSERT_EQ(s.sigmas()[4], s.sigmas()[3]);
    Tensor x = ops::randn({2, 3, 5}, 1);
    for (int i = 0; i < 3; ++i) x = s.step(ops::randn({2, 3, 5}, 10 + i), x);
    const Tensor last = s.step(ops::randn({2, 3, 5}, 20), x);
    EXPECT_EQ(last.to_vector(), x.to_vector()) << "order " << order;
  }
}

}  // namespace
}  // namespace mindiesd
