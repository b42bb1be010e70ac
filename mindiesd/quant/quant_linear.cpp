#include "mindiesd/quant/quant_linear.h"

#include <cmath>
#include <cstring>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/quant/quant_ops.h"

namespace mindiesd::quant {

namespace {

// Weight-only layers dequantize at most this many weight elements at a time (a slice of output
// channels), so the transient float weight stays small next to the model.
constexpr int64_t kDequantChunk = int64_t{1} << 22;

// tensor as a contiguous f32 vector on the host.
std::vector<float> host_floats(const Tensor& t) {
  return t.to(Device::cpu()).to(DType::f32).to_vector();
}

class Checker {
 public:
  Checker(QuantAlgo algo, const std::string& layer, TensorMap& tensors)
      : algo_(algo), layer_(layer), tensors_(tensors) {}

  // The tensor `name`, required: dtype among `dtypes`, numel / shape checked by the caller's
  // expectations. Returns it contiguous on its device.
  Tensor need(const char* name, std::initializer_list<DType> dtypes,
              const std::vector<Shape>& shapes) {
    auto it = tensors_.find(name);
    MINDIESD_CHECK(it != tensors_.end() && it->second.defined(), InvalidArgument, algo_name(algo_),
                   " layer ", layer_, ": tensor ", layer_, ".", name, " is missing");
    return check(name, it->second, dtypes, shapes);
  }
  Tensor want(const char* name, std::initializer_list<DType> dtypes,
              const std::vector<Shape>& shapes) {
    auto it = tensors_.find(name);
    if (it == tensors_.end() || !it->second.defined()) return Tensor();
    return check(name, it->second, dtypes, shapes);
  }
  // Positive finite values (scales).
  void positive(const char* name, const Tensor& t) {
    for (float v : host_floats(t))
      MINDIESD_CHECK(std::isfinite(v) && v > 0, InvalidArgument, algo_name(algo_), " layer ",
                     layer_, ": ", layer_, ".", name, " holds ", v,
                     " (scales must be positive and finite)");
  }
  void finite(const char* name, const Tensor& t) {
    for (float v : host_floats(t))
      MINDIESD_CHECK(std::isfinite(v), InvalidArgument, algo_name(algo_), " layer ", layer_, ": ",
                     layer_, ".", name, " holds a non-finite value");
  }

 private:
  Tensor check(const char* name, Tensor t, std::initializer_list<DType> dtypes,
               const std::vector<Shape>& shapes) {
    bool ok_dtype = false;
    std::string allowed;
    for (DType d : dtypes) {
      ok_dtype |= t.dtype() == d;
      allowed += (allowed.empty() ? "" : " or ") + std::string(dtype_name(d));
    }
    MINDIESD_CHECK(ok_dtype, InvalidArgument, algo_name(algo_), " layer ", layer_, ": ", layer_,
                   ".", name, " is ", dtype_name(t.dtype()), ", expected ", allowed);
    bool ok_shape = false;
    std::string want;
    for (const Shape& s : shapes) {
      ok_shape |= t.shape() == s;
      want += (want.empty() ? "" : " or ") + s.str();
    }
    MINDIESD_CHECK(ok_shape, InvalidArgument, algo_name(algo_), " layer ", layer_, ": ", layer_,
                   ".", name, " has shape ", t.shape().str(), ", expected ", want);
    return t.contiguous();
  }
  QuantAlgo algo_;
  const std::string& layer_;
  TensorMap& tensors_;
};

// The float bias / scale tensors the kernels read: f32, contiguous.
Tensor f32(const Tensor& t) { return t.defined() ? t.to(DType::f32).contiguous() : t; }

// An int64 deq_scale (msmodelslim stores the f32 bits in an int64) as f32.
Tensor deq_scale_f32(const Tensor& t) {
  if (t.dtype() != DType::i64) return f32(t);
  const Tensor h = t.to(Device::cpu()).contiguous();
  Tensor out = Tensor::empty(h.shape(), DType::f32);
  const int64_t* src = h.data<int64_t>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < h.numel(); ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i] & 0xffffffff);
    std::memcpy(&dst[i], &bits, 4);
  }
  return out.to(t.device());
}

