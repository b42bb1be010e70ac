#include "mindiesd/core/spec.h"

#include <charconv>
#include <cmath>

#include "mindiesd/core/error.h"

namespace mindiesd {

OptionSpec parse_option_spec(std::string_view flag, std::string_view spec) {
  const size_t colon = spec.find(':');
  OptionSpec s;
  s.name = std::string(spec.substr(0, colon));
  std::string_view rest =
      colon == std::string_view::npos ? std::string_view() : spec.substr(colon + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    MINDIESD_CHECK(eq != std::string_view::npos && eq > 0, InvalidArgument, flag, " ", s.name,
                   ": '", item, "' is not key=value");
    s.items.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return s;
}

int64_t spec_int(std::string_view flag, std::string_view name, std::string_view key,
                 std::string_view v) {
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  MINDIESD_CHECK(ec == std::errc() && end == v.data() + v.size(), InvalidArgument, flag, " ", name,
                 ": ", key, " must be an integer, got '", v, "'");
  return x;
}

double spec_double(std::string_view flag, std::string_view name, std::string_view key,
                   std::string_view v) {
  double x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  MINDIESD_CHECK(ec == std::errc() && end == v.data() + v.size() && std::isfinite(x),
                 InvalidArgument, flag, " ", name, ": ", key, " must be a number, got '", v, "'");
  return x;
}

bool spec_bool(std::string_view flag, std::string_view name, std::string_view key,
               std::string_view v) {
  if (v == "1" || v == "true" || v == "on") return true;
  if (v == "0" || v == "false" || v == "off") return false;
  MINDIESD_THROW(InvalidArgument, flag, " ", name, ": ", key, " must be 0 or 1, got '", v, "'");
}

std::vector<std::string> spec_list(std::string_view v) {
  std::vector<std::string> out;
  while (!v.empty()) {
    const size_t semi = v.find(';');
    if (semi != 0) out.emplace_back(v.substr(0, semi));
    v = semi == std::string_view::npos ? std::string_view() : v.substr(semi + 1);
  }
  return out;
}

}  // namespace mindiesd
