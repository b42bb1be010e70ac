// TeaCache's published rescaling polynomials (Liu et al. 2024, "Timestep Embedding Tells: It's
// Time to Cache for Video Diffusion Model"; ali-vilab/TeaCache: TeaCache4FLUX/teacache_flux.py,
// TeaCache4Wan2.1/teacache_generate.py) and their README's "slow" thresholds.
#pragma once

#include <string>
#include <vector>

namespace mindiesd::cache {

// Coefficients (highest power first, numpy.poly1d order) fitted for `model`: "flux",
// "wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.1-i2v-480p", "wan2.1-i2v-720p"; the Wan tables
// differ with use_ret_steps. Empty for an unknown model.
std::vector<double> teacache_coefficients(const std::string& model, bool use_ret_steps);
// The README's lower (near-lossless) threshold for the model; 0 for an unknown one.
double teacache_default_threshold(const std::string& model, bool use_ret_steps);
// Whether the model's indicator is the timestep-modulated block input (FLUX) rather than the
// timestep embedding alone (Wan: temb, or timestep_proj "e0" with use_ret_steps).
bool teacache_uses_modulated_input(const std::string& model);

}  // namespace mindiesd::cache
