#include "mindiesd/io/config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <type_traits>

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
    const double d = v.get<double>();
    // The JSON parser turns a literal past the double range (1e999) into infinity.
    if (!std::isfinite(d)) fail(key, str_cat("number ", json_excerpt(v), " is out of range"));
    return d;
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

// Each config's fields by their config.json names: read with the struct's default as the
// fallback (std::optional members are nullable) and written back by the same table, so reading
// and writing cannot drift apart. Fields whose reading resolves something (a null meaning another
// field's value, a list meaning its first entry) are marked custom and read by hand.
enum class Read { generic, custom };

template <typename C, typename T>
struct Field {
  const char* name;
  T C::*member;
  Read read = Read::generic;
};
// Clang 14 has no class template argument deduction for aggregates.
template <typename C, typename T>
Field(const char*, T C::*, Read = Read::generic) -> Field<C, T>;

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <typename C, typename... T>
void read_fields(ConfigReader& r, C& c, const std::tuple<Field<C, T>...>& fields) {
  const auto one = [&](const auto& f) {
    using M = std::remove_cvref_t<decltype(c.*f.member)>;
    if (f.read == Read::custom) return;
    if constexpr (IsOptional<M>::value) {
      c.*f.member = r.nullable<typename M::value_type>(f.name, c.*f.member);
    } else {
      c.*f.member = r.optional<M>(f.name, c.*f.member);
    }
  };
  std::apply([&](const auto&... f) { (one(f), ...); }, fields);
}

template <typename C, typename... T>
nlohmann::json write_fields(const C& c, const std::tuple<Field<C, T>...>& fields) {
  nlohmann::json j = nlohmann::json::object();
  j["_class_name"] = C::kClassName;
  const auto one = [&](const auto& f) {
    const auto& v = c.*f.member;
    using M = std::remove_cvref_t<decltype(v)>;
    if constexpr (IsOptional<M>::value) {
      j[f.name] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    } else {
      j[f.name] = v;
    }
  };
  std::apply([&](const auto&... f) { (one(f), ...); }, fields);
  return j;
}

using AKL = AutoencoderKLConfig;
constexpr auto kAutoencoderKLFields = std::tuple(
    Field{"in_channels", &AKL::in_channels}, Field{"out_channels", &AKL::out_channels},
    Field{"down_block_types", &AKL::down_block_types},
    Field{"up_block_types", &AKL::up_block_types},
    Field{"block_out_channels", &AKL::block_out_channels},
    Field{"layers_per_block", &AKL::layers_per_block}, Field{"act_fn", &AKL::act_fn},
    Field{"latent_channels", &AKL::latent_channels},
    Field{"norm_num_groups", &AKL::norm_num_groups},
    Field{"sample_size", &AKL::sample_size, Read::custom},
    Field{"scaling_factor", &AKL::scaling_factor}, Field{"shift_factor", &AKL::shift_factor},
    Field{"latents_mean", &AKL::latents_mean}, Field{"latents_std", &AKL::latents_std},
    Field{"force_upcast", &AKL::force_upcast}, Field{"use_quant_conv", &AKL::use_quant_conv},
    Field{"use_post_quant_conv", &AKL::use_post_quant_conv},
    Field{"mid_block_add_attention", &AKL::mid_block_add_attention});

using AKLW = AutoencoderKLWanConfig;
constexpr auto kAutoencoderKLWanFields = std::tuple(
    Field{"base_dim", &AKLW::base_dim},
    Field{"decoder_base_dim", &AKLW::decoder_base_dim, Read::custom}, Field{"z_dim", &AKLW::z_dim},
    Field{"dim_mult", &AKLW::dim_mult}, Field{"num_res_blocks", &AKLW::num_res_blocks},
    Field{"attn_scales", &AKLW::attn_scales},
    Field{"temperal_downsample", &AKLW::temperal_downsample}, Field{"dropout", &AKLW::dropout},
    Field{"latents_mean", &AKLW::latents_mean}, Field{"latents_std", &AKLW::latents_std},
    Field{"is_residual", &AKLW::is_residual}, Field{"in_channels", &AKLW::in_channels},
    Field{"out_channels", &AKLW::out_channels}, Field{"patch_size", &AKLW::patch_size},
    Field{"scale_factor_temporal", &AKLW::scale_factor_temporal, Read::custom},
    Field{"scale_factor_spatial", &AKLW::scale_factor_spatial, Read::custom});

