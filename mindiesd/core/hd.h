// MINDIESD_HD marks small pure functions (dtype conversions, Philox) that host code and CUDA
// kernels share, so both backends compute them with the same code.
#pragma once

#if defined(__CUDACC__)
#define MINDIESD_HD __host__ __device__ __forceinline__
#else
#define MINDIESD_HD inline
#endif
