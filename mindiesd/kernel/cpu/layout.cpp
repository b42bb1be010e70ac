// Layout ops that move data: concat, pad, index_select, gather. (permute, slice, split,
// expand and repeat are views plus `copy`.)
#include <cstring>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"

namespace mindiesd::cpu {

namespace {

void concat_kernel(const OpCall& c) {
  const int dim = c.p<ConcatParams>().dim;
  const Tensor& out = c.outputs[0];
  int64_t at = 0;
  for (const Tensor& t : c.inputs) {
    const int64_t n = t.size(dim);
    if (n > 0) out.slice(dim, at, at + n).copy_(t);
    at += n;
  }
}

int64_t read_index(const void* base, DType t, int64_t off) {
  return t == DType::i64 ? static_cast<const int64_t*>(base)[off]
                         : static_cast<const int32_t*>(base)[off];
}

// Checked before any parallel work so that a bad index is an error, not a half-written output.
void check_indices(const Tensor& index, int64_t n, const char* op) {
  const Tensor idx = index.contiguous();
  for (int64_t i = 0; i < idx.numel(); ++i) {
    const int64_t k = read_index(idx.data_ptr(), idx.dtype(), i);
    MINDIESD_CHECK(k >= 0 && k < n, InvalidArgument, op, ": index ", k, " at position ", i,
                   " out of range [0, ", n, ")");
  }
}

// Maps an output coordinate to the source coordinate of a padded dim; -1 = constant fill.
int64_t pad_source(int64_t o, int64_t before, int64_t n, PadMode mode) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::replicate: return i < 0 ? 0 : n - 1;
    case PadMode::reflect:
      // Reflection without repeating the edge; the front end checks pad < n.
      if (n == 1) return 0;
      while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
      return i;
  }
  return -1;
}

void pad_kernel(const OpCall& c) {
  const auto& p = c.p<PadParams>();
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  const int nd = out.dim();
  const int64_t es = dtype_bits(out.dtype()) / 8;
  uint8_t fill[8] = {};
  convert(&p.value, DType::f32, fill, out.dtype(), 1);
  const char* xb = static_cast<const char*>(x.storage()->data());
  char* ob = static_cast<char*>(out.storage()->data());
  const int64_t rows = out.numel() / out.size(nd - 1);
  const int64_t w = out.size(nd - 1);
  parallel_for(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, w)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      // Decompose the row index into output coordinates of dims [0, nd-1).
      int64_t rem = r, src = x.offset(), dst = out.offset();
      bool is_fill = false;
      for (int d = nd - 2; d >= 0; --d) {
        const int64_t o = rem % out.size(d);
        rem /= out.size(d);
        dst += o * out.stride(d);
        const int64_t s = pad_source(o, p.before[d], x.size(d), p.mode);
        if (s < 0) is_fill = true;
        else src += s * x.stride(d);
      }
      for (int64_t j = 0; j < w; ++j) {
        char* o = ob + (dst + j * out.stride(nd - 1)) * es;
        const int64_t s = is_fill ? -1 : pad_source(j, p.before[nd - 1], x.size(nd - 1), p.mode);
        if (s < 0) std::memcpy(o, fill, es);
        else std::memcpy(o, xb + (src + s * x.stride(nd - 1)) * es, es);
      }
    }
  });
}

void index_select_kernel(const OpCall& c) {
  const int dim = c.p<IndexParams>().dim;
  const Tensor& x = c.inputs[0];
  const Tensor index = c.inputs[1].contiguous();
  const Tensor& out = c.outputs[0];
  const int64_t n = index.numel();
  check_indices(index, x.size(dim), "index_select");
  parallel_for(0, n, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t src = read_index(index.data_ptr(), index.dtype(), i);
      out.select(dim, i).copy_(x.select(dim, src));
    }
  });
}

void gather_kernel(const OpCall& c) {
  const int dim = c.p<IndexParams>().dim;
  const Tensor& x = c.inputs[0];
  const Tensor& index = c.inputs[1];
  const Tensor& out = c.outputs[0];
  // x's strides with the gathered dim zeroed give the offset of the other coordinates.
  Shape xst = x.strides();
  xst[dim] = 0;
  check_indices(index, x.size(dim), "gather");
  StridedRuns<3> runs(out.shape(), {&out.strides(), &index.strides(), &xst});
  const int64_t es = dtype_bits(out.dtype()) / 8;
  const char* xb = static_cast<const char*>(x.storage()->data());
  char* ob = static_cast<char*>(out.storage()->data());
  const void* ib = index.storage()->data();
  runs.parallel_runs(1 << 14, [&](const std::array<int64_t, 3>& off, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      const int64_t k = read_index(ib, index.dtype(), index.offset() + off[1] + i * runs.inner_stride(1));
      const int64_t src = x.offset() + off[2] + i * runs.inner_stride(2) + k * x.stride(dim);
      std::memcpy(ob + (out.offset() + off[0] + i * runs.inner_stride(0)) * es, xb + src * es, es);
    }
  });
}

constexpr DTypeSet kIndexTypes{DType::i32, DType::i64};
constexpr DTypeSet kByteAddressable{DType::f32, DType::f16, DType::bf16, DType::f8_e4m3,
                                    DType::f8_e5m2, DType::i8, DType::u8, DType::i32,
                                    DType::i64, DType::boolean};

}  // namespace

void register_layout_kernels(KernelRegistry& r) {
  r.add(OpId::concat, DeviceType::CPU, {kByteAddressable}, kByteAddressable, concat_kernel);
  r.add(OpId::pad, DeviceType::CPU, {kByteAddressable}, kByteAddressable, pad_kernel);
  r.add(OpId::index_select, DeviceType::CPU, {kByteAddressable, kIndexTypes}, kByteAddressable,
        index_select_kernel);
  r.add(OpId::gather, DeviceType::CPU, {kByteAddressable, kIndexTypes}, kByteAddressable,
        gather_kernel);
}

}  // namespace mindiesd::cpu
