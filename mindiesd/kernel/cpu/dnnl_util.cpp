#include "mindiesd/kernel/cpu/dnnl_util.h"

#include "mindiesd/core/error.h"

namespace mindiesd::cpu {

const dnnl::engine& dnnl_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::data_type dnnl_type(DType t) {
  switch (t) {
    case DType::f32: return dnnl::memory::data_type::f32;
    case DType::f16: return dnnl::memory::data_type::f16;
    case DType::bf16: return dnnl::memory::data_type::bf16;
    case DType::i8: return dnnl::memory::data_type::s8;
    case DType::u8: return dnnl::memory::data_type::u8;
    case DType::i32: return dnnl::memory::data_type::s32;
    default: MINDIESD_THROW(Unsupported, "oneDNN has no data type for ", dtype_name(t));
  }
}

dnnl::memory::desc dnnl_desc(const Tensor& t) {
  dnnl::memory::dims dims(t.shape().begin(), t.shape().end());
  dnnl::memory::dims strides(t.strides().begin(), t.strides().end());
  // Size-1 dims may carry any stride; give them a consistent one so oneDNN accepts them.
  for (int i = t.dim() - 1; i >= 0; --i) {
    if (dims[i] != 1) continue;
    int64_t extent = 1;
    for (int j = i + 1; j < t.dim(); ++j) extent = std::max<int64_t>(extent, strides[j] * dims[j]);
    strides[i] = extent;
  }
  return dnnl::memory::desc(dims, dnnl_type(t.dtype()), strides);
}

}  // namespace mindiesd::cpu
