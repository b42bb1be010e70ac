// cuDNN's fused scaled-dot-product attention through the cudnn-frontend graph API (header-only,
// from PyPI's nvidia-cudnn-frontend wheel; scripts/fetch-cudnn-frontend.sh), as the second
// tensor-core path beside our own flash kernel (flash_attention.cuh): on Hopper cuDNN runs its
// wgmma / TMA flash-attention engines. Host code only; the graphs are built on the first call
// of a problem and cached.
#include "mindiesd/kernel/cuda/attention.h"

#if defined(MINDIESD_CUDNN_FRONTEND)

#include <cudnn_frontend.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/kernel/cuda/cudnn_util.h"

namespace mindiesd::cuda {

namespace {

namespace fe = cudnn_frontend;

// Tensor uids of the variant pack.
constexpr int64_t kQ = 1, kK = 2, kV = 3, kO = 4;

struct Built {
  std::shared_ptr<fe::graph::Graph> graph;  // null: cuDNN refused the problem
  int64_t workspace = 0;
  std::string why;
};

// Built graphs by problem; leaked on purpose (cuDNN objects must not outlive the runtime's
// teardown at exit).
struct GraphCache {
  std::mutex mu;
  std::map<std::vector<int64_t>, std::shared_ptr<const Built>> by_problem;
};
GraphCache& graph_cache() {
  static GraphCache* cache = new GraphCache;
  return *cache;
}

std::vector<int64_t> problem_key(DType dtype, int64_t d, const FlashArgs& a, int device) {
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &a.scale, sizeof scale_bits);
  std::vector<int64_t> k{
      device,    static_cast<int64_t>(dtype), d, a.batch, a.hq, a.hkv, a.sq, a.sk, a.causal ? 1 : 0,
      scale_bits};
  for (const int64_t* st : {a.q_stride, a.k_stride, a.v_stride, a.o_stride})
    k.insert(k.end(), st, st + 3);
  return k;
}

std::shared_ptr<const Built> build(DType dtype, int64_t d, const FlashArgs& a, cudnnHandle_t h) {
  auto b = std::make_shared<Built>();
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(dtype == DType::bf16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto tensor = [&](const char* name, int64_t uid, int64_t heads, int64_t seq, const int64_t* st) {
    return g->tensor(fe::graph::Tensor_attributes()
                         .set_name(name)
                         .set_uid(uid)
                         .set_dim({a.batch, heads, seq, d})
                         .set_stride({st[0], st[1], st[2], 1}));
  };
  const auto q = tensor("Q", kQ, a.hq, a.sq, a.q_stride);
  const auto k = tensor("K", kK, a.hkv, a.sk, a.k_stride);
  const auto v = tensor("V", kV, a.hkv, a.sk, a.v_stride);
  auto options =
      fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(false).set_attn_scale(
          a.scale);
  if (a.causal) options.set_causal_mask_bottom_right(true);
  const auto outputs = g->sdpa(q, k, v, options);
  outputs[0]
      ->set_output(true)
      .set_uid(kO)
      .set_dim({a.batch, a.hq, a.sq, d})
      .set_stride({a.o_stride[0], a.o_stride[1], a.o_stride[2], 1});
  auto ok = [&](fe::error_t e, const char* step) {
    if (e.is_good()) return true;
    b->why = str_cat("cudnn-frontend ", step, ": ", e.get_message());
    return false;
  };
  if (!ok(g->validate(), "validate") || !ok(g->build_operation_graph(h), "build_operation_graph") ||
      !ok(g->create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans") ||
      !ok(g->check_support(h), "check_support") || !ok(g->build_plans(h), "build_plans") ||
      !ok(g->get_workspace_size(b->workspace), "get_workspace_size")) {
    return b;
  }
  b->graph = std::move(g);
  return b;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool launch_cudnn_attention(DType dtype, int64_t d, const FlashArgs& a, int device,
                            cudaStream_t stream, Allocator& alloc, uintptr_t stream_key,
                            std::string* why) {
  auto refuse = [&](std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return false;
  };
  if (dtype != DType::bf16 && dtype != DType::f16) return refuse("dtype is not bf16 / f16");
  if (d % 8 != 0 || d > 128) return refuse("head dim is not a multiple of 8 up to 128");
  if (a.hq <= 0 || a.hkv <= 0 || a.hq % a.hkv != 0) return refuse("Hq is not a multiple of Hkv");
  // Rows that see no key are zeros in mindiesd; cuDNN's behaviour for them is not ours to assume.
  if (a.causal && a.sq > a.sk) return refuse("causal with Sq > Sk");
  if (!aligned16(a.q) || !aligned16(a.k) || !aligned16(a.v) || !aligned16(a.out)) {
    return refuse("an operand is not 16-byte aligned");
  }
  if (a.batch == 0 || a.hq == 0 || a.sq == 0) return true;
  if (a.sk == 0) return refuse("no keys");
  const cudnnHandle_t h = cudnn_handle(device, stream);
  const std::vector<int64_t> key = problem_key(dtype, d, a, device);
  std::shared_ptr<const Built> built;
  {
    GraphCache& cache = graph_cache();
    const std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.by_problem.find(key);
    if (it == cache.by_problem.end())
      it = cache.by_problem.emplace(key, build(dtype, d, a, h)).first;
    built = it->second;
  }
  if (!built->graph) return refuse(built->why);
  void* workspace = built->workspace > 0
                        ? alloc.allocate(static_cast<size_t>(built->workspace), stream_key)
                        : nullptr;
  std::unordered_map<int64_t, void*> pack{{kQ, const_cast<void*>(a.q)},
                                          {kK, const_cast<void*>(a.k)},
                                          {kV, const_cast<void*>(a.v)},
                                          {kO, a.out}};
  fe::error_t e = built->graph->execute(h, pack, workspace);
  if (workspace != nullptr) alloc.deallocate(workspace);  // stream-ordered reuse only
  MINDIESD_CHECK(e.is_good(), Internal, "cuDNN attention failed to run: ", e.get_message());
  return true;
}

}  // namespace mindiesd::cuda

#else  // !MINDIESD_CUDNN_FRONTEND

namespace mindiesd::cuda {

bool launch_cudnn_attention(DType, int64_t, const FlashArgs&, int, cudaStream_t, Allocator&,
                            uintptr_t, std::string* why) {
  if (why != nullptr) *why = "built without cudnn-frontend";
  return false;
}

}  // namespace mindiesd::cuda

#endif  // MINDIESD_CUDNN_FRONTEND
