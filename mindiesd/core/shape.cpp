#include "mindiesd/core/shape.h"

namespace mindiesd {

void Shape::assign(const int64_t* p, size_t n) {
  MINDIESD_CHECK(n <= static_cast<size_t>(kMaxDims), InvalidArgument, "tensors have at most ",
                 kMaxDims, " dims, got ", n);
  n_ = static_cast<int>(n);
  for (int i = 0; i < n_; ++i) d_[i] = p[i];
}

void Shape::insert(int pos, int64_t v) {
  MINDIESD_CHECK(n_ < kMaxDims, InvalidArgument, "tensors have at most ", kMaxDims, " dims");
  MINDIESD_ASSERT(pos >= 0 && pos <= n_);
  for (int i = n_; i > pos; --i) d_[i] = d_[i - 1];
  d_[pos] = v;
  ++n_;
}

void Shape::erase(int pos) {
  MINDIESD_ASSERT(pos >= 0 && pos < n_);
  for (int i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
  --n_;
}

void Shape::resize(int n, int64_t fill) {
  MINDIESD_CHECK(n >= 0 && n <= kMaxDims, InvalidArgument, "tensors have at most ", kMaxDims,
                 " dims, got ", n);
  for (int i = n_; i < n; ++i) d_[i] = fill;
  n_ = n;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < n_; ++i) n *= d_[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (n_ != o.n_) return false;
  for (int i = 0; i < n_; ++i)
    if (d_[i] != o.d_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < n_; ++i) {
    if (i) s += ", ";
    s += std::to_string(d_[i]);
  }
  return s + (n_ == 1 ? ",)" : ")");
}

}  // namespace mindiesd
