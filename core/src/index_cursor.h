// Walks one stream's or one type's index blocks as a sequence of
// (position, seq) entries, forward or backward.
//
//   stream index: position = stream version; entry i of a block whose key ends
//                 with F has version F + i.
//   type index:   position = seq; entries are the seqs themselves.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <vector>

#include "cs/error.h"

namespace cs {

class IndexCursor {
 public:
  enum class Kind { stream, type };

  // `prefix` is keys::stream_prefix_key or keys::type_prefix_key. The cursor
  // borrows `db` and `family`.
  IndexCursor(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family, std::string prefix, Kind kind,
              const rocksdb::ReadOptions& read_options = {});

  // Forward: the first entry with position >= from. Backward: the last entry
  // with position <= from (UINT64_MAX: the very last).
  void seek(std::uint64_t from, bool backward);
  bool valid() const { return valid_; }
  std::uint64_t position() const;
  std::uint64_t seq() const { return seqs_[index_]; }
  void next();
  // An I/O error or a malformed block met on the way; check after the walk.
  const Status& status() const { return status_; }

 private:
  bool load_block();  // from the iterator's current key; false at the end
  bool on_prefix() const;

  std::unique_ptr<rocksdb::Iterator> it_;
  std::string prefix_;
  Kind kind_;
  bool backward_ = false;
  bool valid_ = false;
  std::uint64_t first_position_ = 0;
  std::vector<std::uint64_t> seqs_;
  std::size_t index_ = 0;
  Status status_;
};

}  // namespace cs
