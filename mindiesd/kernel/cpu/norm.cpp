// CPU kernels of the norm family (op `norm`, NormParams in core/op_params.h): LayerNorm and
// RMSNorm over the last dim, GroupNorm over (N, C, S), and the DiT fusions (affine, adaLN
// scale / shift, residual add) in the same pass.
//
// Last-dim norms make ONE pass over memory per row: the row (6 KB at C = 3072 in bf16) is read
// from memory once for its statistics (one-pass shifted sums, see Moments) and again from L1 /
// L2 to normalise, and the output is written once. With a residual, x + residual is formed in
// an f32 row buffer, rounded as the stored sum is, and both outputs are written from it. f32
// and bf16 rows are read and written in place through typed codecs (the conversions vectorise
// inline, bf16 stores through AVX512-BF16 where present); f16, strided last dims and mixed
// dtypes are staged through f32 buffers. Weight, bias and modulation fold into two
// per-channel vectors
//   A = weight * (1 + scale),  B = bias * (1 + scale) + shift,  y = norm(s) * A + B
// computed once per thread for the weight and again only when the row's scale / shift row
// changes (for x (B, S, C) with (B, 1, C) modulation: once per sample), so the inner loop is
// one FMA per value whatever is fused; rows sharing A / B are normalised a few at a time so
// that A and B are read from L2 once per batch (kBatch). Rows are split over threads in
// contiguous blocks, which keeps rows that share a modulation row on one thread. Outputs of
// 16 MiB and more are written with non-temporal stores (kStreamBytes).
//
// GroupNorm needs the block's statistics before its first output, and a block (C / G
// channels x H x W) is too large to keep in cache, so it reads the input twice (stats, then
// normalise), as PyTorch does; blocks are split over threads.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/kernel/cpu/strided.h"

namespace mindiesd::cpu {

namespace {

// Values per L1 tile where bf16 outputs are converted (2 KB of f32).
constexpr int64_t kTile = 512;

// Operand slots of a row norm in the StridedRuns walk over the leading dims.
enum Slot { kX, kY, kSum, kRes, kScale, kShift, kSlots };

const Tensor* optional_input(const OpCall& c, size_t i) {
  return i < c.inputs.size() && c.inputs[i].defined() ? &c.inputs[i] : nullptr;
}

// Element codecs of the typed paths: f32 as is, bf16 as its bits. Other dtypes (f16) and
// strided rows are staged through f32 buffers and take the F32 path.
struct F32 {
  using T = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
struct BF16 {
  using T = uint16_t;
  static float load(uint16_t v) { return bf16_to_f32(v); }
  static uint16_t store(float v) { return f32_to_bf16(v); }
};

// Rounds f32 values through `t` in place (a no-op for f32), for the places where the unfused
// PyTorch code stores an intermediate in the tensor dtype.
void round_through(DType t, float* v, int64_t n) {
  switch (t) {
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) v[i] = bf16_to_f32(f32_to_bf16(v[i]));
      return;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) v[i] = f16_to_f32(f32_to_f16(v[i]));
      return;
    default:
      return;
  }
}

// A (C) f32 copy of an optional per-channel tensor, `fill` where absent.
std::vector<float> channel_vector(const Tensor* t, int64_t c, float fill) {
  std::vector<float> v(static_cast<size_t>(c), fill);
  if (t) load_as_f32(t->storage()->data(), t->dtype(), t->offset(), t->stride(0), c, v.data());
  return v;
}

struct RowStats {
  float mean_hi = 0, mean_lo = 0;  // mean = hi + lo, so that (x - hi) - lo keeps f64 accuracy
  float rstd = 0;
};

// Sums of d = x - shift and d^2, with `shift` an estimate of the mean (see sample_mean), so
// that the terms are of the data's spread rather than its offset: the one-pass variance
// E[d^2] - E[d]^2 then does not cancel, and f32 partial sums are accurate. 64 f32 lanes (four
// independent AVX-512 accumulators, so the adds pipeline instead of waiting on one chain)
// over blocks of at most kBlock values, each block's lanes then added in f64. About 4 vector
// ops per 16 values, against 7 for f64 accumulation, which matters: the row is in L1 and this
// loop is most of the kernel's compute. rms wants only sum(x^2) (kCentre false, shift 0),
// which does not cancel.
struct Moments {
  static constexpr int kLanes = 64;
  static constexpr int64_t kBlock = 4096;
  float shift = 0;
  double s1 = 0, s2 = 0;
  int64_t n = 0;

