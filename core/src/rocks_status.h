// The one place where rocksdb::Status becomes cs::Error.
#pragma once

#include <rocksdb/status.h>

#include <string>
#include <string_view>

#include "cs/error.h"

namespace cs {

// `context` says what was being done ("append: write batch").
inline Error from_rocks(const rocksdb::Status& s, std::string_view context) {
  std::string message = std::string(context) + ": " + s.ToString();
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() || s.IsIncomplete()) {
    return retriable_error(std::move(message));
  }
  if (s.IsNotFound()) return not_found_error(std::move(message));
  if (s.IsCorruption()) return corruption_error(std::move(message));
  if (s.IsInvalidArgument() || s.IsNotSupported()) return invalid_argument(std::move(message));
  return fatal_error(std::move(message));  // IOError and the rest: do not retry blindly
}

}  // namespace cs
