// Layout ops that move data on CUDA: concat, pad, index_select, gather. (permute, slice, split,
// expand and repeat are views plus `copy`.)
//
// concat copies each input into its slice of the output with launch_copy (a memcpy when both
// are dense, else the strided copy). pad maps each output element to its source element (or
// the fill value) per dim. index_select and gather are one kernel: index_select is gather with
// the 1-D index broadcast over the other dims. Elements move as raw 1/2/4/8-byte words, so
// every dtype the CPU registers moves bit for bit. Indices are validated on the host before any
// launch (InvalidArgument, as on the CPU); that copies the index tensor to the host and waits
// for it.
#include <cstring>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/copy.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"
#include "mindiesd/kernel/cuda/layout.h"

namespace mindiesd::cuda {

namespace {

// Calls f(word type) for an element size of 1, 2, 4 or 8 bytes; false for any other size.
template <typename F>
bool dispatch_word(int bytes, F&& f) {
  switch (bytes) {
    case 1:
      f(uint8_t{});
      return true;
    case 2:
      f(uint16_t{});
      return true;
    case 4:
      f(uint32_t{});
      return true;
    case 8:
      f(uint64_t{});
      return true;
    default:
      return false;
  }
}

int element_bytes(DType t) { return t == DType::i4 ? 0 : dtype_bits(t) / 8; }

// ---- pad ------------------------------------------------------------------------------------

// The source coordinate of output coordinate o along a padded dim (the CPU's pad_source);
// -1 = the constant fill.
MINDIESD_HD int64_t pad_source(int64_t o, int64_t before, int64_t n, PadMode mode) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant:
      return -1;
    case PadMode::replicate:
      return i < 0 ? 0 : n - 1;
    case PadMode::reflect:
      if (n == 1) return 0;
      while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
      return i;
  }
  return -1;
}

template <typename Index>
struct PadArgs {
  int ndim;
  int64_t n;  // output elements
  Divider<Index> out_sizes[kMaxDims];
  int64_t out_strides[kMaxDims];
  int64_t x_sizes[kMaxDims];
  int64_t x_strides[kMaxDims];
  int64_t before[kMaxDims];
  PadMode mode;
};

template <typename W, typename Index>
__global__ void __launch_bounds__(kThreads)
    pad_kernel(const PadArgs<Index> a, const W* x, W* out, W fill) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= a.n) return;
  Index lin = static_cast<Index>(i);
  int64_t dst = 0, src = 0;
  bool is_fill = false;
  for (int d = a.ndim - 1; d >= 0; --d) {
    const Index q = a.out_sizes[d].div(lin);
    const auto o = static_cast<int64_t>(lin - q * static_cast<Index>(a.out_sizes[d].divisor));
    lin = q;
    dst += o * a.out_strides[d];
    const int64_t s = pad_source(o, a.before[d], a.x_sizes[d], a.mode);
    if (s < 0) {
      is_fill = true;
    } else {
      src += s * a.x_strides[d];
    }
  }
  out[dst] = is_fill ? fill : x[src];
}

// ---- gather / index_select ------------------------------------------------------------------

// Operands: 0 = out, 1 = index, 2 = x with the gathered dim's stride zeroed.
template <typename W, typename I>
struct GatherWords {
  W* out;
  const W* x;
  const I* index;
  int64_t x_dim_stride;
  int64_t x_dim_size;

  template <typename Index>
  MINDIESD_HD void operator()(const Index (&off)[3]) const {
    const auto k = static_cast<int64_t>(index[off[1]]);
    out[off[0]] = k >= 0 && k < x_dim_size
                      ? x[static_cast<int64_t>(off[2]) + k * x_dim_stride]
                      : W{0};
  }
};

// ---- registration glue ----------------------------------------------------------------------

// The CPU's check, on a host copy of the index: a bad index is an error, not a half-written
// output.
void check_indices(const Tensor& index, int64_t n, const char* op) {
  const Tensor idx = index.contiguous().to(Device::cpu());
  const void* base = idx.data_ptr();
  for (int64_t i = 0; i < idx.numel(); ++i) {
    const int64_t k = idx.dtype() == DType::i64 ? static_cast<const int64_t*>(base)[i]
                                                : static_cast<const int32_t*>(base)[i];
    MINDIESD_CHECK(k >= 0 && k < n, InvalidArgument, op, ": index ", k, " at position ", i,
                   " out of range [0, ", n, ")");
  }
}

void concat_op(const OpCall& c) {
  const KernelScope scope(c);
  const int dim = c.p<ConcatParams>().dim;
  const Tensor& out = c.outputs[0];
  int64_t at = 0;
  for (const Tensor& t : c.inputs) {
    const int64_t n = t.size(dim);
    if (n > 0 && t.numel() > 0) {
      const Tensor dst = out.slice(dim, at, at + n);
      MINDIESD_CUDA_CHECK(
          launch_copy(dst.dim(), dst.shape().data(), out_arg(dst), in_arg(t), scope.stream()));
    }
    at += n;
  }
}

void pad_op(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& x = c.inputs[0];
  const Tensor& out = c.outputs[0];
  MINDIESD_CHECK(x.dtype() == out.dtype(), Unsupported, "pad: input ", x.str(), " and output ",
                 out.str(), " differ in dtype");
  MINDIESD_CUDA_CHECK(launch_pad(c.p<PadParams>(), out.dim(), out.shape().data(), out_arg(out),
                                 x.shape().data(), in_arg(x), scope.stream()));
}

