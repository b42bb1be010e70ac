#include "mindiesd/io/config.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"
#include "mindiesd/io/json_util.h"

namespace mindiesd::io {

namespace {

// Config files are a few KB; anything near this is not a config.
constexpr int64_t kMaxConfigBytes = int64_t{64} << 20;

template <typename T>
struct TypeWord;
template <>
struct TypeWord<bool> {
  static constexpr const char* value = "boolean";
};
template <>
struct TypeWord<int> {
  static constexpr const char* value = "integer";
};
template <>
struct TypeWord<int64_t> {
  static constexpr const char* value = "integer";
};
template <>
struct TypeWord<double> {
  static constexpr const char* value = "number";
};
template <>
struct TypeWord<std::string> {
  static constexpr const char* value = "string";
};
template <typename E>
struct TypeWord<std::vector<E>> {
  static constexpr const char* value = TypeWord<E>::value;
};

std::string got_text(const nlohmann::json& v) {
  return str_cat(json_type_word(v), " ", json_excerpt(v));
}

}  // namespace

ConfigReader::ConfigReader(nlohmann::json json, std::string source)
    : json_(std::move(json)), source_(std::move(source)) {
  MINDIESD_CHECK(json_.is_object(), Corrupt, source_, ": a config must be a JSON object, got ",
                 json_type_word(json_));
}

ConfigReader ConfigReader::from_file(const std::filesystem::path& path) {
  return from_string(read_file(path, kMaxConfigBytes, "a config file"), path.string());
}

ConfigReader ConfigReader::from_string(std::string_view text, std::string source) {
  nlohmann::json j = parse_json_strict(text, source);
  return ConfigReader(std::move(j), std::move(source));
}

bool ConfigReader::has(std::string_view key) const { return json_.contains(key); }

void ConfigReader::mark_used(std::string_view key) {
  const auto it = std::lower_bound(consumed_.begin(), consumed_.end(), key);
  if (it == consumed_.end() || *it != key) consumed_.insert(it, std::string(key));
}

std::vector<std::string> ConfigReader::unknown_keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : json_.items()) {
    if (!k.starts_with('_') && !std::binary_search(consumed_.begin(), consumed_.end(), k)) {
      out.push_back(k);
    }
  }
  return out;  // nlohmann objects iterate in key order, so this is sorted
}

std::vector<std::string> ConfigReader::metadata_keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : json_.items()) {
    if (k.starts_with('_')) out.push_back(k);
  }
  return out;
}

std::string ConfigReader::class_name() const {
  const auto it = json_.find("_class_name");
  return it != json_.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void ConfigReader::expect_class(std::string_view expected) const {
  const auto it = json_.find("_class_name");
  if (it == json_.end()) return;
  MINDIESD_CHECK(it->is_string() && it->get<std::string>() == expected, InvalidArgument, source_,
                 ": config is for _class_name ", json_excerpt(*it), ", not ", expected);
}

void ConfigReader::fail(std::string_view key, std::string_view message) const {
  MINDIESD_THROW(InvalidArgument, source_, ": field '", key, "': ", message);
}

template <typename T>
T ConfigReader::convert(std::string_view key, const nlohmann::json& v) const {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) fail(key, str_cat("expected boolean, got ", got_text(v)));
    return v.get<bool>();
  } else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, int>) {
    if (!v.is_number_integer()) fail(key, str_cat("expected integer, got ", got_text(v)));
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        fail(key, str_cat("integer ", u, " is out of range"));
      }
      return static_cast<T>(u);
    }
    const int64_t i = v.get<int64_t>();
    if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        i > static_cast<int64_t>(std::numeric_limits<T>::max())) {
      fail(key, str_cat("integer ", i, " is out of range"));
    }
    return static_cast<T>(i);
  } else if constexpr (std::is_same_v<T, double>) {
    if (!v.is_number()) fail(key, str_cat("expected number, got ", got_text(v)));
    return v.get<double>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) fail(key, str_cat("expected string, got ", got_text(v)));
    return v.get<std::string>();
  } else {
    using E = typename T::value_type;
    if (!v.is_array()) {
      fail(key, str_cat("expected a list of ", TypeWord<E>::value, "s, got ", got_text(v)));
    }
    T out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      const nlohmann::json& e = v[i];
      // Convert through a scalar read so the element gets the same checks, with its index.
      try {
        out.push_back(convert<E>(key, e));
      } catch (const Error&) {
        fail(key, str_cat("expected a list of ", TypeWord<E>::value, "s, element ", i, " is ",
                          got_text(e)));
      }
    }
    return out;
  }
}

