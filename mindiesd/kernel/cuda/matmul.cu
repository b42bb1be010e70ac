// Batched matrix multiply through cuBLASLt: bf16 / f16 with f32 accumulation on the tensor
// cores, f32 in true f32 (no TF32, so results stay comparable with the CPU backend), bias and
// GELU-tanh / ReLU fused as cuBLASLt epilogues.
//
// cuBLASLt is column-major; a row-major C = A @ B is computed as the column-major
// C^T = B^T @ A^T, so our B is cuBLASLt's "A" and our A its "B". A row-major matrix read as
// column-major is its transpose, so a dense operand needs no transpose flag and a transposed
// view (x @ W^T in a linear layer: W is (N, K) row-major) becomes the "T" operand, which is
// the TN layout the fastest kernels are built for. No operand is copied unless neither of its
// matrix dims is unit-stride.
//
// Algorithm choice (cublasLtMatmulAlgoGetHeuristic) is cached per shape/layout/alignment key;
// the workspace comes from the device's caching allocator on the call's stream.
//
// grouped_matmul (mixture-of-experts) runs mindiesd's own tensor-core kernel
// (grouped_gemm.cuh), one launch for all groups with the group offsets read on the device, or a
// SIMT kernel for f32 and unaligned problems.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/op_params.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/core/tensor.h"
#include "mindiesd/kernel/cuda/cuda_backend.h"
#include "mindiesd/kernel/cuda/cuda_utils.h"
#include "mindiesd/kernel/cuda/dtype.cuh"
#include "mindiesd/kernel/cuda/grouped_gemm.cuh"
#include "mindiesd/kernel/cuda/kernels.h"

namespace mindiesd::cuda {

namespace {

void check_cublas(cublasStatus_t st, const char* call, int line) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  MINDIESD_THROW(Internal, call, " failed at matmul.cu:", line, ": cuBLASLt status ",
                 static_cast<int>(st), " (", cublasLtGetStatusName(st), ": ",
                 cublasLtGetStatusString(st), ")");
}
#define MINDIESD_CUBLAS_CHECK(call) check_cublas((call), #call, __LINE__)

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLAS' own default on Hopper

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::i8: return CUDA_R_8I;
    case DType::i32: return CUDA_R_32I;
    case DType::f8_e4m3: return CUDA_R_8F_E4M3;
    default: MINDIESD_THROW(Unsupported, "matmul on CUDA: dtype ", dtype_name(t));
  }
}

// The largest power of two (<= 256) dividing an address: cuBLASLt's heuristics assume 256-byte
// aligned operands unless told otherwise, and a view at an offset is often less aligned.
uint32_t alignment_of(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}

// One matrix as cuBLASLt sees it: stored (rows x cols, column-major, leading dim ld) and
// whether the matmul reads it transposed.
struct MatrixDesc {
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  bool transposed = false;
};

// A row-major view (r x c) with strides (sr, sc) read as column-major: dense rows give the
// (c x r) matrix untransposed; dense columns give the (r x c) matrix transposed. A stride of
// an extent-1 dim is meaningless and is replaced by the smallest legal leading dim.
bool describe(int64_t r, int64_t c, int64_t sr, int64_t sc, MatrixDesc& d) {
  if (r == 1) sr = c;
  if (c == 1) sc = r;
  if (sc == 1 && sr >= c) {
    d = {static_cast<uint64_t>(c), static_cast<uint64_t>(r), std::max<int64_t>(sr, 1), false};
    return true;
  }
  if (sr == 1 && sc >= r) {
    d = {static_cast<uint64_t>(r), static_cast<uint64_t>(c), std::max<int64_t>(sc, 1), true};
    return true;
  }
  return false;
}

