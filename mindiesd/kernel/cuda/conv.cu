// conv on CUDA through cuDNN's legacy convolution API (cudnnConvolutionForward).
//
// NC[D]HW inputs and OI[D]HW weights with 1-3 spatial dims (1-D runs as 2-D with H = 1),
// stride, padding, dilation and groups. Numerics follow kernel/cpu/conv.cpp:
//  * x and w of one dtype compute in that dtype's cuDNN configuration: f32 in true f32
//    (CUDNN_FMA_MATH: never TF32), f16 / bf16 with f32 accumulation (PSEUDO_HALF /
//    PSEUDO_BFLOAT16, tensor cores allowed); mixed dtypes compute in f32.
//  * The bias is added to the f32 sum before the one rounding to the output dtype: adding it
//    afterwards rounds twice, and the first rounding of a conv result that cancels against
//    the bias is far outside the bf16 / f16 tolerance. f16 / bf16 therefore take the fused
//    cudnnConvolutionBiasActivationForward (identity activation, IMPLICIT_PRECOMP_GEMM), whose
//    epilogue adds the bias in f32. The other way, filling the output with the bias and
//    blending the conv onto it with beta = 1, is only a fallback for them and then without
//    tensor-op math: measured on an H200 (cuDNN 9.14), IMPLICIT_PRECOMP_GEMM with
//    CUDNN_TENSOR_OP_MATH rounds the conv result to bf16 / f16 before the blend (errors up to
//    25x the tolerance), while the fused call and the DEFAULT / FMA-math kernels round once.
//    f32 blends the bias (FMA kernels; a second f32 rounding is immaterial). A bias of
//    another dtype than x and w makes the conv compute in f32, so that the bias is never
//    rounded to the reduced dtype first.
//  * Only the GEMM-family algorithms are used (implicit, precomputed-implicit and explicit
//    GEMM): their sums are plain f32 dot products; FFT and Winograd trade accuracy for speed.
// Operands that are strided, misaligned or of another dtype than the compute dtype go through
// a packed copy in scratch memory from the device's caching allocator (as does the cuDNN
// workspace); scratch is returned to the allocator right after the work is enqueued, which is
// safe because the allocator reuses a block only on the stream that freed it. When no cuDNN
// algorithm takes a reduced-precision problem, the conv falls back to f32.
//
// Handles: cudnn_util.h's, one per device per host thread. The algorithm chosen for a problem
// (dims, params, compute dtype, device) is cached, so repeated calls skip the heuristic query.
#include "mindiesd/kernel/cuda/kernels.h"

#if defined(MINDIESD_CUDNN)

#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cuda/copy.h"
#include "mindiesd/kernel/cuda/cuda_backend.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/cudnn_util.h"

#endif  // MINDIESD_CUDNN

namespace mindiesd::cuda {

#if defined(MINDIESD_CUDNN)

namespace {

// Workspace beyond this is not worth it (the explicit-GEMM im2col of a large VAE conv would
// take gigabytes); such candidates are skipped in favour of the implicit-GEMM ones.
constexpr size_t kMaxWorkspaceBytes = size_t{1} << 30;

// ---- the problem ----------------------------------------------------------------------------

// One cuDNN convolution: 4-d (1-D and 2-D convs) or 5-d (3-D), packed NC[D]HW operands.
struct Problem {
  const OpCall* call = nullptr;
  DType cd = DType::f32;  // dtype of x, w and y as cuDNN sees them
  int device = 0;
  int nd = 4;  // tensor rank handed to cuDNN
  int x[5] = {};
  int w[5] = {};
  int y[5] = {};
  int pad[3] = {};
  int stride[3] = {};
  int dilation[3] = {};
  int groups = 1;
  bool bias = false;  // the algorithm choice differs with a bias (fused call or blend)

  std::vector<int64_t> key() const {
    std::vector<int64_t> k{device, static_cast<int64_t>(cd), nd, groups, bias ? 1 : 0};
    for (int i = 0; i < nd; ++i) k.push_back(x[i]);
    for (int i = 0; i < nd; ++i) k.push_back(w[i]);
    for (int i = 0; i < nd - 2; ++i) {
      k.push_back(pad[i]);
      k.push_back(stride[i]);
      k.push_back(dilation[i]);
    }
    return k;
  }