template <typename T>
T ConfigReader::required(std::string_view key) {
  mark_used(key);
  const auto it = json_.find(key);
  if (it == json_.end()) fail(key, "missing (required)");
  if (it->is_null()) fail(key, str_cat("expected ", TypeWord<T>::value, ", got null"));
  return convert<T>(key, *it);
}

template <typename T>
T ConfigReader::optional(std::string_view key, T fallback) {
  mark_used(key);
  const auto it = json_.find(key);
  if (it == json_.end()) return fallback;
  if (it->is_null()) {
    fail(key, str_cat("expected ", TypeWord<T>::value, ", got null (the field is not nullable)"));
  }
  return convert<T>(key, *it);
}

template <typename T>
std::optional<T> ConfigReader::nullable(std::string_view key, std::optional<T> fallback) {
  mark_used(key);
  const auto it = json_.find(key);
  if (it == json_.end()) return fallback;
  if (it->is_null()) return std::nullopt;
  return convert<T>(key, *it);
}

#define MINDIESD_CONFIG_TYPES(X) \
  X(bool)                        \
  X(int)                         \
  X(int64_t)                     \
  X(double)                      \
  X(std::string)                 \
  X(std::vector<bool>)           \
  X(std::vector<int>)            \
  X(std::vector<int64_t>)        \
  X(std::vector<double>)         \
  X(std::vector<std::string>)
#define MINDIESD_INSTANTIATE(T)                              \
  template T ConfigReader::required<T>(std::string_view);    \
  template T ConfigReader::optional<T>(std::string_view, T); \
  template std::optional<T> ConfigReader::nullable<T>(std::string_view, std::optional<T>);
MINDIESD_CONFIG_TYPES(MINDIESD_INSTANTIATE)
#undef MINDIESD_INSTANTIATE
#undef MINDIESD_CONFIG_TYPES

// ---- typed configs --------------------------------------------------------------------------

namespace {

void positive(const ConfigReader& r, std::string_view key, int64_t v) {
  r.check(v > 0, key, str_cat("must be positive, got ", v));
}
void non_negative(const ConfigReader& r, std::string_view key, int64_t v) {
  r.check(v >= 0, key, str_cat("must be >= 0, got ", v));
}
void all_positive(const ConfigReader& r, std::string_view key, const std::vector<int64_t>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    r.check(v[i] > 0, key, str_cat("element ", i, " must be positive, got ", v[i]));
  }
}

}  // namespace

AutoencoderKLConfig AutoencoderKLConfig::read(ConfigReader& r) {
  r.expect_class(kClassName);
  AutoencoderKLConfig c;
  c.in_channels = r.optional("in_channels", c.in_channels);
  c.out_channels = r.optional("out_channels", c.out_channels);
  c.down_block_types = r.optional("down_block_types", c.down_block_types);
  c.up_block_types = r.optional("up_block_types", c.up_block_types);
  c.block_out_channels = r.optional("block_out_channels", c.block_out_channels);
  c.layers_per_block = r.optional("layers_per_block", c.layers_per_block);
  c.act_fn = r.optional("act_fn", c.act_fn);
  c.latent_channels = r.optional("latent_channels", c.latent_channels);
  c.norm_num_groups = r.optional("norm_num_groups", c.norm_num_groups);
  r.mark_used("sample_size");
  if (r.has("sample_size") && r.json().at("sample_size").is_array()) {
    const auto hw = r.required<std::vector<int64_t>>("sample_size");
    r.check(!hw.empty(), "sample_size", "must be an integer or a non-empty list of integers");
    c.sample_size = hw.front();
  } else {
    c.sample_size = r.optional("sample_size", c.sample_size);
  }
  c.scaling_factor = r.optional("scaling_factor", c.scaling_factor);
  c.shift_factor = r.nullable<double>("shift_factor", c.shift_factor);
  c.latents_mean = r.nullable<std::vector<double>>("latents_mean", c.latents_mean);
  c.latents_std = r.nullable<std::vector<double>>("latents_std", c.latents_std);
  c.force_upcast = r.optional("force_upcast", c.force_upcast);
  c.use_quant_conv = r.optional("use_quant_conv", c.use_quant_conv);
  c.use_post_quant_conv = r.optional("use_post_quant_conv", c.use_post_quant_conv);
  c.mid_block_add_attention = r.optional("mid_block_add_attention", c.mid_block_add_attention);

  positive(r, "in_channels", c.in_channels);
  positive(r, "out_channels", c.out_channels);
  positive(r, "latent_channels", c.latent_channels);
  positive(r, "layers_per_block", c.layers_per_block);
  positive(r, "norm_num_groups", c.norm_num_groups);
  positive(r, "sample_size", c.sample_size);
  r.check(!c.block_out_channels.empty(), "block_out_channels", "must not be empty");
  all_positive(r, "block_out_channels", c.block_out_channels);
  for (int64_t ch : c.block_out_channels) {
    r.check(
        ch % c.norm_num_groups == 0, "block_out_channels",
        str_cat(ch, " channels do not split into norm_num_groups=", c.norm_num_groups, " groups"));
  }
  r.check(c.down_block_types.size() == c.block_out_channels.size(), "down_block_types",
          str_cat("has ", c.down_block_types.size(), " entries but block_out_channels has ",
                  c.block_out_channels.size()));
  r.check(c.up_block_types.size() == c.block_out_channels.size(), "up_block_types",
          str_cat("has ", c.up_block_types.size(), " entries but block_out_channels has ",
                  c.block_out_channels.size()));
  r.check(c.scaling_factor != 0.0, "scaling_factor", "must not be 0 (latents are divided by it)");
  for (const char* key : {"latents_mean", "latents_std"}) {
    const auto& v = std::string_view(key) == "latents_mean" ? c.latents_mean : c.latents_std;
    if (v) {
      r.check(static_cast<int64_t>(v->size()) == c.latent_channels, key,
              str_cat("has ", v->size(), " entries but latent_channels is ", c.latent_channels));
    }
  }
  return c;
}

