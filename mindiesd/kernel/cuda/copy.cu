// copy (strided, broadcasting, dtype-converting) and fill on CUDA.
//
// Paths, fastest first: a dense same-dtype copy is cudaMemcpyAsync (the copy engines or the
// runtime's tuned kernel); a dense conversion among f32/f16/bf16 is a vectorised kernel; a
// strided same-dtype copy moves raw 1/2/4/8-byte words (no conversion code at all); anything
// else converts element by element through a run-time dtype switch. The strided kernels
// iterate in output order, so writes are coalesced; a transposing read is not (a tiled
// transpose is future work for the layouts that need it).
#include <cstring>

#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cuda/copy.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/kernels.h"
#include "mindiesd/kernel/cuda/launch.cuh"

namespace mindiesd::cuda {

namespace {

template <DType S, DType D>
struct ConvertVec {
  using TS = typename Traits<S>::T;
  using TD = typename Traits<D>::T;
  const TS* src;
  TD* dst;

  template <int V>
  MINDIESD_HD void vec(int64_t i) const {
    const Vec<TS, V> in = *reinterpret_cast<const Vec<TS, V>*>(src + i);
    Vec<TD, V> out;
    MINDIESD_UNROLL
    for (int j = 0; j < V; ++j) out.v[j] = Traits<D>::from_f32(Traits<S>::to_f32(in.v[j]));
    *reinterpret_cast<Vec<TD, V>*>(dst + i) = out;
  }
};

// Same-dtype strided copy as raw words of the element's size.
template <typename W>
struct MoveWords {
  W* dst;
  const W* src;

  template <typename Index>
  MINDIESD_HD void operator()(const Index (&off)[2]) const {
    dst[off[0]] = src[off[1]];
  }
};

template <typename W>
struct FillWords {
  W* dst;
  W value;

  template <typename Index>
  MINDIESD_HD void operator()(const Index (&off)[1]) const {
    dst[off[0]] = value;
  }
};

struct ConvertStrided {
  void* dst;
  const void* src;
  DType dt, st;
  bool float_source;

  template <typename Index>
  MINDIESD_HD void operator()(const Index (&off)[2]) const {
    if (float_source) {
      store_f32(dst, dt, off[0], load_f32(src, st, off[1]));
    } else {
      store_i64(dst, dt, off[0], load_i64(src, st, off[1]));
    }
  }
};

// Calls f(word type) for an element size of 1, 2, 4 or 8 bytes.
template <typename F>
void dispatch_word(int bytes, F&& f) {
  switch (bytes) {
    case 1:
      f(uint8_t{});
      break;
    case 2:
      f(uint16_t{});
      break;
    case 4:
      f(uint32_t{});
      break;
    default:
      f(uint64_t{});
      break;
  }
}

int element_bytes(DType t) { return dtype_bits(t) / 8; }

// ---- registration glue ----------------------------------------------------------------------

void copy_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& dst = c.outputs[0];
  const Tensor src = broadcast_like(c.inputs[0], dst);
  if (src.dtype() == DType::i4 || dst.dtype() == DType::i4) {
    // Packed nibbles have no per-element address; like the CPU, only whole dense buffers.
    MINDIESD_CHECK(src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous(),
                   Unsupported,
                   "copy: packed i4 tensors are copied on CUDA only dense and "
                   "without conversion, got ",
                   src.str(), " -> ", dst.str());
    if (dst.numel() > 0) {
      MINDIESD_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(),
                                          static_cast<size_t>(dst.nbytes()),
                                          cudaMemcpyDeviceToDevice, scope.stream()));
    }
    return;
  }
  MINDIESD_CUDA_CHECK(
      launch_copy(dst.dim(), dst.shape().data(), out_arg(dst), in_arg(src), scope.stream()));
}

void fill_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const Tensor& out = c.outputs[0];
  const double v = c.p<FillParams>().value;
  if (out.dtype() == DType::i4) {
    MINDIESD_CHECK(out.is_contiguous(), Unsupported, "fill: packed i4 tensors must be dense, got ",
                   out.str());
    const uint8_t nib = f32_to_i4(static_cast<float>(v));
    if (out.numel() > 0) {
      MINDIESD_CUDA_CHECK(cudaMemsetAsync(out.data_ptr(), nib | (nib << 4),
                                          static_cast<size_t>(out.nbytes()), scope.stream()));
    }
    return;
  }
  MINDIESD_CUDA_CHECK(launch_fill(v, out.dim(), out.shape().data(), out_arg(out), scope.stream()));
}

}  // namespace