  // The op's operands and parameters, for error messages.
  std::string str() const {
    std::string s = "conv on cuda:" + std::to_string(device) + " in " + dtype_name(cd) + ": input ";
    const OpCall& c = *call;
    s += c.inputs[0].str() + ", weight " + c.inputs[1].str();
    if (c.inputs.size() > 2 && c.inputs[2].defined()) s += ", bias " + c.inputs[2].str();
    s += ", output " + c.outputs[0].str();
    const auto list = [&](const int* v) {
      std::string r = "(";
      for (int i = 0; i < nd - 2; ++i) r += (i ? ", " : "") + std::to_string(v[i]);
      return r + ")";
    };
    s += ", stride " + list(stride) + ", padding " + list(pad) + ", dilation " + list(dilation) +
         ", groups " + std::to_string(groups) + " (as cuDNN " + std::to_string(nd) + "-d, batch " +
         std::to_string(x[0]) + ")";
    return s;
  }
};

[[noreturn]] void throw_cudnn(cudnnStatus_t s, const char* call, const Problem& pb) {
  const std::string what = str_cat(call, " failed: ", cudnn_status_text(s), "; ", pb.str());
  if (cudnn_not_supported(s)) MINDIESD_THROW(Unsupported, what);
  MINDIESD_THROW(Internal, what);
}

#define MINDIESD_CUDNN_CHECK(call, pb)                              \
  do {                                                              \
    const cudnnStatus_t mindiesd_status_ = (call);                  \
    if (mindiesd_status_ != CUDNN_STATUS_SUCCESS)                   \
      ::mindiesd::cuda::throw_cudnn(mindiesd_status_, #call, (pb)); \
  } while (0)

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f16:
      return CUDNN_DATA_HALF;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    default:
      return CUDNN_DATA_FLOAT;
  }
}

// ---- descriptors ----------------------------------------------------------------------------

class TensorDesc {
 public:
  TensorDesc(DType t, int nd, const int* dims, const Problem& pb) {
    MINDIESD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d_), pb);
    int strides[5] = {};
    int s = 1;
    for (int i = nd - 1; i >= 0; --i) {
      strides[i] = s;
      s *= dims[i];  // the caller checked that every operand has fewer than 2^31 elements
    }
    MINDIESD_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d_, cudnn_type(t), nd, dims, strides), pb);
  }
  ~TensorDesc() { (void)cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  FilterDesc(DType t, int nd, const int* dims, const Problem& pb) {
    MINDIESD_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d_), pb);
    MINDIESD_CUDNN_CHECK(cudnnSetFilterNdDescriptor(d_, cudnn_type(t), CUDNN_TENSOR_NCHW, nd, dims),
                         pb);
  }
  ~FilterDesc() { (void)cudnnDestroyFilterDescriptor(d_); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  cudnnFilterDescriptor_t get() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  explicit ConvDesc(const Problem& pb) {
    MINDIESD_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d_), pb);
    // Accumulation in f32 for every dtype (the PSEUDO_HALF / PSEUDO_BFLOAT16 configurations).
    MINDIESD_CUDNN_CHECK(
        cudnnSetConvolutionNdDescriptor(d_, pb.nd - 2, pb.pad, pb.stride, pb.dilation,
                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
        pb);
    MINDIESD_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d_, pb.groups), pb);
  }
  ~ConvDesc() { (void)cudnnDestroyConvolutionDescriptor(d_); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  cudnnConvolutionDescriptor_t get() const { return d_; }

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

class ActivationDesc {
 public:
  explicit ActivationDesc(const Problem& pb) {
    MINDIESD_CUDNN_CHECK(cudnnCreateActivationDescriptor(&d_), pb);
    MINDIESD_CUDNN_CHECK(
        cudnnSetActivationDescriptor(d_, CUDNN_ACTIVATION_IDENTITY, CUDNN_PROPAGATE_NAN, 0.0), pb);
  }
  ~ActivationDesc() { (void)cudnnDestroyActivationDescriptor(d_); }
  ActivationDesc(const ActivationDesc&) = delete;
  ActivationDesc& operator=(const ActivationDesc&) = delete;
  cudnnActivationDescriptor_t get() const { return d_; }

 private:
  cudnnActivationDescriptor_t d_ = nullptr;
};

// ---- algorithm choice -----------------------------------------------------------------------

struct Choice {
  bool ok = false;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  bool fused = false;  // cudnnConvolutionBiasActivationForward instead of the bias blend
  size_t workspace = 0;
  std::string why;  // when !ok: the last cuDNN error of the search
};

struct ChoiceCache {
  std::mutex mu;
  std::map<std::vector<int64_t>, Choice> by_problem;
};
ChoiceCache& choice_cache() {
  static ChoiceCache* cache = new ChoiceCache;  // leaked: used up to process exit
  return *cache;
}

bool allowed_algo(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

// f32 must not run on TF32 tensor cores: only FMA kernels. f16 / bf16 data may take any math
// (their products are exact in f32 either way), except when the bias is blended onto the
// output: tensor-op kernels round the conv result before the blend (see the top).
bool allowed_math(const Problem& pb, cudnnMathType_t m) {
  if (pb.cd == DType::f32) return m == CUDNN_FMA_MATH;
  if (pb.bias) return m == CUDNN_DEFAULT_MATH || m == CUDNN_FMA_MATH;
  return m == CUDNN_DEFAULT_MATH || m == CUDNN_TENSOR_OP_MATH || m == CUDNN_FMA_MATH;
}

cudnnMathType_t preferred_math(const Problem& pb) {
  if (pb.cd == DType::f32) return CUDNN_FMA_MATH;
  return pb.bias ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH;
}

struct Candidate {
  cudnnConvolutionFwdAlgo_t algo;
  cudnnMathType_t math;
  bool fused;
  bool operator==(const Candidate&) const = default;
};

// f16 / bf16 with a bias: the fused bias call first. Then cuDNN's heuristic ranking, filtered
// to the allowed algorithms and math, and the implicit GEMMs as fallbacks (they take every
// configuration).
std::vector<Candidate> candidates(cudnnHandle_t h, const TensorDesc& xd, const FilterDesc& wd,
                                  const ConvDesc& cv, const TensorDesc& yd, const Problem& pb) {
  std::vector<Candidate> out;
  const auto add = [&](Candidate c) {
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  if (pb.bias && pb.cd != DType::f32) {
    // cuDNN documents the identity activation for the fused call with this algorithm only.
    add({CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_TENSOR_OP_MATH, true});
    add({CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_DEFAULT_MATH, true});
  }
  const cudnnMathType_t m = preferred_math(pb);
  MINDIESD_CUDNN_CHECK(cudnnSetConvolutionMathType(cv.get(), m), pb);
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT] = {};
  int n = 0;
  const cudnnStatus_t s = cudnnGetConvolutionForwardAlgorithm_v7(
      h, xd.get(), wd.get(), cv.get(), yd.get(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf);
  if (s == CUDNN_STATUS_SUCCESS) {
    for (int i = 0; i < std::min(n, static_cast<int>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT)); ++i) {
      const cudnnConvolutionFwdAlgoPerf_t& r = perf[i];
      if (r.status == CUDNN_STATUS_SUCCESS && allowed_algo(r.algo) && allowed_math(pb, r.mathType))
        add({r.algo, r.mathType, false});
    }
  }
  add({CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, m, false});
  add({CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, m, false});
  if (pb.cd != DType::f32)
    add({CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_DEFAULT_MATH, false});
  return out;
}

// ---- scratch memory -------------------------------------------------------------------------

// A block of the device's caching allocator, returned when the scope ends (after the work
// using it has been enqueued on the stream it was allocated for).
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }

  void* allocate(Allocator& alloc, size_t bytes, uintptr_t stream_key) {
    release();
    if (bytes == 0) return nullptr;
    ptr_ = alloc.allocate(bytes, stream_key);
    alloc_ = &alloc;
    return ptr_;
  }
  void release() {
    if (ptr_ != nullptr) alloc_->deallocate(ptr_);
    ptr_ = nullptr;
  }

 private:
  Allocator* alloc_ = nullptr;
  void* ptr_ = nullptr;
};