AutoencoderKLWanConfig AutoencoderKLWanConfig::read(ConfigReader& r) {
  r.expect_class(kClassName);
  AutoencoderKLWanConfig c;
  c.base_dim = r.optional("base_dim", c.base_dim);
  c.decoder_base_dim = r.nullable<int64_t>("decoder_base_dim").value_or(c.base_dim);
  c.z_dim = r.optional("z_dim", c.z_dim);
  c.dim_mult = r.optional("dim_mult", c.dim_mult);
  c.num_res_blocks = r.optional("num_res_blocks", c.num_res_blocks);
  c.attn_scales = r.optional("attn_scales", c.attn_scales);
  c.temperal_downsample = r.optional("temperal_downsample", c.temperal_downsample);
  c.dropout = r.optional("dropout", c.dropout);
  c.latents_mean = r.optional("latents_mean", c.latents_mean);
  c.latents_std = r.optional("latents_std", c.latents_std);
  c.is_residual = r.optional("is_residual", c.is_residual);
  c.in_channels = r.optional("in_channels", c.in_channels);
  c.out_channels = r.optional("out_channels", c.out_channels);
  c.patch_size = r.nullable<int64_t>("patch_size", c.patch_size);
  c.scale_factor_temporal =
      r.nullable<int64_t>("scale_factor_temporal").value_or(c.scale_factor_temporal);
  c.scale_factor_spatial =
      r.nullable<int64_t>("scale_factor_spatial").value_or(c.scale_factor_spatial);
  r.mark_used("clip_output");  // newer diffusers: decode always clamps, which is what we do

  positive(r, "base_dim", c.base_dim);
  positive(r, "decoder_base_dim", c.decoder_base_dim);
  positive(r, "z_dim", c.z_dim);
  positive(r, "num_res_blocks", c.num_res_blocks);
  positive(r, "in_channels", c.in_channels);
  positive(r, "out_channels", c.out_channels);
  r.check(!c.dim_mult.empty() && c.dim_mult.size() <= 16, "dim_mult",
          str_cat("must have 1 to 16 entries, got ", c.dim_mult.size()));
  all_positive(r, "dim_mult", c.dim_mult);
  r.check(c.temperal_downsample.size() + 1 >= c.dim_mult.size(), "temperal_downsample",
          str_cat("has ", c.temperal_downsample.size(), " entries but dim_mult has ",
                  c.dim_mult.size(), " (one per downsampling stage is needed)"));
  for (const char* key : {"latents_mean", "latents_std"}) {
    const auto& v = std::string_view(key) == "latents_mean" ? c.latents_mean : c.latents_std;
    r.check(static_cast<int64_t>(v.size()) == c.z_dim, key,
            str_cat("has ", v.size(), " entries but z_dim is ", c.z_dim));
  }
  for (size_t i = 0; i < c.latents_std.size(); ++i) {
    r.check(c.latents_std[i] != 0.0, "latents_std", str_cat("element ", i, " is 0"));
  }
  if (c.patch_size) positive(r, "patch_size", *c.patch_size);
  positive(r, "scale_factor_temporal", c.scale_factor_temporal);
  positive(r, "scale_factor_spatial", c.scale_factor_spatial);
  return c;
}

