// Rebuilding a log on a fresh machine from what the distributor published:
// the data keys from the compacted keys topic, then every event, in log
// order, from the full-log topic (its partitions merged by sequence).
#pragma once

#include <atomic>
#include <string>

#include "cs/error.h"
#include "cs/event_log.h"

namespace cs {

// Events held parsed, ahead of the log, before they are imported in one call.
inline constexpr std::size_t restore_batch_events_max = 1'000;

struct RestoreOptions {
  std::string brokers;
  std::string full_log_topic = "customer-service.events";
  std::string keys_topic = "customer-service.keys";
  int operation_timeout_ms = 30'000;
  const std::atomic<bool>* stop_requested = nullptr;  // borrowed; stops between batches
};

struct RestoreReport {
  std::uint64_t data_keys = 0;    // key records stored (tombstones included)
  std::uint64_t events = 0;       // events imported
  std::uint64_t duplicates = 0;   // records of seqs already imported (republished ranges)
  Sequence head;
  Hash head_hash{};
};

// Reads both topics with read_committed to their ends (as they are when
// read) into `log`, which it continues: an empty log from seq 1, or one an
// interrupted restore left, from its head. Every hash is checked as by
// import, so the restored log ends with the original's head hash; keys
// must unwrap with the log's master key, and erasures stay erasures.
// Errors: invalid_argument (no master key for sealed data, a record that is
// not an event line), corruption (a gap in the sequences, a hash that does
// not match), retriable (broker unavailable), stopped.
Result<RestoreReport> restore_from_kafka(EventLog& log, const RestoreOptions& options);

}  // namespace cs
