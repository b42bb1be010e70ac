// The quantization family: activation quantization (per row symmetric, per tensor affine), the
// int8 / fp8 GEMM with its dequantizing epilogue, and weight dequantization (op_params.h).
//
// int8 GEMM: with oneDNN (MINDIESD_CPU_DEPS) its s8 x s8 -> s32 matmul, which runs on AVX-512
// VNNI (vpdpbusd) where the CPU has it; the weight is described as the (K, N) transposed view
// of the stored (N, K) rows, so nothing is copied. Without oneDNN, a plain dot-product loop.
// fp8 GEMM: there are no fp8 units on this class of CPU, so the e4m3 codes are widened to bf16
// (every e4m3 value is exactly a bf16 value) and multiplied by the bf16 matmul with f32
// accumulation: the same products an fp8 tensor core sums, for testing the scheme everywhere.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#if MINDIESD_CPU_DEPS
#include <oneapi/dnnl/dnnl.hpp>

#include "mindiesd/kernel/cpu/dnnl_util.h"
#endif
#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/parallel.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/vec_math.h"

namespace mindiesd::cpu {

namespace {

constexpr float kI8Max = 127.0f;

// x's row m as f32 (into buf when it must be converted).
const float* row_f32(const Tensor& x, int64_t m, std::vector<float>& buf) {
  const int64_t k = x.size(1);
  const std::byte* base = static_cast<const std::byte*>(x.data_ptr());
  const void* src = base + dtype_bytes(x.dtype(), m * x.stride(0));
  if (x.dtype() == DType::f32) return static_cast<const float*>(src);
  buf.resize(k);
  convert(src, x.dtype(), buf.data(), DType::f32, k);
  return buf.data();
}

// Round to nearest even and clamp: the int8 code of v.
inline int8_t to_i8(float v) {
  float r = std::nearbyint(v);
  r = r < -128.0f ? -128.0f : (r > 127.0f ? 127.0f : r);
  return static_cast<int8_t>(r);
}

// GCC 12 flags the undefined pass-through operand inside _mm512_max_ps / _mm512_min_ps as
// maybe-uninitialized (a false positive: the unmasked forms never read it).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// max_j |v_j|.
float abs_max(const float* v, int64_t k) {
  int64_t j = 0;
  float m = 0.0f;
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (; j + 16 <= k; j += 16) acc = _mm512_max_ps(acc, _mm512_abs_ps(_mm512_loadu_ps(v + j)));
  m = _mm512_reduce_max_ps(acc);
#endif
  for (; j < k; ++j) m = std::max(m, std::fabs(v[j]));
  return m;
}

// out_j = int8(v_j * mul) (divide: v_j / div + add), rounded to nearest even and saturated; the
// vector path rounds with cvtps (MXCSR's default round-to-nearest-even), as nearbyint does.
void store_i8(const float* v, int64_t k, float mul, float div, float add, bool divide,
              int8_t* out) {
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512 vm = _mm512_set1_ps(mul), vd = _mm512_set1_ps(div), va = _mm512_set1_ps(add);
  const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
  for (; j + 16 <= k; j += 16) {
    const __m512 x = _mm512_loadu_ps(v + j);
    __m512 y = divide ? _mm512_add_ps(_mm512_div_ps(x, vd), va) : _mm512_mul_ps(x, vm);
    y = _mm512_min_ps(_mm512_max_ps(y, lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j),
                     _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(y)));
  }
#endif
  for (; j < k; ++j) out[j] = to_i8(divide ? v[j] / div + add : v[j] * mul);
}
#pragma GCC diagnostic pop

// The epilogue's activation over n values in place. gelu_tanh and silu run 16 lanes at a time:
// x * sigmoid(2u) is 0.5 x (1 + tanh u) without the cancellation of 1 + tanh for negative u.
void activate(UnaryKind k, float* y, int64_t n) {
  int64_t j = 0;
  if (k == UnaryKind::gelu_tanh || k == UnaryKind::silu) {
    for (; j + 16 <= n; j += 16) {
      v16f x;
      std::memcpy(&x, y + j, sizeof(x));
      const v16f z = k == UnaryKind::silu ? x : 1.5957691216057308f * (x + 0.044715f * x * x * x);
      const v16f r = x / (1.0f + exp_v16(v16f{} - z));
      std::memcpy(y + j, &r, sizeof(r));
    }
  }
  if (j < n) unary_f32(k, 1.0f, 0.0f, y + j, y + j, n - j);
}

void quantize_kernel(const OpCall& c) {
  const QuantizeParams& p = c.p<QuantizeParams>();
  const Tensor& x = c.inputs[0];
  const Tensor smooth = c.inputs.size() > 1 ? c.inputs[1] : Tensor();
  const Tensor& q = c.outputs[0];
  const bool fp8 = q.dtype() == DType::f8_e4m3, int4 = q.dtype() == DType::i4;
  const float qmax = fp8 ? kF8E4M3Max : (int4 ? 7.0f : kI8Max);
  const int64_t rows = x.size(0), k = x.size(1);
  const float* sm = smooth.defined() ? smooth.data<float>() : nullptr;
  float* scales = p.kind == QuantizeKind::per_row ? c.outputs[1].data<float>() : nullptr;
  parallel_for(
      0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, k)), [&](int64_t b, int64_t e) {
        std::vector<float> buf, tmp(k);
        for (int64_t m = b; m < e; ++m) {
          const float* xr = row_f32(x, m, buf);
          const float* v = xr;
          if (sm) {
            for (int64_t j = 0; j < k; ++j) tmp[j] = xr[j] * sm[j];
            v = tmp.data();
          }
          float inv, off = 0.0f;
          if (p.kind == QuantizeKind::per_row) {
            const float s = abs_max(v, k) / qmax;
            scales[m] = s;
            inv = s > 0.0f ? 1.0f / s : 0.0f;
          } else {
            inv = 1.0f / p.scale;
            off = p.offset;
          }
          if (int4) {  // weights only: per_row, k even, element 2i in the low nibble
            uint8_t* out = q.data<uint8_t>() + m * k / 2;
            for (int64_t j = 0; j < k; j += 2)
              out[j / 2] =
                  static_cast<uint8_t>(f32_to_i4(v[j] * inv) | (f32_to_i4(v[j + 1] * inv) << 4));
          } else if (fp8) {
            uint8_t* out = q.data<uint8_t>() + m * k;
            for (int64_t j = 0; j < k; ++j) out[j] = f32_to_f8_e4m3(v[j] * inv, /*saturate=*/true);
          } else {
            int8_t* out = q.data<int8_t>() + m * k;
            // per_tensor: x / scale as the suite divides (not x * (1/scale), which rounds apart
            // from it at ties).
            store_i8(v, k, inv, p.scale, off, p.kind == QuantizeKind::per_tensor, out);
          }
        }
      });
}

