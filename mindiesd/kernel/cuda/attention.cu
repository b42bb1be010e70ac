// Attention on CUDA, two kernels behind one op:
//
//  - flash: FlashAttention-2 (Dao, 2023) on the tensor cores for bf16 / f16 with head dims 64
//    and 128 and no mask (the DiT case): a block of 4 warps owns 64 query rows (16 per warp),
//    streams keys and values through shared memory 64 at a time, forms S = Q K^T with
//    mma.sync m16n8k16 in f32, keeps the online-softmax state (row max, row sum) in registers,
//    and feeds P (rounded to the input dtype, as FlashAttention does) straight from the S
//    accumulators into O += P V. Q stays in registers for the whole key loop. V is stored
//    transposed in shared memory so that every mma operand is a 32-bit shared-memory load.
//  - generic: any float dtype, any head dims up to 512, boolean or additive masks, any strides;
//    one warp per (query row, head), f32 throughout. Correct everywhere, fast nowhere: it covers
//    what the flash kernel does not.
//
// Both take the op's semantics from op_params.h: scale on q.k, bottom-right aligned causal mask,
// GQA (Hq a multiple of Hkv), rows that see no key output zeros (as the CPU kernel).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cuda/attention.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/kernels.h"

namespace mindiesd::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;

// ---- flash kernel ---------------------------------------------------------------------------

constexpr int kFlashWarps = 4;
constexpr int kBr = 16 * kFlashWarps;  // query rows per block
constexpr int kBc = 64;                // keys per iteration
constexpr int kPad = 8;                // elements of padding per shared-memory row (16 bytes)

