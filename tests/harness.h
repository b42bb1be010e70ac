// The differential harness (DESIGN.md, Conventions 6): a Case builds its inputs, runs an op
// through the public front ends on every available backend, and compares with the float64
// reference in mindiesd/kernel/ref under the tolerance table in tolerance.h. Op families
// add their cases in their own test files.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/ref/ref.h"
#include "tolerance.h"

namespace mindiesd::test {

using ref::Array;
using Views = std::function<Tensor(const Tensor&)>;

enum class Domain { normal, positive, index, boolean };

struct Input {
  Shape shape;
  DType dtype = DType::f32;
  Domain domain = Domain::normal;
  Views view = nullptr;     // applied after generation (and after moving to the device)
  int64_t index_range = 0;  // Domain::index: values in [0, index_range)
};

struct Case {
  std::string name;
  std::vector<Input> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> run;
  std::function<Array(const std::vector<Array>&)> reference;
  DType tol_dtype = DType::f32;
  OpClass cls = OpClass::elementwise;
};

// The devices with a backend present: CPU, and CUDA when built and a GPU is visible.
std::vector<Device> devices();
// Seeded inputs, the reference once, then every device; failures are gtest failures.
void run_case(const Case& c);
void compare(const Array& got, const Array& want, Tolerance tol, const std::string& what);
// Rounds reference values through a dtype (for ops whose exact result is stored in it).
Array round_to(const Array& a, DType t);

inline constexpr DType kFloats[] = {DType::f32, DType::bf16, DType::f16};
inline Tensor transposed(const Tensor& t) { return t.transpose(0, 1); }
inline Tensor strided(const Tensor& t) { return t.slice(-1, 0, t.size(-1), 2); }

}  // namespace mindiesd::test

// Registers a parameterised suite with one test per Case of `generator` (a function returning
// std::vector<Case>, built once on first use), named Prefix/Suite.MatchesFloat64Reference/<case
// name>. Use at namespace scope, followed by a semicolon:
//   MINDIESD_HARNESS_SUITE(AllOps, OpHarness, all_cases);
#define MINDIESD_HARNESS_SUITE(Prefix, Suite, generator)                                        \
  static const std::vector<::mindiesd::test::Case>& mindiesd_harness_cases_##Suite() {          \
    static const std::vector<::mindiesd::test::Case> cs = generator();                          \
    return cs;                                                                                  \
  }                                                                                             \
  class Suite : public ::testing::TestWithParam<std::size_t> {};                                \
  TEST_P(Suite, MatchesFloat64Reference) {                                                      \
    ::mindiesd::test::run_case(mindiesd_harness_cases_##Suite()[GetParam()]);                   \
  }                                                                                             \
  INSTANTIATE_TEST_SUITE_P(                                                                     \
      Prefix, Suite, ::testing::Range<std::size_t>(0, mindiesd_harness_cases_##Suite().size()), \
      [](const ::testing::TestParamInfo<std::size_t>& info) {                                   \
        return mindiesd_harness_cases_##Suite()[info.param].name;                               \
      })
