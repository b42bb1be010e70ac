// The closed list of ops, the kernel registry and dispatch.
//
// Every op that a backend may implement is listed once here (ggml-style), so dispatch,
// tracing and the Python binding share one list. A kernel is a plain function taking an
// OpCall (input/output tensor views and the op's parameter struct from op_params.h);
// kernels never allocate their outputs. The front ends in ops.h check arguments, compute
// output shapes and dtypes, allocate, then dispatch() to the kernel registered for the
// tensors' device and dtypes, or fail with an Unsupported error naming op, device, dtypes.
#pragma once

#include <initializer_list>
#include <span>
#include <vector>

#include "mindiesd/core/device.h"
#include "mindiesd/core/dtype.h"

namespace mindiesd {

class Tensor;
class Stream;

#define MINDIESD_OPS(X)                                                  \
  X(copy)         /* out <- in[0] broadcast, with dtype conversion */     \
  X(fill)         /* out <- FillParams::value */                          \
  X(unary)        /* UnaryParams */                                       \
  X(binary)       /* BinaryParams, broadcasting */                        \
  X(ternary)      /* TernaryParams: where, fma, lerp */                   \
  X(reduce)       /* ReduceParams: sum, mean, max, min, var */            \
  X(softmax)      /* SoftmaxParams */                                     \
  X(matmul)       /* a @ b (+ bias), batched with broadcast batch dims */ \
  X(grouped_matmul) /* x rows by group @ w[group]^T: MoE experts */       \
  X(concat)       /* ConcatParams */                                      \
  X(pad)          /* PadParams: constant, reflect, replicate */           \
  X(index_select) /* IndexParams: x, 1-D index */                         \
  X(gather)       /* IndexParams: torch.gather semantics */               \
  X(conv)         /* ConvParams: 1-3 spatial dims, groups, bias */        \
  X(interpolate)  /* InterpolateParams: nearest, bilinear */              \
  X(random)       /* RandomParams: Philox uniform / normal */           \
  X(attention)    /* AttentionParams: dense, flash-style */               \
  X(attention_varlen) /* AttentionParams: packed sequences, cu_seqlens */ \
  X(sparse_attention) /* SparseAttentionParams: block-sparse, kept-block mask */ \
  X(norm)         /* NormParams: layer / rms / group, DiT fusions */      \
  X(rope)         /* RopeParams: rotary position embedding */          \
  X(quantize)     /* QuantizeParams: float rows -> int8 / fp8 codes */   \
  X(quant_matmul) /* QuantMatmulParams: int8 / fp8 GEMM, dequant epilogue */ \
  X(dequantize)   /* DequantizeParams: int8 / int4 / fp8 weight -> float */

enum class OpId : uint8_t {
#define MINDIESD_OP_ENUM(name) name,
  MINDIESD_OPS(MINDIESD_OP_ENUM)
#undef MINDIESD_OP_ENUM
      count
};
inline constexpr int kNumOps = static_cast<int>(OpId::count);
const char* op_name(OpId op);

struct OpCall {
  OpId op;
  std::span<const Tensor> inputs;
  std::span<const Tensor> outputs;
  const void* params;  // the op's struct from op_params.h, or nullptr
  Stream* stream;

  template <typename P>
  const P& p() const {
    return *static_cast<const P*>(params);
  }
};

using KernelFn = void (*)(const OpCall&);

struct KernelEntry {
  OpId op;
  DeviceType device;
  std::vector<DTypeSet> inputs;  // per input position; the last set covers any further inputs
  DTypeSet outputs;
  KernelFn fn;

  bool accepts(std::span<const DType> in, std::span<const DType> out) const;
};

class KernelRegistry {
 public:
  void add(OpId op, DeviceType device, std::initializer_list<DTypeSet> inputs, DTypeSet outputs,
           KernelFn fn);
  // The first kernel (in registration order) accepting the dtypes, or nullptr.
  const KernelEntry* find(OpId op, DeviceType device, std::span<const DType> in,
                          std::span<const DType> out) const;
  void clear();

 private:
  std::vector<KernelEntry> entries_;
};

// The process-wide registry (populated by each backend's initialisation).
KernelRegistry& kernel_registry();

// Runs `op` on the device the tensors live on. All defined tensors must share one device.
void dispatch(OpId op, std::span<const Tensor> inputs, std::span<const Tensor> outputs,
              const void* params);

}  // namespace mindiesd
