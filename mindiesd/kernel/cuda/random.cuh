// Philox noise values computed exactly as the CPU kernel (mindiesd/kernel/cpu/random.cpp)
// computes them, bit for bit, in host and device code.
//
// The CPU's normal samples call glibc's logf, sinf and cosf and are compiled by gcc with
// floating-point contraction (x86-64-v3 / native: FMA). CUDA's logf/sinf/cosf are different
// approximations (up to 1-2 ulp apart), so this header carries ports of glibc's single
// precision routines (sysdeps/ieee754/flt-32/e_logf.c and s_sinf.c / s_cosf.c, the ARM
// optimized-routines algorithms in glibc since 2.28, as built for x86-64 CPUs with FMA: the
// multiarch *-fma variants) with every double operation spelled out (one rounding each, fused
// exactly where gcc fuses), and the CPU kernel's own float expressions with its contractions
// (a + (b - a) * u and a + b * z as single FMAs). Only the argument ranges Box-Muller produces
// are supported: logf of (0, 1] floats and sinf/cosf of [0, 2 pi).
//
// Checked on the host (host path compiled with -ffp-contract=off) against glibc 2.36's logf /
// sinf / cosf (x86-64 with FMA) for every input those ranges can produce (2^24 values each):
// no difference; the device path spells the same operations with __dmul_rn / __fma_rn / ...
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "mindiesd/core/hd.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/philox.h"