void index_select_op(const OpCall& c) {
  const KernelScope scope(c);
  const int dim = c.p<IndexParams>().dim;
  const Tensor& x = c.inputs[0];
  const Tensor& index = c.inputs[1];
  const Tensor& out = c.outputs[0];
  MINDIESD_CHECK(x.dtype() == out.dtype(), Unsupported, "index_select: input ", x.str(),
                 " and output ", out.str(), " differ in dtype");
  check_indices(index, x.size(dim), "index_select");
  // The 1-D index as a view over out's shape: stride 0 on every dim but `dim`.
  int64_t ist[kMaxDims] = {};
  ist[dim] = index.stride(0);
  MINDIESD_CUDA_CHECK(launch_gather(dim, out.dim(), out.shape().data(), out_arg(out), in_arg(x),
                                    x.size(dim), {index.data_ptr(), index.dtype(), ist},
                                    scope.stream()));
}

void gather_op(const OpCall& c) {
  const KernelScope scope(c);
  const int dim = c.p<IndexParams>().dim;
  const Tensor& x = c.inputs[0];
  const Tensor& index = c.inputs[1];
  const Tensor& out = c.outputs[0];
  MINDIESD_CHECK(x.dtype() == out.dtype(), Unsupported, "gather: input ", x.str(), " and output ",
                 out.str(), " differ in dtype");
  check_indices(index, x.size(dim), "gather");
  MINDIESD_CUDA_CHECK(launch_gather(dim, out.dim(), out.shape().data(), out_arg(out), in_arg(x),
                                    x.size(dim), in_arg(index), scope.stream()));
}

constexpr DTypeSet kIndexTypes{DType::i32, DType::i64};
constexpr DTypeSet kByteAddressable{DType::f32, DType::f16, DType::bf16, DType::f8_e4m3,
                                    DType::f8_e5m2, DType::i8, DType::u8, DType::i32,
                                    DType::i64, DType::boolean};

}  // namespace

// ---- launchers ------------------------------------------------------------------------------

cudaError_t launch_pad(const PadParams& p, int ndim, const int64_t* out_sizes, StridedOut out,
                       const int64_t* x_sizes, StridedIn x, cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  if (x.dtype != out.dtype) return cudaErrorInvalidValue;
  const int es = element_bytes(out.dtype);
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= out_sizes[d];
  if (n == 0) return cudaSuccess;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidConfiguration;
  // The fill value's bit pattern, converted on the host by core's converter as the CPU does.
  uint8_t fill_bytes[8] = {};
  if (es > 0) convert(&p.value, DType::f32, fill_bytes, out.dtype, 1);
  cudaError_t err = cudaSuccess;
  auto run = [&](auto index) {
    using Index = decltype(index);
    PadArgs<Index> a;
    a.ndim = ndim;
    a.n = n;
    for (int d = 0; d < ndim; ++d) {
      a.out_sizes[d] = Divider<Index>(static_cast<Index>(out_sizes[d]));
      a.out_strides[d] = out.strides[d];
      a.x_sizes[d] = x_sizes[d];
      a.x_strides[d] = x.strides[d];
      a.before[d] = p.before[d];
    }
    a.mode = p.mode;
    return dispatch_word(es, [&](auto w) {
      using W = decltype(w);
      W fill;
      std::memcpy(&fill, fill_bytes, sizeof(W));
      // clang-format off
      pad_kernel<W, Index><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          a, static_cast<const W*>(x.data), static_cast<W*>(out.data), fill);
      // clang-format on
      err = cudaGetLastError();
    });
  };
  const bool ok = n <= std::numeric_limits<int32_t>::max() ? run(uint32_t{}) : run(int64_t{});
  return ok ? err : cudaErrorNotSupported;
}

cudaError_t launch_gather(int dim, int ndim, const int64_t* sizes, StridedOut out, StridedIn x,
                          int64_t x_dim_size, StridedIn index, cudaStream_t stream) {
  if (!valid_rank(ndim) || dim < 0 || dim >= ndim) return cudaErrorInvalidValue;
  if (x.dtype != out.dtype) return cudaErrorInvalidValue;
  if (index.dtype != DType::i32 && index.dtype != DType::i64) return cudaErrorNotSupported;
  int64_t xst[kMaxDims] = {};
  for (int d = 0; d < ndim; ++d) xst[d] = d == dim ? 0 : x.strides[d];
  const auto layout = collapse<3>(ndim, sizes, {out.strides, index.strides, xst});
  if (layout.numel == 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  const bool ok = dispatch_word(element_bytes(out.dtype), [&](auto w) {
    using W = decltype(w);
    auto go = [&](auto i) {
      using I = decltype(i);
      const GatherWords<W, I> op{static_cast<W*>(out.data), static_cast<const W*>(x.data),
                                 static_cast<const I*>(index.data), x.strides[dim], x_dim_size};
      err = launch_strided(layout, op, stream);
    };
    if (index.dtype == DType::i64) {
      go(int64_t{});
    } else {
      go(int32_t{});
    }
  });
  return ok ? err : cudaErrorNotSupported;
}

void register_layout_kernels(KernelRegistry& r) {
  // The CPU's dtype sets, so that dispatch never differs by device.
  r.add(OpId::concat, DeviceType::CUDA, {kByteAddressable}, kByteAddressable, concat_op);
  r.add(OpId::pad, DeviceType::CUDA, {kByteAddressable}, kByteAddressable, pad_op);
  r.add(OpId::index_select, DeviceType::CUDA, {kByteAddressable, kIndexTypes}, kByteAddressable,
        index_select_op);
  r.add(OpId::gather, DeviceType::CUDA, {kByteAddressable, kIndexTypes}, kByteAddressable,
        gather_op);
}

}  // namespace mindiesd::cuda
