// unary, binary and ternary elementwise ops with broadcasting.
//
// Operands of any float dtype are loaded in chunks into f32 buffers, computed with
// vectorisable loops, and stored in the output dtype; integer add/sub/mul/max/min compute in
// int64 so that they stay exact.
#include <cmath>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"
#include "mindiesd/kernel/cpu/vec_math.h"

namespace mindiesd::cpu {

void unary_f32(UnaryKind k, float alpha, float beta, const float* x, float* y, int64_t n) {
  switch (k) {
    case UnaryKind::neg: for (int64_t i = 0; i < n; ++i) y[i] = -x[i]; break;
    case UnaryKind::abs: for (int64_t i = 0; i < n; ++i) y[i] = std::fabs(x[i]); break;
    case UnaryKind::exp: for (int64_t i = 0; i < n; ++i) y[i] = exp_f32(x[i]); break;
    case UnaryKind::log: for (int64_t i = 0; i < n; ++i) y[i] = std::log(x[i]); break;
    case UnaryKind::sqrt: for (int64_t i = 0; i < n; ++i) y[i] = std::sqrt(x[i]); break;
    case UnaryKind::rsqrt: for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / std::sqrt(x[i]); break;
    case UnaryKind::sin: for (int64_t i = 0; i < n; ++i) y[i] = std::sin(x[i]); break;
    case UnaryKind::cos: for (int64_t i = 0; i < n; ++i) y[i] = std::cos(x[i]); break;
    case UnaryKind::tanh: for (int64_t i = 0; i < n; ++i) y[i] = tanh_f32(x[i]); break;
    case UnaryKind::sigmoid: for (int64_t i = 0; i < n; ++i) y[i] = sigmoid_f32(x[i]); break;
    case UnaryKind::silu: for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_f32(x[i]); break;
    case UnaryKind::gelu:
      for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
      break;
    case UnaryKind::gelu_tanh:
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanh_f32(0.79788456080286536f * (v + 0.044715f * v * v * v)));
      }
      break;
    case UnaryKind::relu: for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f; break;
    case UnaryKind::square: for (int64_t i = 0; i < n; ++i) y[i] = x[i] * x[i]; break;
    case UnaryKind::reciprocal: for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / x[i]; break;
    case UnaryKind::affine: for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta; break;
    case UnaryKind::pow_scalar: for (int64_t i = 0; i < n; ++i) y[i] = std::pow(x[i], alpha); break;
    case UnaryKind::clamp:
      // NaN propagates, as torch.clamp does.
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] < alpha ? alpha : (x[i] > beta ? beta : x[i]);
      break;
  }
}

namespace {

constexpr int64_t kChunk = 256;
constexpr int64_t kGrain = 1 << 14;

void binary_f32(BinaryKind k, const float* a, const float* b, float* y, int64_t n) {
  switch (k) {
    case BinaryKind::add: for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i]; break;
    case BinaryKind::sub: for (int64_t i = 0; i < n; ++i) y[i] = a[i] - b[i]; break;
    case BinaryKind::mul: for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i]; break;
    case BinaryKind::div: for (int64_t i = 0; i < n; ++i) y[i] = a[i] / b[i]; break;
    case BinaryKind::maximum:  // NaN propagates, as torch.maximum does
      for (int64_t i = 0; i < n; ++i) y[i] = (a[i] != a[i] || a[i] > b[i]) ? a[i] : b[i];
      break;
    case BinaryKind::minimum:
      for (int64_t i = 0; i < n; ++i) y[i] = (a[i] != a[i] || a[i] < b[i]) ? a[i] : b[i];
      break;
    case BinaryKind::pow: for (int64_t i = 0; i < n; ++i) y[i] = std::pow(a[i], b[i]); break;
    case BinaryKind::eq: for (int64_t i = 0; i < n; ++i) y[i] = a[i] == b[i]; break;
    case BinaryKind::ne: for (int64_t i = 0; i < n; ++i) y[i] = a[i] != b[i]; break;
    case BinaryKind::lt: for (int64_t i = 0; i < n; ++i) y[i] = a[i] < b[i]; break;
    case BinaryKind::le: for (int64_t i = 0; i < n; ++i) y[i] = a[i] <= b[i]; break;
    case BinaryKind::gt: for (int64_t i = 0; i < n; ++i) y[i] = a[i] > b[i]; break;
    case BinaryKind::ge: for (int64_t i = 0; i < n; ++i) y[i] = a[i] >= b[i]; break;
  }
}

void ternary_f32(TernaryKind k, const float* a, const float* b, const float* c, float* y,
                 int64_t n) {
  switch (k) {
    case TernaryKind::where: for (int64_t i = 0; i < n; ++i) y[i] = a[i] != 0.0f ? b[i] : c[i]; break;
    case TernaryKind::fma: for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i] + c[i]; break;
    case TernaryKind::lerp: for (int64_t i = 0; i < n; ++i) y[i] = a[i] + c[i] * (b[i] - a[i]); break;
  }
}

