// Measured ceilings of this CPU, so benchmarks can print "% of peak" from numbers taken in
// the same run rather than from a datasheet: FMA throughput (f32 and, where the CPU has
// AVX512-BF16, bf16 dot-product) with independent accumulators on every OpenMP thread,
// and streaming copy bandwidth.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace mindiesd::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

#if defined(__AVX512F__)
// (_mm512_reduce_add_ps trips a GCC 12 -Wuninitialized false positive.)
inline float first_lane(__m512 a) {
  float t[16];
  _mm512_storeu_ps(t, a);
  return t[0];
}
#endif

// Peak f32 FLOP/s (counting an FMA as 2 FLOPs).
inline double peak_f32_flops() {
  constexpr long kIters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    int threads = 1;
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
#if defined(__AVX512F__)
      __m512 acc[12];
      for (auto& a : acc) a = _mm512_set1_ps(1.0f);
      const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
      for (long i = 0; i < kIters / 10; ++i)
        for (auto& a : acc) a = _mm512_fmadd_ps(a, m, c);
      for (auto& a : acc) sink += first_lane(a);
#else
      __m256 acc[12];
      for (auto& a : acc) a = _mm256_set1_ps(1.0f);
      const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
      for (long i = 0; i < kIters / 10; ++i)
        for (auto& a : acc) a = _mm256_fmadd_ps(a, m, c);
      float t[8];
      for (auto& a : acc) {
        _mm256_storeu_ps(t, a);
        sink += t[0];
      }
#endif
    }
    const double s = seconds_since(t0);
#if defined(__AVX512F__)
    const double lanes = 16;
#else
    const double lanes = 8;
#endif
    const double flops = 2.0 * lanes * 12 * (kIters / 10) * threads;
    if (sink == 42.0f) std::abort();  // keeps the loop alive
    best = std::max(best, flops / s);
  }
  return best;
}

// Peak bf16 FLOP/s through vdpbf16ps (each lane: two products and two adds); 0 without
// AVX512-BF16.
inline double peak_bf16_flops() {
#if defined(__AVX512BF16__)
  constexpr long kIters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    int threads = 1;
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
      __m512 acc[12];
      for (auto& a : acc) a = _mm512_setzero_ps();
      const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
      for (long i = 0; i < kIters / 10; ++i)
        for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
      for (auto& a : acc) sink += first_lane(a);
    }
    const double s = seconds_since(t0);
    if (sink == 42.0f) std::abort();
    best = std::max(best, 4.0 * 16 * 12 * (kIters / 10) * threads / s);
  }
  return best;
#else
  return 0.0;
#endif
}

// Peak int8 ops/s through vpdpbusd (each 32-bit lane: four u8 x s8 products and four adds);
// 0 without AVX512-VNNI.
inline double peak_int8_ops() {
#if defined(__AVX512VNNI__)
  constexpr long kIters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    int threads = 1;
    int sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
      __m512i acc[12];
      for (auto& a : acc) a = _mm512_setzero_si512();
      const __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(-1);
      for (long i = 0; i < kIters / 10; ++i)
        for (auto& a : acc) a = _mm512_dpbusd_epi32(a, x, y);
      for (auto& a : acc) {
        int t[16];
        _mm512_storeu_si512(t, a);
        sink += t[0];
      }
    }
    const double s = seconds_since(t0);
    if (sink == 42) std::abort();
    best = std::max(best, 8.0 * 16 * 12 * (kIters / 10) * threads / s);
  }
  return best;
#else
  return 0.0;
#endif
}

// Copy bandwidth in bytes/s (read + write counted), on buffers far larger than the caches.
inline double copy_bandwidth() {
  const size_t n = size_t{256} << 20;
  std::vector<char> a(n, 1), b(n, 0);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel
    {
      const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t lo = n * t / nt, hi = n * (t + 1) / nt;
      std::memcpy(b.data() + lo, a.data() + lo, hi - lo);
    }
    best = std::max(best, 2.0 * n / seconds_since(t0));
  }
  if (b[12345] != 1) std::abort();
  return best;
}

}  // namespace mindiesd::bench