FluxTransformer2DModelConfig FluxTransformer2DModelConfig::read(ConfigReader& r) {
  r.expect_class(kClassName);
  FluxTransformer2DModelConfig c;
  c.patch_size = r.optional("patch_size", c.patch_size);
  c.in_channels = r.optional("in_channels", c.in_channels);
  c.out_channels = r.nullable<int64_t>("out_channels").value_or(c.in_channels);
  c.num_layers = r.optional("num_layers", c.num_layers);
  c.num_single_layers = r.optional("num_single_layers", c.num_single_layers);
  c.attention_head_dim = r.optional("attention_head_dim", c.attention_head_dim);
  c.num_attention_heads = r.optional("num_attention_heads", c.num_attention_heads);
  c.joint_attention_dim = r.optional("joint_attention_dim", c.joint_attention_dim);
  c.pooled_projection_dim = r.optional("pooled_projection_dim", c.pooled_projection_dim);
  c.guidance_embeds = r.optional("guidance_embeds", c.guidance_embeds);
  c.axes_dims_rope = r.optional("axes_dims_rope", c.axes_dims_rope);

  positive(r, "patch_size", c.patch_size);
  positive(r, "in_channels", c.in_channels);
  positive(r, "out_channels", c.out_channels);
  non_negative(r, "num_layers", c.num_layers);
  non_negative(r, "num_single_layers", c.num_single_layers);
  positive(r, "attention_head_dim", c.attention_head_dim);
  positive(r, "num_attention_heads", c.num_attention_heads);
  positive(r, "joint_attention_dim", c.joint_attention_dim);
  positive(r, "pooled_projection_dim", c.pooled_projection_dim);
  r.check(!c.axes_dims_rope.empty(), "axes_dims_rope", "must not be empty");
  all_positive(r, "axes_dims_rope", c.axes_dims_rope);
  int64_t sum = 0;
  for (int64_t a : c.axes_dims_rope) {
    r.check(a % 2 == 0, "axes_dims_rope", str_cat("RoPE axis dims must be even, got ", a));
    sum += a;  // each entry was checked positive and came from an int64, sums of a few fit
    r.check(sum <= c.attention_head_dim, "axes_dims_rope",
            str_cat("add up to more than attention_head_dim=", c.attention_head_dim));
  }
  r.check(sum == c.attention_head_dim, "axes_dims_rope",
          str_cat("add up to ", sum, " but attention_head_dim is ", c.attention_head_dim));
  return c;
}

WanTransformer3DModelConfig WanTransformer3DModelConfig::read(ConfigReader& r) {
  r.expect_class(kClassName);
  WanTransformer3DModelConfig c;
  c.patch_size = r.optional("patch_size", c.patch_size);
  c.num_attention_heads = r.optional("num_attention_heads", c.num_attention_heads);
  c.attention_head_dim = r.optional("attention_head_dim", c.attention_head_dim);
  c.in_channels = r.optional("in_channels", c.in_channels);
  c.out_channels = r.nullable<int64_t>("out_channels", c.out_channels).value_or(c.in_channels);
  c.text_dim = r.optional("text_dim", c.text_dim);
  c.freq_dim = r.optional("freq_dim", c.freq_dim);
  c.ffn_dim = r.optional("ffn_dim", c.ffn_dim);
  c.num_layers = r.optional("num_layers", c.num_layers);
  c.cross_attn_norm = r.optional("cross_attn_norm", c.cross_attn_norm);
  c.qk_norm = r.nullable<std::string>("qk_norm", c.qk_norm);
  c.eps = r.optional("eps", c.eps);
  c.image_dim = r.nullable<int64_t>("image_dim", c.image_dim);
  c.added_kv_proj_dim = r.nullable<int64_t>("added_kv_proj_dim", c.added_kv_proj_dim);
  c.rope_max_seq_len = r.optional("rope_max_seq_len", c.rope_max_seq_len);
  c.pos_embed_seq_len = r.nullable<int64_t>("pos_embed_seq_len", c.pos_embed_seq_len);

  r.check(c.patch_size.size() == 3, "patch_size",
          str_cat("must be [t, h, w], got ", c.patch_size.size(), " entries"));
  all_positive(r, "patch_size", c.patch_size);
  positive(r, "num_attention_heads", c.num_attention_heads);
  positive(r, "attention_head_dim", c.attention_head_dim);
  positive(r, "in_channels", c.in_channels);
  positive(r, "out_channels", c.out_channels);
  positive(r, "text_dim", c.text_dim);
  positive(r, "freq_dim", c.freq_dim);
  positive(r, "ffn_dim", c.ffn_dim);
  non_negative(r, "num_layers", c.num_layers);
  positive(r, "rope_max_seq_len", c.rope_max_seq_len);
  r.check(c.eps > 0.0, "eps", str_cat("must be positive, got ", c.eps));
  if (c.image_dim) positive(r, "image_dim", *c.image_dim);
  if (c.added_kv_proj_dim) positive(r, "added_kv_proj_dim", *c.added_kv_proj_dim);
  if (c.pos_embed_seq_len) positive(r, "pos_embed_seq_len", *c.pos_embed_seq_len);
  return c;
}