using FT = FluxTransformer2DModelConfig;
constexpr auto kFluxTransformerFields = std::tuple(
    Field{"patch_size", &FT::patch_size}, Field{"in_channels", &FT::in_channels},
    Field{"out_channels", &FT::out_channels, Read::custom}, Field{"num_layers", &FT::num_layers},
    Field{"num_single_layers", &FT::num_single_layers},
    Field{"attention_head_dim", &FT::attention_head_dim},
    Field{"num_attention_heads", &FT::num_attention_heads},
    Field{"joint_attention_dim", &FT::joint_attention_dim},
    Field{"pooled_projection_dim", &FT::pooled_projection_dim},
    Field{"guidance_embeds", &FT::guidance_embeds}, Field{"axes_dims_rope", &FT::axes_dims_rope});

using WT = WanTransformer3DModelConfig;
constexpr auto kWanTransformerFields = std::tuple(
    Field{"patch_size", &WT::patch_size}, Field{"num_attention_heads", &WT::num_attention_heads},
    Field{"attention_head_dim", &WT::attention_head_dim}, Field{"in_channels", &WT::in_channels},
    Field{"out_channels", &WT::out_channels, Read::custom}, Field{"text_dim", &WT::text_dim},
    Field{"freq_dim", &WT::freq_dim}, Field{"ffn_dim", &WT::ffn_dim},
    Field{"num_layers", &WT::num_layers}, Field{"cross_attn_norm", &WT::cross_attn_norm},
    Field{"qk_norm", &WT::qk_norm}, Field{"eps", &WT::eps}, Field{"image_dim", &WT::image_dim},
    Field{"added_kv_proj_dim", &WT::added_kv_proj_dim},
    Field{"rope_max_seq_len", &WT::rope_max_seq_len},
    Field{"pos_embed_seq_len", &WT::pos_embed_seq_len});

using FM = FlowMatchEulerDiscreteSchedulerConfig;
constexpr auto kFlowMatchFields = std::tuple(
    Field{"num_train_timesteps", &FM::num_train_timesteps}, Field{"shift", &FM::shift},
    Field{"use_dynamic_shifting", &FM::use_dynamic_shifting}, Field{"base_shift", &FM::base_shift},
    Field{"max_shift", &FM::max_shift}, Field{"base_image_seq_len", &FM::base_image_seq_len},
    Field{"max_image_seq_len", &FM::max_image_seq_len}, Field{"invert_sigmas", &FM::invert_sigmas},
    Field{"shift_terminal", &FM::shift_terminal},
    Field{"use_karras_sigmas", &FM::use_karras_sigmas},
    Field{"use_exponential_sigmas", &FM::use_exponential_sigmas},
    Field{"use_beta_sigmas", &FM::use_beta_sigmas}, Field{"time_shift_type", &FM::time_shift_type},
    Field{"stochastic_sampling", &FM::stochastic_sampling});