bool activation_quantized(QuantAlgo a) { return a != QuantAlgo::W8A16 && a != QuantAlgo::W4A16; }

}  // namespace

std::shared_ptr<const QuantizedLinear> QuantizedLinear::from_tensors(
    QuantAlgo algo, const std::string& layer, TensorMap in, const TimestepPolicyConfig& policy) {
  auto q = std::shared_ptr<QuantizedLinear>(new QuantizedLinear());
  q->algo_ = algo;
  q->layer_ = layer;
  q->policy_ = policy;
  Checker c(algo, layer, in);
  const DType code = algo == QuantAlgo::FP8_DYNAMIC ? DType::f8_e4m3 : DType::i8;
  auto wit = in.find("weight");
  MINDIESD_CHECK(wit != in.end() && wit->second.defined() && wit->second.dim() == 2,
                 InvalidArgument, algo_name(algo), " layer ", layer, ": tensor ", layer,
                 ".weight is missing or not 2-d");
  const int64_t n = wit->second.size(0), k = wit->second.size(1);
  q->n_ = n;
  q->k_ = k;
  TensorMap& out = q->tensors_;
  Tensor weight = c.need("weight", {code}, {Shape{n, k}});
  if (Tensor b = c.want("bias", {DType::f32, DType::bf16, DType::f16}, {Shape{n}}); b.defined()) {
    c.finite("bias", b);
    out["bias"] = f32(b);
  }
  if (activation_quantized(algo)) {
    if (Tensor m = c.want("mul_scale", {DType::f32, DType::bf16, DType::f16}, {Shape{k}});
        m.defined()) {
      c.positive("mul_scale", m);
      out["mul_scale"] = f32(m);
    }
  }
  if (algo == QuantAlgo::W8A16 || algo == QuantAlgo::W4A16) {
    auto it = in.find("weight_scale");
    MINDIESD_CHECK(it != in.end() && it->second.defined(), InvalidArgument, algo_name(algo),
                   " layer ", layer, ": tensor ", layer, ".weight_scale is missing");
    const Tensor& g = it->second;
    // (N) per channel, or (N, G) per group with G dividing K
    MINDIESD_CHECK((g.dim() == 1 && g.size(0) == n) ||
                       (g.dim() == 2 && g.size(0) == n && g.size(1) > 0 && k % g.size(1) == 0),
                   InvalidArgument, algo_name(algo), " layer ", layer, ": ", layer,
                   ".weight_scale has shape ", g.shape().str(), ", expected (", n, ") or (", n,
                   ", G) with G dividing ", k);
    Tensor s = c.need("weight_scale", {DType::f32, DType::bf16, DType::f16}, {g.shape()});
    c.positive("weight_scale", s);
    out["weight_scale"] = f32(s).view({n, s.numel() / n});
    if (algo == QuantAlgo::W4A16) {
      MINDIESD_CHECK(k % 2 == 0, InvalidArgument, "W4A16 layer ", layer, ": ", k,
                     " input features (int4 packing needs an even count)");
      // int4 values held in int8, as the suite's files keep them.
      const Tensor h = weight.to(Device::cpu());
      const int8_t* v = h.data<int8_t>();
      for (int64_t i = 0; i < h.numel(); ++i)
        MINDIESD_CHECK(v[i] >= -8 && v[i] <= 7, InvalidArgument, "W4A16 layer ", layer, ": ", layer,
                       ".weight holds ", int(v[i]), " at element ", i, " (int4 values are -8..7)");
      out["weight"] = weight.to(DType::i4);  // the same values, two per byte
    } else {
      out["weight"] = weight;
    }
    return q;
  }
  out["weight"] = weight;
  const bool dynamic_set = algo != QuantAlgo::W8A8;
  const bool static_set = algo == QuantAlgo::W8A8 || algo == QuantAlgo::W8A8_TIMESTEP;
  if (dynamic_set) {
    Tensor s =
        c.need("weight_scale", {DType::f32, DType::bf16, DType::f16}, {Shape{n}, Shape{n, 1}});
    c.positive("weight_scale", s);
    out["weight_scale"] = f32(s).view({n});
  }
  if (static_set) {
    const bool ts = algo == QuantAlgo::W8A8_TIMESTEP;
    auto sit = in.find("input_scale");
    const int64_t steps = ts && sit != in.end() && sit->second.defined() && sit->second.dim() == 2
                              ? sit->second.size(0)
                              : 1;
    MINDIESD_CHECK(steps >= 1, InvalidArgument, algo_name(algo), " layer ", layer, ": ", layer,
                   ".input_scale has no steps");
    const std::vector<Shape> scalar{ts ? Shape{steps, 1} : Shape{1}};
    const std::vector<Shape> row{ts ? Shape{steps, n} : Shape{n}};
    Tensor is = c.need("input_scale", {DType::f32, DType::bf16, DType::f16}, scalar);
    Tensor io = c.need("input_offset", {DType::f32, DType::bf16, DType::f16, DType::i8, DType::i32},
                       scalar);
    Tensor ds = c.need("deq_scale", {DType::f32, DType::i64}, row);
    Tensor qb = c.need("quant_bias", {DType::i32}, row);
    c.positive("input_scale", is);
    const Tensor dsf = deq_scale_f32(ds);
    c.positive("deq_scale", dsf);
    q->steps_ = steps;
    q->input_scale_ = host_floats(is);
    q->input_offset_ = host_floats(io);
    for (float o : q->input_offset_)
      MINDIESD_CHECK(std::isfinite(o) && o >= -128 && o <= 127 && o == std::nearbyint(o),
                     InvalidArgument, algo_name(algo), " layer ", layer, ": ", layer,
                     ".input_offset ", o, " must be an integer in [-128, 127]");
    out["input_scale"] = f32(is);
    out["input_offset"] = f32(io);
    out["deq_scale"] = dsf;
    out["quant_bias"] = qb;
  }
  return q;
}

