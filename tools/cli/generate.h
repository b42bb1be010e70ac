#pragma once

#include <string>
#include <vector>

namespace mindiesd::cli {

// Exit codes: 0 ok, 1 error while running (thrown mindiesd::Error), 2 usage error.
int cmd_generate(const std::vector<std::string>& args);
const char* generate_help();
// The same command on a WanPipeline folder (`model`, resolved by cmd_generate).
int cmd_generate_video(const std::vector<std::string>& args, const std::string& model);
const char* generate_video_help();

}  // namespace mindiesd::cli