using UP = UniPCMultistepSchedulerConfig;
constexpr auto kUniPCFields = std::tuple(
    Field{"num_train_timesteps", &UP::num_train_timesteps}, Field{"beta_start", &UP::beta_start},
    Field{"beta_end", &UP::beta_end}, Field{"beta_schedule", &UP::beta_schedule},
    Field{"solver_order", &UP::solver_order}, Field{"prediction_type", &UP::prediction_type},
    Field{"thresholding", &UP::thresholding},
    Field{"dynamic_thresholding_ratio", &UP::dynamic_thresholding_ratio},
    Field{"sample_max_value", &UP::sample_max_value}, Field{"predict_x0", &UP::predict_x0},
    Field{"solver_type", &UP::solver_type}, Field{"lower_order_final", &UP::lower_order_final},
    Field{"disable_corrector", &UP::disable_corrector},
    Field{"use_karras_sigmas", &UP::use_karras_sigmas},
    Field{"use_exponential_sigmas", &UP::use_exponential_sigmas},
    Field{"use_beta_sigmas", &UP::use_beta_sigmas}, Field{"use_flow_sigmas", &UP::use_flow_sigmas},
    Field{"flow_shift", &UP::flow_shift}, Field{"timestep_spacing", &UP::timestep_spacing},
    Field{"steps_offset", &UP::steps_offset}, Field{"final_sigmas_type", &UP::final_sigmas_type},
    Field{"rescale_betas_zero_snr", &UP::rescale_betas_zero_snr},
    Field{"use_dynamic_shifting", &UP::use_dynamic_shifting},
    Field{"time_shift_type", &UP::time_shift_type}, Field{"shift_terminal", &UP::shift_terminal});

}  // namespace

AutoencoderKLConfig AutoencoderKLConfig::read(ConfigReader& r) {
  r.expect_class(kClassName);
  AutoencoderKLConfig c;
  read_fields(r, c, kAutoencoderKLFields);
  r.mark_used("sample_size");
  if (r.has("sample_size") && r.json().at("sample_size").is_array()) {
    const auto hw = r.required<std::vector<int64_t>>("sample_size");
    r.check(!hw.empty(), "sample_size", "must be an integer or a non-empty list of integers");
    c.sample_size = hw.front();
  } else {
    c.sample_size = r.optional("sample_size", c.sample_size);
  }

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
  read_fields(r, c, kAutoencoderKLWanFields);
  c.decoder_base_dim = r.nullable<int64_t>("decoder_base_dim").value_or(c.base_dim);
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
  read_fields(r, c, kFluxTransformerFields);
  c.out_channels = r.nullable<int64_t>("out_channels").value_or(c.in_channels);

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
  read_fields(r, c, kWanTransformerFields);
  c.out_channels = r.nullable<int64_t>("out_channels", c.out_channels).value_or(c.in_channels);

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
  read_fields(r, c, kFlowMatchFields);

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
  read_fields(r, c, kUniPCFields);
  c.has_trained_betas = r.has("trained_betas") && !r.json().at("trained_betas").is_null();
  r.mark_used("trained_betas");
  c.has_solver_p = r.has("solver_p") && !r.json().at("solver_p").is_null();
  r.mark_used("solver_p");
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
    r.check(*c.shift_terminal < 1.0, "shift_terminal",
            str_cat("must be < 1, got ", *c.shift_terminal));
  return c;
}

nlohmann::json AutoencoderKLConfig::to_json() const {
  return write_fields(*this, kAutoencoderKLFields);
}
nlohmann::json AutoencoderKLWanConfig::to_json() const {
  return write_fields(*this, kAutoencoderKLWanFields);
}
nlohmann::json FluxTransformer2DModelConfig::to_json() const {
  return write_fields(*this, kFluxTransformerFields);
}
nlohmann::json WanTransformer3DModelConfig::to_json() const {
  return write_fields(*this, kWanTransformerFields);
}
nlohmann::json FlowMatchEulerDiscreteSchedulerConfig::to_json() const {
  return write_fields(*this, kFlowMatchFields);
}
nlohmann::json UniPCMultistepSchedulerConfig::to_json() const {
  // Only whether trained_betas / solver_p were given is kept, not their values.
  MINDIESD_CHECK(!has_trained_betas && !has_solver_p, Unsupported, kClassName,
                 ": a config with trained_betas or solver_p cannot be written back (their values "
                 "are not kept)");
  nlohmann::json j = write_fields(*this, kUniPCFields);
  j["trained_betas"] = nullptr;
  j["solver_p"] = nullptr;
  return j;
}

}  // namespace mindiesd::io