const Tensor& QuantizedLinear::t(const char* name) const {
  static const Tensor none;
  auto it = tensors_.find(name);
  return it == tensors_.end() ? none : it->second;
}

int64_t QuantizedLinear::bytes() const {
  int64_t b = 0;
  for (const auto& [name, t] : tensors_) b += dtype_bytes(t.dtype(), t.numel());
  return b;
}

// W8A8_DYNAMIC (npu_dynamic_quant + npu_quant_matmul): x_q = round(x / s_t), s_t = max|x_t| / 127
// per token; y = (x_q . W_q^T) * s_t * weight_scale + bias. FP8_DYNAMIC is the same with e4m3
// codes and s_t = max|x_t| / 448 (torchao's per-row float8).
Tensor QuantizedLinear::forward_dynamic(const Tensor& x, std::optional<UnaryKind> act,
                                        DType out) const {
  const DType code = algo_ == QuantAlgo::FP8_DYNAMIC ? DType::f8_e4m3 : DType::i8;
  const QuantizedRows r = quantize_per_row(x, code, t("mul_scale"));
  return quant_matmul(r.codes, t("weight"), {r.scale, t("weight_scale"), Tensor(), t("bias"), act},
                      out);
}

// W8A8 (npu_quantize + npu_quant_matmul): x_q = round(x / input_scale + input_offset) per tensor;
// y = (x_q . W_q^T + quant_bias) * deq_scale, with deq_scale = input_scale * weight_scale and
// quant_bias = round(bias / deq_scale) - input_offset * sum_k W_q (the zero point and the bias
// folded into one integer per channel).
Tensor QuantizedLinear::forward_static(const Tensor& x, int64_t step, std::optional<UnaryKind> act,
                                       DType out) const {
  const Tensor xq = quantize_per_tensor(x, input_scale_[step], input_offset_[step], t("mul_scale"));
  const bool ts = algo_ == QuantAlgo::W8A8_TIMESTEP;
  const Tensor deq = ts ? t("deq_scale").select(0, step) : t("deq_scale");
  const Tensor qb = ts ? t("quant_bias").select(0, step) : t("quant_bias");
  return quant_matmul(xq, t("weight"), {Tensor(), deq, qb, Tensor(), act}, out);
}