template <typename T>
struct MmaType;
template <>
struct MmaType<__nv_bfloat16> {
  __device__ static uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  __device__ static void mma(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};
template <>
struct MmaType<__half> {
  __device__ static uint32_t pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  __device__ static void mma(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4:
//   A (16 x 16, row): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..)
//   B (16 x 8, col):  b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8..2t+9, n g)
//   C (16 x 8, f32):  c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1)
template <typename T, int D, bool kCausal>
__global__ void __launch_bounds__(32 * kFlashWarps)
    flash_attention_kernel(FlashArgs args) {
  using M = MmaType<T>;
  __shared__ __align__(16) T ks[kBc][D + kPad];  // K tile, row-major (key, d)
  __shared__ __align__(16) T vt[D][kBc + kPad];  // V tile transposed (dv, key)

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t hk = h / (args.hq / args.hkv);
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kBr;
  const int64_t row0 = q0 + warp * 16 + g, row1 = row0 + 8;  // this thread's two query rows

  const T* q = static_cast<const T*>(args.q) + b * args.q_stride[0] + h * args.q_stride[1];
  const T* k = static_cast<const T*>(args.k) + b * args.k_stride[0] + hk * args.k_stride[1];
  const T* v = static_cast<const T*>(args.v) + b * args.v_stride[0] + hk * args.v_stride[1];
  T* o = static_cast<T*>(args.out) + b * args.o_stride[0] + h * args.o_stride[1];

  // Q fragments for the whole head dim, loaded once (rows past Sq are zeros).
  uint32_t qf[D / 16][4];
  {
    const uint32_t* r0 = row0 < args.sq ? reinterpret_cast<const uint32_t*>(q + row0 * args.q_stride[2]) : nullptr;
    const uint32_t* r1 = row1 < args.sq ? reinterpret_cast<const uint32_t*>(q + row1 * args.q_stride[2]) : nullptr;
#pragma unroll
    for (int s = 0; s < D / 16; ++s) {
      qf[s][0] = r0 ? r0[s * 8 + t] : 0u;
      qf[s][1] = r1 ? r1[s * 8 + t] : 0u;
      qf[s][2] = r0 ? r0[s * 8 + 4 + t] : 0u;
      qf[s][3] = r1 ? r1[s * 8 + 4 + t] : 0u;
    }
  }

  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const float scale_log2 = args.scale * kLog2e;
  const int64_t shift = args.sk - args.sq;  // causal: row i sees keys j <= i + shift

  int64_t k_end = args.sk;
  if (kCausal) k_end = min(k_end, q0 + kBr - 1 + shift + 1);
  for (int64_t k0 = 0; k0 < k_end; k0 += kBc) {
    // K and V tiles: 16-byte chunks, coalesced along d; keys past Sk are zeros.
    constexpr int kChunks = kBc * D / 8;
    for (int c = threadIdx.x; c < kChunks; c += 32 * kFlashWarps) {
      const int j = c / (D / 8), d8 = (c % (D / 8)) * 8;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (k0 + j < args.sk) {
        kv = *reinterpret_cast<const uint4*>(k + (k0 + j) * args.k_stride[2] + d8);
        vv = *reinterpret_cast<const uint4*>(v + (k0 + j) * args.v_stride[2] + d8);
      }
      *reinterpret_cast<uint4*>(&ks[j][d8]) = kv;
      const T* ve = reinterpret_cast<const T*>(&vv);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt[d8 + e][j] = ve[e];
    }
    __syncthreads();

    // S = Q K^T for this warp's 16 rows x 64 keys.
    float s[kBc / 8][4];
#pragma unroll
    for (int n = 0; n < kBc / 8; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t bf[2];
        bf[0] = *reinterpret_cast<const uint32_t*>(&ks[n * 8 + g][kk * 16 + 2 * t]);
        bf[1] = *reinterpret_cast<const uint32_t*>(&ks[n * 8 + g][kk * 16 + 8 + 2 * t]);
        M::mma(s[n], qf[kk], bf);
      }
    }

    // Online softmax over the two rows this thread holds (the 4 threads of a quad share a row).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t row = r == 0 ? row0 : row1;
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t j = k0 + n * 8 + 2 * t + e;
          float x = s[n][2 * r + e] * scale_log2;  // logits in log2 units
          if (j >= args.sk || (kCausal && j > row + shift)) x = -INFINITY;
          s[n][2 * r + e] = x;
          mx = fmaxf(mx, x);
        }
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[r], mx);
      // Nothing visible yet: keep the state; exp2(-inf - 0) makes every p zero.
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m_run[r] - base);
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(s[n][2 * r + e] - base);
          s[n][2 * r + e] = p;
          sum += p;
        }
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l_run[r] = l_run[r] * alpha + sum;
      m_run[r] = m_new;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        acc[n][2 * r] *= alpha;
        acc[n][2 * r + 1] *= alpha;
      }
    }

    // O += P V: P from the S accumulators (two 8-key tiles make one 16-key A fragment).
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      uint32_t pf[4];
      pf[0] = M::pack(s[2 * kk][0], s[2 * kk][1]);
      pf[1] = M::pack(s[2 * kk][2], s[2 * kk][3]);
      pf[2] = M::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pf[3] = M::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        uint32_t bf[2];
        bf[0] = *reinterpret_cast<const uint32_t*>(&vt[n * 8 + g][kk * 16 + 2 * t]);
        bf[1] = *reinterpret_cast<const uint32_t*>(&vt[n * 8 + g][kk * 16 + 8 + 2 * t]);
        M::mma(acc[n], pf, bf);
      }
    }
    __syncthreads();
  }

  // Normalise and store; a row that saw no key writes zeros.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = r == 0 ? row0 : row1;
    if (row >= args.sq) continue;
    const float inv = l_run[r] > 0.0f ? 1.0f / l_run[r] : 0.0f;
    uint32_t* dst = reinterpret_cast<uint32_t*>(o + row * args.o_stride[2]);
#pragma unroll
    for (int n = 0; n < D / 8; ++n) dst[n * 4 + t] = M::pack(acc[n][2 * r] * inv, acc[n][2 * r + 1] * inv);
  }
}

// ---- generic kernel -------------------------------------------------------------------------

