// The quantization family on CUDA (op_params.h: quantize, quant_matmul, dequantize), the same
// math as kernel/cpu/quant.cpp:
//   quantize      one block per row: the row's max |x * smooth| (block reduction), then the codes
//   quant_matmul  int8: cuBLASLt IMMA (s8 x s8 -> s32, TN layout; needs K % 4 == 0 and 16-byte
//                 aligned rows), else a SIMT int32 dot-product kernel; fp8: cuBLASLt e4m3 x e4m3 ->
//                 f32 on sm_89+ tensor cores, else the codes widened to bf16 (exact) and the bf16
//                 matmul; then one epilogue pass applying (acc + quant_bias) * row * col + bias and
//                 the activation, rounding once to the output dtype
//   dequantize    one thread per element
#include <cuda_runtime_api.h>

#include <cmath>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cuda/cuda_backend.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/kernels.h"

namespace mindiesd::cuda {

// matmul.cu: out (M, N) = xq (M, K) @ wq (N, K)^T through cuBLASLt; false when it has no
// algorithm for the problem.
bool gemm_codes_tn(const Tensor& xq, const Tensor& wq, const Tensor& out, const Stream& stream);

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case DType::bf16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}
__device__ __forceinline__ void store_f32(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::f16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    case DType::bf16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

__device__ __forceinline__ int8_t to_i8(float v) {
  float r = nearbyintf(v);
  r = r < -128.0f ? -128.0f : (r > 127.0f ? 127.0f : r);
  return static_cast<int8_t>(r);
}
__device__ __forceinline__ uint8_t to_i4(float v) {
  if (!(v == v)) return 0;
  float r = nearbyintf(v);
  r = r < -8.0f ? -8.0f : (r > 7.0f ? 7.0f : r);
  return static_cast<uint8_t>(static_cast<int>(r) & 0xf);
}

struct QuantizeArgs {
  const void* x;
  DType xt;
  int64_t row_stride, k;
  const float* smooth;  // or nullptr
  void* q;
  DType qt;
  float* scales;  // per_row, else nullptr
  bool per_row;
  float scale, offset;
};

__global__ void __launch_bounds__(kThreads) quantize_kernel(QuantizeArgs a) {
  const int64_t row = blockIdx.x;
  const void* x = static_cast<const char*>(a.x) + row * a.row_stride * (a.xt == DType::f32 ? 4 : 2);
  auto value = [&](int64_t j) {
    const float v = load_f32(x, a.xt, j);
    return a.smooth ? v * a.smooth[j] : v;
  };
  float inv = 0.0f;
  if (a.per_row) {
    __shared__ float partial[kThreads];
    float m = 0.0f;
    for (int64_t j = threadIdx.x; j < a.k; j += kThreads) m = fmaxf(m, fabsf(value(j)));
    partial[threadIdx.x] = m;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s)
        partial[threadIdx.x] = fmaxf(partial[threadIdx.x], partial[threadIdx.x + s]);
      __syncthreads();
    }
    const float qmax = a.qt == DType::f8_e4m3 ? kF8E4M3Max : (a.qt == DType::i4 ? 7.0f : 127.0f);
    const float s = partial[0] / qmax;
    if (threadIdx.x == 0) a.scales[row] = s;
    inv = s > 0.0f ? 1.0f / s : 0.0f;
  }
  if (a.qt == DType::i4) {
    uint8_t* out = static_cast<uint8_t*>(a.q) + row * a.k / 2;
    for (int64_t j = 2 * threadIdx.x; j < a.k; j += 2 * kThreads)
      out[j / 2] = static_cast<uint8_t>(to_i4(value(j) * inv) | (to_i4(value(j + 1) * inv) << 4));
  } else if (a.qt == DType::f8_e4m3) {
    uint8_t* out = static_cast<uint8_t*>(a.q) + row * a.k;
    for (int64_t j = threadIdx.x; j < a.k; j += kThreads)
      out[j] = f32_to_f8_e4m3(value(j) * inv, true);
  } else {
    int8_t* out = static_cast<int8_t*>(a.q) + row * a.k;
    for (int64_t j = threadIdx.x; j < a.k; j += kThreads)
      out[j] = a.per_row ? to_i8(value(j) * inv) : to_i8(value(j) / a.scale + a.offset);
  }
}

