// Walks N same-shaped strided operands (stride 0 = broadcast) as runs along the innermost dim.
//
// Dims of extent 1 are dropped and neighbouring dims that are contiguous in every operand
// are merged, so a contiguous tensor is one long run and a transposed view degrades
// gracefully. Work is addressed by linear element index, which lets parallel_for split any
// shape evenly, including a single huge run.
#pragma once

#include <array>
#include <cstdint>

#include "mindiesd/core/parallel.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::cpu {

template <int N>
class StridedRuns {
 public:
  StridedRuns(const Shape& shape, const std::array<const Shape*, N>& strides) {
    // Keep non-unit dims, outermost first.
    for (int d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      sizes_[nd_] = shape[d];
      for (int k = 0; k < N; ++k) st_[k][nd_] = (*strides[k])[d];
      ++nd_;
    }
    // Merge dim d into d+1 when every operand steps through them as one dim.
    int out = 0;
    for (int d = 0; d < nd_; ++d) {
      if (out > 0) {
        bool mergeable = true;
        for (int k = 0; k < N; ++k)
          mergeable &= st_[k][out - 1] == st_[k][d] * sizes_[d];
        if (mergeable) {
          sizes_[out - 1] *= sizes_[d];
          for (int k = 0; k < N; ++k) st_[k][out - 1] = st_[k][d];
          continue;
        }
      }
      sizes_[out] = sizes_[d];
      for (int k = 0; k < N; ++k) st_[k][out] = st_[k][d];
      ++out;
    }
    nd_ = out;
    if (nd_ == 0) {  // a single element
      nd_ = 1;
      sizes_[0] = 1;
      for (int k = 0; k < N; ++k) st_[k][0] = 1;
    }
    numel_ = 1;
    for (int d = 0; d < nd_; ++d) numel_ *= sizes_[d];
  }

  int64_t numel() const { return numel_; }
  int64_t inner_size() const { return sizes_[nd_ - 1]; }
  int64_t inner_stride(int k) const { return st_[k][nd_ - 1]; }

  // Calls f(offsets, len) for consecutive runs covering linear elements [begin, end);
  // offsets[k] is operand k's element offset of the run start, the run steps by
  // inner_stride(k).
  template <typename F>
  void for_runs(int64_t begin, int64_t end, F&& f) const {
    if (begin >= end) return;
    int64_t idx[kMaxDims];
    int64_t rem = begin;
    for (int d = nd_ - 1; d >= 0; --d) {
      idx[d] = rem % sizes_[d];
      rem /= sizes_[d];
    }
    std::array<int64_t, N> off{};
    for (int k = 0; k < N; ++k)
      for (int d = 0; d < nd_; ++d) off[k] += idx[d] * st_[k][d];
    const int64_t inner = sizes_[nd_ - 1];
    int64_t e = begin;
    while (e < end) {
      const int64_t len = std::min(inner - idx[nd_ - 1], end - e);
      f(off, len);
      e += len;
      if (e >= end) break;
      // Advance to the start of the next run.
      for (int k = 0; k < N; ++k) off[k] += (len - 1) * st_[k][nd_ - 1];
      idx[nd_ - 1] += len - 1;
      int d = nd_ - 1;
      while (true) {
        if (++idx[d] < sizes_[d]) {
          for (int k = 0; k < N; ++k) off[k] += st_[k][d];
          break;
        }
        for (int k = 0; k < N; ++k) off[k] -= (sizes_[d] - 1) * st_[k][d];
        idx[d] = 0;
        --d;
      }
    }
  }

  // Parallel version: splits the linear range into per-thread pieces of >= grain elements.
  template <typename F>
  void parallel_runs(int64_t grain, F&& f) const {
    parallel_for(0, numel_, grain, [&](int64_t b, int64_t e) { for_runs(b, e, f); });
  }

 private:
  int nd_ = 0;
  int64_t sizes_[kMaxDims] = {};
  int64_t st_[N][kMaxDims] = {};
  int64_t numel_ = 1;
};

// Loads `n` elements (stride `stride`, starting `offset` elements into `base`) of a float or
// integer dtype as f32.
void load_as_f32(const void* base, DType t, int64_t offset, int64_t stride, int64_t n, float* out);
// Stores `n` f32 values converted to `t`.
void store_from_f32(void* base, DType t, int64_t offset, int64_t stride, int64_t n,
                    const float* in);

}  // namespace mindiesd::cpu