struct Memory {
  Allocator* alloc;
  uintptr_t key;
  cudaStream_t stream;
};

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// `t` as cuDNN can take it directly: packed, in the compute dtype, 16-byte aligned.
bool direct(const Tensor& t, DType cd) {
  return t.dtype() == cd && t.is_contiguous() && aligned16(t.data_ptr());
}

// The address of `t` packed in dtype `cd`: t itself, or a converted / packed copy in `s`.
const void* packed_operand(const Tensor& t, DType cd, const Memory& m, Scratch& s) {
  if (direct(t, cd)) return t.data_ptr();
  void* p = s.allocate(*m.alloc, static_cast<size_t>(dtype_bytes(cd, t.numel())), m.key);
  const Shape strides = contiguous_strides(t.shape());
  MINDIESD_CUDA_CHECK(launch_copy(t.dim(), t.shape().data(), StridedOut{p, cd, strides.data()},
                                  in_arg(t), m.stream));
  return p;
}

// y (packed, `shape`, dtype yt) <- the bias broadcast along N and the spatial dims.
void fill_bias(const Tensor& bias, void* y, DType yt, const Shape& shape, cudaStream_t stream) {
  const Shape ystrides = contiguous_strides(shape);
  Shape bstrides = ystrides;
  for (int d = 0; d < shape.size(); ++d) bstrides[d] = d == 1 ? bias.stride(0) : 0;
  MINDIESD_CUDA_CHECK(launch_copy(shape.size(), shape.data(), StridedOut{y, yt, ystrides.data()},
                                  StridedIn{bias.data_ptr(), bias.dtype(), bstrides.data()},
                                  stream));
}

