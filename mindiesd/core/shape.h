#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "mindiesd/core/error.h"

namespace mindiesd {

inline constexpr int kMaxDims = 8;

// A small inline array of up to kMaxDims extents (or strides); no heap allocation, so views
// and shape arithmetic in hot paths stay cheap.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.size()); }
  explicit Shape(std::span<const int64_t> dims) { assign(dims.data(), dims.size()); }

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t& operator[](int i) { return d_[i]; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + n_; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  const int64_t* data() const { return d_; }
  std::span<const int64_t> span() const { return {d_, static_cast<size_t>(n_)}; }

  void push_back(int64_t v) {
    MINDIESD_CHECK(n_ < kMaxDims, InvalidArgument, "tensors have at most ", kMaxDims, " dims");
    d_[n_++] = v;
  }
  void insert(int pos, int64_t v);
  void erase(int pos);
  void resize(int n, int64_t fill = 0);
  int64_t numel() const;

  bool operator==(const Shape& o) const;
  std::string str() const;  // "(2, 3, 4)"

 private:
  void assign(const int64_t* p, size_t n);
  int64_t d_[kMaxDims] = {};
  int n_ = 0;
};

}  // namespace mindiesd