constexpr int kGenericWarps = 4;
constexpr int kMaxHead = 512;

template <int kRegs>
__global__ void __launch_bounds__(32 * kGenericWarps) generic_attention_kernel(GenericArgs a) {
  __shared__ float qs[kGenericWarps][kMaxHead];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGenericWarps + warp;  // over B * Sq
  if (row >= a.batch * a.sq) return;
  const int64_t b = row / a.sq, i = row % a.sq, h = blockIdx.y;
  const int64_t hk = h / (a.hq / a.hkv);

  const char* q = static_cast<const char*>(a.q);
  const int64_t q_off = b * a.q_stride[0] + h * a.q_stride[1] + i * a.q_stride[2];
  for (int d = lane; d < a.d; d += 32) qs[warp][d] = load_f32(q, a.q_dtype, q_off + d * a.q_stride[3]);
  __syncwarp();

  const int64_t k_base = b * a.k_stride[0] + hk * a.k_stride[1];
  const int64_t v_base = b * a.v_stride[0] + hk * a.v_stride[1];
  const int64_t m_base = b * a.m_stride[0] + h * a.m_stride[1] + i * a.m_stride[2];
  const int64_t last = a.causal ? min(a.sk, i + (a.sk - a.sq) + 1) : a.sk;  // keys [0, last)

  float acc[kRegs];
#pragma unroll
  for (int r = 0; r < kRegs; ++r) acc[r] = 0.0f;
  float m_run = -INFINITY, l_run = 0.0f;
  for (int64_t j0 = 0; j0 < last; j0 += 32) {
    const int64_t j = j0 + lane;
    float x = -INFINITY;
    if (j < last) {
      float dot = 0.0f;
      const int64_t ko = k_base + j * a.k_stride[2];
      for (int d = 0; d < a.d; ++d) dot += qs[warp][d] * load_f32(a.k, a.k_dtype, ko + d * a.k_stride[3]);
      x = dot * a.scale;
      if (a.mask != nullptr) {
        const float mv = load_f32(a.mask, a.mask_dtype, m_base + j * a.m_stride[3]);
        if (a.mask_dtype == DType::boolean) {
          if (mv == 0.0f) x = -INFINITY;
        } else {
          x += mv;
        }
      }
    }
    float mx = x;
    for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float m_new = fmaxf(m_run, mx);
    if (m_new == -INFINITY) continue;  // nothing visible yet
    const float alpha = expf(m_run - m_new);
    const float p = expf(x - m_new);
    float sum = p;
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    l_run = l_run * alpha + sum;
    m_run = m_new;
#pragma unroll
    for (int r = 0; r < kRegs; ++r) acc[r] *= alpha;
    const int n = static_cast<int>(min(static_cast<int64_t>(32), last - j0));
    for (int jj = 0; jj < n; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
      if (pj == 0.0f) continue;
      const int64_t vo = v_base + (j0 + jj) * a.v_stride[2];
#pragma unroll
      for (int r = 0; r < kRegs; ++r) {
        const int d = lane + 32 * r;
        if (d < a.dv) acc[r] += pj * load_f32(a.v, a.v_dtype, vo + d * a.v_stride[3]);
      }
    }
  }
  const float inv = l_run > 0.0f ? 1.0f / l_run : 0.0f;
  const int64_t o_off = b * a.o_stride[0] + h * a.o_stride[1] + i * a.o_stride[2];
#pragma unroll
  for (int r = 0; r < kRegs; ++r) {
    const int d = lane + 32 * r;
    if (d < a.dv) store_f32(a.out, a.out_dtype, o_off + d * a.o_stride[3], acc[r] * inv);
  }
}

// ---- dispatch -------------------------------------------------------------------------------

