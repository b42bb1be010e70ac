// mindiesd's own f32 GEMM: the matmul and convolution kernels of builds without oneDNN
// (MINDIESD_CPU_DEPS=OFF, e.g. a GPU machine with only the CUDA toolkit), where the CPU
// backend is the reference the CUDA kernels are compared with.
//
// BLIS-style (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS
// Functionality", 2015): B is packed in K x NC panels of NR-column strips, A in MR-row strips,
// and a register-tiled MR x NR micro-kernel runs over the packed strips. Packing converts
// bf16 / f16 to f32 and absorbs any strides, so transposed views need no copy.
#pragma once

#include <cstdint>

#include "mindiesd/core/dtype.h"

namespace mindiesd::cpu {

// A matrix operand: element (i, j) is at data + i * row_stride + j * col_stride elements.
struct GemmOperand {
  const void* data;
  DType dtype;  // f32, bf16 or f16
  int64_t row_stride, col_stride;
};

// c (m, n; row stride ldc, unit column stride) = alpha * a (m, k) @ b (k, n), added to c's
// values when `accumulate`. f32 accumulation; parallel over the CPU threads.
void gemm_f32(int64_t m, int64_t n, int64_t k, float alpha, const GemmOperand& a,
              const GemmOperand& b, float* c, int64_t ldc, bool accumulate = false);

}  // namespace mindiesd::cpu
