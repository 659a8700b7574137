// The log in sequence order, over the events family whose keys group the
// events by category (keys::event_key): one RocksDB iterator per category,
// bounded to its run, and at each step the one whose event comes next.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cs/error.h"
#include "cs/event_types.h"
#include "cs/ids.h"
#include "keys.h"

namespace cs {

class LogIterator {
 public:
  // Borrows `db` and `events`; `options` is copied (its snapshot, if any, must
  // outlive the iterator). Only `categories` are read (all four by default).
  LogIterator(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* events, const rocksdb::ReadOptions& options,
              std::span<const Category> categories = keys::all_categories);
  LogIterator(const LogIterator&) = delete;
  LogIterator& operator=(const LogIterator&) = delete;

  // Forward from the first event with seq >= from.
  void seek(Sequence from) { position(from, /*backward=*/false); }
  // Backward from the last event with seq <= at (UINT64_MAX: the last).
  void seek_for_prev(Sequence at) { position(at, /*backward=*/true); }
  // One step in the direction of the last seek. Requires valid().
  void step();
  bool valid() const { return current_ < runs_count_; }
  Sequence seq() const { return Sequence(runs_[current_].seq); }
  Category category() const { return runs_[current_].category; }
  std::string_view value() const { return runs_[current_].it->value().ToStringView(); }
  // The first I/O error or malformed key met (the walk stops there); check
  // after the walk. `context` names the work in the message.
  Status status(std::string_view context) const;

 private:
  struct Run {
    Category category{};
    // The bounds the iterator's options point to: they stay where they are
    // (runs_ is an array in an object that never moves).
    std::string lower, upper;
    rocksdb::Slice lower_bound, upper_bound;
    std::unique_ptr<rocksdb::Iterator> it;
    std::uint64_t seq = 0;
    bool valid = false;
  };
  void position(Sequence at, bool backward);
  void load(Run& run);  // run.valid and run.seq from its iterator's position
  void pick();          // current_: the run whose event comes next

  std::array<Run, keys::all_categories.size()> runs_;
  std::size_t runs_count_ = 0;
  std::size_t current_ = 0;
  bool backward_ = false;
  std::string malformed_;  // the key that stopped the walk, hex
};

}  // namespace cs