  template <bool kCentre, class In>
  void add(const typename In::T* p, int64_t len) {
    for (int64_t b = 0; b < len; b += kBlock) {
      const int64_t e = std::min(len, b + kBlock);
      float a[kLanes] = {}, q[kLanes] = {};
      int64_t i = b;
      for (; i + kLanes <= e; i += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
          const float d = In::load(p[i + l]) - shift;
          if constexpr (kCentre) a[l] += d;
          q[l] += d * d;
        }
      }
      for (; i < e; ++i) {
        const float d = In::load(p[i]) - shift;
        if constexpr (kCentre) a[0] += d;
        q[0] += d * d;
      }
      // Fold the lanes to 16 with vector adds before the dependent scalar f64 adds.
      float a16[16], q16[16];
      for (int l = 0; l < 16; ++l) {
        a16[l] = (a[l] + a[l + 16]) + (a[l + 32] + a[l + 48]);
        q16[l] = (q[l] + q[l + 16]) + (q[l + 32] + q[l + 48]);
      }
      for (int l = 0; l < 16; ++l) {
        s1 += a16[l];
        s2 += q16[l];
      }
    }
    n += len;
  }

  // torch computes rstd = 1 / sqrt(var + eps) in its f32 accumulate type; from an f64 var this
  // agrees to the last f32 bit in all but rare ties.
  RowStats finish(bool centre, float eps) const {
    RowStats st;
    const double m = s1 / static_cast<double>(n);
    double var = s2 / static_cast<double>(n);
    if (centre) {
      var = std::max(0.0, var - m * m);
      const double mean = shift + m;
      st.mean_hi = static_cast<float>(mean);
      st.mean_lo = static_cast<float>(mean - st.mean_hi);
    }
    st.rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
    return st;
  }
};

// The mean of the first (up to) 256 values, as the shift of Moments. A sample rather than one
// value, because DiT activations have a few channels of huge magnitude ("massive
// activations"): a shift taken from such a channel puts E[d^2] far above the variance, and the
// f32 sums lose the rest of the row to the cancellation. Within a sample of k values an outlier
// M moves the shift by M / k, while it adds at least M^2 / n to the variance, so E[d^2] stays
// within (1 + n / k^2) of the variance: 1.05 for C = 3072.
template <class In>
float sample_mean(const typename In::T* p, int64_t n) {
  const int64_t k = std::min<int64_t>(n, 256);
  float lanes[16] = {};
  int64_t i = 0;
  for (; i + 16 <= k; i += 16)
    for (int l = 0; l < 16; ++l) lanes[l] += In::load(p[i + l]);
  for (; i < k; ++i) lanes[0] += In::load(p[i]);
  float s = 0;
  for (float v : lanes) s += v;
  return s / static_cast<float>(k);
}

template <class In>
RowStats row_stats(const typename In::T* p, int64_t n, bool centre, float eps) {
  Moments m;
  if (centre) {
    m.shift = sample_mean<In>(p, n);
    m.add<true, In>(p, n);
  } else {
    m.add<false, In>(p, n);
  }
  return m.finish(centre, eps);
}

// f32 -> bf16 for a row, bit-exact with f32_to_bf16 (c10's round-to-nearest-even) except for
// NaN payloads. With AVX512-BF16 one vcvtne2ps2bf16 converts 32 values; it flushes subnormal
// inputs to zero where c10 keeps them (bf16 shares f32's exponent range, so only subnormal
// inputs give subnormal outputs), so a block holding one takes the scalar path. Elsewhere the
// scalar loop vectorises to ~8 integer ops per 16 values, which made the conversion the
// largest cost of a bf16 row once the data is in L1.
inline void f32_to_bf16_row(const float* v, uint16_t* d, int64_t n, bool stream = false) {
  int64_t i = 0;
#if defined(__AVX512BF16__)
  // Streaming stores need 64-byte alignment; an unaligned row (odd C) stores normally.
  stream = stream && (reinterpret_cast<uintptr_t>(d) & 63) == 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(v + i), hi = _mm512_loadu_ps(v + i + 16);
    if (_mm512_fpclass_ps_mask(lo, 0x20) | _mm512_fpclass_ps_mask(hi, 0x20)) {  // subnormal
      alignas(64) uint16_t h[32];
      for (int k = 0; k < 32; ++k) h[k] = f32_to_bf16(v[i + k]);
      std::memcpy(d + i, h, sizeof h);
      continue;
    }
    const __m512i bits = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
    if (stream) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(d + i), bits);
    } else {
      _mm512_storeu_si512(d + i, bits);
    }
  }
