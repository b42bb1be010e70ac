#pragma once

#include <string>
#include <vector>

namespace mindiesd::cli {

// Exit codes: 0 ok, 1 error while running (thrown mindiesd::Error), 2 usage error.
int cmd_generate(const std::vector<std::string>& args);
const char* generate_help();

}  // namespace mindiesd::cli