// ---- the forward call -----------------------------------------------------------------------

// The operands of one cuDNN call (one batch chunk), packed in the compute dtype.
struct Operands {
  const void* x;
  const void* w;
  const void* bias;  // packed (O) in the compute dtype; nullptr without a bias
  void* y;
  const Tensor* bias_tensor;  // the op's bias, for the blend fill; nullptr without a bias
  Shape y_shape;              // the chunk's output shape (op rank), for the blend fill
};

// The cuDNN objects of one problem.
struct Descs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  std::optional<TensorDesc> bias;
  std::optional<ActivationDesc> act;

  explicit Descs(const Problem& pb)
      : x(pb.cd, pb.nd, pb.x, pb), y(pb.cd, pb.nd, pb.y, pb), w(pb.cd, pb.nd, pb.w, pb), conv(pb) {
    if (pb.bias) {
      int dims[5] = {1, pb.y[1], 1, 1, 1};
      bias.emplace(pb.cd, pb.nd, dims, pb);
      act.emplace(pb);
    }
  }
};

// Runs one candidate: the fused bias call, or the conv blended onto the bias (filled into y
// first, once: `filled` tracks it across candidates) or onto nothing. A failure status comes
// back; cuDNN rejects a configuration before it writes anything.
cudnnStatus_t try_forward(cudnnHandle_t h, const Candidate& cand, const Descs& d, const Operands& o,
                          const Problem& pb, const Memory& m, bool* filled,
                          size_t* workspace_bytes) {
  cudnnStatus_t s = cudnnSetConvolutionMathType(d.conv.get(), cand.math);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  size_t ws = 0;
  s = cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(),
                                              cand.algo, &ws);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  if (ws > kMaxWorkspaceBytes) return CUDNN_STATUS_NOT_SUPPORTED;
  Scratch workspace;
  void* wsp = nullptr;
  try {
    wsp = workspace.allocate(*m.alloc, ws, m.key);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::OutOfMemory) throw;
    return CUDNN_STATUS_NOT_SUPPORTED;  // another candidate may need less
  }
  const float one = 1.0f, zero = 0.0f;
  if (cand.fused) {
    // y = identity(conv(x, w) + 0 * z + bias) with z = y: cuDNN does not read z when alpha2
    // is 0 (checked on an H200 with y full of NaN), so y may hold anything beforehand.
    s = cudnnConvolutionBiasActivationForward(h, &one, d.x.get(), o.x, d.w.get(), o.w, d.conv.get(),
                                              cand.algo, wsp, ws, &zero, d.y.get(), o.y,
                                              d.bias->get(), o.bias, d.act->get(), d.y.get(), o.y);
  } else {
    if (pb.bias && !*filled) {
      fill_bias(*o.bias_tensor, o.y, pb.cd, o.y_shape, m.stream);
      *filled = true;
    }
    s = cudnnConvolutionForward(h, &one, d.x.get(), o.x, d.w.get(), o.w, d.conv.get(), cand.algo,
                                wsp, ws, pb.bias ? &one : &zero, d.y.get(), o.y);
  }
  if (s == CUDNN_STATUS_SUCCESS) *workspace_bytes = ws;
  return s;
}