#endif
  for (; i < n; ++i) d[i] = f32_to_bf16(v[i]);
}

// Outputs at least this large are written with non-temporal stores. They leave the caches
// before anyone reads them anyway, and a normal store first reads the line it writes (the
// write-allocate), so streaming them saves a third of the traffic; it also keeps the output
// out of L1, where the row, A and B (36 KB at C = 3072 in f32) barely fit. Smaller outputs
// stay cached for the op that consumes them.
constexpr int64_t kStreamBytes = int64_t{16} << 20;

// memcpy with non-temporal stores for the 64-byte-aligned middle. Callers fence
// (_mm_sfence) before the data is handed to another thread.
inline void stream_copy(void* dst, const void* src, int64_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  int64_t i = std::min<int64_t>(bytes, (64 - (reinterpret_cast<uintptr_t>(d) & 63)) & 63);
  std::memcpy(d, s, static_cast<size_t>(i));
#if defined(__AVX512F__)
  for (; i + 64 <= bytes; i += 64)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(d + i), _mm512_loadu_si512(s + i));
#elif defined(__AVX__)
  for (; i + 32 <= bytes; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
#endif
  std::memcpy(d + i, s + i, static_cast<size_t>(bytes - i));
}

// Writes value(i), i in [0, n), to y in Out's dtype: directly, or (bf16, or streaming)
// through an L1 tile.
template <class Out, class F>
inline void emit(typename Out::T* y, int64_t n, bool stream, F&& value) {
  if (std::is_same_v<Out, F32> && !stream) {
    for (int64_t i = 0; i < n; ++i) y[i] = value(i);
    return;
  }
  alignas(64) float t[kTile];
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int64_t len = std::min(kTile, n - i0);
    for (int64_t k = 0; k < len; ++k) t[k] = value(i0 + k);
    if constexpr (std::is_same_v<Out, F32>) {
      stream_copy(y + i0, t, len * 4);
    } else {
#if defined(__AVX512BF16__)
      f32_to_bf16_row(t, y + i0, len, stream);  // streams from the conversion directly
#else
      if (stream) {
        alignas(64) uint16_t h[kTile];
        f32_to_bf16_row(t, h, len);
        stream_copy(y + i0, h, len * 2);
      } else {
        f32_to_bf16_row(t, y + i0, len);
      }
#endif
    }
  }
}

// y = norm * A + B (A null: y = norm; B null: y = norm * A, sparing an L1 load per value),
// norm = ((x - mean_hi) - mean_lo) * rstd, rounded through bf16 first when kRound (diffusers
// RMSNorm's cast to the half weight dtype; an f32 output has no such cast, and f16 outputs
// round on the staged path).
template <bool kRound, class In, class Out>
void normalize(const typename In::T* x, typename Out::T* y, int64_t n, const RowStats& st,
               const float* A, const float* B, bool stream) {
  const float mh = st.mean_hi, ml = st.mean_lo, rstd = st.rstd;
  // ((x - hi) - lo) * rstd as a subtract and an FMA: (x - hi) is exact near the mean and lo
  // is below its last bit, so folding lo * rstd into the FMA costs no accuracy.
  const float lo_rstd = -ml * rstd;
  auto norm = [&](int64_t i) { return (In::load(x[i]) - mh) * rstd + lo_rstd; };
  if constexpr (kRound && std::is_same_v<Out, BF16>) {
    // Round the tile of norms through bf16 (vectorised), then the affine, then the output.
    alignas(64) float t[kTile];
    alignas(64) uint16_t h[kTile];
    for (int64_t i0 = 0; i0 < n; i0 += kTile) {
      const int64_t len = std::min(kTile, n - i0);
      for (int64_t k = 0; k < len; ++k) t[k] = norm(i0 + k);
      f32_to_bf16_row(t, h, len);
      const float* a = A ? A + i0 : nullptr;
      const float* b = B ? B + i0 : nullptr;
      if (a && b) {
        emit<BF16>(y + i0, len, stream, [&](int64_t k) { return bf16_to_f32(h[k]) * a[k] + b[k]; });
      } else if (a) {
        emit<BF16>(y + i0, len, stream, [&](int64_t k) { return bf16_to_f32(h[k]) * a[k]; });
      } else {
        emit<BF16>(y + i0, len, stream, [&](int64_t k) { return bf16_to_f32(h[k]); });
      }
    }
  } else if (A && B) {
    emit<Out>(y, n, stream, [&](int64_t i) { return norm(i) * A[i] + B[i]; });
  } else if (A) {
    emit<Out>(y, n, stream, [&](int64_t i) { return norm(i) * A[i]; });
  } else {
    emit<Out>(y, n, stream, norm);
  }
}

