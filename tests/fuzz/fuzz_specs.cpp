// Fuzzes the acceleration flags' option strings: --cache (cache::parse_cache_spec), --quant
// (quant::parse_quant_spec) and --attention (sparse::parse_sparse_attention_spec). Byte 0 picks the parser, the rest is the string. Every
// input must be accepted or fail with a mindiesd::Error; an accepted spec must describe itself
// and satisfy the ranges its parser promises.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "mindiesd/cache/cache_config.h"
#include "mindiesd/core/error.h"
#include "mindiesd/quant/quant_config.h"
#include "mindiesd/sparse/sparse_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mindiesd;
  if (size < 1) return 0;
  const std::string_view spec(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 3) {
      case 0:
        (void)cache::describe(cache::parse_cache_spec(spec));
        break;
      case 1:
        (void)quant::describe(quant::parse_quant_spec(spec));
        break;
      default: {
        const sparse::SparseAttentionConfig c = sparse::parse_sparse_attention_spec(spec);
        if (!(c.sparsity >= 0.0 && c.sparsity < 1.0) || !(c.cdf_threshold > 0.0 && c.cdf_threshold <= 1.0) ||
            c.block_size < 16 || c.block_size % 16 != 0 || c.start_step < 0 || c.mask_interval < 1) {
          std::fprintf(stderr, "accepted an out-of-range --attention spec\n");
          std::abort();
        }
        (void)sparse::describe(c);
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
