#include "harness.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"

namespace mindiesd::test {

namespace {
uint64_t name_seed(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

Tensor make_input(const Input& in, uint64_t seed) {
  Tensor t;
  switch (in.domain) {
    case Domain::normal: t = ops::randn(in.shape, seed); break;
    case Domain::positive: t = ops::rand(in.shape, seed, 0, 0.25f, 3.0f); break;
    case Domain::index:
      t = ops::rand(in.shape, seed, 0, 0.0f, static_cast<float>(in.index_range)).to(DType::i64);
      break;
    case Domain::boolean: t = ops::binary(ops::randn(in.shape, seed), ops::full({1}, 0.0), BinaryKind::gt); break;
  }
  return t.to(in.dtype);
}

}  // namespace

std::vector<Device> devices() {
  std::vector<Device> d{Device::cpu()};
  if (Backend* b = find_backend(DeviceType::CUDA); b && b->device_count() > 0) d.push_back(Device::cuda(0));
  return d;
}

void compare(const Array& got, const Array& want, Tolerance tol, const std::string& what) {
  ASSERT_EQ(got.shape, want.shape) << what << ": shape " << got.shape.str() << " vs reference "
                                   << want.shape.str();
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.v[i], w = want.v[i];
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) bad += (first < 0 ? (first = i, 1) : 1);
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (g != w) bad += (first < 0 ? (first = i, 1) : 1);
      continue;
    }
    const double err = std::fabs(g - w);
    worst = std::max(worst, err);
    if (err > tol.atol + tol.rtol * std::fabs(w)) {
      if (first < 0) first = i;
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.numel()
                    << " elements out of tolerance (atol " << tol.atol << ", rtol " << tol.rtol
                    << "); first at flat index " << first << ": got "
                    << (first >= 0 ? got.v[first] : 0) << ", want "
                    << (first >= 0 ? want.v[first] : 0) << "; max abs err " << worst;
}

void run_case(const Case& c) {
  const uint64_t seed = name_seed(c.name);
  std::vector<Tensor> base;
  std::vector<Array> ref_in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    base.push_back(make_input(c.inputs[i], seed + i * 7919));
    const Tensor v = c.inputs[i].view ? c.inputs[i].view(base.back()) : base.back();
    ref_in.push_back(ref::from_tensor(v));
  }
  const Array want = c.reference(ref_in);
  for (Device d : devices()) {
    std::vector<Tensor> in;
    for (size_t i = 0; i < base.size(); ++i) {
      const Tensor t = base[i].to(d);
      in.push_back(c.inputs[i].view ? c.inputs[i].view(t) : t);
    }
    Tensor out;
    try {
      out = c.run(in);
    } catch (const Error& e) {
      // A backend still growing its op set reports the gap loudly but does not fail the
      // case; the CPU backend must implement everything.
      if (d.is_cpu() || e.kind() != ErrorKind::Unsupported) throw;
      std::printf("  [not on %s] %s: %s\n", d.str().c_str(), c.name.c_str(), e.what());
      continue;
    }
    ASSERT_EQ(out.device(), d) << c.name;
    compare(ref::from_tensor(out), want, tolerance(c.tol_dtype, c.cls), c.name + " on " + d.str());
  }
}

// Rounds reference values through a dtype, for ops whose output is stored in that dtype
// from an exact expression (so the comparison can be exact).
Array round_to(const Array& a, DType t) {
  Array r = a;
  for (double& v : r.v) {
    float f = static_cast<float>(v);
    uint8_t buf[8];
    convert(&f, DType::f32, buf, t, 1);
    convert(buf, t, &f, DType::f32, 1);
    v = f;
  }
  return r;
}

}  // namespace mindiesd::test
