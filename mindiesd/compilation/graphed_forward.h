// The transformer calls of one denoising loop, eager or as CUDA graph replays: the first piece
// of the compilation module (DESIGN.md: "replay (CUDA graphs); eager always still works").
//
// With cuda_graphs on a CUDA device the first call runs eagerly (it builds every cuBLASLt plan
// and cuDNN graph the forward needs), the second is captured into a CUDA graph
// (kernel/cuda/cuda_graph.h) over static copies of its device inputs and replayed, and every
// later call copies its inputs into those static tensors and replays: one launch per
// transformer call instead of one per kernel, with the eager loop's results. Use one object
// per distinct call of a step (cond / uncond). The tensor a replay returns is rewritten by the
// next replay: use it before calling again.
//
// Model: a transformer with `DeviceInputs prepare(const Inputs&) const` (the host part: checks,
// sinusoids, RoPE tables, uploads) and `Tensor forward(const DeviceInputs&) const` (device work
// only); DeviceInputs lists its tensors in fields(). Both take a Context (core/context.h).
//
// A step cache changes what a forward runs from one step to the next, which one captured graph
// cannot replay: a call with a cache policy and cuda_graphs on is refused (InvalidArgument).
#pragma once

#include <cstdint>
#include <memory>

#include "mindiesd/core/context.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/tensor.h"
#if MINDIESD_CUDA
#include "mindiesd/kernel/cuda/cuda_graph.h"
#endif

namespace mindiesd::compilation {

template <typename Model, typename DeviceInputs>
class GraphedForward {
 public:
  GraphedForward(const Model& model, bool cuda_graphs)
      : model_(model), graphs_(cuda_graphs && model.device().type == DeviceType::CUDA) {}

  template <typename Inputs>
  Tensor operator()(const Inputs& in, const Context& ctx = {}) {
    MINDIESD_CHECK(!graphs_ || ctx.cache == nullptr, InvalidArgument,
                   "CUDA graphs replay one fixed forward, but a step cache changes what runs "
                   "from step to step: use the cache without CUDA graphs");
    if (!graphs_ || calls_++ == 0) return model_.forward(in, ctx);
#if MINDIESD_CUDA
    DeviceInputs fresh = model_.prepare(in);
    const auto statics = static_.fields();
    const auto values = fresh.fields();
    for (size_t i = 0; i < statics.size(); ++i) {
      if (!values[i]->defined()) continue;
      // Own copies: the latents passed in may be held elsewhere (a step report).
      if (!graph_) *statics[i] = values[i]->clone();
      else statics[i]->copy_(*values[i]);
    }
    if (!graph_) {
      graph_ = cuda::CudaGraph::capture(model_.device(), [&] { out_ = model_.forward(static_); });
    }
    graph_->replay();
    return out_;
#else
    return model_.forward(in, ctx);
#endif
  }

 private:
  const Model& model_;
  bool graphs_;
  int64_t calls_ = 0;
#if MINDIESD_CUDA
  DeviceInputs static_;
  Tensor out_;
  std::unique_ptr<cuda::CudaGraph> graph_;
#endif
};

}  // namespace mindiesd::compilation