void quantize_op(const OpCall& c) {
  const QuantizeParams& p = c.p<QuantizeParams>();
  const Tensor& x = c.inputs[0];
  const Tensor smooth = c.inputs.size() > 1 ? c.inputs[1] : Tensor();
  const Tensor& q = c.outputs[0];
  QuantizeArgs a{x.data_ptr(),
                 x.dtype(),
                 x.stride(0),
                 x.size(1),
                 smooth.defined() ? smooth.data<float>() : nullptr,
                 q.data_ptr(),
                 q.dtype(),
                 p.kind == QuantizeKind::per_row ? c.outputs[1].data<float>() : nullptr,
                 p.kind == QuantizeKind::per_row,
                 p.scale,
                 p.offset};
  DeviceGuard guard(x.device().index);
  quantize_kernel<<<static_cast<unsigned>(x.size(0)), kThreads, 0, native_stream(*c.stream)>>>(a);
  MINDIESD_CUDA_CHECK(cudaGetLastError());
}

// acc (M, N) i32 = xq @ wq^T, one thread per output (the fallback when cuBLASLt has no IMMA
// algorithm for the shape).
__global__ void int8_gemm_kernel(const int8_t* x, const int8_t* w, int32_t* out, int64_t m,
                                 int64_t n, int64_t k) {
  const int64_t i = blockIdx.y, j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= m || j >= n) return;
  int32_t s = 0;
  for (int64_t t = 0; t < k; ++t) s += int32_t(x[i * k + t]) * int32_t(w[j * k + t]);
  out[i * n + j] = s;
}

__global__ void widen_e4m3_kernel(const uint8_t* in, __nv_bfloat16* out, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(f8_e4m3_to_f32(in[i]));
}

struct EpilogueArgs {
  const void* acc;
  bool acc_i32;
  const float *row_scale, *col_scale, *bias;
  const int32_t* quant_bias;
  bool has_act;
  UnaryKind act;
  void* out;
  DType ot;
  int64_t out_row_stride, m, n;
};

__device__ __forceinline__ float activate(float v, UnaryKind k) {
  switch (k) {
    case UnaryKind::gelu:
      return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case UnaryKind::gelu_tanh:
      return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case UnaryKind::silu:
      return v / (1.0f + expf(-v));
    default:
      return v > 0.0f ? v : 0.0f;
  }
}

__global__ void epilogue_kernel(EpilogueArgs a) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= a.m * a.n) return;
  const int64_t i = idx / a.n, j = idx % a.n;
  float v;
  if (a.acc_i32) {
    const int32_t s =
        static_cast<const int32_t*>(a.acc)[idx] + (a.quant_bias ? a.quant_bias[j] : 0);
    v = static_cast<float>(s);
  } else {
    v = static_cast<const float*>(a.acc)[idx];
  }
  const float r = a.row_scale ? a.row_scale[i] : 1.0f;
  if (a.col_scale)
    v = v * r * a.col_scale[j];
  else if (a.row_scale)
    v = v * r;
  if (a.bias) v += a.bias[j];
  if (a.has_act) v = activate(v, a.act);
  store_f32(a.out, a.ot, i * a.out_row_stride + j, v);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void quant_matmul_op(const OpCall& c) {
  const QuantMatmulParams p = c.params ? c.p<QuantMatmulParams>() : QuantMatmulParams{};
  const Tensor& xq = c.inputs[0];
  const Tensor& wq = c.inputs[1];
  auto opt = [&](size_t i) { return c.inputs.size() > i ? c.inputs[i] : Tensor(); };
  const Tensor row_scale = opt(2), col_scale = opt(3), quant_bias = opt(4), bias = opt(5);
  const Tensor& out = c.outputs[0];
  const int64_t m = xq.size(0), n = wq.size(0), k = xq.size(1);
  const bool fp8 = xq.dtype() == DType::f8_e4m3;
  const cudaStream_t stream = native_stream(*c.stream);
  DeviceGuard guard(xq.device().index);

  // The accumulator: the output itself for a raw i32 result.
  const bool raw = out.dtype() == DType::i32;
  const Tensor acc = raw ? out : Tensor::empty({m, n}, fp8 ? DType::f32 : DType::i32, xq.device());
  if (fp8) {
    if (!gemm_codes_tn(xq, wq, acc, *c.stream)) {
      Tensor xb = Tensor::empty({m, k}, DType::bf16, xq.device()),
             wb = Tensor::empty({n, k}, DType::bf16, xq.device());
      widen_e4m3_kernel<<<blocks_for(m * k), kThreads, 0, stream>>>(
          xq.data<uint8_t>(), static_cast<__nv_bfloat16*>(xb.data_ptr()), m * k);
      widen_e4m3_kernel<<<blocks_for(n * k), kThreads, 0, stream>>>(
          wq.data<uint8_t>(), static_cast<__nv_bfloat16*>(wb.data_ptr()), n * k);
      MINDIESD_CUDA_CHECK(cudaGetLastError());
      const Tensor in[] = {xb, wb.transpose(0, 1)};
      dispatch(OpId::matmul, in, {&acc, 1}, nullptr);
    }
  } else if (!gemm_codes_tn(xq, wq, acc, *c.stream)) {
    const dim3 grid(blocks_for(n), static_cast<unsigned>(m));
    int8_gemm_kernel<<<grid, kThreads, 0, stream>>>(xq.data<int8_t>(), wq.data<int8_t>(),
                                                    acc.data<int32_t>(), m, n, k);
    MINDIESD_CUDA_CHECK(cudaGetLastError());
  }
  if (raw) return;
  EpilogueArgs a{acc.data_ptr(),
                 !fp8,
                 row_scale.defined() ? row_scale.data<float>() : nullptr,
                 col_scale.defined() ? col_scale.data<float>() : nullptr,
                 bias.defined() ? bias.data<float>() : nullptr,
                 quant_bias.defined() ? quant_bias.data<int32_t>() : nullptr,
                 p.has_activation,
                 p.activation,
                 out.data_ptr(),
                 out.dtype(),
                 out.stride(0),
                 m,
                 n};
  epilogue_kernel<<<blocks_for(m * n), kThreads, 0, stream>>>(a);
  MINDIESD_CUDA_CHECK(cudaGetLastError());
}