void remember(const std::vector<int64_t>& key, const Choice& c) {
  ChoiceCache& cache = choice_cache();
  const std::lock_guard<std::mutex> lock(cache.mu);
  cache.by_problem.emplace(key, c);
}

// y = conv(x, w) (+ bias) over one batch chunk. Returns "" on success, or why no algorithm
// took the problem (cached, so the next call does not search again).
std::string forward(const Problem& pb, const Operands& o, const Memory& m) {
  const std::vector<int64_t> key = pb.key();
  Choice choice;
  bool cached = false;
  {
    ChoiceCache& cache = choice_cache();
    const std::lock_guard<std::mutex> lock(cache.mu);
    const auto it = cache.by_problem.find(key);
    if (it != cache.by_problem.end()) {
      choice = it->second;
      cached = true;
    }
  }
  if (cached && !choice.ok) return choice.why;

  const cudnnHandle_t h = cudnn_handle(pb.device, m.stream);
  const Descs d(pb);
  bool filled = false;

  if (cached) {
    size_t ws = 0;
    const cudnnStatus_t s =
        try_forward(h, {choice.algo, choice.math, choice.fused}, d, o, pb, m, &filled, &ws);
    if (s != CUDNN_STATUS_SUCCESS) throw_cudnn(s, "cudnnConvolutionForward", pb);
    return "";
  }

  // First call for this problem: check cuDNN's idea of the output shape, then take the first
  // candidate that runs.
  int dims[5] = {};
  MINDIESD_CUDNN_CHECK(
      cudnnGetConvolutionNdForwardOutputDim(d.conv.get(), d.x.get(), d.w.get(), pb.nd, dims), pb);
  for (int i = 0; i < pb.nd; ++i) {
    MINDIESD_CHECK(dims[i] == pb.y[i], Internal, "cuDNN computes output dim ", i, " as ", dims[i],
                   " but the output has ", pb.y[i], "; ", pb.str());
  }
  std::string why = "no candidate algorithm";
  for (const Candidate& cand : candidates(h, d.x, d.w, d.conv, d.y, pb)) {
    size_t ws = 0;
    const cudnnStatus_t s = try_forward(h, cand, d, o, pb, m, &filled, &ws);
    if (s == CUDNN_STATUS_SUCCESS) {
      Choice c;
      c.ok = true;
      c.algo = cand.algo;
      c.math = cand.math;
      c.fused = cand.fused;
      c.workspace = ws;
      remember(key, c);
      return "";
    }
    // Unsupported configurations and parameters one algorithm rejects move on to the next;
    // anything else (a failed launch, a lost device) is an error of its own.
    const int v = static_cast<int>(s);
    const bool bad_param = v >= static_cast<int>(CUDNN_STATUS_BAD_PARAM) && v < 3000;
    if (!cudnn_not_supported(s) && !bad_param) throw_cudnn(s, "cudnnConvolutionForward", pb);
    why = str_cat(cand.fused ? "fused bias, " : "", "algorithm ", static_cast<int>(cand.algo),
                  " (math ", static_cast<int>(cand.math), "): ", cudnn_status_text(s));
  }
  Choice c;
  c.why = why;
  remember(key, c);
  return why;
}

