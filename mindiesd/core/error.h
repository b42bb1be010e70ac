// Error kinds and the checking macros used across mindiesd.
//
// Bad user input (a broken file, an unknown config field, a wrong shape) must surface as a
// mindiesd::Error whose message names the file, tensor or argument and the shapes involved;
// never an abort. Internal invariants use MINDIESD_ASSERT, which also throws (kind Internal)
// so that a bug in one request cannot take a service down.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mindiesd {

enum class ErrorKind { InvalidArgument, NotFound, Unsupported, Corrupt, OutOfMemory, Io, Internal };

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message)
      : std::runtime_error(std::string(error_kind_name(kind)) + ": " + message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Concatenates anything printable with operator<< into one string.
template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

}  // namespace mindiesd

#define MINDIESD_THROW(kind, ...) \
  throw ::mindiesd::Error(::mindiesd::ErrorKind::kind, ::mindiesd::str_cat(__VA_ARGS__))

#define MINDIESD_CHECK(cond, kind, ...)   \
  do {                                    \
    if (!(cond)) {                        \
      MINDIESD_THROW(kind, __VA_ARGS__);  \
    }                                     \
  } while (0)

#define MINDIESD_ASSERT(cond, ...)                                                   \
  MINDIESD_CHECK(cond, Internal, __FILE__, ":", __LINE__, ": assertion `" #cond "` failed. ", \
                 ##__VA_ARGS__)
