// Rotary position embedding (RoPE): applying it, and building the cos/sin tables the way
// diffusers does for 1-d sequences, FLUX's N-axis ids and Wan / HunyuanVideo's 3-d grids.
//
// Tables are (S, D) f32 tensors holding the full head_dim as diffusers builds them
// (get_1d_rotary_pos_embed(use_real=True)): repeat_interleave(2) of the D/2 frequencies for
// "rotated_interleaved" (FLUX, Wan, HunyuanVideo, CogVideoX) or cat([f, f]) for "rotated_half"
// (Stable Audio, CogView4, Cosmos). Builders are pure functions; RopeCache keeps the tables of
// the shapes a model has seen so that each is computed once (a model owns one; there is no
// global state).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mindiesd/core/op_params.h"
#include "mindiesd/core/tensor.h"

namespace mindiesd::layer {

// "rotated_half" -> RopeMode::rotate_half, "rotated_interleaved" -> RopeMode::interleaved
// (the suite's names); anything else is InvalidArgument listing both.
RopeMode parse_rotated_mode(std::string_view rotated_mode);

// out = x * cos + rotate(x) * sin in f32, returned in x's dtype and shape (contiguous), as
// diffusers' apply_rotary_emb(x, (cos, sin), use_real=True, use_real_unbind_dim=-2 for
// "rotated_half" / -1 for "rotated_interleaved"); bit-identical to it for f32 and bf16 x.
//   x:       (B, S, N, D) for layout "BSND" (default; diffusers' sequence_dim=1, as FLUX and
//            Wan call it) or (B, N, S, D) for "BNSD" (sequence_dim=2); a 3-d x drops the batch
//            dim. Any strides: q/k sliced out of a fused QKV projection need no copy.
//   cos/sin: (S, D) tables broadcast over batch and heads; (B, S, D) per-batch tables; or 4-d
//            in x's layout and broadcastable to it (Wan's (1, S, 1, D)). f32, bf16 or f16.
// D must be even. x, cos and sin must share a device.
Tensor rotary_position_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                 std::string_view rotated_mode = "rotated_half",
                                 std::string_view layout = "BSND");
// The same, written into x (which must not be a broadcast view); returns x.
const Tensor& rotary_position_embedding_(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                         std::string_view rotated_mode = "rotated_half",
                                         std::string_view layout = "BSND");

// ---- tables ----

struct RopeTables {
  Tensor cos;  // (S, D) f32
  Tensor sin;
};

// The precision diffusers computes frequencies and angles in before rounding the tables to
// f32: get_1d_rotary_pos_embed's default is float32 (each step rounded to f32, as PyTorch
// does: theta^(2k/D), its reciprocal, position * frequency); FluxPosEmbed and WanRotaryPosEmbed
// pass float64. Large positions make the two differ by far more than an ulp of the result.
enum class FreqsDtype : uint8_t { f32, f64 };

struct Rope1dOptions {
  double theta = 10000.0;
  double linear_factor = 1.0;  // frequencies divided by it (context extrapolation)
  double ntk_factor = 1.0;     // theta multiplied by it (NTK-aware RoPE)
  // true: repeat_interleave(2) (tables for "rotated_interleaved"); false: cat([f, f])
  // (tables for "rotated_half").
  bool repeat_interleave_real = true;
  FreqsDtype freqs_dtype = FreqsDtype::f32;
};

// diffusers get_1d_rotary_pos_embed(dim, positions, use_real=True, ...): (S, dim) tables.
// Positions are used as PyTorch would see them: rounded to f32 on the float32 path.
RopeTables rope_1d(int64_t dim, std::span<const double> positions,
                   const Rope1dOptions& options = {}, Device device = Device::cpu());
// Positions 0, 1, ..., seq_len - 1 (diffusers' integer `pos`).
RopeTables rope_1d(int64_t dim, int64_t seq_len, const Rope1dOptions& options = {},
                   Device device = Device::cpu());
// Positions from a 1-d tensor of any real dtype (read as f32, as `pos.float()`).
RopeTables rope_1d(int64_t dim, const Tensor& positions, const Rope1dOptions& options = {});

// diffusers FluxPosEmbed(theta, axes_dim)(ids): ids (S, n_axes) of any real dtype (read as
// ids.float()), one float64 1-d table per axis (interleaved), concatenated along the channels:
// (S, sum(axes_dim)). The tables land on ids' device.
RopeTables flux_rope(const Tensor& ids, std::span<const int64_t> axes_dim, double theta = 10000.0);
// FLUX's position ids for txt_len text tokens followed by a height x width grid of packed
// latent tokens (the pipeline's text ids are zeros, image ids (0, row, col)), concatenated
// as FluxTransformer2DModel does: (txt_len + height * width, 3) f32.
Tensor flux_ids(int64_t txt_len, int64_t height, int64_t width, Device device = Device::cpu());

// Wan's split of head_dim over (frames, height, width) in WanRotaryPosEmbed:
// h = w = 2 * (head_dim / 6), t = head_dim - h - w (44/42/42 for 128).
std::array<int64_t, 3> wan_rope_axes(int64_t head_dim);

struct Rope3dOptions {
  double theta = 10000.0;
  // Channels per axis (t, h, w); empty: Wan's split of head_dim. HunyuanVideo: its
  // rope_axes_dim, e.g. {16, 56, 56}, with theta 256 and FreqsDtype::f32.
  std::vector<int64_t> axes_dim;
  FreqsDtype freqs_dtype = FreqsDtype::f64;  // WanRotaryPosEmbed computes in float64
};

// Tables for a frames x height x width token grid (sizes after patching: Wan's ppf, pph, ppw),
// token (f, h, w) at row (f * height + h) * width + w, channels cat(t table of f, h table of h,
// w table of w): WanRotaryPosEmbed's output as (S, head_dim), or HunyuanVideoRotaryPosEmbed's
// with its options. Interleaved tables.
RopeTables rope_3d(int64_t frames, int64_t height, int64_t width, int64_t head_dim,
                   const Rope3dOptions& options = {}, Device device = Device::cpu());

// The tables of each shape a model uses, built on first use and reused after (a denoising loop
// asks for the same shape every step). Thread-safe. Holds at most `capacity` shapes (Wan at
// 720p is 33 MB of tables), evicting the least recently used.
class RopeCache {
 public:
  explicit RopeCache(size_t capacity = 8) : capacity_(capacity == 0 ? 1 : capacity) {}
  RopeCache(const RopeCache&) = delete;
  RopeCache& operator=(const RopeCache&) = delete;

  RopeTables rope_1d(int64_t dim, int64_t seq_len, const Rope1dOptions& options = {},
                     Device device = Device::cpu());
  // flux_rope(flux_ids(txt_len, height, width), axes_dim, theta).
  RopeTables flux(int64_t txt_len, int64_t height, int64_t width, std::span<const int64_t> axes_dim,
                  double theta = 10000.0, Device device = Device::cpu());
  RopeTables rope_3d(int64_t frames, int64_t height, int64_t width, int64_t head_dim,
                     const Rope3dOptions& options = {}, Device device = Device::cpu());

  size_t size() const;
  int64_t hits() const;
  int64_t misses() const;
  void clear();

 private:
  template <typename Build>
  RopeTables get(const std::string& key, Build&& build);

  struct Entry {
    RopeTables tables;
    uint64_t last_use = 0;
  };
  mutable std::mutex mu_;
  size_t capacity_;
  uint64_t clock_ = 0;
  int64_t hits_ = 0, misses_ = 0;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace mindiesd::layer