FlowMatchEulerDiscreteSchedulerConfig FlowMatchEulerDiscreteSchedulerConfig::read(ConfigReader& r) {
  r.expect_class(kClassName);
  FlowMatchEulerDiscreteSchedulerConfig c;
  c.num_train_timesteps = r.optional("num_train_timesteps", c.num_train_timesteps);
  c.shift = r.optional("shift", c.shift);
  c.use_dynamic_shifting = r.optional("use_dynamic_shifting", c.use_dynamic_shifting);
  c.base_shift = r.nullable<double>("base_shift", c.base_shift);
  c.max_shift = r.nullable<double>("max_shift", c.max_shift);
  c.base_image_seq_len = r.optional("base_image_seq_len", c.base_image_seq_len);
  c.max_image_seq_len = r.optional("max_image_seq_len", c.max_image_seq_len);
  c.invert_sigmas = r.optional("invert_sigmas", c.invert_sigmas);
  c.shift_terminal = r.nullable<double>("shift_terminal", c.shift_terminal);
  c.use_karras_sigmas = r.optional("use_karras_sigmas", c.use_karras_sigmas);
  c.use_exponential_sigmas = r.optional("use_exponential_sigmas", c.use_exponential_sigmas);
  c.use_beta_sigmas = r.optional("use_beta_sigmas", c.use_beta_sigmas);
  c.time_shift_type = r.optional("time_shift_type", c.time_shift_type);
  c.stochastic_sampling = r.optional("stochastic_sampling", c.stochastic_sampling);

  positive(r, "num_train_timesteps", c.num_train_timesteps);
  r.check(c.shift > 0.0, "shift", str_cat("must be positive, got ", c.shift));
  r.check(int{c.use_karras_sigmas} + int{c.use_exponential_sigmas} + int{c.use_beta_sigmas} <= 1,
          "use_karras_sigmas",
          "only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas can be true");
  r.check(c.time_shift_type == "exponential" || c.time_shift_type == "linear", "time_shift_type",
          str_cat("must be \"exponential\" or \"linear\", got \"", c.time_shift_type, "\""));
  if (c.use_dynamic_shifting) {
    r.check(c.base_shift.has_value(), "base_shift", "needed when use_dynamic_shifting is true");
    r.check(c.max_shift.has_value(), "max_shift", "needed when use_dynamic_shifting is true");
    r.check(c.max_image_seq_len != c.base_image_seq_len, "max_image_seq_len",
            "must differ from base_image_seq_len (the shift is interpolated between them)");
  }
  if (c.shift_terminal) {
    r.check(*c.shift_terminal < 1.0, "shift_terminal",
            str_cat("must be < 1, got ", *c.shift_terminal));
  }
  return c;
}