// Everything a row worker needs, fixed per call.
struct RowJob {
  const NormParams* p;
  const Tensor* t[kSlots];  // x, y, sum, residual, scale, shift (null when absent)
  void* data[kSlots];
  int64_t base[kSlots], el_st[kSlots];
  int64_t C;
  const StridedRuns<kSlots>* rows;
  const std::vector<float>* wv;
  const std::vector<float>* bv;
  bool coef;            // y = norm * A (+ B): some weight, bias or modulation
  bool offset;          // B is not all zero: a bias or a shift
  bool stage_in;        // the row is gathered into an f32 buffer (In = F32 over it)
  bool stage_out;       // y is scattered from an f32 buffer (Out = F32 into it)
  bool stream;          // y (and the sum) are written with non-temporal stores
  bool typed_residual;  // x, residual and sum: contiguous rows of one dtype, f32 or bf16
};

// s = x + residual for one row of the typed residual path, rounded to the dtype as the
// stored sum is (bf16 through the fast row conversion), the sum written (streamed for large
// outputs) and s left in the f32 stage buffer for the norm.
template <class T>
void add_rows(const RowJob& j, const int64_t* o, float* s) {
  using E = typename T::T;
  const E* x = static_cast<const E*>(j.data[kX]) + o[kX];
  const E* r = static_cast<const E*>(j.data[kRes]) + o[kRes];
  E* sum = static_cast<E*>(j.data[kSum]) + o[kSum];
  alignas(64) uint16_t h[kTile];
  for (int64_t i0 = 0; i0 < j.C; i0 += kTile) {
    const int64_t len = std::min(kTile, j.C - i0);
    float* t = s + i0;
    for (int64_t k = 0; k < len; ++k) t[k] = T::load(x[i0 + k]) + T::load(r[i0 + k]);
    const void* bits = t;
    if constexpr (std::is_same_v<T, BF16>) {
      f32_to_bf16_row(t, h, len);
      for (int64_t k = 0; k < len; ++k) t[k] = bf16_to_f32(h[k]);
      bits = h;
    }
    if (j.stream) {
      stream_copy(sum + i0, bits, len * static_cast<int64_t>(sizeof(E)));
    } else {
      std::memcpy(sum + i0, bits, static_cast<size_t>(len) * sizeof(E));
    }
  }
}

// Rows sharing one A / B (one modulation row) are normalised kBatch at a time, in column
// tiles of kColTile, so each A / B tile comes from L2 once per batch instead of once per row:
// a row and its A and B (6 + 12 + 12 KB for bf16 at C = 3072) do not fit L1 together, and
// re-reading A and B from L2 for every row cost a quarter of the fused kernels' time.
constexpr int kBatch = 4;
constexpr int64_t kColTile = 1024;