// The integer accumulator acc (M, N) = xq @ wq^T, exact.
void int8_gemm(const Tensor& xq, const Tensor& wq, const Tensor& acc) {
  const int64_t m = xq.size(0), k = xq.size(1), n = wq.size(0);
#if MINDIESD_CPU_DEPS
  const dnnl::engine& eng = dnnl_engine();
  const dnnl::memory::desc a_md({m, k}, dnnl::memory::data_type::s8, {k, 1});
  const dnnl::memory::desc b_md({k, n}, dnnl::memory::data_type::s8, {1, k});
  const dnnl::memory::desc d_md({m, n}, dnnl::memory::data_type::s32, {n, 1});
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, d_md), eng);
  dnnl::stream s(eng);
  dnnl::matmul(pd).execute(s, {{DNNL_ARG_SRC, dnnl::memory(a_md, eng, xq.data_ptr())},
                               {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, eng, wq.data_ptr())},
                               {DNNL_ARG_DST, dnnl::memory(d_md, eng, acc.data_ptr())}});
  s.wait();
#else
  const int8_t* a = xq.data<int8_t>();
  const int8_t* w = wq.data<int8_t>();
  int32_t* out = acc.data<int32_t>();
  parallel_for(0, m, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int32_t sum = 0;
        for (int64_t t = 0; t < k; ++t) sum += int32_t(a[i * k + t]) * int32_t(w[j * k + t]);
        out[i * n + j] = sum;
      }
  });
#endif
}