UniPCMultistepSchedulerConfig UniPCMultistepSchedulerConfig::read(ConfigReader& r) {
  r.expect_class(kClassName);
  UniPCMultistepSchedulerConfig c;
  c.num_train_timesteps = r.optional("num_train_timesteps", c.num_train_timesteps);
  c.beta_start = r.optional("beta_start", c.beta_start);
  c.beta_end = r.optional("beta_end", c.beta_end);
  c.beta_schedule = r.optional("beta_schedule", c.beta_schedule);
  c.has_trained_betas = r.has("trained_betas") && !r.json().at("trained_betas").is_null();
  r.mark_used("trained_betas");
  c.solver_order = r.optional("solver_order", c.solver_order);
  c.prediction_type = r.optional("prediction_type", c.prediction_type);
  c.thresholding = r.optional("thresholding", c.thresholding);
  c.dynamic_thresholding_ratio = r.optional("dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
  c.sample_max_value = r.optional("sample_max_value", c.sample_max_value);
  c.predict_x0 = r.optional("predict_x0", c.predict_x0);
  c.solver_type = r.optional("solver_type", c.solver_type);
  c.lower_order_final = r.optional("lower_order_final", c.lower_order_final);
  c.disable_corrector = r.optional("disable_corrector", c.disable_corrector);
  c.has_solver_p = r.has("solver_p") && !r.json().at("solver_p").is_null();
  r.mark_used("solver_p");
  c.use_karras_sigmas = r.optional("use_karras_sigmas", c.use_karras_sigmas);
  c.use_exponential_sigmas = r.optional("use_exponential_sigmas", c.use_exponential_sigmas);
  c.use_beta_sigmas = r.optional("use_beta_sigmas", c.use_beta_sigmas);
  c.use_flow_sigmas = r.optional("use_flow_sigmas", c.use_flow_sigmas);
  c.flow_shift = r.optional("flow_shift", c.flow_shift);
  c.timestep_spacing = r.optional("timestep_spacing", c.timestep_spacing);
  c.steps_offset = r.optional("steps_offset", c.steps_offset);
  c.final_sigmas_type = r.optional("final_sigmas_type", c.final_sigmas_type);
  c.rescale_betas_zero_snr = r.optional("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
  c.use_dynamic_shifting = r.optional("use_dynamic_shifting", c.use_dynamic_shifting);
  c.time_shift_type = r.optional("time_shift_type", c.time_shift_type);
  c.shift_terminal = r.nullable<double>("shift_terminal", c.shift_terminal);
  for (const char* unused : {"sigma_min", "sigma_max"}) r.mark_used(unused);  // unused by diffusers

  positive(r, "num_train_timesteps", c.num_train_timesteps);
  r.check(c.solver_order >= 1 && c.solver_order <= 3, "solver_order",
          str_cat("must be 1, 2 or 3, got ", c.solver_order));
  r.check(c.flow_shift > 0.0, "flow_shift", str_cat("must be positive, got ", c.flow_shift));
  r.check(int{c.use_karras_sigmas} + int{c.use_exponential_sigmas} + int{c.use_beta_sigmas} <= 1,
          "use_karras_sigmas",
          "only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas can be true");
  if (c.solver_type == "midpoint" || c.solver_type == "heun" || c.solver_type == "logrho")
    c.solver_type = "bh2";  // as diffusers' register_to_config(solver_type="bh2")
  r.check(c.solver_type == "bh1" || c.solver_type == "bh2", "solver_type",
          str_cat("must be \"bh1\" or \"bh2\", got \"", c.solver_type, "\""));
  r.check(c.final_sigmas_type == "zero" || c.final_sigmas_type == "sigma_min", "final_sigmas_type",
          str_cat("must be \"zero\" or \"sigma_min\", got \"", c.final_sigmas_type, "\""));
  r.check(c.timestep_spacing == "linspace" || c.timestep_spacing == "leading" ||
              c.timestep_spacing == "trailing",
          "timestep_spacing",
          str_cat("must be linspace, leading or trailing, got \"", c.timestep_spacing, "\""));
  r.check(c.prediction_type == "epsilon" || c.prediction_type == "sample" ||
              c.prediction_type == "v_prediction" || c.prediction_type == "flow_prediction",
          "prediction_type", str_cat("unknown prediction_type \"", c.prediction_type, "\""));
  r.check(c.time_shift_type == "exponential" || c.time_shift_type == "linear", "time_shift_type",
          str_cat("must be \"exponential\" or \"linear\", got \"", c.time_shift_type, "\""));
  r.check(!c.shift_terminal || c.use_flow_sigmas, "shift_terminal",
          "is only supported when use_flow_sigmas is true");
  if (c.shift_terminal)
    r.check(*c.shift_terminal < 1.0, "shift_terminal", str_cat("must be < 1, got ", *c.shift_terminal));
  return c;
}

}  // namespace mindiesd::io
