// Helpers shared by the unit tests: a scratch folder, whole-file write/read, and an assertion that
// a call throws a mindiesd::Error of a given kind whose message names given pieces.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>

#include "mindiesd/core/error.h"

// Builds without the CPU-side libraries (MINDIESD_CPU_DEPS=OFF: no ICU / sentencepiece
// tokenizers, FFmpeg, PNG reading) skip the tests that need them, naming what is missing.
#if MINDIESD_CPU_DEPS
#define MINDIESD_SKIP_WITHOUT_CPU_DEPS(what) static_cast<void>(0)
#else
#define MINDIESD_SKIP_WITHOUT_CPU_DEPS(what) \
  GTEST_SKIP() << "this build has no " what " (MINDIESD_CPU_DEPS=OFF)"
#endif

namespace mindiesd::test {

// A fresh folder under the system temp directory, named mindiesd_test_<prefix>_<pid>_<n> so a
// leftover one says which test made it; removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("mindiesd_test_" + std::string(prefix) + "_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `p` exactly (binary), creating missing parent folders and replacing any file.
inline void write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The whole content of `p` (binary); empty if it cannot be opened.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Expects `f()` to throw a mindiesd::Error of `kind` whose message contains every one of
// `needles`; records a failure if it returns normally (other exceptions propagate).
template <typename F>
void expect_error(F&& f, ErrorKind kind, std::initializer_list<std::string_view> needles) {
  try {
    f();
    ADD_FAILURE() << "expected a mindiesd::Error of kind " << error_kind_name(kind);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    const std::string msg = e.what();
    for (std::string_view n : needles) {
      EXPECT_NE(msg.find(n), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << n << "\"";
    }
  }
}

}  // namespace mindiesd::test
