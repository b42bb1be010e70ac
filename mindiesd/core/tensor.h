// Tensor: a view (shape, strides, offset, dtype) over refcounted storage.
//
// Strides and offsets count elements, not bytes. Views (slice, select, transpose, permute,
// view, expand, squeeze/unsqueeze) share storage and never copy; reshape() copies only when
// no view exists. Packed i4 tensors must keep their last dim contiguous and even-offset.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mindiesd/core/device.h"
#include "mindiesd/core/dtype.h"
#include "mindiesd/core/shape.h"

namespace mindiesd {

class Allocator;

// A block of device memory. Owned blocks go back to their allocator; borrowed blocks (an
// mmapped safetensors file, a caller's buffer) keep their owner alive through `keepalive`.
class Storage {
 public:
  Storage(void* data, size_t nbytes, Device device, Allocator* allocator);
  Storage(void* data, size_t nbytes, Device device, std::shared_ptr<const void> keepalive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // True when the memory is borrowed from a file mapping or a caller and may be read-only.
  bool borrowed() const { return allocator_ == nullptr; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Allocator* allocator_ = nullptr;
  std::shared_ptr<const void> keepalive_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  // Wraps memory the tensor does not own; `keepalive` (may be null) is held while any view
  // of it lives.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device,
                          std::shared_ptr<const void> keepalive);
  // Copies host values into a new CPU tensor of `dtype` (converted from f32).
  static Tensor from_vector(std::span<const float> values, const Shape& shape,
                            DType dtype = DType::f32);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int dim() const { return shape_.size(); }
  int64_t size(int d) const { return shape_[wrap_dim(d)]; }
  int64_t stride(int d) const { return strides_[wrap_dim(d)]; }
  int64_t numel() const { return shape_.numel(); }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  Device device() const;
  int64_t nbytes() const { return dtype_bytes(dtype_, numel()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Address of element 0 of this view.
  void* data_ptr() const;
  template <typename T>
  T* data() const {
    return static_cast<T*>(data_ptr());
  }

  bool is_contiguous() const;
  bool shares_storage(const Tensor& o) const { return storage_ && storage_ == o.storage_; }
  // Maps a possibly negative dim to [0, dim()); InvalidArgument when out of range.
  int wrap_dim(int d) const;

  // ---- views ----
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const {
    return slice(dim, start, start + length);
  }
  Tensor select(int dim, int64_t index) const;
  Tensor transpose(int a, int b) const;
  Tensor permute(std::span<const int> order) const;
  Tensor permute(std::initializer_list<int> order) const {
    return permute(std::span<const int>(order.begin(), order.size()));
  }
  // A view with the new shape (one extent may be -1); Unsupported when the strides do not
  // allow one (use reshape()).
  Tensor view(const Shape& shape) const;
  bool can_view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;  // view when possible, otherwise a copy
  Tensor expand(const Shape& shape) const;   // broadcast size-1 dims with stride 0
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor flatten(int start = 0, int end = -1) const;

  // ---- copies ----
  Tensor contiguous() const;  // self when already contiguous
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // Copies `src` (broadcast to this shape, any dtype, any device) into this view.
  void copy_(const Tensor& src) const;

  // Host-side access for small tensors and tests: element values as float / double.
  std::vector<float> to_vector() const;
  float item() const;

  std::string str() const;  // "Tensor(f32, (2, 3), strides (3, 1), cpu)"

 private:
  Shape resolve_shape(const Shape& shape) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::f32;
};

// Row-major strides for a shape.
Shape contiguous_strides(const Shape& shape);

}  // namespace mindiesd
