#include "mindiesd/core/tensor.h"

#include <cstring>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/core/op_params.h"

namespace mindiesd {

Storage::Storage(void* data, size_t nbytes, Device device, Allocator* allocator)
    : data_(data), nbytes_(nbytes), device_(device), allocator_(allocator) {}

Storage::Storage(void* data, size_t nbytes, Device device, std::shared_ptr<const void> keepalive)
    : data_(data), nbytes_(nbytes), device_(device), keepalive_(std::move(keepalive)) {}

Storage::~Storage() {
  if (allocator_ != nullptr) allocator_->deallocate(data_);
}

Shape contiguous_strides(const Shape& shape) {
  Shape s;
  s.resize(shape.size());
  int64_t acc = 1;
  for (int i = shape.size() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i] > 0 ? shape[i] : 1;
  }
  return s;
}

namespace {
void check_shape(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    MINDIESD_CHECK(d >= 0, InvalidArgument, "negative extent in shape ", shape.str());
    MINDIESD_CHECK(d == 0 || n <= (int64_t{1} << 50) / d, InvalidArgument, "shape ", shape.str(),
                   " has an absurd number of elements");
    n *= d;
  }
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  Tensor t;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  const auto bytes = static_cast<size_t>(dtype_bytes(dtype, shape.numel()));
  Allocator& alloc = backend_for(device).allocator(device.index);
  void* p = alloc.allocate(bytes);
  t.storage_ = std::make_shared<Storage>(p, bytes, device, &alloc);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  const FillParams fp{0.0};
  dispatch(OpId::fill, {}, {&t, 1}, &fp);
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, Device device,
                         std::shared_ptr<const void> keepalive) {
  check_shape(shape);
  Tensor t;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(
      data, static_cast<size_t>(dtype_bytes(dtype, shape.numel())), device, std::move(keepalive));
  return t;
}

Tensor Tensor::from_vector(std::span<const float> values, const Shape& shape, DType dtype) {
  MINDIESD_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), InvalidArgument,
                 "from_vector: ", values.size(), " values for shape ", shape.str());
  Tensor t = empty(shape, dtype);
  convert(values.data(), DType::f32, t.data_ptr(), dtype, shape.numel());
  return t;
}

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

void* Tensor::data_ptr() const {
  MINDIESD_CHECK(defined(), InvalidArgument, "data_ptr() of an undefined tensor");
  return static_cast<char*>(storage_->data()) + dtype_bytes(dtype_, offset_);
}

int Tensor::wrap_dim(int d) const {
  const int n = shape_.size();
  MINDIESD_CHECK(d >= -n && d < n, InvalidArgument, "dim ", d, " out of range for a ", n,
                 "-d tensor of shape ", shape_.str());
  return d < 0 ? d + n : d;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = shape_.size() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end, int64_t step) const {
  const int d = wrap_dim(dim);
  const int64_t n = shape_[d];
  MINDIESD_CHECK(step >= 1, InvalidArgument, "slice step must be >= 1, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.shape_[d] = (end - start + step - 1) / step;
  t.strides_[d] *= step;
  return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
  const int d = wrap_dim(dim);
  const int64_t n = shape_[d];
  MINDIESD_CHECK(index >= -n && index < n, InvalidArgument, "select: index ", index,
                 " out of range for dim ", d, " of shape ", shape_.str());
  if (index < 0) index += n;
  Tensor t = *this;
  t.offset_ += index * strides_[d];
  t.shape_.erase(d);
  t.strides_.erase(d);
  return t;
}

Tensor Tensor::transpose(int a, int b) const {
  const int da = wrap_dim(a), db = wrap_dim(b);
  Tensor t = *this;
  std::swap(t.shape_[da], t.shape_[db]);
  std::swap(t.strides_[da], t.strides_[db]);
  return t;
}

Tensor Tensor::permute(std::span<const int> order) const {
  MINDIESD_CHECK(static_cast<int>(order.size()) == dim(), InvalidArgument,
                 "permute: ", order.size(), " dims given for shape ", shape_.str());
  Tensor t = *this;
  bool seen[kMaxDims] = {};
  for (int i = 0; i < dim(); ++i) {
    const int d = wrap_dim(order[i]);
    MINDIESD_CHECK(!seen[d], InvalidArgument, "permute: dim ", d, " repeated");
    seen[d] = true;
    t.shape_[i] = shape_[d];
    t.strides_[i] = strides_[d];
  }
  return t;
}

Shape Tensor::resolve_shape(const Shape& shape) const {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      MINDIESD_CHECK(infer < 0, InvalidArgument, "only one -1 allowed in shape ", shape.str());
      infer = i;
    } else {
      MINDIESD_CHECK(out[i] >= 0, InvalidArgument, "invalid shape ", shape.str());
      known *= out[i];
    }
  }
  if (infer >= 0) {
    MINDIESD_CHECK(known > 0 && numel() % known == 0, InvalidArgument, "cannot reshape ",
                   shape_.str(), " into ", shape.str());
    out[infer] = numel() / known;
  }
  MINDIESD_CHECK(out.numel() == numel(), InvalidArgument, "cannot reshape ", shape_.str(), " (",
                 numel(), " elements) into ", shape.str());
  return out;
}