__global__ void dequantize_kernel(const void* wq, DType wt, const float* scale, const float* offset,
                                  int64_t n, int64_t k, int64_t groups, void* out, DType ot,
                                  int64_t out_row_stride) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * k) return;
  const int64_t r = idx / k, j = idx % k, g = r * groups + j / (k / groups);
  float q;
  if (wt == DType::i4) {
    const uint8_t b = static_cast<const uint8_t*>(wq)[idx / 2];
    const uint8_t nib = (idx & 1) ? (b >> 4) : (b & 0xf);
    q = static_cast<float>(static_cast<int>(nib ^ 0x8) - 8);
  } else if (wt == DType::f8_e4m3) {
    q = f8_e4m3_to_f32(static_cast<const uint8_t*>(wq)[idx]);
  } else {
    q = static_cast<float>(static_cast<const int8_t*>(wq)[idx]);
  }
  store_f32(out, ot, r * out_row_stride + j, (q - (offset ? offset[g] : 0.0f)) * scale[g]);
}

void dequantize_op(const OpCall& c) {
  const Tensor& wq = c.inputs[0];
  const Tensor& scale = c.inputs[1];
  const Tensor offset = c.inputs.size() > 2 ? c.inputs[2] : Tensor();
  const Tensor& out = c.outputs[0];
  const int64_t n = wq.size(0), k = wq.size(1);
  DeviceGuard guard(wq.device().index);
  dequantize_kernel<<<blocks_for(n * k), kThreads, 0, native_stream(*c.stream)>>>(
      wq.data_ptr(), wq.dtype(), scale.data<float>(),
      offset.defined() ? offset.data<float>() : nullptr, n, k, scale.size(1), out.data_ptr(),
      out.dtype(), out.stride(0));
  MINDIESD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void register_quant_kernels(KernelRegistry& r) {
  // The CPU's dtype sets (kernel/cpu/quant.cpp), so dispatch never differs by device.
  const DTypeSet codes{DType::i8, DType::f8_e4m3};
  r.add(OpId::quantize, DeviceType::CUDA, {kFloatTypes, DTypeSet{DType::f32}},
        DTypeSet{DType::i8, DType::i4, DType::f8_e4m3, DType::f32}, quantize_op);
  r.add(OpId::quant_matmul, DeviceType::CUDA, {codes, codes, DTypeSet{DType::f32, DType::i32}},
        DTypeSet{DType::f32, DType::bf16, DType::f16, DType::i32}, quant_matmul_op);
  r.add(OpId::dequantize, DeviceType::CUDA,
        {DTypeSet{DType::i8, DType::i4, DType::f8_e4m3}, DTypeSet{DType::f32}}, kFloatTypes,
        dequantize_op);
}

}  // namespace mindiesd::cuda