// The batch dims of the three operands collapsed into groups that each step with one stride
// per operand; a single group is one strided-batched cuBLASLt call.
struct BatchGroup {
  int64_t count;
  int64_t stride[3];  // a, b, out
};
std::vector<BatchGroup> collapse_batch(const Shape& batch, const int64_t* const strides[3]) {
  std::vector<BatchGroup> groups;
  for (int d = 0; d < batch.size(); ++d) {
    if (batch[d] == 1) continue;
    BatchGroup g{batch[d], {strides[0][d], strides[1][d], strides[2][d]}};
    if (!groups.empty()) {
      BatchGroup& prev = groups.back();
      bool merge = true;
      for (int k = 0; k < 3; ++k) merge &= prev.stride[k] == g.stride[k] * g.count;
      if (merge) {
        prev.count *= g.count;
        for (int k = 0; k < 3; ++k) prev.stride[k] = g.stride[k];
        continue;
      }
    }
    groups.push_back(g);
  }
  if (groups.empty()) groups.push_back({1, {0, 0, 0}});
  return groups;
}

struct AlgoKey {
  int device;
  cudaDataType_t ab, d, bias;
  bool ta, tb;
  uint64_t m, n, k;  // cuBLASLt's: rows of D, cols of D, inner
  int64_t lda, ldb, ldd, batch, sa, sb, sd;
  int epilogue;
  uint32_t align_a, align_b, align_d;
  auto tie() const {
    return std::tie(device, ab, d, bias, ta, tb, m, n, k, lda, ldb, ldd, batch, sa, sb, sd,
                    epilogue, align_a, align_b, align_d);
  }
  bool operator<(const AlgoKey& o) const { return tie() < o.tie(); }
};

// Per-process cuBLASLt state: one handle per device and the heuristic cache. cuBLASLt handles
// may be used from several host threads; the cache is guarded by a mutex.
struct LtState {
  std::mutex mu;
  std::map<int, cublasLtHandle_t> handles;
  std::map<AlgoKey, std::pair<bool, cublasLtMatmulAlgo_t>> algos;  // false: none found

  cublasLtHandle_t handle(int device) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = handles.find(device);
    if (it != handles.end()) return it->second;
    cublasLtHandle_t h = nullptr;
    MINDIESD_CUBLAS_CHECK(cublasLtCreate(&h));
    handles.emplace(device, h);
    return h;
  }
};
LtState& lt_state() {
  // Never destroyed: cublasLtDestroy at process exit can run after the runtime unloads.
  static LtState* s = new LtState();
  return *s;
}

// RAII wrappers of the descriptor objects.
struct LayoutDesc {
  cublasLtMatrixLayout_t h = nullptr;
  LayoutDesc(cudaDataType_t t, const MatrixDesc& m, int64_t batch, int64_t batch_stride) {
    MINDIESD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&h, t, m.rows, m.cols, m.ld));
    if (batch > 1) {
      const int32_t count = static_cast<int32_t>(batch);
      MINDIESD_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
          h, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      MINDIESD_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
          h, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride, sizeof(batch_stride)));
    }
  }
  ~LayoutDesc() { (void)cublasLtMatrixLayoutDestroy(h); }
  LayoutDesc(const LayoutDesc&) = delete;
  LayoutDesc& operator=(const LayoutDesc&) = delete;
};
struct MatmulDesc {
  cublasLtMatmulDesc_t h = nullptr;
  // int8 operands accumulate in exact int32 (IMMA); everything else in f32.
  explicit MatmulDesc(bool int32) {
    MINDIESD_CUBLAS_CHECK(cublasLtMatmulDescCreate(&h, int32 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F,
                                                   int32 ? CUDA_R_32I : CUDA_R_32F));
  }
  ~MatmulDesc() { (void)cublasLtMatmulDescDestroy(h); }
  template <typename T>
  void set(cublasLtMatmulDescAttributes_t attr, const T& v) {
    MINDIESD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(h, attr, &v, sizeof(v)));
  }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
};

// The workspace, from the device's caching allocator on the call's stream (a block freed on a
// stream is only handed out again on that stream, so freeing right after the enqueue is safe).
class Workspace {
 public:
  Workspace(const Stream& stream, size_t bytes)
      : alloc_(backend_for(stream.device()).allocator(stream.device().index)),
        ptr_(alloc_.allocate(bytes, stream_key(stream))) {}
  ~Workspace() { alloc_.deallocate(ptr_); }
  void* get() const { return ptr_; }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

 private:
  Allocator& alloc_;
  void* ptr_;
};

