// copy (strided, broadcasting, dtype-converting) and fill.
#include <cstring>
#include <limits>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"

namespace mindiesd::cpu {

void load_as_f32(const void* base, DType t, int64_t offset, int64_t stride, int64_t n,
                 float* out) {
  if (stride == 1) {
    if (t == DType::f32) {
      std::memcpy(out, static_cast<const float*>(base) + offset, n * sizeof(float));
    } else {
      const auto* p = static_cast<const char*>(base) + dtype_bytes(t, offset);
      convert(p, t, out, DType::f32, n);
    }
    return;
  }
  switch (t) {
    case DType::f32: {
      const float* p = static_cast<const float*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = p[i * stride];
      return;
    }
    case DType::bf16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i * stride]);
      return;
    }
    case DType::f16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i * stride]);
      return;
    }
    default: {
      MINDIESD_CHECK(t != DType::i4, Unsupported, "strided access to packed i4 elements");
      const int64_t es = dtype_bits(t) / 8;
      const char* p = static_cast<const char*>(base) + offset * es;
      for (int64_t i = 0; i < n; ++i) convert(p + i * stride * es, t, out + i, DType::f32, 1);
    }
  }
}

void store_from_f32(void* base, DType t, int64_t offset, int64_t stride, int64_t n,
                    const float* in) {
  if (stride == 1) {
    convert(in, DType::f32, static_cast<char*>(base) + dtype_bytes(t, offset), t, n);
    return;
  }
  switch (t) {
    case DType::f32: {
      float* p = static_cast<float*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) p[i * stride] = in[i];
      return;
    }
    case DType::bf16: {
      uint16_t* p = static_cast<uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) p[i * stride] = f32_to_bf16(in[i]);
      return;
    }
    default: {
      MINDIESD_CHECK(t != DType::i4, Unsupported, "strided access to packed i4 elements");
      const int64_t es = dtype_bits(t) / 8;
      char* p = static_cast<char*>(base) + offset * es;
      for (int64_t i = 0; i < n; ++i) convert(in + i, DType::f32, p + i * stride * es, t, 1);
    }
  }
}

namespace {

constexpr int64_t kChunk = 512;
constexpr int64_t kGrain = 1 << 15;

void copy_kernel(const OpCall& c) {
  const Tensor& src = c.inputs[0];
  const Tensor& dst = c.outputs[0];
  const DType st = src.dtype(), dt = dst.dtype();
  if (st == DType::i4 || dt == DType::i4) {
    MINDIESD_CHECK(src.is_contiguous() && dst.is_contiguous() && src.numel() == dst.numel(),
                   Unsupported, "copy: packed i4 tensors must be contiguous, got ", src.str(),
                   " -> ", dst.str());
    convert(src.data_ptr(), st, dst.data_ptr(), dt, dst.numel());
    return;
  }
  StridedRuns<2> runs(dst.shape(), {&dst.strides(), &src.strides()});
  const char* sp = static_cast<const char*>(src.storage()->data());
  char* dp = static_cast<char*>(dst.storage()->data());
  const int64_t s_off = src.offset(), d_off = dst.offset();
  const int64_t ss = runs.inner_stride(1), ds = runs.inner_stride(0);
  const int64_t ses = dtype_bits(st) / 8, des = dtype_bits(dt) / 8;
  const bool float_path = is_floating(st) || is_floating(dt);
  runs.parallel_runs(kGrain, [&](const std::array<int64_t, 2>& off, int64_t len) {
    const char* s = sp + (s_off + off[1]) * ses;
    char* d = dp + (d_off + off[0]) * des;
    if (st == dt) {
      if (ss == 1 && ds == 1) {
        std::memcpy(d, s, len * ses);
      } else if (ses == 4) {
        for (int64_t i = 0; i < len; ++i) std::memcpy(d + i * ds * 4, s + i * ss * 4, 4);
      } else if (ses == 2) {
        for (int64_t i = 0; i < len; ++i) std::memcpy(d + i * ds * 2, s + i * ss * 2, 2);
      } else {
        for (int64_t i = 0; i < len; ++i) std::memcpy(d + i * ds * ses, s + i * ss * ses, ses);
      }
      return;
    }
    if (!float_path || (ss == 1 && ds == 1)) {
      if (ss == 1 && ds == 1) {
        convert(s, st, d, dt, len);
      } else {
        for (int64_t i = 0; i < len; ++i) convert(s + i * ss * ses, st, d + i * ds * des, dt, 1);
      }
      return;
    }
    float buf[kChunk];
    for (int64_t i = 0; i < len; i += kChunk) {
      const int64_t n = std::min(kChunk, len - i);
      load_as_f32(s, st, i * ss, ss, n, buf);
      store_from_f32(d, dt, i * ds, ds, n, buf);
    }
  });
}

template <typename T>
void fill_typed(T* p, int64_t n, T v) {
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, v); });
}

void fill_kernel(const OpCall& c) {
  const Tensor& out = c.outputs[0];
  const double v = c.p<FillParams>().value;
  MINDIESD_CHECK(out.is_contiguous(), Unsupported, "fill needs a contiguous tensor, got ",
                 out.str());
  uint8_t bytes[8] = {};
  const float f = static_cast<float>(v);
  if (out.dtype() == DType::i64) {
    // Exact for integral doubles; NaN -> 0 and out-of-range values clamp, as f32_to_int.
    const int64_t i = v != v ? 0
                      : v >= 9.2233720368547758e18 ? std::numeric_limits<int64_t>::max()
                      : v <= -9.2233720368547758e18 ? std::numeric_limits<int64_t>::min()
                                                    : static_cast<int64_t>(v);
    std::memcpy(bytes, &i, 8);
  } else if (out.dtype() == DType::i4) {
    const uint8_t nib = f32_to_i4(f);
    bytes[0] = static_cast<uint8_t>(nib | (nib << 4));
  } else {
    convert(&f, DType::f32, bytes, out.dtype(), 1);
  }
  void* p = out.data_ptr();
  const int64_t n = out.numel();
  switch (out.dtype() == DType::i4 ? 8 : dtype_bits(out.dtype())) {
    case 8: fill_typed(static_cast<uint8_t*>(p), out.nbytes(), bytes[0]); break;
    case 16: fill_typed(static_cast<uint16_t*>(p), n, *reinterpret_cast<uint16_t*>(bytes)); break;
    case 32: fill_typed(static_cast<uint32_t*>(p), n, *reinterpret_cast<uint32_t*>(bytes)); break;
    default: fill_typed(static_cast<uint64_t*>(p), n, *reinterpret_cast<uint64_t*>(bytes)); break;
  }
}

}  // namespace

void register_copy_kernels(KernelRegistry& r) {
  r.add(OpId::copy, DeviceType::CPU, {DTypeSet::all()}, DTypeSet::all(), copy_kernel);
  r.add(OpId::fill, DeviceType::CPU, {}, DTypeSet::all(), fill_kernel);
}

}  // namespace mindiesd::cpu
