// The per-call seam: what a denoising loop tells a transformer's forward about the call (step
// index, CFG branch) and the cross-cutting policies the forward consults at fixed points (its
// block loop and the attention of each block), so that step caching (and later quantization,
// sparse and sequence-parallel attention) switch on without a model's code changing.
//
// A model writes its blocks as one BlockLoop and calls ctx.run_blocks(loop, streams); inside a
// block it wraps the attention whose output a cache may reuse in ctx.cached_attention(block,
// compute). With no policy set (the default Context) both are the plain loop and call.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mindiesd/core/tensor.h"

namespace mindiesd {

// What flows between the blocks of a transformer. `hidden`: the image / video tokens. `encoder`:
// the text tokens of a family whose blocks update them (FLUX's MMDiT; undefined for Wan, whose
// blocks read a fixed text context). `joint`, when defined, is the one tensor [encoder; hidden]
// (dim 1) of which the other two are views (FLUX's single-stream blocks), so a block can run on
// it without concatenating; whoever replaces hidden or encoder leaves joint undefined.
struct BlockStreams {
  Tensor hidden;
  Tensor encoder;
  Tensor joint;
};

// One forward's block loop as a model hands it to the seam.
struct BlockLoop {
  int64_t num_blocks = 0;
  // Runs block i on its input streams and returns its output streams. The encoder stream after
  // the last block is not read by the model (only the image tokens reach the output layer).
  std::function<BlockStreams(int64_t block, const BlockStreams&)> run;
  // TeaCache's indicators (Liu et al. 2024, "Timestep Embedding Tells"): block 0's
  // timestep-modulated input (FLUX: transformer_blocks[0].norm1(hidden, temb)), computed on
  // demand from the loop's input streams; and the timestep embedding and its modulation projection
  // (Wan: temb and timestep_proj, "e" and "e0" in the reference code). Undefined where a family has
  // none.
  std::function<Tensor(const BlockStreams& input)> modulated_input;
  Tensor timestep_embedding, timestep_proj;
  // FLOPs (2 per multiply-add) of each block at this call's sizes, and the part of it a
  // reused attention output saves; for the caches' reports.
  std::vector<double> block_flops, attention_flops;
};

struct Context;

// A step cache: decides, per call, which blocks run and what stands in for the others.
class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  virtual BlockStreams run_blocks(const Context& ctx, const BlockLoop& loop, BlockStreams in) = 0;
  // The attention output of `block`: compute() or a reused one.
  virtual Tensor cached_attention(const Context& ctx, int64_t block,
                                  const std::function<Tensor()>& compute) = 0;
};

// Sees the input of every linear layer of a forward (by the layer's diffusers module name):
// calibration records activation ranges through it.
class LinearObserver {
 public:
  virtual ~LinearObserver() = default;
  virtual void observe(const std::string& layer, const Tensor& input, const Context& ctx) = 0;
};

// Computes a block's attention in place of the dense kernel: quantized attention (quant/
// attention_quant.h), sparse attention (sparse/sparse_attention_policy.h), later
// sequence-parallel attention. q, k, v are BSND views.
class AttentionPolicy {
 public:
  virtual ~AttentionPolicy() = default;
  virtual Tensor attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v) const = 0;
};

// CFG branch of a call: the conditional prediction and, with classifier-free guidance, the
// unconditional one. Policies keep separate state per branch.
enum class CfgBranch : int { cond = 0, uncond = 1 };

struct Context {
  int64_t step = -1;  // denoising step (0-based); -1 outside a denoising loop
  int64_t num_steps = 0;
  CfgBranch branch = CfgBranch::cond;
  CachePolicy* cache = nullptr;
  LinearObserver* linear_observer = nullptr;
  const AttentionPolicy* attention = nullptr;
  // Set by a model's forward for its blocks: the grid (frames, rows, columns) of its image /
  // video tokens, which are the last t * h * w tokens of a self-attention sequence (any tokens
  // before them are text). {0, 0, 0}: unknown.
  std::array<int64_t, 3> token_grid{};

  BlockStreams run_blocks(const BlockLoop& loop, BlockStreams s) const {
    if (cache && step >= 0) return cache->run_blocks(*this, loop, std::move(s));
    for (int64_t i = 0; i < loop.num_blocks; ++i) s = loop.run(i, s);
    return s;
  }
  Tensor cached_attention(int64_t block, const std::function<Tensor()>& compute) const {
    return cache && step >= 0 ? cache->cached_attention(*this, block, compute) : compute();
  }
};

}  // namespace mindiesd
