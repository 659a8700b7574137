// Shared set-up for the benchmarks: temp dirs and ~200-byte events.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cs/event.h"

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

}  // namespace cs::bench