// ---- launchers ------------------------------------------------------------------------------

cudaError_t launch_copy(int ndim, const int64_t* sizes, StridedOut dst, StridedIn src,
                        cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  if (dst.dtype == DType::i4 || src.dtype == DType::i4) return cudaErrorNotSupported;
  const auto layout = collapse<2>(ndim, sizes, {dst.strides, src.strides});
  if (layout.numel == 0) return cudaSuccess;
  const int es = element_bytes(src.dtype);
  if (src.dtype == dst.dtype) {
    if (layout.contiguous()) {
      return copy_bytes(dst.data, src.data, static_cast<size_t>(layout.numel * es), stream);
    }
    cudaError_t err = cudaSuccess;
    dispatch_word(es, [&](auto w) {
      using W = decltype(w);
      err = launch_strided(
          layout, MoveWords<W>{static_cast<W*>(dst.data), static_cast<const W*>(src.data)}, stream);
    });
    return err;
  }
  if (layout.contiguous()) {
    cudaError_t err = cudaSuccess;
    bool launched = false;
    dispatch_float(src.dtype, [&](auto s) {
      dispatch_float(dst.dtype, [&](auto d) {
        constexpr DType S = decltype(s)::value, D = decltype(d)::value;
        if constexpr (S != D) {
          using TS = typename Traits<S>::T;
          using TD = typename Traits<D>::T;
          constexpr int V = kVecElems<TS, TD>;
          if (!aligned_to(src.data, sizeof(TS) * V) || !aligned_to(dst.data, sizeof(TD) * V))
            return;
          const ConvertVec<S, D> op{static_cast<const TS*>(src.data), static_cast<TD*>(dst.data)};
          err = launch_contiguous<V>(layout.numel, op, stream);
          launched = true;
        }
      });
    });
    if (launched) return err;
  }
  const ConvertStrided op{dst.data, src.data, dst.dtype, src.dtype, is_floating(src.dtype)};
  return launch_strided(layout, op, stream);
}

cudaError_t launch_fill(double value, int ndim, const int64_t* sizes, StridedOut dst,
                        cudaStream_t stream) {
  if (!valid_rank(ndim)) return cudaErrorInvalidValue;
  if (dst.dtype == DType::i4) return cudaErrorNotSupported;
  // The element's bit pattern, computed on the host with core's converters so it equals the
  // CPU fill bit for bit.
  uint64_t word = 0;
  if (dst.dtype == DType::i64) {
    int64_t i = 0;
    if (value == value) {
      i = value <= -0x1p63 ? INT64_MIN
                           : (value >= 0x1p63 ? INT64_MAX : static_cast<int64_t>(value));
    }
    std::memcpy(&word, &i, 8);
  } else {
    const float f = static_cast<float>(value);
    convert(&f, DType::f32, &word, dst.dtype, 1);
  }
  const auto layout = collapse<1>(ndim, sizes, {dst.strides});
  if (layout.numel == 0) return cudaSuccess;
  const int es = element_bytes(dst.dtype);
  // One repeated byte (zero above all) is a memset, which the driver runs at full bandwidth.
  bool one_byte = true;
  const auto* b = reinterpret_cast<const uint8_t*>(&word);
  for (int i = 1; i < es; ++i) one_byte &= b[i] == b[0];
  if (layout.contiguous() && one_byte) {
    return set_bytes(dst.data, b[0], static_cast<size_t>(layout.numel * es), stream);
  }
  cudaError_t err = cudaSuccess;
  dispatch_word(es, [&](auto w) {
    using W = decltype(w);
    W v;
    std::memcpy(&v, &word, sizeof(W));
    err = launch_strided(layout, FillWords<W>{static_cast<W*>(dst.data), v}, stream);
  });
  return err;
}

void register_copy_kernels(KernelRegistry& r) {
  constexpr DTypeSet kElementTypes{DType::f32,     DType::f16,    DType::bf16, DType::f8_e4m3,
                                   DType::f8_e5m2, DType::i8,     DType::u8,   DType::i32,
                                   DType::i64,     DType::boolean};
  r.add(OpId::copy, DeviceType::CUDA, {kElementTypes}, kElementTypes, copy_kernel);
  r.add(OpId::copy, DeviceType::CUDA, {{DType::i4}}, {DType::i4}, copy_kernel);
  r.add(OpId::fill, DeviceType::CUDA, {}, DTypeSet::all(), fill_kernel);
}

}  // namespace mindiesd::cuda
