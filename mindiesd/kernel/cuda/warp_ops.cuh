// The warp-level primitives the tensor-core kernels (flash_attention.cuh, grouped_gemm.cuh) are
// written over: ldmatrix, mma.sync m16n8k16, cp.async, shuffles. A kernel body takes them as a
// template parameter `Ops`, so the same body runs on the GPU with WarpOps below and, thread by
// thread, on a host without a GPU with emulation/warp_emulator.h's EmulatedWarpOps.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace mindiesd::cuda {

#if defined(__CUDACC__)
// The GPU's primitives. Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix Fragments for
// mma.m16n8k16"), with g = lane / 4 and t = lane % 4:
//   A (16 x 16, row): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8,
//   2t+8..) B (16 x 8, col):  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g) C (16 x 8, f32):
//   c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1)
// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of matrix i; each lane receives, of matrix
// i, the pair (row lane/4, columns 2(lane%4)..+1) in r[i]; with .trans the pair (rows
// 2(lane%4)..+1, column lane/4).
template <typename T>
struct WarpOps {
  __device__ static uint32_t shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
  }
  __device__ void ldsm_x4(uint32_t (&r)[4], const void* row) const {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
  }
  __device__ void ldsm_x4_trans(uint32_t (&r)[4], const void* row) const {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
  }
  __device__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) const {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
          "{%8,%9}, {%0,%1,%2,%3};\n"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
          "{%8,%9}, {%0,%1,%2,%3};\n"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
  }
  // 16 bytes global -> shared, asynchronously; the bytes past src_bytes (0 or 16) are zeros.
  __device__ void cp_async_16(void* dst, const void* src, int src_bytes) const {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)),
                 "l"(src), "r"(src_bytes)
                 : "memory");
  }
  __device__ void cp_async_commit() const { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
  // Waits until at most N of this thread's committed groups are still in flight.
  template <int N>
  __device__ void cp_async_wait() const {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
  }
  __device__ void sync_block() const { __syncthreads(); }
  __device__ float shfl_xor(float v, int lane_mask) const {
    return __shfl_xor_sync(0xffffffffu, v, lane_mask);
  }
  __device__ uint32_t pack(float lo, float hi) const {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
      return *reinterpret_cast<const uint32_t*>(&v);
    } else {
      const __half2 v = __floats2half2_rn(lo, hi);
      return *reinterpret_cast<const uint32_t*>(&v);
    }
  }
  __device__ float exp2(float x) const { return exp2f(x); }
};
#endif

}  // namespace mindiesd::cuda