struct Gemm {
  // Our row-major operands: a (M x K), b (K x N), out (M x N) with out's columns dense.
  const void* a;
  const void* b;
  void* out;
  const void* bias;  // nullptr or N elements
  DType ab_dtype, out_dtype, bias_dtype;
  int64_t m, n, k;
  int64_t sa[2], sb[2], so;  // (row, col) strides of a and b; out's row stride
  BatchGroup batch;          // one strided group
  float alpha;
  cublasLtEpilogue_t epilogue;
};

// Enqueues one strided-batched GEMM; false when cuBLASLt offers no algorithm for it.
bool run_gemm(const Gemm& g, const Stream& stream) {
  MatrixDesc da, db;  // cuBLASLt's A = our b, B = our a
  MINDIESD_CHECK(describe(g.k, g.n, g.sb[0], g.sb[1], da) && describe(g.m, g.k, g.sa[0], g.sa[1], db),
                 Internal, "matmul: operand layout not described");
  const MatrixDesc dd{static_cast<uint64_t>(g.n), static_cast<uint64_t>(g.m),
                      std::max<int64_t>(g.so, g.n), false};
  const int device = stream.device().index;
  LtState& st = lt_state();
  const cublasLtHandle_t handle = st.handle(device);
  const cudaDataType_t tab = cuda_type(g.ab_dtype), td = cuda_type(g.out_dtype);
  const cudaDataType_t tbias = g.bias ? cuda_type(g.bias_dtype) : td;

  const bool int32 = g.ab_dtype == DType::i8;
  MatmulDesc op(int32);
  const cublasOperation_t ta = da.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = db.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  op.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);
  op.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
  op.set(CUBLASLT_MATMUL_DESC_EPILOGUE, g.epilogue);
  if (g.bias) {
    op.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
    op.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, tbias);
  }
  const int64_t count = g.batch.count;
  LayoutDesc la(tab, da, count, g.batch.stride[1]);
  LayoutDesc lb(tab, db, count, g.batch.stride[0]);
  LayoutDesc ld(td, dd, count, g.batch.stride[2]);

  const AlgoKey key{device, tab, td, tbias, da.transposed, db.transposed,
                    static_cast<uint64_t>(g.n), static_cast<uint64_t>(g.m),
                    static_cast<uint64_t>(g.k), da.ld, db.ld, dd.ld, count,
                    g.batch.stride[1], g.batch.stride[0], g.batch.stride[2],
                    static_cast<int>(g.epilogue) | (g.bias ? 1 << 20 : 0), alignment_of(g.b),
                    alignment_of(g.a), alignment_of(g.out)};
  cublasLtMatmulAlgo_t algo;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    auto it = st.algos.find(key);
    if (it != st.algos.end()) {
      found = it->second.first;
      algo = it->second.second;
      if (!found) return false;
    }
  }
  if (!found) {
    cublasLtMatmulPreference_t pref = nullptr;
    MINDIESD_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = kWorkspaceBytes;
    (void)cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                               &ws, sizeof(ws));
    const uint32_t al[4] = {key.align_a, key.align_b, key.align_d, key.align_d};
    const cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
      (void)cublasLtMatmulPreferenceSetAttribute(pref, al_attr[i], &al[i], sizeof(al[i]));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(handle, op.h, la.h, lb.h, ld.h, ld.h,
                                                             pref, 1, &result, &returned);
    (void)cublasLtMatmulPreferenceDestroy(pref);
    found = hs == CUBLAS_STATUS_SUCCESS && returned > 0;
    if (found) algo = result.algo;
    std::lock_guard<std::mutex> lock(st.mu);
    st.algos[key] = {found, found ? algo : cublasLtMatmulAlgo_t{}};
    if (!found) return false;
  }
  const float alpha = g.alpha, beta = 0.0f;
  const int32_t ialpha = 1, ibeta = 0;
  Workspace ws(stream, kWorkspaceBytes);
  DeviceGuard guard(device);
  MINDIESD_CUBLAS_CHECK(cublasLtMatmul(handle, op.h, int32 ? static_cast<const void*>(&ialpha) : &alpha, g.b,
                                       la.h, g.a, lb.h, int32 ? static_cast<const void*>(&ibeta) : &beta,
                                       g.out, ld.h, g.out, ld.h, &algo, ws.get(), kWorkspaceBytes,
                                       native_stream(stream)));
  return true;
}