// ---- the kernel -----------------------------------------------------------------------------

int checked_int(int64_t v, const char* what, const OpCall& c) {
  MINDIESD_CHECK(v >= 0 && v <= INT_MAX, Unsupported, "conv on CUDA: ", what, " ", v,
                 " does not fit cuDNN's 32-bit sizes; input ", c.inputs[0].str(), ", weight ",
                 c.inputs[1].str());
  return static_cast<int>(v);
}

// Elements of one batch item of an NC... shape (with the channels).
int64_t item_numel(const Shape& s) {
  int64_t n = 1;
  for (int d = 1; d < s.size(); ++d) n *= s[d];
  return n;
}

// The whole conv in compute dtype `cd`; "" on success, else why cuDNN took no algorithm.
std::string run_conv(const OpCall& c, const Memory& m, DType cd) {
  const auto& p = c.p<ConvParams>();
  const Tensor& x = c.inputs[0];
  const Tensor& w = c.inputs[1];
  const Tensor bias = c.inputs.size() > 2 && c.inputs[2].defined() ? c.inputs[2] : Tensor();
  const Tensor& out = c.outputs[0];

  Problem pb;
  pb.call = &c;
  pb.cd = cd;
  pb.device = c.stream->device().index;
  pb.groups = checked_int(p.groups, "groups", c);
  pb.bias = bias.defined();
  // 1-D as 2-D with H = 1: a leading spatial dim of extent 1, kernel 1, stride 1, no padding.
  const int lead = p.spatial == 1 ? 1 : 0;
  pb.nd = p.spatial + 2 + lead;
  const auto fill_dims = [&](int* dst, const Tensor& t) {
    dst[0] = checked_int(t.size(0), "extent", c);
    dst[1] = checked_int(t.size(1), "extent", c);
    if (lead) dst[2] = 1;
    for (int i = 0; i < p.spatial; ++i) dst[2 + lead + i] = checked_int(t.size(2 + i), "extent", c);
  };
  fill_dims(pb.x, x);
  fill_dims(pb.w, w);
  fill_dims(pb.y, out);
  if (lead) {
    pb.pad[0] = 0;
    pb.stride[0] = 1;
    pb.dilation[0] = 1;
  }
  for (int i = 0; i < p.spatial; ++i) {
    pb.pad[lead + i] = checked_int(p.padding[i], "padding", c);
    pb.stride[lead + i] = checked_int(p.stride[i], "stride", c);
    pb.dilation[lead + i] = checked_int(p.dilation[i], "dilation", c);
  }

  // cuDNN describes tensors with 32-bit strides: split the batch so that every chunk of x and
  // y has fewer than 2^31 elements.
  const int64_t x_item = item_numel(x.shape()), y_item = item_numel(out.shape());
  (void)checked_int(w.numel(), "weight size", c);
  const int64_t per_item = std::max<int64_t>({x_item, y_item, 1});
  MINDIESD_CHECK(per_item <= INT_MAX, Unsupported, "conv on CUDA: one batch item of ", per_item,
                 " elements does not fit cuDNN's 32-bit strides; ", pb.str());
  const int64_t batch = out.size(0);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(batch, INT_MAX / per_item));

  Scratch xs, ws, bs, ys;
  const void* xp = packed_operand(x, cd, m, xs);
  const void* wp = packed_operand(w, cd, m, ws);
  const void* bp = bias.defined() ? packed_operand(bias, cd, m, bs) : nullptr;
  const bool direct_out = direct(out, cd);
  void* yp = direct_out
                 ? out.data_ptr()
                 : ys.allocate(*m.alloc, static_cast<size_t>(dtype_bytes(cd, out.numel())), m.key);

  const int64_t esize = dtype_bytes(cd, 1);
  for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
    const int64_t nb = std::min(chunk, batch - n0);
    Problem part = pb;
    part.x[0] = part.y[0] = static_cast<int>(nb);
    Operands o{static_cast<const char*>(xp) + n0 * x_item * esize,
               wp,
               bp,
               static_cast<char*>(yp) + n0 * y_item * esize,
               bias.defined() ? &bias : nullptr,
               out.shape()};
    o.y_shape[0] = nb;
    const std::string why = forward(part, o, m);
    if (!why.empty()) return why;
  }

  if (!direct_out) {
    const Shape strides = contiguous_strides(out.shape());
    MINDIESD_CUDA_CHECK(launch_copy(out.dim(), out.shape().data(), out_arg(out),
                                    StridedIn{yp, cd, strides.data()}, m.stream));
  }
  return "";
}