// The rows [r0, r1) with In / Out codecs: In reads x in place unless the input is staged (f16,
// strided, a residual: gathered into an f32 buffer, In = F32); Out writes y in place unless
// staged (f16, strided: scattered from an f32 buffer, Out = F32).
template <class In, class Out>
void run_rows(const RowJob& j, int64_t r0, int64_t r1) {
  using TI = typename In::T;
  using TO = typename Out::T;
  const NormParams& p = *j.p;
  const int64_t C = j.C;
  const Tensor *x = j.t[kX], *y = j.t[kY], *sum = j.t[kSum], *res = j.t[kRes];
  const Tensor *sc = j.t[kScale], *sh = j.t[kShift];
  const bool modulate = sc || sh;
  // Without coefficients there is nothing to share: one row at a time keeps it in L1 from
  // its statistics to its normalisation.
  const int batch_max = j.coef ? kBatch : 1;
  std::vector<float> stage(j.stage_in ? batch_max * C : 0), tmp(res ? C : 0);
  std::vector<float> out(j.stage_out ? batch_max * C : 0);
  std::vector<float> A, B, scale_row(sc ? C : 0), shift_row(sh ? C : 0);
  if (j.coef) {
    A = *j.wv;
    B = *j.bv;
  }
  // f16 outputs take the staged F32 path; their diffusers rounding happens here.
  const bool generic_round = p.round_normed && j.stage_out && y->dtype() != DType::f32;
  const bool stream = j.stream && !j.stage_out;
  int64_t cached_sc = -1, cached_sh = -1;

  struct Row {
    int64_t o[kSlots];
    const TI* src;
    RowStats st;
  };
  Row batch[kBatch];
  int nb = 0;

  // Normalises and stores the pending rows.
  auto flush = [&] {
    if (nb == 0) return;
    const int64_t* o0 = batch[0].o;
    if (modulate && (o0[kScale] != cached_sc || o0[kShift] != cached_sh)) {
      cached_sc = o0[kScale];
      cached_sh = o0[kShift];
      if (sc)
        load_as_f32(j.data[kScale], sc->dtype(), o0[kScale], j.el_st[kScale], C, scale_row.data());
      if (sh)
        load_as_f32(j.data[kShift], sh->dtype(), o0[kShift], j.el_st[kShift], C, shift_row.data());
      const float* wv = j.wv->data();
      const float* bv = j.bv->data();
      for (int64_t i = 0; i < C; ++i) {
        const float m = sc ? 1.0f + scale_row[i] : 1.0f;
        A[i] = wv[i] * m;
        B[i] = bv[i] * m + (sh ? shift_row[i] : 0.0f);
      }
    }
    const float* a = j.coef ? A.data() : nullptr;
    const float* b = j.coef && j.offset ? B.data() : nullptr;
    const int64_t tile = nb > 1 ? kColTile : C;
    for (int64_t i0 = 0; i0 < C; i0 += tile) {
      const int64_t len = std::min(tile, C - i0);
      const float* at = a ? a + i0 : nullptr;
      const float* bt = b ? b + i0 : nullptr;
      for (int r = 0; r < nb; ++r) {
        const Row& row = batch[r];
        const TI* src = row.src + i0;
        if (generic_round) {
          float* v = out.data() + r * C + i0;
          normalize<false, In, F32>(src, v, len, row.st, nullptr, nullptr, false);
          round_through(y->dtype(), v, len);
          if (at)
            for (int64_t i = 0; i < len; ++i) v[i] = v[i] * at[i] + (bt ? bt[i] : 0.0f);
          continue;
        }
        TO* dst = j.stage_out ? reinterpret_cast<TO*>(out.data() + r * C)
                              : static_cast<TO*>(j.data[kY]) + row.o[kY];
        if (p.round_normed) {
          normalize<true, In, Out>(src, dst + i0, len, row.st, at, bt, stream);
        } else {
          normalize<false, In, Out>(src, dst + i0, len, row.st, at, bt, stream);
        }
      }
    }
    if (j.stage_out)
      for (int r = 0; r < nb; ++r)
        store_from_f32(j.data[kY], y->dtype(), batch[r].o[kY], j.el_st[kY], C, out.data() + r * C);
    nb = 0;
  };

  j.rows->for_runs(r0, r1, [&](const std::array<int64_t, kSlots>& off, int64_t n) {
    for (int64_t r = 0; r < n; ++r) {
      int64_t o[kSlots];
      for (int k = 0; k < kSlots; ++k) o[k] = j.base[k] + off[k] + r * j.rows->inner_stride(k);
      if (nb > 0 && (o[kScale] != batch[0].o[kScale] || o[kShift] != batch[0].o[kShift])) flush();
      Row& row = batch[nb];
      std::copy(o, o + kSlots, row.o);

      // 1. The row to normalise. With a residual, x + residual is rounded to the sum's dtype
      //    (what an unfused add would store and the norm would then read) and written out.
      if (j.stage_in) {
        float* s = stage.data() + nb * C;
        if (j.typed_residual && x->dtype() == DType::bf16) {
          add_rows<BF16>(j, o, s);
        } else if (j.typed_residual) {
          add_rows<F32>(j, o, s);
        } else {
          load_as_f32(j.data[kX], x->dtype(), o[kX], j.el_st[kX], C, s);
          if (res) {
            load_as_f32(j.data[kRes], res->dtype(), o[kRes], j.el_st[kRes], C, tmp.data());
            for (int64_t i = 0; i < C; ++i) s[i] += tmp[i];
            round_through(sum->dtype(), s, C);
            store_from_f32(j.data[kSum], sum->dtype(), o[kSum], j.el_st[kSum], C, s);
          }
        }
        row.src = reinterpret_cast<const TI*>(s);
      } else {
        row.src = static_cast<const TI*>(j.data[kX]) + o[kX];
      }

      // 2. Statistics; the normalisation waits for the batch.
      row.st = row_stats<In>(row.src, C, p.kind != NormKind::rms, p.eps);
      if (++nb == batch_max) flush();
    }
  });
  flush();
  if (j.stream) _mm_sfence();  // order the streamed rows before the caller reads them
}

