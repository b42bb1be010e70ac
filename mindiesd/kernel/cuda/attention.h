// Framework-free launchers of the CUDA attention kernels (FlashInfer style): raw device
// pointers, element strides of 4-D (B, H, S, D) views, sizes and a stream in; the launch status
// out. Nothing is allocated and nothing synchronises. Semantics as AttentionParams in
// core/op_params.h (scale on q.k, bottom-right causal, GQA, rows with no visible key give 0).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "mindiesd/core/allocator.h"
#include "mindiesd/core/dtype.h"

namespace mindiesd::cuda {

// The tensor-core kernel (flash_attention.cuh): q, k, v, out of one dtype (bf16 or f16), head
// dim 64 or 128 for both q.k and v, last dims dense. Strides are for dims (B, H, S); the D
// stride is 1.
struct FlashArgs {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  int64_t q_stride[3], k_stride[3], v_stride[3], o_stride[3];
  int64_t batch, hq, hkv, sq, sk;
  float scale;
  bool causal;
  int block_warps = 0;  // query rows per block / 16: 4 or 8 (0 = the default, 4)
  // Block-sparse attention (the sparse_attention op), not causal: key tile j * 64 of query row i
  // is visited when block_mask[b * bm_stride[0] + h * bm_stride[1] + (i / block_q) * bm_stride[2]
  // + (j * 64 / block_k) * bm_stride[3]] is non-zero. block_q a multiple of the block's rows,
  // block_k of 64. nullptr: dense.
  const uint8_t* block_mask = nullptr;
  int64_t bm_stride[4] = {};
  int64_t block_q = 0, block_k = 0;
};
// Whether launch_flash_attention takes this problem (dtype, head dims, alignment, grid limits).
bool flash_attention_supported(DType dtype, int64_t d, int64_t dv, const FlashArgs& args);
cudaError_t launch_flash_attention(DType dtype, int64_t d, const FlashArgs& args,
                                   cudaStream_t stream);

// cuDNN's fused flash attention (the cudnn-frontend SDPA graph) on the flash kernel's arguments:
// bf16 / f16, head dims multiples of 8 up to 128 (q.k and v alike), any strides with dense last
// dims, GQA, bottom-right causal where every row sees a key (Sq <= Sk). One graph per problem
// (dims, strides, scale, causal, device) is built on first use and cached, refusals too. The
// workspace comes from `alloc` under `stream_key` and goes back once the work is queued.
// Returns false, launching nothing, when this build has no cudnn-frontend or cuDNN does not
// take the problem (`why` says which); throws Internal when an accepted graph fails to run.
bool launch_cudnn_attention(DType dtype, int64_t d, const FlashArgs& args, int device,
                            cudaStream_t stream, Allocator& alloc, uintptr_t stream_key,
                            std::string* why = nullptr);

// The fallback: any float dtypes per operand, head dims up to 512, an optional mask (boolean:
// true attends; float: added to the logits) viewed as (B, Hq, Sq, Sk) with any strides
// (0 = broadcast), any strides everywhere. f32 math, one warp per (query row, head).
struct GenericArgs {
  const void* q;
  const void* k;
  const void* v;
  const void* mask;  // nullptr: none
  void* out;
  DType q_dtype, k_dtype, v_dtype, mask_dtype, out_dtype;
  int64_t q_stride[4], k_stride[4], v_stride[4], m_stride[4], o_stride[4];
  int64_t batch, hq, hkv, sq, sk, d, dv;
  float scale;
  bool causal;
  // A kept-block mask as in FlashArgs (any block sizes), or nullptr.
  const uint8_t* block_mask = nullptr;
  int64_t bm_stride[4] = {};
  int64_t block_q = 0, block_k = 0;
};
// cudaErrorNotSupported when a head dim exceeds 512.
cudaError_t launch_generic_attention(const GenericArgs& args, cudaStream_t stream);

}  // namespace mindiesd::cuda
