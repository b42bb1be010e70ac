#include "mindiesd/cache/teacache.h"

#include <map>
#include <utility>

namespace mindiesd::cache {

namespace {

struct Table {
  std::vector<double> off, on;  // use_ret_steps off / on
  double thresh_off, thresh_on;
};

const std::map<std::string, Table>& tables() {
  static const std::map<std::string, Table> t = {
      // FLUX has no ret-steps variant; thresholds 0.25 / 0.4 / 0.6 / 0.8 give ~1.5 / 1.8 / 2.0 /
      // 2.25x in the README.
      {"flux",
       {{4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00, 2.64230861e-01},
        {},
        0.25,
        0.0}},
      {"wan2.1-t2v-1.3b",
       {{2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01},
        {-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02},
        0.05,
        0.05}},
      {"wan2.1-t2v-14b",
       {{-5784.54975374, 5449.50911966, -1811.16591783, 256.27178429, -13.02252404},
        {-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01},
        0.14,
        0.10}},
      {"wan2.1-i2v-480p",
       {{-3.02331670e+02, 2.23948934e+02, -5.25463970e+01, 5.87348440e+00, -2.01973289e-01},
        {2.57151496e+05, -3.54229917e+04, 1.40286849e+03, -1.35890334e+01, 1.32517977e-01},
        0.13,
        0.20}},
      {"wan2.1-i2v-720p",
       {{-114.36346466, 65.26524496, -18.82220707, 4.91518089, -0.23412683},
        {8.10705460e+03, 2.13393892e+03, -3.72934672e+02, 1.66203073e+01, -4.17769401e-02},
        0.20,
        0.20}},
  };
  return t;
}

}  // namespace

std::vector<double> teacache_coefficients(const std::string& model, bool use_ret_steps) {
  const auto it = tables().find(model);
  if (it == tables().end()) return {};
  return use_ret_steps && !it->second.on.empty() ? it->second.on : it->second.off;
}

double teacache_default_threshold(const std::string& model, bool use_ret_steps) {
  const auto it = tables().find(model);
  if (it == tables().end()) return 0.0;
  return use_ret_steps && !it->second.on.empty() ? it->second.thresh_on : it->second.thresh_off;
}

bool teacache_uses_modulated_input(const std::string& model) { return model == "flux"; }

}  // namespace mindiesd::cache