// W8A16 / W4A16 (npu_weight_quant_batchmatmul): W = W_q * weight_scale (per channel or per
// group), then the float GEMM in x's dtype, a slice of output channels at a time.
Tensor QuantizedLinear::forward_weight_only(const Tensor& x, std::optional<UnaryKind> act,
                                            DType out) const {
  const Tensor& codes = t("weight");
  const Tensor& scale = t("weight_scale");
  const Tensor& bias = t("bias");
  Tensor y = Tensor::empty({x.size(0), n_}, out, x.device());
  const int64_t chunk = std::max<int64_t>(1, kDequantChunk / std::max<int64_t>(1, k_));
  MatmulParams p;
  if (act) {
    p.has_activation = true;
    p.activation = *act;
  }
  for (int64_t n0 = 0; n0 < n_; n0 += chunk) {
    const int64_t nc = std::min(chunk, n_ - n0);
    const Tensor w =
        dequantize(codes.narrow(0, n0, nc), scale.narrow(0, n0, nc), Tensor(), x.dtype());
    const Tensor dst = y.narrow(1, n0, nc);
    const Tensor in[] = {x, w.transpose(0, 1), bias.defined() ? bias.narrow(0, n0, nc) : Tensor()};
    dispatch(OpId::matmul, std::span<const Tensor>(in, bias.defined() ? 3 : 2), {&dst, 1}, &p);
  }
  return y;
}

Tensor QuantizedLinear::forward(const Tensor& x, std::optional<UnaryKind> act, DType out,
                                const Context& ctx) const {
  switch (algo_) {
    case QuantAlgo::W8A16:
    case QuantAlgo::W4A16:
      return forward_weight_only(x, act, out);
    case QuantAlgo::W8A8_DYNAMIC:
    case QuantAlgo::FP8_DYNAMIC:
      return forward_dynamic(x, act, out);
    case QuantAlgo::W8A8:
      return forward_static(x, 0, act, out);
    case QuantAlgo::W8A8_TIMESTEP: {
      // The suite's TimestepManager: the step index the denoising loop passes; outside a loop
      // (step -1) and on steps the policy leaves dynamic, per-token quantization.
      const int64_t step = ctx.step;
      const bool is_static = step >= 0 && (policy_.empty() ? true : policy_.is_static(step));
      if (!is_static) return forward_dynamic(x, act, out);
      MINDIESD_CHECK(step < steps_, InvalidArgument, "W8A8_TIMESTEP layer ", layer_, ": step ",
                     step, " uses static quantization but the layer was calibrated for steps 0..",
                     steps_ - 1,
                     " only (register later steps \"dynamic\", or calibrate with more steps)");
      return forward_static(x, step, act, out);
    }
  }
  MINDIESD_THROW(Internal, "QuantizedLinear: unknown algorithm");
}

std::shared_ptr<const layer::LinearImpl> QuantizedLinear::to(Device device) const {
  auto q = std::shared_ptr<QuantizedLinear>(new QuantizedLinear(*this));
  for (auto& [name, t] : q->tensors_) t = t.to(device);
  return q;
}

std::string QuantizedLinear::describe() const {
  std::string s = algo_name(algo_);
  const Tensor& ws = t("weight_scale");
  if ((algo_ == QuantAlgo::W8A16 || algo_ == QuantAlgo::W4A16) && ws.size(1) > 1)
    s += str_cat(" group ", k_ / ws.size(1));
  if (algo_ == QuantAlgo::W8A8_TIMESTEP) s += str_cat(", ", steps_, " calibrated steps");
  if (t("mul_scale").defined()) s += ", smoothed";
  return s;
}

}  // namespace mindiesd::quant