void row_norm_kernel(const OpCall& c) {
  const auto& p = c.p<NormParams>();
  const Tensor& x = c.inputs[0];
  const Tensor* w = optional_input(c, 1);
  const Tensor* b = optional_input(c, 2);
  const Tensor* res = optional_input(c, 5);
  const Tensor& y = c.outputs[0];
  MINDIESD_ASSERT(!res || (c.outputs.size() >= 2 && c.outputs[1].defined()),
                  "norm: a residual needs the sum output");
  MINDIESD_ASSERT(x.dim() >= 1, "norm: 0-d input");
  if (x.numel() == 0) return;
  RowJob j{};
  j.p = &p;
  j.C = x.size(-1);
  j.t[kX] = &x;
  j.t[kY] = &y;
  j.t[kSum] = res ? &c.outputs[1] : nullptr;
  j.t[kRes] = res;
  j.t[kScale] = optional_input(c, 3);
  j.t[kShift] = optional_input(c, 4);

  // The leading dims enumerate rows; every operand steps through them by its own strides
  // (0 for broadcast modulation rows and for absent operands).
  Shape row_shape;
  Shape row_st[kSlots];
  for (int d = 0; d + 1 < x.dim(); ++d) {
    row_shape.push_back(x.size(d));
    for (int k = 0; k < kSlots; ++k) row_st[k].push_back(j.t[k] ? j.t[k]->stride(d) : 0);
  }
  std::array<const Shape*, kSlots> st_ptrs;
  for (int k = 0; k < kSlots; ++k) st_ptrs[k] = &row_st[k];
  const StridedRuns<kSlots> rows(row_shape, st_ptrs);
  j.rows = &rows;
  for (int k = 0; k < kSlots; ++k) {
    j.base[k] = j.t[k] ? j.t[k]->offset() : 0;
    j.el_st[k] = j.t[k] ? j.t[k]->stride(-1) : 0;
    j.data[k] = j.t[k] ? j.t[k]->storage()->data() : nullptr;
  }
  const std::vector<float> wv = channel_vector(w, j.C, 1.0f);
  const std::vector<float> bv = channel_vector(b, j.C, 0.0f);
  j.wv = &wv;
  j.bv = &bv;
  j.coef = w || b || j.t[kScale] || j.t[kShift];
  j.offset = b || j.t[kShift];

  // Typed in-place access where the row is contiguous in an f32 / bf16 tensor; otherwise,
  // and always with a residual (x + residual is formed in an f32 buffer, from which both the
  // sum and the norm are written), the row is staged.
  auto typed = [](DType t) { return t == DType::f32 || t == DType::bf16; };
  j.stage_in = res || !typed(x.dtype()) || j.el_st[kX] != 1;
  j.stage_out = !typed(y.dtype()) || j.el_st[kY] != 1;
  j.typed_residual = res && typed(x.dtype()) && res->dtype() == x.dtype() &&
                     j.t[kSum]->dtype() == x.dtype() && j.el_st[kX] == 1 && j.el_st[kRes] == 1 &&
                     j.el_st[kSum] == 1;
  j.stream = y.nbytes() >= kStreamBytes;
  const bool in_bf16 = !j.stage_in && x.dtype() == DType::bf16;
  const bool out_bf16 = !j.stage_out && y.dtype() == DType::bf16;

  const int64_t grain = std::max<int64_t>(1, (1 << 15) / j.C);
  parallel_for(0, rows.numel(), grain, [&](int64_t r0, int64_t r1) {
    if (in_bf16 && out_bf16)
      run_rows<BF16, BF16>(j, r0, r1);
    else if (in_bf16)
      run_rows<BF16, F32>(j, r0, r1);
    else if (out_bf16)
      run_rows<F32, BF16>(j, r0, r1);
    else
      run_rows<F32, F32>(j, r0, r1);
  });
}

