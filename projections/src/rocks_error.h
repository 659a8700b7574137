// How a failed RocksDB call on the projection store becomes cs::Error.
//
// Unlike core's from_rocks, nothing here maps to corruption or invalid
// argument: the projection store is written only from events already in
// the log, so a failure there is never the input's fault and a caller (csctl
// import, replay) must not report it as a finding about the input.
#pragma once

#include <rocksdb/status.h>

#include <string>

#include "cs/error.h"

namespace cs {

// `context` says what was being done ("projections: write fold batch").
// Busy and try-again are retriable; everything else is fatal.
inline Error projection_store_error(const rocksdb::Status& s, const std::string& context) {
  return s.IsBusy() || s.IsTryAgain() ? retriable_error(context + ": " + s.ToString())
                                      : fatal_error(context + ": " + s.ToString());
}

}  // namespace cs
