#include "cs/error.h"

#include <algorithm>

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

std::string printable(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) {
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

Error::Error(ErrorCode code, std::string message, ErrorCause cause) : code_(code), cause_(cause) {
  bool clean = std::none_of(message.begin(), message.end(), [](char c) {
    auto b = static_cast<unsigned char>(c);
    return b < 0x20 || b == 0x7f;
  });
  message_ = clean ? std::move(message) : printable(message);
}

std::string Error::to_string() const { return std::string(error_code_name(code_)) + ": " + message_; }

}  // namespace cs