cublasLtEpilogue_t epilogue_of(bool bias, bool has_act, UnaryKind act) {
  if (!has_act) return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  if (act == UnaryKind::relu) return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
  // cuBLASLt's GELU is the tanh approximation.
  return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
}

bool matrix_ok(const Tensor& t) {
  MatrixDesc d;
  return describe(t.size(-2), t.size(-1), t.stride(-2), t.stride(-1), d);
}

void matmul_kernel(const OpCall& c) {
  const MatmulParams p = c.params ? c.p<MatmulParams>() : MatmulParams{};
  Tensor a = c.inputs[0], b = c.inputs[1];
  Tensor bias = c.inputs.size() > 2 ? c.inputs[2] : Tensor();
  const Tensor& out = c.outputs[0];
  const int nd = out.dim();
  const int64_t m = out.size(-2), n = out.size(-1), k = a.size(-1);
  if (out.numel() == 0) return;

  // Operands of one dtype: bf16 x bf16 and f16 x f16 on the tensor cores, anything mixed in f32
  // (as the CPU backend computes it).
  const DType ab = a.dtype() == b.dtype() ? a.dtype() : DType::f32;
  if (a.dtype() != ab) a = a.to(ab);
  if (b.dtype() != ab) b = b.to(ab);
  if (!matrix_ok(a)) a = a.contiguous();
  if (!matrix_ok(b)) b = b.contiguous();

  // The activation: a cuBLASLt epilogue for relu / gelu_tanh into an f32 output; otherwise the
  // GEMM (+ bias) writes f32 and one elementwise pass applies the activation and rounds. cuBLASLt
  // has no erf GELU or SiLU epilogue, and its RELU_BIAS / GELU_BIAS epilogues with a bf16 output
  // round the product before adding the bias (seen on an H200, cuBLASLt 13.1: errors of 10 bf16
  // ulps on small outputs), which the output's one rounding must not do.
  const bool epilogue_act = p.has_activation && out.dtype() == DType::f32 &&
                            (p.activation == UnaryKind::relu || p.activation == UnaryKind::gelu_tanh);
  const bool post_act = p.has_activation && !epilogue_act;
  MINDIESD_CHECK(!p.has_activation || p.activation == UnaryKind::gelu ||
                     p.activation == UnaryKind::silu || p.activation == UnaryKind::relu ||
                     p.activation == UnaryKind::gelu_tanh,
                 Unsupported, "matmul epilogue activation ", static_cast<int>(p.activation));
  // cuBLASLt writes D in the input dtype or, for 16-bit inputs, in f32.
  const bool direct_dtype = out.dtype() == ab || (out.dtype() == DType::f32 && ab != DType::f32);
  const bool direct = direct_dtype && !post_act && out.stride(-1) == 1 && (m == 1 || out.stride(-2) >= n);
  Tensor dst = direct ? out : Tensor::empty(out.shape(), post_act ? DType::f32 : ab, out.device());

  if (k == 0) {  // an empty sum: the result is the bias (or zero), then the activation
    Tensor r = ops::full(out.shape(), 0.0, DType::f32, out.device());
    if (bias.defined()) r = ops::add(r, bias.to(DType::f32));
    if (p.has_activation) r = ops::unary(r, p.activation);
    out.copy_(r);
    return;
  }
  // Bias in D's dtype or f32 (cuBLASLt's BIAS_DATA_TYPE); anything else converted.
  if (bias.defined()) {
    if (bias.dtype() != dst.dtype() && bias.dtype() != DType::f32) bias = bias.to(DType::f32);
    if (bias.stride(0) != 1) bias = bias.contiguous();
  }

  // Batch dims broadcast to the output's, collapsed into strided groups.
  Shape batch = out.shape();
  batch.resize(nd - 2);
  std::vector<int64_t> s[3];
  for (int d = 0; d < nd - 2; ++d) {
    s[0].push_back(a.size(d) == 1 ? 0 : a.stride(d));
    s[1].push_back(b.size(d) == 1 ? 0 : b.stride(d));
    s[2].push_back(dst.stride(d));
  }
  const int64_t* strides[3] = {s[0].data(), s[1].data(), s[2].data()};
  const std::vector<BatchGroup> groups = collapse_batch(batch, strides);
  // The outer groups are looped over on the host; the innermost is one batched call.
  int64_t outer = 1;
  for (size_t i = 0; i + 1 < groups.size(); ++i) outer *= groups[i].count;

  const size_t ab_bytes = dtype_bytes(ab, 1), d_bytes = dtype_bytes(dst.dtype(), 1);
  Gemm g{};
  g.ab_dtype = ab;
  g.out_dtype = dst.dtype();
  g.bias = bias.defined() ? bias.data_ptr() : nullptr;
  g.bias_dtype = bias.defined() ? bias.dtype() : dst.dtype();
  g.m = m;
  g.n = n;
  g.k = k;
  g.sa[0] = a.stride(-2);
  g.sa[1] = a.stride(-1);
  g.sb[0] = b.stride(-2);
  g.sb[1] = b.stride(-1);
  g.so = dst.stride(-2);
  g.batch = groups.back();
  g.alpha = p.alpha;
  g.epilogue = epilogue_of(bias.defined(), epilogue_act, p.activation);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t off[3] = {0, 0, 0};
    int64_t rest = o;
    for (int gi = static_cast<int>(groups.size()) - 2; gi >= 0; --gi) {
      const int64_t idx = rest % groups[gi].count;
      rest /= groups[gi].count;
      for (int kk = 0; kk < 3; ++kk) off[kk] += idx * groups[gi].stride[kk];
    }
    g.a = static_cast<const char*>(a.data_ptr()) + off[0] * static_cast<int64_t>(ab_bytes);
    g.b = static_cast<const char*>(b.data_ptr()) + off[1] * static_cast<int64_t>(ab_bytes);
    g.out = static_cast<char*>(dst.data_ptr()) + off[2] * static_cast<int64_t>(d_bytes);
    bool ok = run_gemm(g, *c.stream);
    if (!ok && bias.defined() && bias.dtype() != dst.dtype()) {
      // Not every cuBLASLt build takes an f32 bias next to a 16-bit D: round it to D's dtype.
      bias = bias.to(dst.dtype());
      g.bias = bias.data_ptr();
      g.bias_dtype = bias.dtype();
      ok = run_gemm(g, *c.stream);
    }
    if (!ok) {
      MINDIESD_THROW(Unsupported, "matmul on CUDA: cuBLASLt has no algorithm for ", m, "x", n, "x",
                     k, " ", dtype_name(ab), " -> ", dtype_name(dst.dtype()),
                     bias.defined() ? " with bias" : "", " (operand strides a ", g.sa[0], ",",
                     g.sa[1], " b ", g.sb[0], ",", g.sb[1], ")");
    }
  }
  if (post_act) {
    const UnaryParams up{p.activation};
    dispatch(OpId::unary, {&dst, 1}, {&out, 1}, &up);  // f32 in, out's dtype out: one rounding
  } else if (!direct) {
    out.copy_(dst);
  }
}

