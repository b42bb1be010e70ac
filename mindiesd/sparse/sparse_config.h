// What sparse attention a generation asks for, and its --attention spec (the policy that runs it:
// sparse_attention_policy.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mindiesd/layer/sparse_attention.h"

namespace mindiesd::sparse {

struct SparseAttentionConfig {
  layer::SparseType type = layer::SparseType::rf;
  double sparsity = 0.8;
  int64_t block_size = 128;
  int64_t start_step = 0;  // steps [0, start_step) are dense
  double cdf_threshold = 1.0;  // ada_bsa
  bool keep_sink = true;       // ada_bsa
  bool keep_recent = true;     // ada_bsa
  // Estimate the masks every mask_interval steps from start_step and reuse them in between
  // (per CFG branch and attention call; the suite's rf_v3 cached_mask). 1: every step.
  int64_t mask_interval = 1;
};

// "sparse:type=rf,sparsity=0.8,start_step=2[,block=128,cdf=0.9,sink=1,recent=1,mask_interval=N]",
// the --attention form ("dense" gives sparsity 0). InvalidArgument naming the key otherwise.
SparseAttentionConfig parse_sparse_attention_spec(std::string_view spec);
std::string describe(const SparseAttentionConfig& config);

}  // namespace mindiesd::sparse