namespace {
// Strides for viewing (old_shape, old_strides) as new_shape without a copy, following the
// chunk rule: each group of old dims that is contiguous with itself maps onto a group of
// new dims. Returns false when no such view exists.
bool view_strides(const Shape& os, const Shape& ost, const Shape& ns, Shape* nst) {
  nst->resize(ns.size());
  if (os.numel() == 0 || os.empty()) {
    *nst = contiguous_strides(ns);
    return true;
  }
  int view_d = ns.size() - 1;
  int64_t chunk_base = ost[os.size() - 1];
  int64_t tensor_numel = 1, view_numel = 1;
  for (int td = os.size() - 1; td >= 0; --td) {
    tensor_numel *= os[td];
    if (td == 0 || (os[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || ns[view_d] == 1)) {
        (*nst)[view_d] = view_numel * chunk_base;
        view_numel *= ns[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) {
        chunk_base = ost[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}
}  // namespace

bool Tensor::can_view(const Shape& shape) const {
  Shape st;
  return view_strides(shape_, strides_, resolve_shape(shape), &st);
}

Tensor Tensor::view(const Shape& shape) const {
  const Shape ns = resolve_shape(shape);
  Shape st;
  MINDIESD_CHECK(view_strides(shape_, strides_, ns, &st), Unsupported, "cannot view ", shape_.str(),
                 " with strides ", strides_.str(), " as ", ns.str(),
                 " without a copy (use reshape)");
  Tensor t = *this;
  t.shape_ = ns;
  t.strides_ = st;
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  const Shape ns = resolve_shape(shape);
  Shape st;
  if (view_strides(shape_, strides_, ns, &st)) {
    Tensor t = *this;
    t.shape_ = ns;
    t.strides_ = st;
    return t;
  }
  return contiguous().view(ns);
}

Tensor Tensor::expand(const Shape& shape) const {
  MINDIESD_CHECK(shape.size() >= dim(), InvalidArgument, "expand: cannot expand ", shape_.str(),
                 " to fewer dims ", shape.str());
  Tensor t = *this;
  t.shape_ = shape;
  t.strides_.resize(shape.size());
  const int lead = shape.size() - dim();
  for (int i = shape.size() - 1; i >= 0; --i) {
    const int src = i - lead;
    if (src < 0) {
      MINDIESD_CHECK(shape[i] >= 0, InvalidArgument, "expand: invalid shape ", shape.str());
      t.strides_[i] = 0;
    } else if (shape[i] == -1 || shape[i] == shape_[src]) {
      t.shape_[i] = shape_[src];
      t.strides_[i] = strides_[src];
    } else {
      MINDIESD_CHECK(shape_[src] == 1, InvalidArgument, "expand: cannot expand ", shape_.str(),
                     " to ", shape.str(), " (dim ", src, " is ", shape_[src], ", not 1)");
      t.strides_[i] = 0;
    }
  }
  return t;
}

Tensor Tensor::unsqueeze(int dim) const {
  const int n = this->dim();
  MINDIESD_CHECK(dim >= -n - 1 && dim <= n, InvalidArgument, "unsqueeze: dim ", dim,
                 " out of range for shape ", shape_.str());
  const int d = dim < 0 ? dim + n + 1 : dim;
  Tensor t = *this;
  t.shape_.insert(d, 1);
  t.strides_.insert(d, d < n ? strides_[d] * shape_[d] : 1);
  return t;
}

Tensor Tensor::squeeze(int dim) const {
  const int d = wrap_dim(dim);
  if (shape_[d] != 1) return *this;
  Tensor t = *this;
  t.shape_.erase(d);
  t.strides_.erase(d);
  return t;
}

Tensor Tensor::flatten(int start, int end) const {
  if (dim() == 0) return view({1});
  const int s = wrap_dim(start), e = wrap_dim(end);
  Shape ns;
  for (int i = 0; i < s; ++i) ns.push_back(shape_[i]);
  int64_t m = 1;
  for (int i = s; i <= e; ++i) m *= shape_[i];
  ns.push_back(m);
  for (int i = e + 1; i < dim(); ++i) ns.push_back(shape_[i]);
  return reshape(ns);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.copy_(*this);
  return t;
}

void Tensor::copy_(const Tensor& src) const {
  MINDIESD_CHECK(defined() && src.defined(), InvalidArgument, "copy_ with an undefined tensor");
  const Tensor s = src.dim() == dim() && src.shape() == shape_ ? src : src.expand(shape_);
  if (s.device() == device()) {
    dispatch(OpId::copy, {&s, 1}, {this, 1}, nullptr);
    return;
  }
  // Across devices: stage a contiguous buffer of the destination dtype on the source side,
  // move the bytes with the device backend's copy, then scatter if this view is strided.
  const Device dev = device().is_cpu() ? s.device() : device();
  Backend& b = backend_for(dev);
  const Tensor staged = s.to(dtype_).contiguous();
  const Tensor dst = is_contiguous() ? *this : empty(shape_, dtype_, device());
  Stream& stream = b.default_stream(dev.index);
  if (device().is_cpu()) {  // the host needs the bytes: wait for them
    b.copy(dst.data_ptr(), staged.data_ptr(), static_cast<size_t>(nbytes()), CopyKind::DeviceToHost,
           stream);
    stream.synchronize();
  } else {  // queued behind the device's work; the host goes on
    b.upload(dst.data_ptr(), staged.data_ptr(), static_cast<size_t>(nbytes()), stream);
  }
  if (!dst.shares_storage(*this)) copy_(dst);
}

std::vector<float> Tensor::to_vector() const {
  const Tensor t = to(Device::cpu()).to(DType::f32).contiguous();
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

float Tensor::item() const {
  MINDIESD_CHECK(numel() == 1, InvalidArgument, "item() of a tensor with ", numel(),
                 " elements (shape ", shape_.str(), ")");
  return to_vector()[0];
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return str_cat("Tensor(", dtype_name(dtype_), ", ", shape_.str(), ", strides ", strides_.str(),
                 ", ", device().str(), ")");
}

}  // namespace mindiesd
