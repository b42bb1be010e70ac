// The "name:key=value,key=value" option strings of the acceleration flags (--cache, --quant,
// --attention): splitting and typed values, each error naming the flag, the name and the key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mindiesd {

struct OptionSpec {
  std::string name;  // before the ':'
  std::vector<std::pair<std::string, std::string>> items;
};
// InvalidArgument when an item is not key=value.
OptionSpec parse_option_spec(std::string_view flag, std::string_view spec);

int64_t spec_int(std::string_view flag, std::string_view name, std::string_view key,
                 std::string_view value);
double spec_double(std::string_view flag, std::string_view name, std::string_view key,
                   std::string_view value);
bool spec_bool(std::string_view flag, std::string_view name, std::string_view key,
               std::string_view value);
// "a;b;c" -> {"a", "b", "c"} (empty parts dropped).
std::vector<std::string> spec_list(std::string_view value);

}  // namespace mindiesd