template <typename T, int D>
cudaError_t launch_flash_typed(const FlashArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.sq + kBr - 1) / kBr), static_cast<unsigned>(a.hq),
                  static_cast<unsigned>(a.batch));
  if (a.causal) {
    flash_attention_kernel<T, D, true><<<grid, 32 * kFlashWarps, 0, stream>>>(a);
  } else {
    flash_attention_kernel<T, D, false><<<grid, 32 * kFlashWarps, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

bool aligned_to(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

bool flash_attention_supported(DType dtype, int64_t d, int64_t dv, const FlashArgs& a) {
  if (dtype != DType::bf16 && dtype != DType::f16) return false;
  if (d != dv || (d != 64 && d != 128)) return false;
  if (a.hq <= 0 || a.hkv <= 0 || a.hq % a.hkv != 0) return false;
  if (a.batch > 65535 || a.hq > 65535 || (a.sq + kBr - 1) / kBr > 0x7fffffff) return false;
  // 16-byte rows of K and V, 4-byte pairs of Q and out: last dim dense, other strides aligned.
  if (!aligned_to(a.k, 16) || !aligned_to(a.v, 16) || !aligned_to(a.q, 4) || !aligned_to(a.out, 4)) return false;
  for (int i = 0; i < 3; ++i) {
    if (a.k_stride[i] % 8 != 0 || a.v_stride[i] % 8 != 0) return false;
    if (a.q_stride[i] % 2 != 0 || a.o_stride[i] % 2 != 0) return false;
  }
  return true;
}

cudaError_t launch_flash_attention(DType dtype, int64_t d, const FlashArgs& a, cudaStream_t stream) {
  if (a.sq == 0 || a.batch == 0 || a.hq == 0) return cudaSuccess;
  if (dtype == DType::bf16) {
    return d == 64 ? launch_flash_typed<__nv_bfloat16, 64>(a, stream)
                   : launch_flash_typed<__nv_bfloat16, 128>(a, stream);
  }
  return d == 64 ? launch_flash_typed<__half, 64>(a, stream) : launch_flash_typed<__half, 128>(a, stream);
}

cudaError_t launch_generic_attention(const GenericArgs& a, cudaStream_t stream) {
  if (a.sq == 0 || a.batch == 0 || a.hq == 0) return cudaSuccess;
  if (a.d > kMaxHead || a.dv > kMaxHead || a.hq > 65535) return cudaErrorNotSupported;
  const dim3 grid(static_cast<unsigned>((a.batch * a.sq + kGenericWarps - 1) / kGenericWarps),
                  static_cast<unsigned>(a.hq));
  const int regs = static_cast<int>((a.dv + 31) / 32);
  if (regs <= 2) {
    generic_attention_kernel<2><<<grid, 32 * kGenericWarps, 0, stream>>>(a);
  } else if (regs <= 4) {
    generic_attention_kernel<4><<<grid, 32 * kGenericWarps, 0, stream>>>(a);
  } else if (regs <= 8) {
    generic_attention_kernel<8><<<grid, 32 * kGenericWarps, 0, stream>>>(a);
  } else {
    generic_attention_kernel<16><<<grid, 32 * kGenericWarps, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

namespace {

// One dense problem (4-D views) on the flash kernel when it applies, else the generic one.
void attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& out,
            const AttentionParams& p, cudaStream_t stream) {
  const int64_t d = q.size(3), dv = v.size(3);
  const bool same = q.dtype() == k.dtype() && k.dtype() == v.dtype() && v.dtype() == out.dtype();
  const bool dense_last = q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1 && out.stride(3) == 1;
  if (same && dense_last && !mask.defined()) {
    FlashArgs a{};
    a.q = q.data_ptr();
    a.k = k.data_ptr();
    a.v = v.data_ptr();
    a.out = out.data_ptr();
    for (int i = 0; i < 3; ++i) {
      a.q_stride[i] = q.stride(i);
      a.k_stride[i] = k.stride(i);
      a.v_stride[i] = v.stride(i);
      a.o_stride[i] = out.stride(i);
    }
    a.batch = q.size(0);
    a.hq = q.size(1);
    a.hkv = k.size(1);
    a.sq = q.size(2);
    a.sk = k.size(2);
    a.scale = p.scale;
    a.causal = p.causal;
    if (flash_attention_supported(q.dtype(), d, dv, a)) {
      MINDIESD_CUDA_CHECK(launch_flash_attention(q.dtype(), d, a, stream));
      return;
    }
  }
  GenericArgs a{};
  a.q = q.data_ptr();
  a.k = k.data_ptr();
  a.v = v.data_ptr();
  a.mask = mask.defined() ? mask.data_ptr() : nullptr;
  a.out = out.data_ptr();
  a.q_dtype = q.dtype();
  a.k_dtype = k.dtype();
  a.v_dtype = v.dtype();
  a.mask_dtype = mask.defined() ? mask.dtype() : DType::boolean;
  a.out_dtype = out.dtype();
  for (int i = 0; i < 4; ++i) {
    a.q_stride[i] = q.stride(i);
    a.k_stride[i] = k.stride(i);
    a.v_stride[i] = v.stride(i);
    a.m_stride[i] = mask.defined() ? mask.stride(i) : 0;
    a.o_stride[i] = out.stride(i);
  }
  a.batch = q.size(0);
  a.hq = q.size(1);
  a.hkv = k.size(1);
  a.sq = q.size(2);
  a.sk = k.size(2);
  a.d = d;
  a.dv = dv;
  a.scale = p.scale;
  a.causal = p.causal;
  const cudaError_t err = launch_generic_attention(a, stream);
  if (err == cudaErrorNotSupported) {
    MINDIESD_THROW(Unsupported, "attention on CUDA: head dims ", d, "/", dv, " over ", kMaxHead,
                   " or ", a.hq, " heads");
  }
  MINDIESD_CUDA_CHECK(err);
}

void attention_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& q = c.inputs[0];
  Tensor mask = c.inputs.size() > 3 ? c.inputs[3] : Tensor();
  const Shape full{q.size(0), q.size(1), q.size(2), c.inputs[1].size(2)};
  if (mask.defined() && mask.shape() != full) mask = mask.expand(full);
  attend(q, c.inputs[1], c.inputs[2], mask, c.outputs[0], c.p<AttentionParams>(), scope.stream());
}

void attention_varlen_kernel(const OpCall& c) {
  const KernelScope scope(c);
  // The sequence boundaries are needed on the host to cut the packed tensors into problems.
  // TODO(perf): one launch over all sequences with the boundaries read on the device.
  const Tensor cq = c.inputs[3].to(Device::cpu()).contiguous();
  const Tensor ck = c.inputs[4].to(Device::cpu()).contiguous();
  const int32_t* pq = cq.data<int32_t>();
  const int32_t* pk = ck.data<int32_t>();
  auto seq = [](const Tensor& t, int64_t a, int64_t e) {
    return t.slice(0, a, e).permute({1, 0, 2}).unsqueeze(0);
  };
  for (int64_t b = 0; b + 1 < cq.numel(); ++b) {
    attend(seq(c.inputs[0], pq[b], pq[b + 1]), seq(c.inputs[1], pk[b], pk[b + 1]),
           seq(c.inputs[2], pk[b], pk[b + 1]), Tensor(), seq(c.outputs[0], pq[b], pq[b + 1]),
           c.p<AttentionParams>(), scope.stream());
  }
}

}  // namespace

void register_attention_kernels(KernelRegistry& r) {
  const DTypeSet floats{DType::f32, DType::f16, DType::bf16};
  const DTypeSet mask_types{DType::f32, DType::f16, DType::bf16, DType::boolean};
  r.add(OpId::attention, DeviceType::CUDA, {floats, floats, floats, mask_types}, floats,
        attention_kernel);
  r.add(OpId::attention_varlen, DeviceType::CUDA, {floats, floats, floats, DTypeSet{DType::i32}},
        floats, attention_varlen_kernel);
}

}  // namespace mindiesd::cuda