// Runs `compute(inputs f32 chunks, output f32 chunk, n)` over the broadcast operands of an
// OpCall with NIn inputs and one output.
template <int NIn, typename Compute>
void map_f32(const OpCall& c, Compute&& compute) {
  const Tensor& out = c.outputs[0];
  std::array<const Shape*, NIn + 1> strides;
  strides[0] = &out.strides();
  for (int k = 0; k < NIn; ++k) strides[k + 1] = &c.inputs[k].strides();
  StridedRuns<NIn + 1> runs(out.shape(), strides);
  runs.parallel_runs(kGrain, [&](const std::array<int64_t, NIn + 1>& off, int64_t len) {
    alignas(64) float in[NIn][kChunk];
    alignas(64) float y[kChunk];
    const float* in_ptr[NIn];
    for (int64_t i = 0; i < len; i += kChunk) {
      const int64_t n = std::min(kChunk, len - i);
      for (int k = 0; k < NIn; ++k) {
        const Tensor& t = c.inputs[k];
        const int64_t s = runs.inner_stride(k + 1);
        if (t.dtype() == DType::f32 && s == 1) {  // read in place
          in_ptr[k] = t.data<float>() + off[k + 1] + i;
        } else {
          load_as_f32(t.storage()->data(), t.dtype(), t.offset() + off[k + 1] + i * s, s, n, in[k]);
          in_ptr[k] = in[k];
        }
      }
      const int64_t os = runs.inner_stride(0);
      const bool direct = out.dtype() == DType::f32 && os == 1;
      float* yp = direct ? out.data<float>() + off[0] + i : y;
      compute(in_ptr, yp, n);
      if (!direct) store_from_f32(out.storage()->data(), out.dtype(), out.offset() + off[0] + i * os, os, n, yp);
    }
  });
}

void unary_kernel(const OpCall& c) {
  const auto& p = c.p<UnaryParams>();
  map_f32<1>(c, [&](const float* const* in, float* y, int64_t n) {
    unary_f32(p.kind, p.alpha, p.beta, in[0], y, n);
  });
}

int64_t load_i64(const Tensor& t, int64_t off) {
  int64_t v;
  convert(static_cast<const char*>(t.storage()->data()) + (t.offset() + off) * (dtype_bits(t.dtype()) / 8),
          t.dtype(), &v, DType::i64, 1);
  return v;
}

// Integer arithmetic, exact in int64 (index math, masks, token ids).
void binary_int_kernel(const OpCall& c) {
  const auto k = c.p<BinaryParams>().kind;
  const Tensor& out = c.outputs[0];
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  StridedRuns<3> runs(out.shape(), {&out.strides(), &a.strides(), &b.strides()});
  char* op = static_cast<char*>(out.storage()->data());
  const int64_t oes = dtype_bits(out.dtype()) / 8;
  runs.parallel_runs(kGrain, [&](const std::array<int64_t, 3>& off, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      const int64_t x = load_i64(a, off[1] + i * runs.inner_stride(1));
      const int64_t y = load_i64(b, off[2] + i * runs.inner_stride(2));
      int64_t r = 0;
      switch (k) {
        case BinaryKind::add: r = x + y; break;
        case BinaryKind::sub: r = x - y; break;
        case BinaryKind::mul: r = x * y; break;
        case BinaryKind::maximum: r = std::max(x, y); break;
        case BinaryKind::minimum: r = std::min(x, y); break;
        case BinaryKind::eq: r = x == y; break;
        case BinaryKind::ne: r = x != y; break;
        case BinaryKind::lt: r = x < y; break;
        case BinaryKind::le: r = x <= y; break;
        case BinaryKind::gt: r = x > y; break;
        case BinaryKind::ge: r = x >= y; break;
        default:
          MINDIESD_THROW(Unsupported, "binary op ", static_cast<int>(k), " on integer tensors");
      }
      convert(&r, DType::i64, op + (out.offset() + off[0] + i * runs.inner_stride(0)) * oes,
              out.dtype(), 1);
    }
  });
}

void binary_kernel(const OpCall& c) {
  const auto k = c.p<BinaryParams>().kind;
  if (!is_floating(c.inputs[0].dtype()) && !is_floating(c.inputs[1].dtype())) {
    binary_int_kernel(c);
    return;
  }
  map_f32<2>(c, [&](const float* const* in, float* y, int64_t n) { binary_f32(k, in[0], in[1], y, n); });
}

void ternary_kernel(const OpCall& c) {
  const auto k = c.p<TernaryParams>().kind;
  map_f32<3>(c, [&](const float* const* in, float* y, int64_t n) {
    ternary_f32(k, in[0], in[1], in[2], y, n);
  });
}

constexpr DTypeSet kNumeric{DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2,
                            DType::i8,  DType::u8,  DType::i32,  DType::i64,     DType::boolean};

}  // namespace

void register_elementwise_kernels(KernelRegistry& r) {
  r.add(OpId::unary, DeviceType::CPU, {kNumeric}, kNumeric, unary_kernel);
  r.add(OpId::binary, DeviceType::CPU, {kNumeric}, kNumeric, binary_kernel);
  r.add(OpId::ternary, DeviceType::CPU, {kNumeric}, kNumeric, ternary_kernel);
}

}  // namespace mindiesd::cpu
