// Running the PyTorch peer scripts next to a C++ benchmark: which python to use, and the JSON
// lines ({..., "seconds": median}) each benchmark/torch_*.py prints, one per measurement.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mindiesd::bench {

// $MINDIESD_PYTHON, else the golden venv (tools/golden/install.sh), else the shared one on the
// build machines.
inline std::string default_python() {
  if (const char* env = std::getenv("MINDIESD_PYTHON")) return env;
  const std::string local = MINDIESD_SOURCE_DIR "/.venv-golden/bin/python";
  if (std::filesystem::exists(local)) return local;
  return "/work/golden-venv/bin/python";
}

// Runs `python benchmark/<script> <args>` and returns the JSON objects it printed that carry
// "seconds"; empty when the peer cannot run.
inline std::vector<nlohmann::json> run_peer(const std::string& python, const std::string& script,
                                            const std::string& args) {
  std::vector<nlohmann::json> rows;
  const std::string cmd =
      python + " " MINDIESD_SOURCE_DIR "/benchmark/" + script + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return rows;
  char line[1024];
  while (std::fgets(line, sizeof line, p)) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("seconds")) rows.push_back(std::move(j));
  }
  pclose(p);
  if (rows.empty())
    std::printf("(PyTorch peer unavailable: run tools/golden/install.sh or pass --python)\n");
  return rows;
}

// "a,b,,c" -> {"a", "b", "c"}.
inline std::vector<std::string> split_list(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t end = std::min(s.find(sep, at), s.size());
    if (end > at) out.push_back(s.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// The list as space-separated command-line arguments.
inline std::string as_args(const std::string& list) {
  std::string out;
  for (const std::string& item : split_list(list)) out += (out.empty() ? "" : " ") + item;
  return out;
}

}  // namespace mindiesd::bench
