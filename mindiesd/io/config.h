// diffusers config.json files as typed structs.
//
// Each struct's members are named exactly as diffusers' config fields (and so as the keys in
// config.json), with diffusers' defaults for absent keys, so a model builder reads
// `cfg.block_out_channels` where the Python reads `config.block_out_channels`. A ConfigReader
// reads fields with type checks and records which keys were consumed; the keys nobody read are
// its unknown_keys(), which callers print as warnings (a newer diffusers field we ignore is worth
// knowing about, but is no reason to refuse a model). Keys starting with '_' (_class_name,
// _diffusers_version, _name_or_path, ...) are metadata, never unknown.
//
// Errors, each naming the file and the field:
//   Corrupt          the file is not valid JSON / has a duplicate key / is not an object
//   InvalidArgument  a field has the wrong type ("expected integer, got string \"3\""), a
//                    required field is missing, a value is out of range or inconsistent with
//                    another field, or _class_name names another class
//   NotFound / Io    the file is missing / unreadable
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mindiesd::io {

class ConfigReader {
 public:
  // `source` names the config (normally its path) in error messages. Corrupt unless `json` is
  // an object.
  ConfigReader(nlohmann::json json, std::string source);
  static ConfigReader from_file(const std::filesystem::path& path);
  static ConfigReader from_string(std::string_view text, std::string source);

  const std::string& source() const { return source_; }
  const nlohmann::json& json() const { return json_; }

  // Present (a null value counts as present).
  bool has(std::string_view key) const;

  // Supported T: bool, int, int64_t, double, std::string, and std::vector of bool, int,
  // int64_t, double, std::string. Integers must be JSON integers (3.0 is not an int); doubles
  // accept integers. Every read marks the key as consumed.
  //
  // The field must be present and non-null.
  template <typename T>
  T required(std::string_view key);
  // `fallback` when absent; a null value is an error (the field is not nullable).
  template <typename T>
  T optional(std::string_view key, T fallback);
  // For nullable fields (Optional[...] in diffusers): `fallback` when absent, nullopt when null.
  template <typename T>
  std::optional<T> nullable(std::string_view key, std::optional<T> fallback = std::nullopt);

  // Marks a key as consumed without reading it (a field that is known but not used).
  void mark_used(std::string_view key);
  // Keys not consumed so far, excluding metadata keys; sorted.
  std::vector<std::string> unknown_keys() const;
  // The keys that start with '_'; sorted.
  std::vector<std::string> metadata_keys() const;

  // "_class_name", or "" when absent (or not a string).
  std::string class_name() const;
  // InvalidArgument when _class_name is present and is not `expected` (a config for another
  // model would otherwise fail later with a confusing field error).
  void expect_class(std::string_view expected) const;

  // Throws InvalidArgument "<source>: field '<key>': <message>".
  [[noreturn]] void fail(std::string_view key, std::string_view message) const;
  void check(bool cond, std::string_view key, std::string_view message) const {
    if (!cond) fail(key, message);
  }

 private:
  template <typename T>
  T convert(std::string_view key, const nlohmann::json& value) const;

  nlohmann::json json_;
  std::string source_;
  std::vector<std::string> consumed_;  // sorted
};

// ---- models -----------------------------------------------------------------------------

// diffusers.AutoencoderKL (SD 1.x/2.x/XL, SD3, Flux VAEs).
struct AutoencoderKLConfig {
  static constexpr const char* kClassName = "AutoencoderKL";

  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<std::string> down_block_types = {"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types = {"UpDecoderBlock2D"};
  std::vector<int64_t> block_out_channels = {64};
  int64_t layers_per_block = 1;
  std::string act_fn = "silu";
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  // diffusers also accepts a [height, width] list here and then uses its first entry (it only
  // sizes tiles); so do we.
  int64_t sample_size = 32;
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;
  std::optional<std::vector<double>> latents_mean;
  std::optional<std::vector<double>> latents_std;
  bool force_upcast = true;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Reads and validates (positive sizes, one block type per block_out_channels entry, channel
  // counts divisible by norm_num_groups, latents_mean/std of latent_channels entries).
  static AutoencoderKLConfig read(ConfigReader& reader);
  // The config.json form of the values read (every field, resolved nulls as their values, with
  // _class_name); reading it back gives an equal struct.
  nlohmann::json to_json() const;
  bool operator==(const AutoencoderKLConfig&) const = default;
};

// diffusers.AutoencoderKLWan (Wan 2.1 / 2.2 video VAE). Field names as diffusers spells them
// ("temperal_downsample" included).
struct AutoencoderKLWanConfig {
  static constexpr const char* kClassName = "AutoencoderKLWan";

  int64_t base_dim = 96;
  int64_t decoder_base_dim = 96;  // a null in config.json means base_dim, resolved by read()
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<double> attn_scales;
  std::vector<bool> temperal_downsample = {false, true, true};
  double dropout = 0.0;
  std::vector<double> latents_mean = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,
                                      -0.1517, 1.5508,  0.4134,  -0.0715, 0.5517,  -0.3632,
                                      -0.1922, -0.9497, 0.2503,  -0.2921};
  std::vector<double> latents_std = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708,
                                     2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
                                     1.6382, 1.1253, 2.8251, 1.9160};
  bool is_residual = false;  // Wan 2.2's VAE
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::optional<int64_t> patch_size;
  int64_t scale_factor_temporal = 4;
  int64_t scale_factor_spatial = 8;

  // Validates positive sizes, one temperal_downsample entry per downsampling stage and
  // latents_mean / latents_std of z_dim entries (std non-zero).
  static AutoencoderKLWanConfig read(ConfigReader& reader);
  nlohmann::json to_json() const;  // as AutoencoderKLConfig::to_json
  bool operator==(const AutoencoderKLWanConfig&) const = default;
};

// diffusers.FluxTransformer2DModel.
struct FluxTransformer2DModelConfig {
  static constexpr const char* kClassName = "FluxTransformer2DModel";

  int64_t patch_size = 1;
  int64_t in_channels = 64;
  // diffusers' default is None, meaning in_channels; read() resolves that, so this is always the
  // effective value.
  int64_t out_channels = 64;
  int64_t num_layers = 19;
  int64_t num_single_layers = 38;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 24;
  int64_t joint_attention_dim = 4096;
  int64_t pooled_projection_dim = 768;
  bool guidance_embeds = false;
  std::vector<int64_t> axes_dims_rope = {16, 56, 56};

  // Validates positive sizes and that the RoPE axes add up to attention_head_dim.
  static FluxTransformer2DModelConfig read(ConfigReader& reader);
  nlohmann::json to_json() const;  // as AutoencoderKLConfig::to_json
  bool operator==(const FluxTransformer2DModelConfig&) const = default;
};

// diffusers.WanTransformer3DModel (Wan 2.1 / 2.2).
struct WanTransformer3DModelConfig {
  static constexpr const char* kClassName = "WanTransformer3DModel";

  std::vector<int64_t> patch_size = {1, 2, 2};  // (t, h, w)
  int64_t num_attention_heads = 40;
  int64_t attention_head_dim = 128;
  int64_t in_channels = 16;
  int64_t out_channels = 16;  // a null in config.json means in_channels, resolved by read()
  int64_t text_dim = 4096;
  int64_t freq_dim = 256;
  int64_t ffn_dim = 13824;
  int64_t num_layers = 40;
  bool cross_attn_norm = true;
  std::optional<std::string> qk_norm = "rms_norm_across_heads";
  double eps = 1e-6;
  std::optional<int64_t> image_dim;
  std::optional<int64_t> added_kv_proj_dim;
  int64_t rope_max_seq_len = 1024;
  std::optional<int64_t> pos_embed_seq_len;

  static WanTransformer3DModelConfig read(ConfigReader& reader);
  nlohmann::json to_json() const;  // as AutoencoderKLConfig::to_json
  bool operator==(const WanTransformer3DModelConfig&) const = default;
};

// ---- schedulers -------------------------------------------------------------------------

// diffusers.FlowMatchEulerDiscreteScheduler (scheduler_config.json).
struct FlowMatchEulerDiscreteSchedulerConfig {
  static constexpr const char* kClassName = "FlowMatchEulerDiscreteScheduler";

  int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  std::optional<double> base_shift = 0.5;
  std::optional<double> max_shift = 1.15;
  int64_t base_image_seq_len = 256;
  int64_t max_image_seq_len = 4096;
  bool invert_sigmas = false;
  std::optional<double> shift_terminal;
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  bool use_beta_sigmas = false;
  std::string time_shift_type = "exponential";  // "exponential" or "linear"
  bool stochastic_sampling = false;

  // Validates as diffusers does: at most one of the karras/exponential/beta sigma schedules,
  // time_shift_type in {exponential, linear}; plus a positive num_train_timesteps and shift,
  // and base/max_shift present when use_dynamic_shifting is on.
  static FlowMatchEulerDiscreteSchedulerConfig read(ConfigReader& reader);
  nlohmann::json to_json() const;  // as AutoencoderKLConfig::to_json
  bool operator==(const FlowMatchEulerDiscreteSchedulerConfig&) const = default;
};

// diffusers UniPCMultistepScheduler's config.json (Wan2.1's scheduler). Every field diffusers
// defines is read; schedules other than flow sigmas, solver_p and thresholding are refused by
// the scheduler, not here.
struct UniPCMultistepSchedulerConfig {
  static constexpr const char* kClassName = "UniPCMultistepScheduler";

  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";
  bool has_trained_betas = false;  // trained_betas given (not null)
  int64_t solver_order = 2;
  std::string prediction_type = "epsilon";
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double sample_max_value = 1.0;
  bool predict_x0 = true;
  std::string solver_type = "bh2";  // "bh1" or "bh2" ("midpoint", "heun", "logrho" mean bh2)
  bool lower_order_final = true;
  std::vector<int64_t> disable_corrector;
  bool has_solver_p = false;
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  bool use_beta_sigmas = false;
  bool use_flow_sigmas = false;
  double flow_shift = 1.0;
  std::string timestep_spacing = "linspace";
  int64_t steps_offset = 0;
  std::string final_sigmas_type = "zero";  // "zero" or "sigma_min"
  bool rescale_betas_zero_snr = false;
  bool use_dynamic_shifting = false;
  std::string time_shift_type = "exponential";
  std::optional<double> shift_terminal;

  // Validates what diffusers validates (one of karras/exponential/beta sigmas at most, known
  // solver_type, final_sigmas_type, timestep_spacing, prediction_type; shift_terminal only with
  // flow sigmas) plus positive num_train_timesteps and flow_shift and 1 <= solver_order <= 3.
  static UniPCMultistepSchedulerConfig read(ConfigReader& reader);
  // As AutoencoderKLConfig::to_json; Unsupported when trained_betas or solver_p were given (only
  // their presence is kept).
  nlohmann::json to_json() const;
  bool operator==(const UniPCMultistepSchedulerConfig&) const = default;
};

}  // namespace mindiesd::io
