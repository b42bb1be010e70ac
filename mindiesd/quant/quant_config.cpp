#include "mindiesd/quant/quant_config.h"

#include <algorithm>
#include <cctype>

#include "mindiesd/core/error.h"
#include "mindiesd/core/spec.h"

namespace mindiesd::quant {

namespace {

constexpr struct {
  QuantAlgo algo;
  const char* name;
} kAlgos[] = {{QuantAlgo::W8A8, "W8A8"},
              {QuantAlgo::W8A8_DYNAMIC, "W8A8_DYNAMIC"},
              {QuantAlgo::W8A8_TIMESTEP, "W8A8_TIMESTEP"},
              {QuantAlgo::W8A16, "W8A16"},
              {QuantAlgo::W4A16, "W4A16"},
              {QuantAlgo::FP8_DYNAMIC, "FP8_DYNAMIC"}};
constexpr const char* kAlgoList = "w8a8, w8a8_dynamic, w8a8_timestep, w8a16, w4a16, fp8";

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& ch : u) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return u;
}

// '*' matches any run; a pattern without '*' matches anywhere in the name.
bool glob_match(std::string_view pat, std::string_view s) {
  if (pat.find('*') == std::string_view::npos) return s.find(pat) != std::string_view::npos;
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Inside a repeated transformer block (FLUX transformer_blocks / single_transformer_blocks, Wan
// blocks) and not one of its adaLN modulation projections (norm1.linear, norm1_context.linear,
// norm.linear).
bool default_selected(std::string_view name) {
  const bool in_block = starts_with(name, "transformer_blocks.") ||
                        starts_with(name, "single_transformer_blocks.") ||
                        starts_with(name, "blocks.");
  return in_block && !glob_match("*.norm*.linear", name);
}

// "A-B;C" -> ranges (inclusive).
void register_ranges(TimestepPolicyConfig& p, std::string_view v, const char* strategy) {
  for (const std::string& part : spec_list(v)) {
    const size_t dash = part.find('-');
    const int64_t a =
        spec_int("--quant", "w8a8_timestep", strategy, std::string_view(part).substr(0, dash));
    const int64_t b = dash == std::string::npos ? a
                                                : spec_int("--quant", "w8a8_timestep", strategy,
                                                           std::string_view(part).substr(dash + 1));
    p.register_steps(a, b, strategy);
  }
}

}  // namespace

const char* algo_name(QuantAlgo algo) {
  for (const auto& a : kAlgos)
    if (a.algo == algo) return a.name;
  return "?";
}

bool algo_from_name(std::string_view name, QuantAlgo* out) {
  const std::string u = upper(name);
  for (const auto& a : kAlgos)
    if (u == a.name) {
      *out = a.algo;
      return true;
    }
  if (u == "FP8") {
    *out = QuantAlgo::FP8_DYNAMIC;
    return true;
  }
  return false;
}

bool needs_calibration(QuantAlgo a) {
  return a == QuantAlgo::W8A8 || a == QuantAlgo::W8A8_TIMESTEP;
}

TimestepPolicyConfig& TimestepPolicyConfig::register_steps(int64_t first, int64_t last,
                                                           std::string_view strategy) {
  MINDIESD_CHECK(strategy == "static" || strategy == "dynamic", InvalidArgument,
                 "TimestepPolicyConfig: strategy must be \"static\" or \"dynamic\", got '",
                 strategy, "'");
  MINDIESD_CHECK(first >= 0 && last >= first, InvalidArgument, "TimestepPolicyConfig: steps ",
                 first, "-", last, " must satisfy 0 <= first <= last");
  ranges_.push_back({first, last, strategy == "static"});
  return *this;
}

bool TimestepPolicyConfig::is_static(int64_t step) const {
  for (auto r = ranges_.rbegin(); r != ranges_.rend(); ++r)
    if (step >= r->first && step <= r->last) return r->is_static;
  return false;  // unregistered steps are dynamic, as in the suite
}

std::string TimestepPolicyConfig::describe() const {
  std::string s;
  for (const Range& r : ranges_) {
    s += str_cat(s.empty() ? "" : ", ", r.is_static ? "static " : "dynamic ", r.first);
    if (r.last != r.first) s += str_cat("-", r.last);
  }
  return s;
}

QuantConfig parse_quant_spec(std::string_view spec) {
  const OptionSpec s = parse_option_spec("--quant", spec);
  QuantConfig c;
  MINDIESD_CHECK(algo_from_name(s.name, &c.algo), InvalidArgument, "--quant: unknown algorithm '",
                 s.name, "' (one of ", kAlgoList, ")");
  const bool weight_only = c.algo == QuantAlgo::W8A16 || c.algo == QuantAlgo::W4A16;
  for (const auto& [key, v] : s.items) {
    if (weight_only && key == "group") {
      c.group_size = spec_int("--quant", s.name, key, v);
      MINDIESD_CHECK(
          c.group_size == 0 || c.group_size == 32 || c.group_size == 64 || c.group_size == 128,
          InvalidArgument, "--quant ", s.name,
          ": group must be 0 (per channel), 32, 64 or 128, got ", c.group_size);
    } else if (key == "exclude") {
      c.exclude = spec_list(v);
    } else if (key == "include") {
      c.include = spec_list(v);
    } else if (key == "all") {
      c.default_exclusions = !spec_bool("--quant", s.name, key, v);
    } else if (c.algo == QuantAlgo::W8A8_TIMESTEP && (key == "static" || key == "dynamic")) {
      register_ranges(c.timestep_policy, v, key == "static" ? "static" : "dynamic");
    } else {
      MINDIESD_THROW(InvalidArgument, "--quant ", s.name, ": unknown key '", key,
                     "' (see mindiesd generate --help)");
    }
  }
  return c;
}

std::string describe(const QuantConfig& c) {
  std::string s = algo_name(c.algo);
  if (c.group_size > 0) s += str_cat(" group=", c.group_size);
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& p : v) out += (out.empty() ? "" : ";") + p;
    return out;
  };
  if (!c.default_exclusions) s += " all=1";
  if (!c.exclude.empty()) s += " exclude=" + list(c.exclude);
  if (!c.include.empty()) s += " include=" + list(c.include);
  if (!c.timestep_policy.empty()) s += " (" + c.timestep_policy.describe() + ")";
  return s;
}

bool selects(const QuantConfig& c, std::string_view name) {
  for (const std::string& p : c.exclude)
    if (glob_match(p, name)) return false;
  if (!c.default_exclusions || default_selected(name)) return true;
  return std::any_of(c.include.begin(), c.include.end(),
                     [&](const std::string& p) { return glob_match(p, name); });
}

}  // namespace mindiesd::quant