void quant_matmul_kernel(const OpCall& c) {
  const QuantMatmulParams p = c.params ? c.p<QuantMatmulParams>() : QuantMatmulParams{};
  const Tensor& xq = c.inputs[0];
  const Tensor& wq = c.inputs[1];
  auto opt = [&](size_t i) { return c.inputs.size() > i ? c.inputs[i] : Tensor(); };
  const Tensor row_scale = opt(2), col_scale = opt(3), quant_bias = opt(4), bias = opt(5);
  const Tensor& out = c.outputs[0];
  const int64_t m = xq.size(0), n = wq.size(0);
  const bool fp8 = xq.dtype() == DType::f8_e4m3;

  if (out.dtype() == DType::i32) {
    MINDIESD_CHECK(!fp8, InvalidArgument, "quant_matmul: an i32 output needs int8 operands");
    int8_gemm(xq, wq, out);
    return;
  }
  Tensor acc;
  if (fp8) {
    acc = Tensor::empty({m, n}, DType::f32);
    const Tensor in[] = {xq.to(DType::bf16), wq.to(DType::bf16).transpose(0, 1)};
    dispatch(OpId::matmul, in, {&acc, 1}, nullptr);
  } else {
    acc = Tensor::empty({m, n}, DType::i32);
    int8_gemm(xq, wq, acc);
  }
  const float* rs = row_scale.defined() ? row_scale.data<float>() : nullptr;
  const float* cs = col_scale.defined() ? col_scale.data<float>() : nullptr;
  const int32_t* qb = quant_bias.defined() ? quant_bias.data<int32_t>() : nullptr;
  const float* bs = bias.defined() ? bias.data<float>() : nullptr;
  parallel_for(
      0, m, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)), [&](int64_t b, int64_t e) {
        std::vector<float> y(n);
        for (int64_t i = b; i < e; ++i) {
          if (fp8) {
            const float* a = acc.data<float>() + i * n;
            for (int64_t j = 0; j < n; ++j) y[j] = a[j];
          } else {
            const int32_t* a = acc.data<int32_t>() + i * n;
            if (qb)
              for (int64_t j = 0; j < n; ++j) y[j] = static_cast<float>(a[j] + qb[j]);
            else
              for (int64_t j = 0; j < n; ++j) y[j] = static_cast<float>(a[j]);
          }
          const float r = rs ? rs[i] : 1.0f;
          if (cs)
            for (int64_t j = 0; j < n; ++j) y[j] = y[j] * r * cs[j];
          else if (rs)
            for (int64_t j = 0; j < n; ++j) y[j] = y[j] * r;
          if (bs)
            for (int64_t j = 0; j < n; ++j) y[j] += bs[j];
          if (p.has_activation) activate(p.activation, y.data(), n);
          std::byte* dst =
              static_cast<std::byte*>(out.data_ptr()) + dtype_bytes(out.dtype(), i * out.stride(0));
          convert(y.data(), DType::f32, dst, out.dtype(), n);
        }
      });
}

void dequantize_kernel(const OpCall& c) {
  const Tensor& wq = c.inputs[0];
  const Tensor& scale = c.inputs[1];
  const Tensor offset = c.inputs.size() > 2 ? c.inputs[2] : Tensor();
  const Tensor& out = c.outputs[0];
  const int64_t n = wq.size(0), k = wq.size(1), groups = scale.size(1), g = k / groups;
  const float* sc = scale.data<float>();
  const float* of = offset.defined() ? offset.data<float>() : nullptr;
  parallel_for(
      0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, k)), [&](int64_t b, int64_t e) {
        std::vector<float> row(k);
        for (int64_t r = b; r < e; ++r) {
          const std::byte* src =
              static_cast<const std::byte*>(wq.data_ptr()) + dtype_bytes(wq.dtype(), r * k);
          convert(src, wq.dtype(), row.data(), DType::f32, k);
          for (int64_t gi = 0; gi < groups; ++gi) {
            const float s = sc[r * groups + gi], o = of ? of[r * groups + gi] : 0.0f;
            float* v = row.data() + gi * g;
            for (int64_t j = 0; j < g; ++j) v[j] = (v[j] - o) * s;
          }
          std::byte* dst =
              static_cast<std::byte*>(out.data_ptr()) + dtype_bytes(out.dtype(), r * out.stride(0));
          convert(row.data(), DType::f32, dst, out.dtype(), k);
        }
      });
}

}  // namespace

void register_quant_kernels(KernelRegistry& r) {
  const DTypeSet codes{DType::i8, DType::f8_e4m3};
  r.add(OpId::quantize, DeviceType::CPU, {kFloatTypes, DTypeSet{DType::f32}},
        DTypeSet{DType::i8, DType::i4, DType::f8_e4m3, DType::f32}, quantize_kernel);
  // The optional inputs are skipped when undefined, so every position past the codes is open;
  // the front end (mindiesd/quant/quant_ops.cpp) checks them.
  r.add(OpId::quant_matmul, DeviceType::CPU, {codes, codes, DTypeSet{DType::f32, DType::i32}},
        DTypeSet{DType::f32, DType::bf16, DType::f16, DType::i32}, quant_matmul_kernel);
  r.add(OpId::dequantize, DeviceType::CPU,
        {DTypeSet{DType::i8, DType::i4, DType::f8_e4m3}, DTypeSet{DType::f32}}, kFloatTypes,
        dequantize_kernel);
}

}  // namespace mindiesd::cpu
