// CPU parallelism through OpenMP: the same runtime oneDNN uses (Debian's libdnnl is built
// with DNNL_CPU_RUNTIME=OMP), so our loops and oneDNN's share one thread pool and never
// oversubscribe the cores. Nested calls run serially inside an enclosing parallel region.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>

namespace mindiesd {

inline int num_threads() { return omp_get_max_threads(); }
// Sets the thread count for mindiesd and oneDNN alike (also settable with OMP_NUM_THREADS).
inline void set_num_threads(int n) { omp_set_num_threads(std::max(1, n)); }

// Calls f(chunk_begin, chunk_end) over [begin, end) split into at most num_threads() chunks
// of at least `grain` items each.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  const int threads = omp_in_parallel() ? 1 : static_cast<int>(std::min<int64_t>(num_threads(), max_chunks));
  if (threads <= 1) {
    f(begin, end);
    return;
  }
  // An exception must not cross the OpenMP region (that terminates); the first one is
  // carried out and rethrown on the calling thread.
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t nt = omp_get_num_threads();
    const int64_t b = begin + n * t / nt;
    const int64_t e = begin + n * (t + 1) / nt;
    try {
      if (b < e) f(b, e);
    } catch (...) {
#pragma omp critical(mindiesd_parallel_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace mindiesd
