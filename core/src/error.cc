#include "cs/error.h"

namespace cs {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::not_found: return "not found";
    case ErrorCode::corruption: return "corruption";
    case ErrorCode::invalid_argument: return "invalid argument";
    case ErrorCode::unauthorized: return "unauthorized";
    case ErrorCode::retriable: return "retriable";
    case ErrorCode::fatal: return "fatal";
  }
  return "unknown";
}

std::string Error::to_string() const { return std::string(error_code_name(code_)) + ": " + message_; }

}  // namespace cs