namespace mindiesd::cuda::glibc {

// ---- exactly rounded basic operations (no contraction on either side) -----------------------

MINDIESD_HD double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
MINDIESD_HD double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
MINDIESD_HD double dfma(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
MINDIESD_HD float to_float(double a) {
#if defined(__CUDA_ARCH__)
  return __double2float_rn(a);
#else
  return static_cast<float>(a);
#endif
}
MINDIESD_HD float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MINDIESD_HD float fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
MINDIESD_HD float ffma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
MINDIESD_HD float fsqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
MINDIESD_HD uint32_t as_u32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
MINDIESD_HD float as_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---- logf (e_logf.c, e_logf_data.c: LOGF_TABLE_BITS 4, LOGF_POLY_ORDER 4) -----------------

// The table {invc, logc} by subinterval i, as a switch so that host and device share it
// without a __constant__ array (the compiler turns it into a lookup).
MINDIESD_HD void logf_table(int i, double* invc, double* logc) {
  switch (i) {
    case 0: *invc = 0x1.661ec79f8f3bep+0; *logc = -0x1.57bf7808caadep-2; return;
    case 1: *invc = 0x1.571ed4aaf883dp+0; *logc = -0x1.2bef0a7c06ddbp-2; return;
    case 2: *invc = 0x1.49539f0f010bp+0; *logc = -0x1.01eae7f513a67p-2; return;
    case 3: *invc = 0x1.3c995b0b80385p+0; *logc = -0x1.b31d8a68224e9p-3; return;
    case 4: *invc = 0x1.30d190c8864a5p+0; *logc = -0x1.6574f0ac07758p-3; return;
    case 5: *invc = 0x1.25e227b0b8eap+0; *logc = -0x1.1aa2bc79c81p-3; return;
    case 6: *invc = 0x1.1bb4a4a1a343fp+0; *logc = -0x1.a4e76ce8c0e5ep-4; return;
    case 7: *invc = 0x1.12358f08ae5bap+0; *logc = -0x1.1973c5a611cccp-4; return;
    case 8: *invc = 0x1.0953f419900a7p+0; *logc = -0x1.252f438e10c1ep-5; return;
    case 9: *invc = 0x1p+0; *logc = 0x0p+0; return;
    case 10: *invc = 0x1.e608cfd9a47acp-1; *logc = 0x1.aa5aa5df25984p-5; return;
    case 11: *invc = 0x1.ca4b31f026aap-1; *logc = 0x1.c5e53aa362eb4p-4; return;
    case 12: *invc = 0x1.b2036576afce6p-1; *logc = 0x1.526e57720db08p-3; return;
    case 13: *invc = 0x1.9c2d163a1aa2dp-1; *logc = 0x1.bc2860d22477p-3; return;
    case 14: *invc = 0x1.886e6037841edp-1; *logc = 0x1.1058bc8a07ee1p-2; return;
    default: *invc = 0x1.767dcf5534862p-1; *logc = 0x1.4043057b6ee09p-2; return;
  }
}

// glibc logf for finite x > 0 (normal or subnormal).
MINDIESD_HD float logf(float x) {
  uint32_t ix = as_u32(x);
  if (ix == 0x3f800000u) return 0.0f;
  if (ix < 0x00800000u) {  // subnormal: normalise
    ix = as_u32(fmul(x, 0x1p23f));
    ix -= 23u << 23;
  }
  const uint32_t tmp = ix - 0x3f330000u;
  const int i = static_cast<int>((tmp >> (23 - 4)) % 16);
  const int k = static_cast<int32_t>(tmp) >> 23;  // arithmetic shift
  const uint32_t iz = ix - (tmp & 0xff800000u);
  double invc, logc;
  logf_table(i, &invc, &logc);
  const double z = static_cast<double>(as_f32(iz));
  constexpr double kLn2 = 0x1.62e42fefa39efp-1;
  constexpr double kA0 = -0x1.00ea348b88334p-2, kA1 = 0x1.5575b0be00b6ap-2,
                   kA2 = -0x1.ffffef20a4123p-2;
  const double r = dfma(z, invc, -1.0);
  const double y0 = dfma(static_cast<double>(k), kLn2, logc);
  const double r2 = dmul(r, r);
  double y = dfma(kA1, r, kA2);
  y = dfma(kA0, r2, y);
  y = dfma(y, r2, dadd(y0, r));
  return to_float(y);
}

// ---- sinf / cosf (s_sinf.c, s_cosf.c, s_sincosf.h, s_sincosf_data.c; no TOINT_INTRINSICS) ---

MINDIESD_HD uint32_t abstop12(float x) { return (as_u32(x) >> 20) & 0x7ff; }

// sinf_poly with __sincosf_table[neg ? 1 : 0] (entry 1 has the cosine polynomial negated).
MINDIESD_HD float sinf_poly(double x, double x2, bool neg, int n) {
  if ((n & 1) == 0) {
    constexpr double kS1 = -0x1.555545995a603p-3, kS2 = 0x1.1107605230bc4p-7,
                     kS3 = -0x1.994eb3774cf24p-13;
    const double x3 = dmul(x, x2);
    const double s1 = dfma(x2, kS3, kS2);
    const double x7 = dmul(x3, x2);
    const double s = dfma(x3, kS1, x);
    return to_float(dfma(x7, s1, s));
  }
  const double c0 = neg ? -0x1p0 : 0x1p0;
  const double c1 = neg ? 0x1.ffffffd0c621cp-2 : -0x1.ffffffd0c621cp-2;
  const double c2 = neg ? -0x1.55553e1068f19p-5 : 0x1.55553e1068f19p-5;
  const double c3 = neg ? 0x1.6c087e89a359dp-10 : -0x1.6c087e89a359dp-10;
  const double c4 = neg ? -0x1.99343027bf8c3p-16 : 0x1.99343027bf8c3p-16;
  const double x4 = dmul(x2, x2);
  const double p2 = dfma(x2, c4, c3);
  const double p1 = dfma(x2, c1, c0);
  const double x6 = dmul(x4, x2);
  const double c = dfma(x4, c2, p1);
  return to_float(dfma(x6, p2, c));
}

// reduce_fast: x mod pi/2 in [-pi/4, pi/4] and the quadrant, for |x| < 120.
MINDIESD_HD double reduce_fast(double x, int* np) {
  constexpr double kHpiInv = 0x1.45F306DC9C883p+23, kHpi = 0x1.921FB54442D18p0;
  const double r = dmul(x, kHpiInv);
  const int n = (static_cast<int32_t>(r) + 0x800000) >> 24;
  *np = n;
  return dfma(-static_cast<double>(n), kHpi, x);
}

inline constexpr float kPio4f = 0x1.921FB6p-1f;

// glibc sinf (cos_ = false) or cosf (cos_ = true) for |y| < 120.
MINDIESD_HD float sinf_cosf(float y, bool cos_) {
  double x = y;
  const uint32_t top = abstop12(y);
  if (top < abstop12(kPio4f)) {
    const double x2 = dmul(x, x);
    if (top < abstop12(0x1p-12f)) return cos_ ? 1.0f : y;
    return sinf_poly(x, x2, false, cos_ ? 1 : 0);
  }
  int n;
  x = reduce_fast(x, &n);
  const double s = ((n + 1) & 2) ? -1.0 : 1.0;  // sign[n & 3] = {1, -1, -1, 1}
  return sinf_poly(dmul(x, s), dmul(x, x), (n & 2) != 0, cos_ ? n ^ 1 : n);
}

}  // namespace mindiesd::cuda::glibc

namespace mindiesd::cuda {

// The 4 values of Philox block `block` (global elements 4 * block + j) exactly as the CPU
// kernel's philox_value computes them.
MINDIESD_HD void philox_values(const RandomParams& p, uint64_t block, float (&v)[4]) {
  using namespace glibc;
  const Philox4 w = philox_block(p.seed, block);
  constexpr float k2m24 = 5.9604644775390625e-8f;
  if (p.kind == RandomKind::uniform) {
    const float range = fsub(p.b, p.a);
    for (int j = 0; j < 4; ++j) v[j] = ffma(range, philox_uniform(w.v[j]), p.a);
    return;
  }
  for (int pair = 0; pair < 4; pair += 2) {
    // u1 = uniform + 2^-24 in (0, 1] (exact, fused or not), u2 in [0, 1).
    const float u1 = ffma(static_cast<float>(w.v[pair] >> 8), k2m24, k2m24);
    const float u2 = philox_uniform(w.v[pair + 1]);
    const float r = fsqrt(fmul(-2.0f, glibc::logf(u1)));
    const float theta = fmul(6.28318530717958648f, u2);
    v[pair] = ffma(p.b, fmul(r, sinf_cosf(theta, true)), p.a);
    v[pair + 1] = ffma(p.b, fmul(r, sinf_cosf(theta, false)), p.a);
  }
}

}  // namespace mindiesd::cuda
