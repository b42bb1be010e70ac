// Glue between mindiesd tensors and oneDNN memory descriptors.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "mindiesd/core/tensor.h"

namespace mindiesd::cpu {

// The process's oneDNN CPU engine (created on first use; oneDNN engines are thread-safe).
const dnnl::engine& dnnl_engine();
dnnl::memory::data_type dnnl_type(DType t);
// A plain descriptor with the tensor's own dims and element strides.
dnnl::memory::desc dnnl_desc(const Tensor& t);

}  // namespace mindiesd::cpu
