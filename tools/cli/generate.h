#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace mindiesd::pipelines {
struct FluxRequest;
}

namespace mindiesd::cli {

// Whether a folder is a WanPipeline / WanImageToVideoPipeline (run by the video command).
bool is_video_pipeline(const std::filesystem::path& folder);
// The folder's mindiesd_defaults.json settings applied to `req`; the default negative prompt, if
// the file names one.
std::optional<std::string> apply_model_defaults(const std::filesystem::path& folder,
                                                pipelines::FluxRequest& req);
// `mindiesd quantize` (tools/cli/quantize.cpp).
int cmd_quantize(const std::vector<std::string>& args);
const char* quantize_help();

// Exit codes: 0 ok, 1 error while running (thrown mindiesd::Error), 2 usage error.
int cmd_generate(const std::vector<std::string>& args);
const char* generate_help();
// The same command on a WanPipeline folder (`model`, resolved by cmd_generate).
int cmd_generate_video(const std::vector<std::string>& args, const std::string& model);
const char* generate_video_help();

}  // namespace mindiesd::cli
