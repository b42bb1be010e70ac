// Attention on CUDA, three paths behind one op, tried in this order:
//
//  - cudnn (attention_cudnn.cpp): cuDNN's fused flash attention through cudnn-frontend, taken
//    first for bf16 / f16 without a mask when the build has cudnn-frontend and cuDNN accepts;
//  - flash: FlashAttention-2 on the tensor cores for bf16 / f16 with head dims 64 and 128 and no
//    mask (the DiT case); the kernel body and its design are in flash_attention.cuh.
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

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cuda/attention.h"
#include "mindiesd/kernel/cuda/cuda_backend.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/flash_attention.cuh"
#include "mindiesd/kernel/cuda/kernels.h"

namespace mindiesd::cuda {

namespace {

// ---- flash kernel (the body is flash_attention.cuh's, shared with the host emulation) --------

template <typename T, int D, int kWarps, bool kCausal>
__global__ void __launch_bounds__(32 * kWarps) flash_attention_kernel(const FlashArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  // Causal: the last query blocks see the most keys; start them first.
  const int64_t q_block = kCausal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  WarpOps<T> ops;
  flash_attention_block<T, D, kWarps, kCausal>(a, ops, q_block, blockIdx.y, blockIdx.z,
                                               static_cast<int>(threadIdx.x), smem);
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
  for (int d = lane; d < a.d; d += 32)
    qs[warp][d] = load_f32(q, a.q_dtype, q_off + d * a.q_stride[3]);
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
    const bool kept = a.block_mask == nullptr ||
                      a.block_mask[b * a.bm_stride[0] + h * a.bm_stride[1] +
                                   (i / a.block_q) * a.bm_stride[2] +
                                   (min(j, a.sk - 1) / a.block_k) * a.bm_stride[3]] != 0;
    if (j < last && kept) {
      float dot = 0.0f;
      const int64_t ko = k_base + j * a.k_stride[2];
      for (int d = 0; d < a.d; ++d)
        dot += qs[warp][d] * load_f32(a.k, a.k_dtype, ko + d * a.k_stride[3]);
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

template <typename T, int D, int kWarps, bool kCausal>
cudaError_t launch_flash_variant(const FlashArgs& a, cudaStream_t stream) {
  using Tile = FlashTile<D, kWarps>;
  constexpr int kBytes = static_cast<int>(Tile::kSmemBytes);
  auto* kernel = flash_attention_kernel<T, D, kWarps, kCausal>;
  if (kBytes > 48 * 1024) {  // past the default dynamic shared-memory limit: opt in
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(static_cast<unsigned>((a.sq + Tile::kBr - 1) / Tile::kBr),
                  static_cast<unsigned>(a.hq), static_cast<unsigned>(a.batch));
  kernel<<<grid, Tile::kThreads, kBytes, stream>>>(a);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launch_flash_typed(const FlashArgs& a, cudaStream_t stream) {
  if (a.block_warps == 8) {
    return a.causal ? launch_flash_variant<T, D, 8, true>(a, stream)
                    : launch_flash_variant<T, D, 8, false>(a, stream);
  }
  return a.causal ? launch_flash_variant<T, D, 4, true>(a, stream)
                  : launch_flash_variant<T, D, 4, false>(a, stream);
}

bool aligned_to(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

bool flash_attention_supported(DType dtype, int64_t d, int64_t dv, const FlashArgs& a) {
  if (dtype != DType::bf16 && dtype != DType::f16) return false;
  if (d != dv || (d != 64 && d != 128)) return false;
  if (a.hq <= 0 || a.hkv <= 0 || a.hq % a.hkv != 0) return false;
  if (a.block_warps != 0 && a.block_warps != 4 && a.block_warps != 8) return false;
  if (a.block_mask != nullptr) {
    const int64_t rows = 16 * (a.block_warps == 8 ? 8 : 4);
    if (a.causal || a.block_q % rows != 0 || a.block_k % 64 != 0) return false;
  }
  if (a.batch > 65535 || a.hq > 65535 || (a.sq + 63) / 64 > 0x7fffffff) return false;
  // 16-byte rows of K and V, 4-byte pairs of Q and out: last dim dense, other strides aligned.
  if (!aligned_to(a.k, 16) || !aligned_to(a.v, 16) || !aligned_to(a.q, 4) || !aligned_to(a.out, 4))
    return false;
  for (int i = 0; i < 3; ++i) {
    if (a.k_stride[i] % 8 != 0 || a.v_stride[i] % 8 != 0) return false;
    if (a.q_stride[i] % 2 != 0 || a.o_stride[i] % 2 != 0) return false;
  }
  return true;
}

cudaError_t launch_flash_attention(DType dtype, int64_t d, const FlashArgs& a,
                                   cudaStream_t stream) {
  if (a.sq == 0 || a.batch == 0 || a.hq == 0) return cudaSuccess;
  if (dtype == DType::bf16) {
    return d == 64 ? launch_flash_typed<__nv_bfloat16, 64>(a, stream)
                   : launch_flash_typed<__nv_bfloat16, 128>(a, stream);
  }
  return d == 64 ? launch_flash_typed<__half, 64>(a, stream)
                 : launch_flash_typed<__half, 128>(a, stream);
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

// Where a call's kernels run and take scratch memory from.
struct Launch {
  cudaStream_t stream;
  int device;
  Allocator* alloc;
  uintptr_t stream_key;
  // cuDNN builds and caches a graph per problem shape: right for the dense op, whose shapes
  // repeat every step, wrong for varlen, whose per-sequence lengths vary from call to call.
  bool try_cudnn = true;
  explicit Launch(const OpCall& c, cudaStream_t s)
      : stream(s),
        device(c.outputs[0].device().index),
        alloc(&backend_for(c.outputs[0].device()).allocator(c.outputs[0].device().index)),
        stream_key(::mindiesd::cuda::stream_key(*c.stream)) {}
};

// A kept-block mask (B, H, nQ, nK) view and its block sizes, for the sparse_attention op.
struct BlockMask {
  const Tensor* mask = nullptr;
  int64_t block_q = 0, block_k = 0;

  template <typename Args>
  void set(Args& a) const {
    if (!mask) return;
    a.block_mask = static_cast<const uint8_t*>(mask->data_ptr());
    for (int i = 0; i < 4; ++i) a.bm_stride[i] = mask->stride(i);
    a.block_q = block_q;
    a.block_k = block_k;
  }
};

// One problem (4-D views): cuDNN's fused attention when this build has it and it takes the
// problem (dense only), else the flash kernel when it applies, else the generic one.
void attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
            const Tensor& out, const AttentionParams& p, const Launch& launch,
            const BlockMask& blocks = {}) {
  const cudaStream_t stream = launch.stream;
  const int64_t d = q.size(3), dv = v.size(3);
  const bool same = q.dtype() == k.dtype() && k.dtype() == v.dtype() && v.dtype() == out.dtype();
  const bool dense_last =
      q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1 && out.stride(3) == 1;
  if (same && dense_last && !mask.defined()) {
    FlashArgs a = flash_args(q, k, v, out, p.scale, p.causal);
    blocks.set(a);
    if (!blocks.mask && launch.try_cudnn && d == dv &&
        launch_cudnn_attention(q.dtype(), d, a, launch.device, stream, *launch.alloc,
                               launch.stream_key)) {
      return;
    }
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
  blocks.set(a);
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
  attend(q, c.inputs[1], c.inputs[2], mask, c.outputs[0], c.p<AttentionParams>(),
         Launch(c, scope.stream()));
}

void sparse_attention_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const auto& sp = c.p<SparseAttentionParams>();
  AttentionParams p;
  p.scale = sp.scale;
  const Tensor& mask = c.inputs[3];
  attend(c.inputs[0], c.inputs[1], c.inputs[2], Tensor(), c.outputs[0], p,
         Launch(c, scope.stream()), BlockMask{&mask, sp.block_q, sp.block_k});
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
  Launch launch(c, scope.stream());
  launch.try_cudnn = false;
  for (int64_t b = 0; b + 1 < cq.numel(); ++b) {
    attend(seq(c.inputs[0], pq[b], pq[b + 1]), seq(c.inputs[1], pk[b], pk[b + 1]),
           seq(c.inputs[2], pk[b], pk[b + 1]), Tensor(), seq(c.outputs[0], pq[b], pq[b + 1]),
           c.p<AttentionParams>(), launch);
  }
}

}  // namespace

void register_attention_kernels(KernelRegistry& r) {
  const DTypeSet floats{DType::f32, DType::f16, DType::bf16};
  const DTypeSet mask_types{DType::f32, DType::f16, DType::bf16, DType::boolean};
  r.add(OpId::attention, DeviceType::CUDA, {floats, floats, floats, mask_types}, floats,
        attention_kernel);
  r.add(OpId::sparse_attention, DeviceType::CUDA,
        {floats, floats, floats, DTypeSet{DType::boolean}}, floats, sparse_attention_kernel);
  r.add(OpId::attention_varlen, DeviceType::CUDA, {floats, floats, floats, DTypeSet{DType::i32}},
        floats, attention_varlen_kernel);
}

}  // namespace mindiesd::cuda
