// Shared helpers for the tests: temporary directories and event builders.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "cs/event.h"
#include "cs/event_log.h"
#include "cs/personal_data.h"

namespace cs::test {

// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("cs-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline Uuid uuid(std::uint64_t n) { return Uuid::from_words(0x1234'5678'9abc'def0ULL, n); }
inline Timestamp at_seconds(std::int64_t s) { return Timestamp::from_seconds(1'767'225'600 + s); }  // 2026-01-01

inline NewEvent make_event(Payload payload, std::uint64_t id_n, ExpectedVersion expected = {}) {
  NewEvent e;
  e.id = uuid(1'000'000 + id_n);
  e.timestamp = at_seconds(static_cast<std::int64_t>(id_n));
  e.meta.source_service = "admin-service";
  e.expected = expected;
  e.payload = std::move(payload);
  return e;
}

inline CustomerCreated customer_created(std::uint64_t customer, CustomerType type = CustomerType::sme) {
  return {uuid(customer), type, "Acme " + std::to_string(customer), "billing@acme.example"};
}
inline TokenPurchased token_purchased(std::uint64_t customer, std::int64_t amount) {
  return {uuid(customer), amount, amount * 10, "EUR", "pay-" + std::to_string(amount)};
}
inline TokenUsed token_used(std::uint64_t customer, std::int64_t amount, std::uint64_t usage) {
  return {uuid(customer), amount, uuid(500'000 + usage), uuid(900), "export"};
}

// Makes the (closed) log in `dir` look as if written before the customer
// index existed: no customer_streams family, no marker.
void remove_customer_index(const std::filesystem::path& dir);

// Where `needle` is found in the database in `dir` (closed): every key and
// value of every column family, read through RocksDB (so a compressed SST
// block hides nothing), then the raw bytes of every file there (the
// write-ahead log, the key file if one were there). Each hit as
// "<family or file>". Empty: nowhere.
std::vector<std::string> stored_anywhere(const std::filesystem::path& dir, std::string_view needle);

// Opens the (closed) database in `dir` behind the log's back and gives
// `change` it and the handle of its family `family`.
void change_family(const std::filesystem::path& dir, const std::string& family,
                   const std::function<void(rocksdb::DB&, rocksdb::ColumnFamilyHandle*)>& change);

// One valid payload of each of the 19 types, all for customer 1.
std::vector<Payload> one_of_each_type();

// Opens a log as the tools do: with the master key beside it when there is
// one (csctl made the log), without one otherwise (plaintext, for the tests of
// the log itself).
inline std::unique_ptr<EventLog> open_log(const std::filesystem::path& dir, EventLogOptions options = {}) {
  if (options.master_key_file.empty() && std::filesystem::exists(default_master_key_file(dir))) {
    options.master_key_file = default_master_key_file(dir);
  }
  auto log = EventLog::open(dir, std::move(options));
  EXPECT_TRUE(log.ok()) << log.error().to_string();
  return std::move(log).value();
}

}  // namespace cs::test
