// A deterministic, realistic customer history for demos, tests and benchmarks.
//
// Customers of both types go through their lifecycle: creation, validation
// (most), users created, updated, reset and deleted, subscriptions renewed,
// cancelled or expired, tokens purchased, allocated and used (never more than
// the balance, never while suspended or deleted), suspensions, reactivations
// and deletions. The same options give the same events, byte for byte, on any
// machine (no std::distribution: their output is implementation-defined).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <vector>

#include "cs/event.h"

namespace cs {

struct GeneratorOptions {
  std::uint64_t customers = 100;
  std::uint64_t seed = 1;
  Timestamp start = Timestamp::from_seconds(1'767'225'600);  // 2026-01-01T00:00:00Z
  // Customers start this far apart on average; each lives up to a year.
  std::int64_t customer_spacing_seconds = 1800;
};

// Yields the history in timestamp order (ties: customer order). Memory grows
// with the customers alive at once, not with the whole history.
class HistoryGenerator {
 public:
  explicit HistoryGenerator(GeneratorOptions options);
  ~HistoryGenerator();
  // The next event, or nullopt when the history is complete.
  std::optional<NewEvent> next();

 public:
  struct Pending;  // one customer's events not yet yielded

 private:
  void activate_until(Timestamp t);

  GeneratorOptions options_;
  std::uint64_t next_customer_ = 0;
  Timestamp next_start_;
  std::uint64_t start_rng_state_;
  std::vector<std::unique_ptr<Pending>> heap_;  // min-heap by next event time
};

}  // namespace cs
