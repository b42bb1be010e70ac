#include "mindiesd/cache/cache_config.h"

#include <cmath>
#include <sstream>

#include "mindiesd/cache/teacache.h"
#include "mindiesd/core/error.h"
#include "mindiesd/core/spec.h"

namespace mindiesd::cache {

namespace {

constexpr const char* kMethods =
    "dit_block_cache, attention_cache, teacache, fbcache, dbcache, taylorseer";

bool uses_step_rule(const std::string& m) {
  return m == "dit_block_cache" || m == "attention_cache" || m == "taylorseer";
}
bool uses_residual_diff(const std::string& m) { return m == "fbcache" || m == "dbcache"; }

int64_t parse_int(std::string_view method, std::string_view key, std::string_view v) {
  return spec_int("--cache", method, key, v);
}
// "A-B" (inclusive) -> [A, B + 1); "A" -> [A, A + 1).
void parse_blocks(std::string_view method, std::string_view v, CacheConfig& c) {
  const size_t dash = v.find('-');
  const int64_t a = parse_int(method, "blocks", v.substr(0, dash));
  const int64_t b =
      dash == std::string_view::npos ? a : parse_int(method, "blocks", v.substr(dash + 1));
  MINDIESD_CHECK(a >= 0 && b >= a, InvalidArgument, "--cache ", method, ": blocks '", v,
                 "' must be FIRST-LAST with 0 <= FIRST <= LAST");
  c.block_start = a;
  c.block_end = b + 1;
}

}  // namespace

CacheConfig parse_cache_spec(std::string_view spec) {
  const size_t colon = spec.find(':');
  std::string method(spec.substr(0, colon));
  if (method == "dit_block") method = "dit_block_cache";
  if (method == "attention") method = "attention_cache";
  CacheConfig c;
  c.method = method;
  if (method == "taylorseer") {  // TaylorSeer-FLUX: 3 full steps, then one in 5 computed
    c.taylorseer_order = 1;
    c.step_start = 3;
    c.step_interval = 5;
  }
  MINDIESD_CHECK(uses_step_rule(method) || uses_residual_diff(method) || method == "teacache",
                 InvalidArgument, "--cache: unknown method '", method, "' (one of ", kMethods, ")");
  for (const auto& [key_s, v_s] : parse_option_spec("--cache", spec).items) {
    const std::string_view key = key_s, v = v_s;
    auto integer = [&] { return parse_int(method, key, v); };
    const bool step_rule = uses_step_rule(method), diff = uses_residual_diff(method);
    const bool tea = method == "teacache";
    if (key == "blocks_count") {
      c.blocks_count = integer();
    } else if (key == "steps_count") {
      c.steps_count = integer();
    } else if (step_rule && (key == "start" || key == "step_start" ||
                             (method == "taylorseer" && key == "warmup"))) {
      c.step_start = integer();
    } else if (step_rule && (key == "interval" || key == "step_interval")) {
      c.step_interval = integer();
    } else if (step_rule && (key == "end" || key == "step_end")) {
      c.step_end = integer();
    } else if (step_rule && key == "blocks") {
      parse_blocks(method, v, c);
    } else if (step_rule && key == "block_start") {
      c.block_start = integer();
    } else if (step_rule && key == "block_end") {
      c.block_end = integer();
    } else if ((tea || diff) && (key == "thresh" || key == "threshold")) {
      c.threshold = spec_double("--cache", method, key, v);
    } else if (tea && key == "model") {
      c.teacache_model = std::string(v);
    } else if (tea && key == "coefficients") {  // "a;b;c", highest power first
      c.coefficients.clear();
      for (const std::string& k : spec_list(v)) c.coefficients.push_back(spec_double("--cache", method, key, k));
    } else if (tea && key == "ret_steps") {
      c.use_ret_steps = spec_bool("--cache", method, key, v);
    } else if (method == "dbcache" && key == "fn") {
      c.fn_compute_blocks = integer();
    } else if (method == "dbcache" && key == "bn") {
      c.bn_compute_blocks = integer();
    } else if (diff && key == "warmup") {
      c.warmup_steps = integer();
    } else if (diff && key == "max_cached") {
      c.max_cached_steps = integer();
    } else if (diff && key == "max_continuous") {
      c.max_continuous_cached_steps = integer();
    } else if ((tea || diff || method == "dit_block_cache") && key == "taylorseer") {
      c.taylorseer_order = integer();
    } else if (method == "taylorseer" && key == "order") {
      c.taylorseer_order = integer();
    } else {
      MINDIESD_THROW(InvalidArgument, "--cache ", method, ": unknown key '", key,
                     "' (see mindiesd generate --help)");
    }
  }
  validate(c);
  return c;
}

void validate(const CacheConfig& c) {
  const std::string& m = c.method;
  MINDIESD_CHECK(uses_step_rule(m) || uses_residual_diff(m) || m == "teacache", InvalidArgument,
                 "cache method '", m, "' is not one of ", kMethods);
  MINDIESD_CHECK(c.blocks_count >= 0 && c.steps_count >= 0, InvalidArgument, m,
                 ": blocks_count and steps_count must not be negative");
  MINDIESD_CHECK(c.step_start >= 0, InvalidArgument, m, ": step_start ", c.step_start,
                 " must not be negative");
  MINDIESD_CHECK(c.step_interval >= 1, InvalidArgument, m, ": step_interval ", c.step_interval,
                 " must be at least 1");
  MINDIESD_CHECK(c.step_end >= c.step_start, InvalidArgument, m, ": step_end ", c.step_end,
                 " is before step_start ", c.step_start);
  MINDIESD_CHECK(c.block_start >= 0 && c.block_end >= c.block_start, InvalidArgument, m,
                 ": blocks [", c.block_start, ", ", c.block_end,
                 ") must satisfy 0 <= block_start <= block_end");
  if (c.threshold)
    MINDIESD_CHECK(std::isfinite(*c.threshold) && *c.threshold >= 0, InvalidArgument, m,
                   ": threshold ", *c.threshold, " must be a finite number >= 0");
  if (!c.teacache_model.empty())
    MINDIESD_CHECK(teacache_coefficients(c.teacache_model, false).size() > 0, InvalidArgument, m,
                   ": unknown model '", c.teacache_model, "'");
  for (double k : c.coefficients)
    MINDIESD_CHECK(std::isfinite(k), InvalidArgument, m, ": coefficients must be finite");
  MINDIESD_CHECK(c.fn_compute_blocks >= 1, InvalidArgument, m, ": fn (Fn_compute_blocks) ",
                 c.fn_compute_blocks, " must be at least 1");
  MINDIESD_CHECK(c.bn_compute_blocks >= 0, InvalidArgument, m, ": bn (Bn_compute_blocks) ",
                 c.bn_compute_blocks, " must not be negative");
  MINDIESD_CHECK(c.warmup_steps >= 0, InvalidArgument, m, ": warmup ", c.warmup_steps,
                 " must not be negative");
  MINDIESD_CHECK(c.max_cached_steps >= -1 && c.max_continuous_cached_steps >= -1, InvalidArgument,
                 m, ": max_cached / max_continuous must be -1 (no limit) or >= 0");
  MINDIESD_CHECK(c.taylorseer_order >= 0 && c.taylorseer_order <= 2, InvalidArgument, m,
                 ": taylorseer order ", c.taylorseer_order, " must be 0, 1 or 2");
  MINDIESD_CHECK(m != "taylorseer" || c.taylorseer_order >= 1, InvalidArgument,
                 "taylorseer: order must be 1 or 2");
  MINDIESD_CHECK(m != "attention_cache" || c.taylorseer_order == 0, InvalidArgument,
                 "attention_cache: taylorseer forecasting applies to block residuals only");
}

void validate(const CacheConfig& c, int64_t num_blocks, int64_t num_steps) {
  validate(c);
  const std::string& m = c.method;
  MINDIESD_CHECK(c.blocks_count == 0 || c.blocks_count == num_blocks, InvalidArgument, m,
                 ": blocks_count ", c.blocks_count, " but the model runs ", num_blocks,
                 " blocks per forward");
  MINDIESD_CHECK(c.steps_count == 0 || c.steps_count == num_steps, InvalidArgument, m,
                 ": steps_count ", c.steps_count, " but the request runs ", num_steps, " steps");
  if (m == "dbcache")
    MINDIESD_CHECK(c.fn_compute_blocks + c.bn_compute_blocks < num_blocks, InvalidArgument, m,
                   ": fn ", c.fn_compute_blocks, " + bn ", c.bn_compute_blocks,
                   " leave no block to cache in a model of ", num_blocks, " blocks");
  if (m == "fbcache")
    MINDIESD_CHECK(num_blocks >= 2, InvalidArgument, m, ": a model of ", num_blocks,
                   " block(s) has nothing after its first block to cache");
}

std::string describe(const CacheConfig& c) {
  std::ostringstream o;
  o << c.method;
  const std::string& m = c.method;
  if (uses_step_rule(m)) {
    o << " steps [" << c.step_start << ", " << c.step_end << ") every " << c.step_interval
      << ", blocks [" << c.block_start << ", " << c.block_end << ")";
  }
  if (c.threshold) o << " thresh=" << *c.threshold;
  if (m == "teacache") {
    o << " model=" << (c.teacache_model.empty() ? "auto" : c.teacache_model);
    if (c.use_ret_steps) o << " ret_steps";
  }
  if (m == "dbcache") o << " fn=" << c.fn_compute_blocks << " bn=" << c.bn_compute_blocks;
  if (uses_residual_diff(m)) {
    o << " warmup=" << c.warmup_steps;
    if (c.max_cached_steps >= 0) o << " max_cached=" << c.max_cached_steps;
    if (c.max_continuous_cached_steps >= 0)
      o << " max_continuous=" << c.max_continuous_cached_steps;
  }
  if (c.taylorseer_order > 0) o << " taylorseer order " << c.taylorseer_order;
  return o.str();
}

}  // namespace mindiesd::cache
