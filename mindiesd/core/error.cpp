#include "mindiesd/core/error.h"

namespace mindiesd {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "InvalidArgument";
    case ErrorKind::NotFound: return "NotFound";
    case ErrorKind::Unsupported: return "Unsupported";
    case ErrorKind::Corrupt: return "Corrupt";
    case ErrorKind::OutOfMemory: return "OutOfMemory";
    case ErrorKind::Io: return "Io";
    case ErrorKind::Internal: return "Internal";
  }
  return "Unknown";
}

}  // namespace mindiesd