// torch.nn.GroupNorm: x (N, C, S) normalised over each (n, group of C / G channels x S)
// block with biased variance, then the per-channel affine.
void group_norm_kernel(const OpCall& c) {
  const auto& p = c.p<NormParams>();
  const Tensor& x = c.inputs[0];
  const Tensor* w = optional_input(c, 1);
  const Tensor* b = optional_input(c, 2);
  MINDIESD_CHECK(!optional_input(c, 3) && !optional_input(c, 4) && !optional_input(c, 5),
                 Unsupported, "norm: group norm takes no scale, shift or residual");
  const Tensor& y = c.outputs[0];
  MINDIESD_ASSERT(x.dim() == 3 && y.shape() == x.shape(), "group norm wants (N, C, S), got ",
                  x.str());
  const int64_t N = x.size(0), C = x.size(1), S = x.size(2), G = p.groups;
  MINDIESD_ASSERT(G > 0 && C % G == 0, "group norm: ", G, " groups for ", C, " channels");
  if (x.numel() == 0) return;
  const int64_t cpg = C / G;
  const std::vector<float> wv = channel_vector(w, C, 1.0f);
  const std::vector<float> bv = channel_vector(b, C, 0.0f);
  const void* xb = x.storage()->data();
  void* yb = y.storage()->data();
  constexpr int64_t kChunk = 2048;

  parallel_for(0, N * G, 1, [&](int64_t g0, int64_t g1) {
    std::vector<float> buf(static_cast<size_t>(std::min(kChunk, S)));
    for (int64_t ng = g0; ng < g1; ++ng) {
      const int64_t n = ng / G, c0 = (ng % G) * cpg;
      Moments m;
      for (int64_t ch = c0; ch < c0 + cpg; ++ch) {
        const int64_t xo = x.offset() + n * x.stride(0) + ch * x.stride(1);
        for (int64_t i = 0; i < S; i += kChunk) {
          const int64_t len = std::min(kChunk, S - i);
          load_as_f32(xb, x.dtype(), xo + i * x.stride(2), x.stride(2), len, buf.data());
          if (m.n == 0) m.shift = sample_mean<F32>(buf.data(), len);
          m.add<true, F32>(buf.data(), len);
        }
      }
      const RowStats st = m.finish(true, p.eps);
      const float rstd = st.rstd, mh = st.mean_hi, ml = st.mean_lo;
      for (int64_t ch = c0; ch < c0 + cpg; ++ch) {
        const int64_t xo = x.offset() + n * x.stride(0) + ch * x.stride(1);
        const int64_t yo = y.offset() + n * y.stride(0) + ch * y.stride(1);
        const float a = rstd * wv[ch], bb = bv[ch];
        for (int64_t i = 0; i < S; i += kChunk) {
          const int64_t len = std::min(kChunk, S - i);
          float* v = buf.data();
          load_as_f32(xb, x.dtype(), xo + i * x.stride(2), x.stride(2), len, v);
          for (int64_t j = 0; j < len; ++j) v[j] = ((v[j] - mh) - ml) * a + bb;
          store_from_f32(yb, y.dtype(), yo + i * y.stride(2), y.stride(2), len, v);
        }
      }
    }
  });
}

void norm_kernel(const OpCall& c) {
  if (c.p<NormParams>().kind == NormKind::group) {
    group_norm_kernel(c);
  } else {
    row_norm_kernel(c);
  }
}

}  // namespace

void register_norm_kernels(KernelRegistry& r) {
  r.add(OpId::norm, DeviceType::CPU, {kFloatTypes}, kFloatTypes, norm_kernel);
}

}  // namespace mindiesd::cpu
