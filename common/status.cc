#include "common/status.h"

namespace usersd {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NotFound";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kUnauthorized: return "Unauthorized";
    case Code::kIOError: return "IOError";
    case Code::kCorruption: return "Corruption";
    case Code::kMapFull: return "MapFull";
    case Code::kUnavailable: return "Unavailable";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace usersd
