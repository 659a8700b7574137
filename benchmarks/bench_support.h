// Shared set-up for the benchmarks: temp dirs and ~200-byte events.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cs/event.h"
#include "cs/event_log.h"
#include "history_generator.h"

namespace cs::bench {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() /
            ("cs-bench-" + name + "-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A token.used event over 64 customers; about 200 bytes stored.
inline NewEvent token_used_event(std::uint64_t n) {
  NewEvent e;
  e.id = Uuid::from_words(0xbe9c'0000'0000'0000ULL | (n >> 32), n);
  e.timestamp = Timestamp::from_seconds(1'767'225'600 + static_cast<std::int64_t>(n));
  e.meta.source_service = "app-mobile-service";
  e.payload = TokenUsed{Uuid::from_words(7, n % 64), 1 + static_cast<std::int64_t>(n % 9),
                        Uuid::from_words(8, n), Uuid::from_words(9, n % 300), "export"};
  return e;
}

// Appends the generated history of `customers` customers to `log`.
inline void append_generated(EventLog& log, std::uint64_t customers, std::uint64_t seed) {
  constexpr std::size_t batch_events = 5'000;
  HistoryGenerator generator({.customers = customers, .seed = seed});
  std::vector<NewEvent> batch;
  while (auto e = generator.next()) {
    batch.push_back(std::move(*e));
    if (batch.size() == batch_events) {
      if (!log.append(batch).ok()) std::abort();
      batch.clear();
    }
  }
  if (!batch.empty() && !log.append(batch).ok()) std::abort();
}

}  // namespace cs::bench
