// A generated history appended to a log, for tests that need a realistic one.
#pragma once

#include <gtest/gtest.h>

#include "cs/event_log.h"
#include "history_generator.h"

namespace cs::test {

inline void append_generated(EventLog& log, std::uint64_t customers, std::uint64_t seed,
                             std::size_t batch_events = 1'000) {
  HistoryGenerator generator({.customers = customers, .seed = seed});
  std::vector<NewEvent> batch;
  auto flush = [&] {
    auto r = log.append(batch);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    batch.clear();
  };
  while (auto e = generator.next()) {
    batch.push_back(std::move(*e));
    if (batch.size() == batch_events) flush();
  }
  if (!batch.empty()) flush();
}

}  // namespace cs::test