// ---- grouped matmul --------------------------------------------------------------------------

template <typename T, typename OutT>
__global__ void __launch_bounds__(GroupedGemmTile::kThreads)
    grouped_gemm_kernel(const GroupedGemmArgs a) {
  __shared__ __align__(16) unsigned char smem[GroupedGemmTile::kSmemBytes];
  WarpOps<T> ops;
  grouped_gemm_block<T, OutT>(a, ops, blockIdx.y, blockIdx.x, static_cast<int>(threadIdx.x), smem);
}

// One thread per output element, any float dtypes: f32 problems and unaligned ones.
__global__ void grouped_matmul_simt_kernel(const GroupedGemmArgs a, DType xt, DType ot) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.rows * a.n) return;
  const int64_t r = i / a.n, col = i % a.n;
  int64_t end = 0;
  for (int64_t e = 0; e < a.groups; ++e) {
    int64_t begin;
    grouped_gemm_group_rows(a, e, end, begin, end);
    if (r < begin || r >= end) continue;
    float s = 0.0f;
    const int64_t xo = r * a.x_stride, wo = e * a.w_stride[0] + col * a.w_stride[1];
    for (int64_t k = 0; k < a.k; ++k) s += ld(a.x, xt, xo + k) * ld(a.w, xt, wo + k);
    st(a.out, ot, r * a.out_stride + col, s);
    return;
  }
}

