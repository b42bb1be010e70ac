#include "mindiesd/sparse/sparse_config.h"

#include "mindiesd/core/error.h"
#include "mindiesd/core/spec.h"

namespace mindiesd::sparse {

namespace {
constexpr std::string_view kFlag = "--attention";
}

SparseAttentionConfig parse_sparse_attention_spec(std::string_view spec) {
  const OptionSpec s = parse_option_spec(kFlag, spec);
  SparseAttentionConfig c;
  if (s.name == "dense") {
    MINDIESD_CHECK(s.items.empty(), InvalidArgument, kFlag, " dense takes no options");
    c.sparsity = 0.0;
    return c;
  }
  MINDIESD_CHECK(s.name == "sparse", InvalidArgument, kFlag, ": unknown kind '", s.name,
                 "' (dense, sparse:type=rf|ada_bsa,...)");
  for (const auto& [key, v] : s.items) {
    if (key == "type") {
      MINDIESD_CHECK(v == "rf" || v == "rf_v2" || v == "rf_v3" || v == "ada_bsa", InvalidArgument,
                     kFlag, " ", s.name, ": type '", v, "' is not one of rf, ada_bsa");
      c.type = v == "ada_bsa" ? layer::SparseType::ada_bsa : layer::SparseType::rf;
    } else if (key == "sparsity") {
      c.sparsity = spec_double(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.sparsity >= 0.0 && c.sparsity < 1.0, InvalidArgument, kFlag, " ", s.name,
                     ": sparsity ", c.sparsity, " must be in [0, 1)");
    } else if (key == "start_step") {
      c.start_step = spec_int(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.start_step >= 0, InvalidArgument, kFlag, " ", s.name, ": start_step ",
                     c.start_step, " must be >= 0");
    } else if (key == "block" || key == "block_size") {
      c.block_size = spec_int(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.block_size >= 16 && c.block_size <= 1024 && c.block_size % 16 == 0,
                     InvalidArgument, kFlag, " ", s.name, ": ", key, " ", c.block_size,
                     " must be a multiple of 16 in [16, 1024]");
    } else if (key == "cdf" || key == "cdf_threshold") {
      c.cdf_threshold = spec_double(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.cdf_threshold > 0.0 && c.cdf_threshold <= 1.0, InvalidArgument, kFlag, " ",
                     s.name, ": ", key, " ", c.cdf_threshold, " must be in (0, 1]");
    } else if (key == "sink" || key == "keep_sink") {
      c.keep_sink = spec_bool(kFlag, s.name, key, v);
    } else if (key == "recent" || key == "keep_recent") {
      c.keep_recent = spec_bool(kFlag, s.name, key, v);
    } else if (key == "mask_interval") {
      c.mask_interval = spec_int(kFlag, s.name, key, v);
      MINDIESD_CHECK(c.mask_interval >= 1, InvalidArgument, kFlag, " ", s.name,
                     ": mask_interval ", c.mask_interval, " must be >= 1");
    } else {
      MINDIESD_THROW(InvalidArgument, kFlag, " ", s.name, ": unknown key '", key,
                     "' (type, sparsity, start_step, block, cdf, sink, recent, mask_interval)");
    }
  }
  return c;
}

std::string describe(const SparseAttentionConfig& c) {
  if (c.sparsity == 0.0 && c.cdf_threshold >= 1.0) return "dense attention";
  std::string s = str_cat("sparse attention ", layer::sparse_type_name(c.type), ", sparsity ",
                          c.sparsity, ", blocks of ", c.block_size, ", from step ", c.start_step);
  if (c.type == layer::SparseType::ada_bsa)
    s += str_cat(", cdf ", c.cdf_threshold, c.keep_sink ? ", sink" : "", c.keep_recent ? ", recent" : "");
  if (c.mask_interval > 1) s += str_cat(", masks every ", c.mask_interval, " steps");
  return s;
}

}  // namespace mindiesd::sparse