void conv_kernel(const OpCall& c) {
  const KernelScope scope(c);
  const auto& p = c.p<ConvParams>();
  const Tensor& x = c.inputs[0];
  const Tensor& w = c.inputs[1];
  const Tensor bias = c.inputs.size() > 2 && c.inputs[2].defined() ? c.inputs[2] : Tensor();
  const Tensor& out = c.outputs[0];
  MINDIESD_CHECK(p.spatial >= 1 && p.spatial <= 3 && x.dim() == p.spatial + 2 &&
                     w.dim() == p.spatial + 2 && out.dim() == p.spatial + 2,
                 InvalidArgument, "conv: input ", x.str(), ", weight ", w.str(), " and output ",
                 out.str(), " do not fit ", p.spatial, " spatial dims");
  MINDIESD_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == out.size(1)),
                 InvalidArgument, "conv: bias ", bias.str(), " for output ", out.str());
  if (out.numel() == 0) return;

  Backend& backend = backend_for(out.device());
  const Memory m{&backend.allocator(out.device().index), stream_key(*c.stream), scope.stream()};

  // An empty sum (no input channels or an empty kernel): the output is the bias, or zero.
  if (x.numel() == 0 || w.numel() == 0) {
    if (bias.defined()) {
      Shape bstrides = out.shape();
      for (int d = 0; d < out.dim(); ++d) bstrides[d] = d == 1 ? bias.stride(0) : 0;
      MINDIESD_CUDA_CHECK(launch_copy(out.dim(), out.shape().data(), out_arg(out),
                                      StridedIn{bias.data_ptr(), bias.dtype(), bstrides.data()},
                                      scope.stream()));
    } else {
      MINDIESD_CUDA_CHECK(
          launch_fill(0.0, out.dim(), out.shape().data(), out_arg(out), scope.stream()));
    }
    return;
  }

  // The CPU kernel's rule: one input dtype computes in it, mixed dtypes in f32 (and a bias
  // of another dtype too, so that it is added unrounded).
  const DType cd = x.dtype() == w.dtype() && (!bias.defined() || bias.dtype() == x.dtype())
                       ? x.dtype()
                       : DType::f32;
  std::string why = run_conv(c, m, cd);
  if (why.empty()) return;
  if (cd != DType::f32) {
    const std::string why32 = run_conv(c, m, DType::f32);
    if (why32.empty()) return;
    why = str_cat(dtype_name(cd), ": ", why, "; f32: ", why32);
  }
  MINDIESD_THROW(Unsupported, "conv on CUDA: cuDNN has no algorithm for input ", x.str(),
                 ", weight ", w.str(), ", output ", out.str(), " (", why, ")");
}

}  // namespace

void register_conv_kernels(KernelRegistry& r) {
  r.add(OpId::conv, DeviceType::CUDA, {kFloatTypes}, kFloatTypes, conv_kernel);
}

#else  // !MINDIESD_CUDNN

// Built without cuDNN: no CUDA conv kernels; conv on a CUDA tensor reports Unsupported.
void register_conv_kernels(KernelRegistry&) {}

#endif  // MINDIESD_CUDNN

}  // namespace mindiesd::cuda