template <typename T>
void launch_grouped_gemm(const GroupedGemmArgs& a, DType out, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(GroupedGemmTile::max_row_tiles(a.rows, a.groups)),
                  static_cast<unsigned>((a.n + GroupedGemmTile::kBn - 1) / GroupedGemmTile::kBn));
  if (out == DType::f32) {
    grouped_gemm_kernel<T, float><<<grid, GroupedGemmTile::kThreads, 0, stream>>>(a);
  } else {
    grouped_gemm_kernel<T, T><<<grid, GroupedGemmTile::kThreads, 0, stream>>>(a);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void grouped_matmul_kernel(const OpCall& c) {
  const Tensor& x = c.inputs[0];
  const Tensor& w = c.inputs[1];
  const Tensor& out = c.outputs[0];
  GroupedGemmArgs a{};
  a.x = x.data_ptr();
  a.w = w.data_ptr();
  a.offsets = c.inputs[2].data<int64_t>();
  a.out = out.data_ptr();
  a.x_stride = x.stride(0);
  a.w_stride[0] = w.stride(0);
  a.w_stride[1] = w.stride(1);
  a.out_stride = out.stride(0);
  a.rows = x.size(0);
  a.n = w.size(1);
  a.k = w.size(2);
  a.groups = w.size(0);
  const cudaStream_t stream = native_stream(*c.stream);
  const DType t = x.dtype();
  const bool tensor_cores = (t == DType::bf16 || t == DType::f16) &&
                            (out.dtype() == t || out.dtype() == DType::f32) && a.k % 8 == 0 &&
                            a.x_stride % 8 == 0 && a.w_stride[0] % 8 == 0 &&
                            a.w_stride[1] % 8 == 0 && aligned16(a.x) && aligned16(a.w) &&
                            GroupedGemmTile::max_row_tiles(a.rows, a.groups) < (int64_t{1} << 31) &&
                            (a.n + GroupedGemmTile::kBn - 1) / GroupedGemmTile::kBn < 65536;
  if (tensor_cores) {
    if (t == DType::bf16) {
      launch_grouped_gemm<__nv_bfloat16>(a, out.dtype(), stream);
    } else {
      launch_grouped_gemm<__half>(a, out.dtype(), stream);
    }
  } else {
    const int64_t total = a.rows * a.n;
    MINDIESD_CHECK(total / 256 < (int64_t{1} << 31), Unsupported, "grouped_matmul on CUDA: ",
                   a.rows, "x", a.n, " outputs are too many for one launch");
    grouped_matmul_simt_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(
        a, t, out.dtype());
  }
  MINDIESD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool gemm_codes_tn(const Tensor& xq, const Tensor& wq, const Tensor& out, const Stream& stream) {
  Gemm g{};
  g.a = xq.data_ptr();
  g.b = wq.data_ptr();
  g.out = out.data_ptr();
  g.ab_dtype = xq.dtype();
  g.out_dtype = out.dtype();
  g.bias_dtype = out.dtype();
  g.m = xq.size(0);
  g.n = wq.size(0);
  g.k = xq.size(1);
  g.sa[0] = g.k;  // x (M, K) row-major
  g.sa[1] = 1;
  g.sb[0] = 1;  // W^T: the (N, K) rows read as (K, N) columns, the TN layout IMMA / FP8 need
  g.sb[1] = g.k;
  g.so = g.n;
  g.batch = {1, {0, 0, 0}};
  g.alpha = 1.0f;
  g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  return run_gemm(g, stream);
}

void register_matmul_kernels(KernelRegistry& r) {
  const DTypeSet floats{DType::f32, DType::f16, DType::bf16};
  r.add(OpId::matmul, DeviceType::CUDA, {floats}, floats, matmul_kernel);
  r.add(OpId::grouped_matmul, DeviceType::CUDA, {floats, floats, DTypeSet{DType::i64}}, floats,
        grouped_matmul_kernel);
}

}  // namespace mindiesd::cuda
